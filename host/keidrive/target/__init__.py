"""32-bit MicroPython targets built from source: the qemu port (MPS2-AN385,
Cortex-M3) and the 32-bit unix port. ``build()`` builds or finds one in the
cache; ``qemu`` runs the Cortex-M image with the firmware on its serial port."""

from .builder import DEFAULT_HEAP, TARGETS, Target, build

__all__ = ["DEFAULT_HEAP", "TARGETS", "Target", "build"]
