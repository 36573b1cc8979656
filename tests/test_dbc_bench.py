"""Prints the hot-path throughput of each code style in MicroPython (figures, not asserts)."""

from keidrive.dbccompiler import bench, firmware_modules
from keidrive.dbccompiler.codegen import STYLES


def test_bench_prints_frames_per_second():
    _, inputs = firmware_modules()[0]
    figures = {style: bench.frames_per_second(list(inputs), "KEIDRIVE", style, n_frames=100, rounds=50) for style in STYLES}
    print("\ndispatch() frames/s in the MicroPython unix port:", figures)
    assert all(rate > 0 for rate in figures.values())
