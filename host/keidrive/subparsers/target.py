"""keidrive target: build the 32-bit MicroPython targets the firmware is tested on."""

from __future__ import annotations

import json


def add_subparser(subparsers) -> None:
    p = subparsers.add_parser(
        "target", help="build the 32-bit MicroPython targets (qemu Cortex-M3, unix32, rp2040 Raspberry Pi Pico)",
        description="Build MicroPython's qemu port (MPS2-AN385, Cortex-M3, the firmware frozen in), its "
                    "32-bit unix port, or its rp2 port for the Raspberry Pi Pico (a UF2 with the firmware frozen "
                    "in, to drag onto a Pico) from a MicroPython v1.28 source, cached under the user's cache folder.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    b = actions.add_parser("build", help="build a target (a cache hit when built before)")
    b.add_argument("target", choices=("qemu", "unix32", "rp2040"))
    b.add_argument("--micropython-src", metavar="DIR|TARBALL",
                   help="MicroPython source tree or tarball (default: $KEIDRIVE_MICROPYTHON_SRC)")
    b.add_argument("--rp2-src", metavar="DIR",
                   help="rp2040: a folder with the rp2 port's tarballs (ports/rp2, pico-sdk, mbedtls, "
                        "micropython-lib) when the source lacks them (default: $KEIDRIVE_RP2_SRC)")
    b.add_argument("--heap", type=int, metavar="BYTES", help="qemu heap size (default 131072)")
    b.add_argument("--json", action="store_true",
                   help='print {"target", "path", "heap_size", "mpy_arch"}; rp2040 adds "uf2_bytes", "flash_bytes", '
                        '"flash_bytes_left" and "base" (the stock image)')
    b.set_defaults(func=run_build)


def run_build(args) -> int:
    from ..target import build

    built = build(args.target, args.micropython_src, args.heap, rp2_src=args.rp2_src)
    if args.json:
        print(json.dumps(built.summary()))
        return 0
    if built.image:
        image = built.image
        print(f"{built.target} (Raspberry Pi Pico, {built.mpy_arch}): {built.path}")
        print(f"  UF2 {image['uf2_bytes']:,} bytes: drag it onto the RPI-RP2 drive of a Pico held in BOOTSEL")
        print(f"  flash {image['flash_bytes']:,} bytes used, {image['flash_bytes_left']:,} left of the "
              f"{image['storage_offset']:,} below the {image['storage_bytes'] // 1024} KiB file system")
        print(f"  RAM: a {built.heap_size:,}-byte heap (what static data and stacks leave of 264 KiB)")
        print(f"  stock image (nothing frozen): {built.base}")
        return 0
    heap = f", heap {built.heap_size} bytes" if built.heap_size else ""
    print(f"{built.target} ({built.mpy_arch}{heap}): {built.path}")
    return 0
