"""Measure the generated hot path in the real MicroPython unix port.

    python -m keidrive.dbccompiler.bench [DBC ...] [--node NAME] [--frames N]

Compiles the DBCs once per code style (viper, native, plain Python), then
runs ``dispatch()`` over a realistic frame mix — each received message
weighted by its rate (1/GenMsgCycleTime) with random payloads — and prints
frames/s per style. The figures decided ``codegen.DEFAULT_STYLE``; they are
printed, never asserted (they depend on the machine).
"""

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from ..paths import firmware_dir
from ..runtime import micropython_command
from . import compile_dbc, exec_generated, firmware_modules
from .codegen import STYLES

BENCH_SCRIPT = """
import sys, time
sys.path.insert(0, {directory!r})
sys.path.insert(0, {firmware!r})
import {module} as m
frames = []
for index in {indices!r}:
    data = bytes(((index * 37 + k * 11 + len(frames)) * 2654435761 >> 7) & 0xFF for k in range(8))
    frames.append((m.frame_key(m.MSG_IDS[index], m.MSG_EXTENDED[index]), data, m.MSG_LEN[index]))
values = m.new_values()
dispatch = m.dispatch
start = time.ticks_us()
for _ in range({rounds}):
    for key, data, dlc in frames:
        dispatch(key, data, dlc, values)
elapsed = time.ticks_diff(time.ticks_us(), start)
print(round({rounds} * len(frames) * 1000000 / elapsed))
"""


def frame_mix(text: str, n_frames: int, seed: int = 1) -> list[int]:
    """Indices of received messages, drawn in proportion to their frame rates."""
    namespace = exec_generated(text)
    received = [i for i in range(namespace["N_MESSAGES"]) if namespace["MSG_RX"][i]]
    rates = [1000 / (namespace["MSG_CYCLE_MS"][i] or 1000) for i in received]
    return random.Random(seed).choices(received, weights=rates, k=n_frames)


def frames_per_second(paths: list[Path], node: str | None, style: str, n_frames: int = 200, rounds: int = 200) -> int:
    text = compile_dbc(paths, node=node, style=style)
    with tempfile.TemporaryDirectory() as directory:
        module = f"bench_{style}"
        (Path(directory) / f"{module}.py").write_text(text)
        script = BENCH_SCRIPT.format(
            directory=directory, firmware=str(firmware_dir()), module=module,
            indices=frame_mix(text, n_frames), rounds=rounds,
        )
        result = subprocess.run(
            [micropython_command(), "-c", script], capture_output=True, text=True, check=True, timeout=300
        )
    return int(result.stdout.split()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dbc", nargs="*", type=Path, help="default: the first firmware vehicle module's DBCs")
    parser.add_argument("--node", default=None)
    parser.add_argument("--frames", type=int, default=200, help="frames in the mix (each run repeats it 200 times)")
    args = parser.parse_args(argv)
    paths, node = args.dbc, args.node
    if not paths:
        _, inputs = firmware_modules()[0]
        paths, node = list(inputs), node or "KEIDRIVE"
    for style in STYLES:
        print(f"{style:>7}: {frames_per_second(paths, node, style, args.frames):>9} frames/s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
