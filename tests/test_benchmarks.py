"""The benchmarks' own instrument: ``bench_bnlib.spin_seconds`` must see threads that keep a
core busy after the timed calls (torch's OpenMP workers), since the pause after each block
is set from it. No timing of bnlib here: speed is measured by ``make bench``, not by tests."""

import hashlib
import importlib.util
import threading
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_bnlib.py"


def busy_without_the_gil() -> None:
    """Keep a core busy for a while (about 0.1 s here) without holding the GIL, as torch's
    OpenMP workers spin: hashlib releases the GIL while it hashes."""
    hashlib.sha256(bytes(100_000_000)).digest()


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_bnlib", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spin_seconds_sees_a_thread_that_keeps_spinning(bench):
    threads = []

    def call_then_spin():  # returns at once, leaving a thread busy (as torch's workers)
        threads.append(threading.Thread(target=busy_without_the_gil))
        threads[-1].start()

    spun = bench.spin_seconds(call_then_spin, calls=1)
    for thread in threads:
        thread.join()
    assert 0.02 <= spun <= 0.5


def test_spin_seconds_is_zero_for_a_call_that_leaves_nothing_running(bench):
    assert bench.spin_seconds(lambda: None, calls=1) == 0.0


def test_busy_cores_sees_a_spinning_thread_and_an_idle_one(bench):
    idle = bench.busy_cores(0.02)
    thread = threading.Thread(target=busy_without_the_gil)
    thread.start()
    time.sleep(0.005)
    busy = bench.busy_cores(0.02)
    thread.join()
    assert idle < 0.1 and busy > 0.5
