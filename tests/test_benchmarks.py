"""The benchmarks' own instrument: ``bench_bnlib.spin_seconds`` must see threads that keep a
core busy after the timed calls (torch's OpenMP workers), since the pause after each block
is set from it. No timing of bnlib here: speed is measured by ``make bench``, not by tests."""

import importlib.util
import threading
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_bnlib.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_bnlib", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spin_seconds_sees_a_thread_that_keeps_spinning(bench):
    def call_then_spin():  # returns at once, leaving a thread busy for 0.15 s
        def spin():
            end = time.perf_counter() + 0.15
            while time.perf_counter() < end:
                pass

        threading.Thread(target=spin, daemon=True).start()

    spun = bench.spin_seconds(call_then_spin, calls=1)
    time.sleep(0.2)  # let the last thread finish
    assert 0.08 <= spun <= 0.5


def test_spin_seconds_is_zero_for_a_call_that_leaves_nothing_running(bench):
    assert bench.spin_seconds(lambda: None, calls=1) == 0.0
