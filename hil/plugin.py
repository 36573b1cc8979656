"""keidrive's hardware-in-the-loop pytest plugin.

Fixtures for your own scenarios:

* ``hil_bus`` — the bus spec the drives go over (``--bus``; default: a
  private channel of the keidrive virtual bus, which needs no kernel module).
* ``dut`` — the device under test (``--dut``): ``sil`` (the firmware in the
  MicroPython unix port, default), ``sil:cpython``, ``sil:/path/to/micropython``.
* ``drive`` — ``drive(vehicle, cycle, profile, config=None, mutate=None)``
  simulates the drive, puts it on the bus with the device attached, and
  returns a :class:`Drive` with the ground truth and what the firmware said.
  ``mutate(records) -> records`` edits the traffic first (drop a signal,
  corrupt a checksum...). Drives are cached per session by their arguments.

Use it from a conftest: ``pytest_plugins = ["hil.plugin"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from keidrive import record, sim
from keidrive.harness import FirmwareReport, feed_over_bus, firmware_config


def pytest_addoption(parser):
    group = parser.getgroup("keidrive", "keidrive hardware in the loop")
    group.addoption(
        "--dut", default="sil",
        help="device under test: sil (MicroPython unix port), sil:cpython, sil:/path/to/micropython",
    )
    group.addoption(
        "--bus", default=None, metavar="INTERFACE:CHANNEL",
        help="bus for the drives (default: a private keidrive virtual bus channel)",
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
    """The firmware in a local process, attached to the bus through its stream port."""

    def __init__(self, runtime: str, bus: str | None):
        self.runtime = runtime
        self.bus = bus

    def run(self, records, config: dict):
        return feed_over_bus(records, config, bus=self.bus, runtime=self.runtime)


def _device(spec: str, bus: str | None):
    kind, _, detail = spec.partition(":")
    if kind == "sil":
        return SilDevice(detail or "micropython", bus)
    raise pytest.UsageError(f"--dut {spec!r}: expected sil, sil:cpython or sil:/path/to/micropython")


@pytest.fixture(scope="session")
def hil_bus(pytestconfig):
    return pytestconfig.getoption("--bus")


@pytest.fixture(scope="session")
def dut(pytestconfig, hil_bus):
    return _device(pytestconfig.getoption("--dut"), hil_bus)


@pytest.fixture(scope="session")
def drive(dut):
    cache: dict = {}

    def run(vehicle="nbox-turbo", cycle="wltc-jp", profile="jp-expressway", config=None, mutate=None):
        key = (vehicle, cycle, profile, tuple(sorted((config or {}).items())), mutate)
        if key not in cache:
            result = sim.simulate(vehicle, cycle)
            records = record.from_frames(result.frames)
            if mutate is not None:
                records = mutate(records)
            settings = firmware_config(sim.load_vehicle(vehicle).dbc, profile, config)
            report, figures = dut.run(records, settings)
            assert report.ok, report.failure()
            cache[key] = Drive(result.truth, result.trace, report, figures)
        return cache[key]

    return run
