"""keidrive: eco-drive and highway-speed telematics for kei cars.

The host side: DBC -> MicroPython compiler, kei powertrain simulator,
drive-log replay, firmware-in-the-loop drives and board tools. A drive from
Python, as the ``keidrive`` command runs it::

    import keidrive

    trip = keidrive.run(keidrive.DriveSpec(vehicle="alto-na", cycle="udds", profile="us-minitruck-55"))
    trip.firmware["km_per_l"], trip.truth["km_per_l"], trip.warnings
    trip.to_json()                       # exactly `keidrive run --json`
    keidrive.replay("drive.blf").to_json()   # exactly `keidrive replay drive.blf --json`

See docs/library.md.
"""

__version__ = "0.1.0"

# Imported on first use: `keidrive --help` should not load the simulator.
_API = {
    "DriveSpec": "keidrive.drive.spec",
    "Trip": "keidrive.drive.trip",
    "SimulatedDrive": "keidrive.drive.simulated",
    "run": "keidrive.drive.simulated",
    "LogReplay": "keidrive.drive.replayed",
    "replay": "keidrive.drive.replayed",
    "load_truth": "keidrive.drive.replayed",
    "KeidriveError": "keidrive.errors",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'keidrive' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_API[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
