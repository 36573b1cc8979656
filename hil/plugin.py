"""keidrive's hardware-in-the-loop pytest plugin.

Fixtures for your own scenarios:

* ``hil_bus`` — the bus spec the drives go over (``--bus``; default: a
  private bus, the drive fed straight into the firmware, which needs no
  kernel module).
* ``dut`` — the device under test (``--dut``): ``sil`` (the firmware in the
  MicroPython unix port, default), ``sil:cpython``, ``sil:/path/to/micropython``,
  ``sil:unix32`` (the 32-bit unix port), ``qemu`` / ``qemu-mpy`` (MicroPython's
  Cortex-M3 build under qemu, the firmware frozen or as .mpy files; built by
  ``keidrive target build qemu``), ``rp2040`` (an emulated Raspberry Pi Pico,
  the firmware frozen, frames through its MCP2515; ``keidrive target build
  rp2040``), or ``serial:/dev/ttyUSB0`` — a board running the firmware, on the bus given
  by ``--bus`` (``socketcan:can0``, a USB-CAN adapter...); its drives run at
  recorded pace.
* ``drive`` — ``drive(vehicle, cycle, profile, config=None, mutate=None)``;
  ``obd=True`` drives the firmware as an OBD-II tester against the simulated
  engine ECU instead (``obd_faults``: ``keidrive.sim.obd_ecu`` faults);
  ``dbc=DBC, roles=ROLES.toml`` puts the drive on the bus in that DBC's format
  for the firmware compiled with the roles file (with ``obd=True``, the ECU
  answers beside it)
  simulates the drive, puts it on the bus with the device attached, and
  returns a :class:`Drive` with the ground truth and what the firmware said.
  ``mutate(records) -> records`` edits the traffic first (drop a signal,
  corrupt a checksum...); ``faults=[...]`` applies ``keidrive.faults``
  transforms (``Drop``, ``CorruptCounter``, ``CorruptChecksum``, ``WrongDlc``,
  ``ErrorFrames``, ``RemoteFrames``, ``RandomFrames``, ``Flood``,
  ``TimestampJump``, ``BusOff``) with ``fault_seed``, after ``mutate``.
  Drives are cached per session by their arguments.
* ``power_cut_drive`` — ``power_cut_drive(vehicle, cycle, profile,
  config=None, cuts=20, seed=0)``: the same drive with the device's power cut
  (SIGKILL) at ``cuts`` random moments (or at the ``(record index, mode)``
  list given), each boot checked against the trip store; returns a
  ``keidrive.faults.PowerCutReport`` (``cuts``, ``corrupt_loads``,
  ``max_lost_s``, ``final``).
* ``faults`` — the ``keidrive.faults`` module, for scenarios of your own.

Installed with keidrive as the module ``keidrive_hil`` and registered through
the ``pytest11`` entry point: any pytest run has these fixtures.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

import json
import threading
import time

import keidrive
from keidrive import faults as _faults
from keidrive import sim
from keidrive.drive.busio import open_bus, play
from keidrive.drive.harness import QEMU_RUNTIMES, FirmwareReport, feed_over_bus, firmware_config
from keidrive.drive.spec import DriveSpec
from keidrive.io import record


def pytest_addoption(parser):
    group = parser.getgroup("keidrive", "keidrive hardware in the loop")
    group.addoption(
        "--dut", default="sil",
        help="device under test: sil (MicroPython unix port), sil:cpython, sil:unix32, sil:/path/to/micropython, "
             "qemu (the Cortex-M3 build, firmware frozen), qemu-mpy (its .mpy files), rp2040 (an emulated Pico), "
             "serial:/dev/ttyUSB0",
    )
    group.addoption(
        "--bus", default=None, metavar="INTERFACE:CHANNEL[@BITRATE]",
        help="bus for the drives (default: a private bus, the drive fed straight into the firmware)",
    )


@dataclass
class Drive:
    """A finished drive: the simulator's truth and trace, and the device's report."""

    truth: dict
    trace: dict
    report: FirmwareReport
    figures: dict

    @property
    def trip(self) -> dict:
        return self.report.trip

    @property
    def warnings(self) -> list:
        """The trip's warnings: [{"kind", "level", "start_s", "end_s"}]."""
        return self.trip["warnings"]

    def kinds(self) -> set:
        return {w["kind"] for w in self.warnings}


