"""What a drive is, as the library takes it: a ``DriveSpec`` for a simulated
drive, and the rules its settings follow whichever command or caller gives
them (pace on a bus, a DBC and its roles file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import KeidriveError

if TYPE_CHECKING:
    from ..gps.nmea import Receiver

DEFAULT_VEHICLE = "nbox-turbo"
DEFAULT_CYCLE = "wltc-jp"
DEFAULT_PROFILE = "jp-expressway"
DEFAULT_RUNTIME = "micropython"


@dataclass(frozen=True)
class DriveSpec:
    """A simulated drive with the firmware in the loop (``keidrive.run``).

    ``vehicle``: a preset (``keidrive vehicles``) or a vehicle TOML file.
    ``cycle``: a bundled drive cycle (``keidrive cycles``) or a cycle CSV.
    ``profile``: the firmware's speed-warning profile (``keidrive profiles``).
    ``dbc``, ``roles``: put the drive on a bus in this DBC's format, the
    firmware running it compiled with the roles file; a bundled vehicle DBC
    (``kei_hybrid_660``) brings its own roles file, any other needs one.
    ``obd``: the firmware polls the simulated engine ECU over OBD-II;
    ``obd_second_ecu``: with it, a hostile second ECU on the port that claims
    every PID, then stays silent, answers only "response pending" or answers
    garbage (``silent``, ``pending``, ``garbage``: ``sim.obd_ecu.HOSTILE``).
    ``config``: firmware config keys on top of the drive's (``obd_ve_pct``
    from ``keidrive calibrate``...).
    ``runtime``: where the firmware runs: ``micropython`` (the unix port),
    ``cpython``, ``unix32``, ``qemu``, ``qemu-mpy``, ``rp2040`` (an emulated
    Raspberry Pi Pico, the frames through its MCP2515) or a micropython executable.
    ``bus``: ``INTERFACE:CHANNEL[@BITRATE]``; None: a private channel of the
    keidrive virtual bus.
    ``pace``: None, as fast as the firmware takes the frames, in lockstep
    on their time, or at recorded pace on a bus other than keidrive's (the
    only pace there); 1, recorded pace with the firmware on its own clock,
    as on a car.
    ``route``: a bundled route (``keidrive geo routes``) or a GPX / CSV
    file: the cycle, repeated until it covers the route, is driven along it
    with a GNSS module on the board's GPS UART, and the firmware warns by
    the kei rule of the state it is in (docs/gps.md); ``gnss``: that
    module (``keidrive.gps.nmea.Receiver``: rate, noise, outages, multipath
    jumps; default 1 Hz, 2.5 m); ``start``: when the drive starts (UTC;
    default: the route's own time), which decides the rules in force.
    """

    vehicle: str = DEFAULT_VEHICLE
    cycle: str = DEFAULT_CYCLE
    profile: str = DEFAULT_PROFILE
    dbc: str | Path | None = None
    roles: str | Path | None = None
    obd: bool = False
    obd_second_ecu: str | None = None
    config: Mapping | None = field(default=None, hash=False)
    runtime: str = DEFAULT_RUNTIME
    bus: str | None = None
    pace: float | None = None
    route: str | Path | None = None
    gnss: Receiver | None = field(default=None, hash=False)
    start: datetime | None = None


def shared_bus(bus: str | None) -> bool:
    """Whether frames on ``bus`` go where the firmware's time cannot follow
    them: any bus but keidrive's virtual one hands the firmware its own
    receive times, so frames must leave at recorded pace there."""
    return bus is not None and not bus.startswith("keidrive:")


def check_bus(bus: str | None) -> str | None:
    """``bus`` if it is ``INTERFACE:CHANNEL[@BITRATE]`` of an interface
    python-can has (opening it waits for the drive)."""
    if bus is None:
        return None
    import can

    from ..errors import did_you_mean
    from .busio import parse_bus

    interface = parse_bus(bus)[0]
    if interface not in can.interfaces.VALID_INTERFACES:
        known = sorted(can.interfaces.VALID_INTERFACES)
        raise KeidriveError(f"{bus}: python-can has no interface {interface!r}{did_you_mean(interface, known)}",
                            option="bus")
    return bus


def check_pace(pace: float | None, bus: str | None) -> float | None:
    """The pace a drive goes at on ``bus`` (both checked): None made
    recorded pace (1) where only that works."""
    check_bus(bus)
    if pace is not None and pace <= 0:
        raise KeidriveError(f"{pace:g}: must be positive (1: recorded pace)", option="pace")
    if shared_bus(bus):
        if pace not in (None, 1):
            raise KeidriveError(
                f"{pace:g} with the firmware on {bus}: it sees the bus's receive times, so only recorded pace "
                "(1) works there", option="pace")
        return 1.0
    return pace


def resolve_dbc(dbc: str | Path | None, roles: str | Path | None) -> tuple[str | None, Path | None, Path | None]:
    """(bundled vehicle DBC or None, DBC file, roles file) of a drive's ``dbc``
    and ``roles``, by one rule for every command: a roles file needs its DBC;
    a bundled vehicle DBC (by name or file) needs no roles file, its own is
    beside it; any other DBC file needs one."""
    from ..errors import did_you_mean
    from ..paths import dbc_dir

    if roles is not None and dbc is None:
        raise KeidriveError(f"{roles}: a roles file needs {{dbc}}, the DBC whose signals it names", option="roles",
                            mentions=("dbc",))
    if dbc is None:
        return None, None, None
    bundled = bundled_dbc(dbc)
    path = Path(dbc)
    if bundled is not None and not path.is_file():
        path = dbc_dir() / f"{bundled}.dbc"
    if bundled is None and path.suffix != ".dbc":
        names = bundled_dbcs()
        raise KeidriveError(f"{dbc}: neither a bundled vehicle DBC{did_you_mean(str(dbc), names)} "
                            f"({', '.join(names)}) nor a .dbc file", option="dbc")
    if roles is None and bundled is None:
        raise KeidriveError(f"{dbc}: a DBC file of your own car needs its roles file ({{roles}})", option="dbc",
                            mentions=("roles",))
    if not path.is_file():
        raise KeidriveError(f"{dbc}: no such file", option="dbc")
    if roles is None:
        return bundled, path, dbc_dir() / f"{bundled}.toml"
    if not Path(roles).is_file():
        raise KeidriveError(f"{roles}: no such file", option="roles")
    return bundled, path, Path(roles)


def bundled_dbcs() -> list[str]:
    """The vehicle DBCs the firmware carries decoders for."""
    from ..io.drivelog import FIRMWARE_DBC
    from ..paths import dbc_dir

    return sorted(path.stem for path in dbc_dir().glob("*.dbc") if path.name != FIRMWARE_DBC)


def bundled_dbc(dbc: str | Path) -> str | None:
    """The bundled vehicle DBC ``dbc`` names (``kei_ev``, or a ``kei_ev.dbc``), else None."""
    path = Path(dbc)
    return path.stem if path.suffix in ("", ".dbc") and path.stem in bundled_dbcs() else None
