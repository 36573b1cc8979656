"""keidrive: eco-drive and highway-speed telematics for kei cars.

The host side: DBC -> MicroPython compiler, kei powertrain simulator,
drive-log replay, firmware-in-the-loop harness and board tools.
"""

__version__ = "0.1.0"