class SilDevice:
    """The firmware in a local process, attached to the bus through its stream port:
    its drives are the library's (``keidrive.run``), as ``keidrive run`` drives them."""

    def __init__(self, runtime: str, bus: str | None):
        self.runtime = runtime
        self.bus = bus

    def drive(self, spec: DriveSpec, mutate=None, ecu_faults=None) -> Drive:
        # a drive given mutate is simulated whole: its trace has every 10 ms step, as the oracles read it
        trip = keidrive.run(replace(spec, runtime=self.runtime, bus=None if spec.obd else self.bus),
                            mutate=mutate, ecu_faults=ecu_faults)
        return Drive(trip.truth, trip.trace, trip.report, trip.bus)

    def run(self, records, config: dict, tree=None):
        """Records of your own (a log's, edited) into the firmware on the bus,
        as a drive's go: (its report, the bus figures), as a board's ``run``."""
        return feed_over_bus(records, config, bus=self.bus, runtime=self.runtime, tree=tree)

    def run_with_power_cuts(self, records, config: dict, cuts, seed: int = 0):
        """Power cuts need the process: records through its stdin, not the bus."""
        if self.runtime in QEMU_RUNTIMES:
            pytest.skip("the qemu board keeps no files (no trip store to cut power on): use sil or sil:unix32")
        return _faults.run_with_power_cuts(records, config, cuts, runtime=self.runtime, seed=seed)


class PicoDevice(SilDevice):
    """The emulated Pico (keidrive.target.pico): listen-only, and its trip
    store is a LittleFS image the runner keeps, not a process to cut."""

    def drive(self, spec: DriveSpec, mutate=None, ecu_faults=None) -> Drive:
        if spec.obd:
            pytest.skip("the emulated Pico listens only: OBD-II polling transmits (use sil or sil:unix32)")
        return super().drive(spec, mutate=mutate, ecu_faults=ecu_faults)

    def run_with_power_cuts(self, *args, **kwargs):
        pytest.skip("power cuts kill the firmware's process: use sil or sil:unix32")


# A new trip: the board's trip store goes before the drive.
CLEAR_TRIP = """
import os
for name in ("trip_a.bin", "trip_b.bin"):
    try:
        os.remove("/data/" + name)
    except OSError:
        pass
"""


class SerialDevice:
    """A board on a serial port, listening on a real bus.

    Before a drive its config is written (through the firmware's schema) and
    its trip store cleared, then it is soft reset; the drive is played onto
    the bus at recorded pace while its telemetry is read from the port. A
    board has no end of input: the trip is the last status line with the
    warnings rebuilt from the warning events.
    """

    def __init__(self, port: str, bus: str | None):
        if bus is None:
            raise pytest.UsageError("--dut serial:PORT needs --bus INTERFACE:CHANNEL: the bus the board listens on")
        self.port = port
        self.bus = bus

    def run(self, records, config: dict):
        from keidrive.board.client import Board
        from keidrive.board.deploy import merged_config, parse_board_config, write_config
        from keidrive.board.monitor import Source

        board = Board(self.port)
        try:
            current = parse_board_config(board.read_file("/config.json"), self.port)
            write_config(board, merged_config(current, config))
            board.exec(CLEAR_TRIP)
        finally:
            board.close(leave="reset")
        events: list = []
        stop = threading.Event()
        source = Source(self.port)

        def read():
            for line in source.lines(None):
                if stop.is_set():
                    break
                if line and line.startswith("{"):
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        bus = open_bus(self.bus)
        try:
            _wait_for(lambda: any(e.get("type") == "status" for e in events), 15.0, "the board sent no status line")
            figures = play(bus, record.to_messages(records), speed=1.0)
            # the board's figures once it has taken the last frame: the second
            # status line from now (the first may have been on its way)
            seen = sum(e.get("type") == "status" for e in events)
            _wait_for(lambda: sum(e.get("type") == "status" for e in events) >= seen + 2, 15.0,
                      "the board sent no status line after the drive")
        finally:
            stop.set()
            reader.join(timeout=5)
            source.close()
            bus.shutdown()
        trip = trip_from_telemetry(events)
        report = FirmwareReport(0, events + ([trip] if trip else []))
        return report, figures


