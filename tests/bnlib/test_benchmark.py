"""benchmarks/bench_bnlib.py runs and prints its tables: the instrument, not the speed (no
figure is checked, so the machine's load cannot fail this test)."""

import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).parents[2] / "benchmarks" / "bench_bnlib.py"


@pytest.mark.xdist_group("benchmark")
def test_the_benchmark_prints_compare_and_the_ratio_table():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--shapes", "2x3x4x4,3x2x5x5", "--threads", "1,2",
         "--rounds", "2", "--min-run-time", "0.005"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert "batch norm, float32, training: 2×3×4×4 " in out  # a Compare table
    assert "1 threads: ---" in out and "2 threads: ---" in out  # Compare's thread groups
    rows = [line for line in out.splitlines() if line.startswith("| 2×3×4×4 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["1", "2"]  # a row per count
    for row in rows:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert len(cells) == 8
        float(cells[4].split()[0]), float(cells[5].split()[0]), float(cells[7].split()[0])


def test_thread_counts_double_up_to_the_cores():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import bench_bnlib
    finally:
        sys.path.remove(str(SCRIPT.parent))
    assert bench_bnlib.thread_counts(1) == [1]
    assert bench_bnlib.thread_counts(2) == [1, 2]
    assert bench_bnlib.thread_counts(16) == [1, 2, 4, 8, 16]
    assert bench_bnlib.thread_counts(6) == [1, 2, 4, 6]
