"""keidrive target: build the 32-bit MicroPython targets the firmware is tested on."""

from __future__ import annotations

import json


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "target", help="build the 32-bit MicroPython targets (qemu Cortex-M3, unix32)",
        description="Build MicroPython's qemu port (MPS2-AN385, Cortex-M3, the firmware frozen in) or its "
                    "32-bit unix port from a MicroPython v1.28 source, cached under the user's cache folder.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="build a target (a cache hit when built before)")
    b.add_argument("target", choices=("qemu", "unix32"))
    b.add_argument("--micropython-src", metavar="DIR|TARBALL",
                   help="MicroPython source tree or tarball (default: $KEIDRIVE_MICROPYTHON_SRC)")
    b.add_argument("--heap", type=int, metavar="BYTES", help="qemu heap size (default 131072)")
    b.add_argument("--json", action="store_true", help='print {"target", "path", "heap_size", "mpy_arch"}')
    b.set_defaults(func=run_build)


def run_build(args) -> int:
    from ..target import build

    built = build(args.target, args.micropython_src, args.heap)
    if args.json:
        print(json.dumps(built.summary()))
        return 0
    heap = f", heap {built.heap_size} bytes" if built.heap_size else ""
    print(f"{built.target} ({built.mpy_arch}{heap}): {built.path}")
    return 0