def _wait_for(condition, timeout: float, failure: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(failure)
        time.sleep(0.05)


def trip_from_telemetry(events: list) -> dict | None:
    """A trip summary from a board's running telemetry: totals of the last
    status line, warnings (kind, level, start_s, end_s) from the events."""
    statuses = [e for e in events if e.get("type") == "status"]
    if not statuses:
        return None
    last = statuses[-1]
    warnings, active = [], {}
    for event in events:
        if event.get("type") != "warning":
            continue
        kind = event["kind"]
        if event["state"] == "raised":
            active[kind] = {"kind": kind, "level": event["level"], "start_s": event["t_s"], "end_s": None}
            warnings.append(active[kind])
        elif kind in active and event["state"] == "escalated":
            active[kind]["level"] = event["level"]
        elif kind in active and event["state"] == "cleared":
            active.pop(kind)["end_s"] = event["t_s"]
    return {
        "type": "trip",
        "source": "status",
        "duration_s": last["t_s"],
        "distance_km": last["distance_km"],
        "fuel_l": last.get("fuel_l"),
        "km_per_l": last.get("trip_km_per_l"),
        "l_per_100km": last.get("l_per_100km"),
        "mpg_us": last.get("mpg_us"),
        "energy_kwh": last.get("energy_kwh"),
        "wh_per_km": last.get("wh_per_km"),
        "eco_score": last.get("eco_score"),
        "warnings": warnings,
    }


def _device(spec: str, bus: str | None):
    kind, _, detail = spec.partition(":")
    if kind == "sil":
        return SilDevice(detail or "micropython", bus)
    if spec in QEMU_RUNTIMES:
        # MicroPython's Cortex-M3 build under qemu (keidrive target build qemu), records over its UART
        return SilDevice(spec, bus)
    if spec == "rp2040":
        return PicoDevice(spec, bus)
    if kind == "serial" and detail:
        return SerialDevice(detail, bus)
    raise pytest.UsageError(
        f"--dut {spec!r}: expected sil, sil:cpython, sil:unix32, sil:/path/to/micropython, qemu, qemu-mpy, "
        "rp2040 or serial:/dev/ttyUSB0"
    )


@pytest.fixture(scope="session")
def hil_bus(pytestconfig):
    return pytestconfig.getoption("--bus")


@pytest.fixture(scope="session")
def dut(pytestconfig, hil_bus):
    return _device(pytestconfig.getoption("--dut"), hil_bus)


@pytest.fixture(scope="session")
def drive(dut):
    cache: dict = {}

    def run(vehicle="nbox-turbo", cycle="wltc-jp", profile="jp-expressway", config=None, mutate=None,
            faults=None, fault_seed=0, obd=False, obd_faults=None, dbc=None, roles=None):
        key = (vehicle, cycle, profile, tuple(sorted((config or {}).items())), mutate,
               tuple(faults or ()), fault_seed, obd, tuple(sorted((obd_faults or {}).items())), dbc, roles)
        if key in cache:
            return cache[key]

        def edit(records):
            if mutate is not None:
                records = mutate(records)
            return _faults.apply(records, faults, fault_seed) if faults else records

        spec = DriveSpec(vehicle, cycle, profile, dbc=dbc, roles=roles, obd=obd, config=config)
        if isinstance(dut, SilDevice):
            cache[key] = dut.drive(spec, mutate=edit, ecu_faults=obd_faults)
            return cache[key]
        if obd or dbc is not None:
            pytest.skip("OBD-II drives and drives in another DBC's format run the SIL firmware (the ECU is "
                        "simulated in lockstep; the firmware tree is compiled for the drive)")
        result = sim.simulate(vehicle, cycle)
        settings = firmware_config(sim.load_vehicle(vehicle).dbc, profile, config)
        report, figures = dut.run(edit(record.from_frames(result.frames)), settings)
        assert report.ok, report.failure()
        cache[key] = Drive(result.truth, result.trace, report, figures)
        return cache[key]

    return run


@pytest.fixture(scope="session")
def faults():
    return _faults


@pytest.fixture(scope="session")
def power_cut_drive(dut):
    import numpy as np

    def run(vehicle="nbox-turbo", cycle="wltc-jp", profile="jp-expressway", config=None, cuts=20, seed=0):
        settings = firmware_config(sim.load_vehicle(vehicle).dbc, profile, config)
        records = record.from_frames(sim.simulate(vehicle, cycle).frames)
        if isinstance(cuts, int):
            rng = np.random.default_rng(seed)
            cuts = _faults.plan_cuts(records, cuts, int(settings.get("save_interval_s", 60)), rng)
        return dut.run_with_power_cuts(records, settings, cuts, seed=seed)

    return run
