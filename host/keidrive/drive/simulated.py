"""A simulated drive with the firmware in the loop: ``keidrive.run(spec)``.

The simulator turns the cycle into the vehicle's CAN traffic, the frames go
onto a bus the firmware listens to, and its telemetry comes back as a
``Trip``. ``keidrive run``, ``keidrive fleet``, the HIL fixture and the
bench all drive through here, so a drive is the same drive whoever asks.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import KeidriveError
from .spec import DriveSpec, check_pace, resolve_dbc
from .trip import Trip


class SimulatedDrive:
    """A drive checked and ready: every setting of ``spec`` is validated
    here, before any work (a typo costs a line, not minutes of driving)."""

    def __init__(self, spec: DriveSpec):
        from .. import sim
        from ..fwconfig import require_profile, require_valid
        from .harness import firmware_command, firmware_config

        self.spec = spec
        self.vehicle = sim.load_vehicle(spec.vehicle)
        self.cycle = sim.load_cycle(spec.cycle)
        require_profile(spec.profile)
        self.config = require_valid(firmware_config(self.vehicle.dbc, spec.profile, dict(spec.config or {})))
        self.route = self.receiver = None
        if spec.route is not None:
            from ..gps.drive import prepare
            from ..gps.nmea import Receiver

            if spec.obd or spec.dbc is not None:
                raise KeidriveError("drives the vehicle's own bus: it does not go with {obd} or {dbc} yet",
                                    option="route", mentions=("obd", "dbc"))
            self.route, self.cycle = prepare(spec.route, self.cycle, spec.start)
            self.receiver = spec.gnss or Receiver()
            self.config = require_valid({**self.config, "gps": True})
        self.bundled_dbc, self.dbc, self.roles = resolve_dbc(spec.dbc, spec.roles)
        if self.bundled_dbc == Path(self.vehicle.dbc).stem and spec.roles is None:
            self.dbc = self.roles = None  # the preset's own bus: nothing to translate
        if spec.obd and (spec.bus is not None or spec.pace is not None):
            raise KeidriveError("drives in lockstep on a private bus: {bus} and {pace} do not apply", option="obd",
                                mentions=("bus", "pace"))
        if spec.obd_second_ecu is not None:
            from ..sim.obd_ecu import HOSTILE

            if not spec.obd:
                raise KeidriveError("is a fault of the OBD-II port: it needs {obd}", option="obd_second_ecu",
                                    mentions=("obd",))
            if spec.obd_second_ecu not in HOSTILE:
                raise KeidriveError(f"{spec.obd_second_ecu}: no such hostile ECU (kinds: {', '.join(HOSTILE)})",
                                    option="obd_second_ecu")
        self.pace = check_pace(spec.pace, spec.bus)
        if self.pace not in (None, 1):
            raise KeidriveError(f"{self.pace:g}: a simulated drive goes as fast as the firmware takes it or at "
                                "recorded pace (1), with the firmware on its own clock", option="pace")
        self.executable = firmware_command(spec.runtime)[0]  # a missing runtime fails before the drive
        self.notes = []  # what cannot be computed, said before the drive
        if self.dbc is not None:
            from ..dbccompiler.roles import load_roles
            from .byodbc import missing_figures, require_drivable

            require_drivable(self.vehicle, load_roles(self.roles), self.dbc)
            if not spec.obd:
                self.notes = [f"{note} (OBD-II can give it)" for note in missing_figures(self.roles)]

    @property
    def title(self) -> str:
        along = f" along {self.route.name}" if self.route is not None else ""
        return f"{self.vehicle.name} on {self.cycle.name}{along}"

    @property
    def duration_s(self) -> float:
        return self.cycle.duration_s

    def run(self, *, on_event=None, mutate=None, ecu_faults=None) -> Trip:
        """Drive: ``on_event(event)`` gets every telemetry line as the
        firmware prints it; ``mutate(records) -> records`` edits the bus
        traffic first (drop a signal, corrupt a checksum: ``keidrive.faults``);
        ``ecu_faults`` are the simulated engine ECU's (``keidrive.sim.obd_ecu``).
        A firmware that fails raises with its reason.

        The drive streams (``sim.Simulation``): its pieces go to the firmware
        as they are simulated, in memory that does not grow with the drive;
        the trip's trace is the plot's (thinned evenly to at most
        ``sim.core.TRACE_POINTS`` points) and its report keeps at most
        ``harness.PLOT_STATUSES`` status lines. A drive that ``mutate``
        edits, an OBD-II drive and one in another DBC's format are simulated
        whole first: their trace has every 10 ms step, their report every line."""
        from .. import sim

        started = time.perf_counter()
        if self.spec.obd or self.dbc is not None:
            result = sim.simulate(self.vehicle, self.cycle, frames=self.dbc is not None)
            if self.dbc is not None:
                firmware, figures = self._drive_dbc(result, on_event, mutate, ecu_faults)
            else:
                firmware, figures = self._drive_obd(result, on_event, ecu_faults)
            truth, trace = result.truth, result.trace
            truth["frames"] = figures["frames"]  # what went on the bus, OBD-II requests and replies included
        elif mutate is not None:
            import numpy as np

            result = sim.simulate(self.vehicle, self.cycle)
            records = np.concatenate(list(self._records([(result.trace, result.frames)])))
            firmware, figures = self._feed(mutate(records), self.config, on_event)
            truth, trace = result.truth, result.trace
        else:
            from .harness import PLOT_STATUSES

            drive = sim.Simulation(self.vehicle, self.cycle)  # its truth and trace are there once it has been fed
            firmware, figures = self._feed(self._records(drive.pieces()), self.config, on_event,
                                           status_limit=PLOT_STATUSES)
            truth, trace = drive.truth, drive.trace
        if not firmware.ok:
            raise KeidriveError(firmware.failure())
        return Trip(self.title, self.spec.profile, truth, firmware.trip, firmware, truth["frames"],
                    time.perf_counter() - started, self.executable, config=self.config, trace=trace,
                    bus=figures, notes=list(self.notes), route=self.route)

    def _records(self, pieces):
        """The bus's records a piece at a time from the simulator's (plot
        trace, frames) pieces: on a route, the GNSS module's UART records
        among the frames."""
        from ..io import record
        from ..sim.physics import step_span

        records = ((trace, record.from_frames(frames)) for trace, frames in pieces)
        if self.route is None:
            return (piece for _, piece in records)
        from ..gps.drive import with_gnss

        return with_gnss(records, self.route, self.receiver, step_span(self.cycle))

    def _feed(self, records, config, on_event, tree=None, status_limit=None):
        from .harness import feed_over_bus

        return feed_over_bus(records, config, bus=self.spec.bus, runtime=self.spec.runtime,
                             realtime=self.pace is not None, on_event=on_event, tree=tree, status_limit=status_limit)

    def _drive_obd(self, result, on_event, ecu_faults, **dbc_bus):
        from .obdloop import drive_obd

        return drive_obd(result, profile=self.spec.profile, config=self.config, runtime=self.spec.runtime,
                         faults=ecu_faults, on_event=on_event, second_ecu=self.spec.obd_second_ecu, **dbc_bus)

    def _drive_dbc(self, result, on_event, mutate, ecu_faults):
        """The preset's drive on a bus in the DBC's format, the firmware
        running that DBC compiled with the roles file (``byodbc``)."""
        import tempfile

        from ..io import record
        from . import byodbc

        with tempfile.TemporaryDirectory(prefix="keidrive-dbc-") as folder:
            tree, name, roles = byodbc.build_tree(self.dbc, self.roles, Path(folder))
            frames = byodbc.translate(result, self.dbc, roles)
            if self.spec.obd:  # the DBC's traffic and the engine ECU's OBD-II replies on one bus
                return self._drive_obd(result, on_event, ecu_faults, tree=tree, vehicle_module=name,
                                       bus_frames=frames)
            records = record.from_frames(frames)
            return self._feed(records if mutate is None else mutate(records), {**self.config, "vehicle": name},
                              on_event, tree=tree)


def run(spec: DriveSpec | None = None, *, on_event=None, mutate=None, ecu_faults=None) -> Trip:
    """Drive ``spec`` (default: ``DriveSpec()``, an N-BOX turbo through the
    Japanese WLTC) with the firmware in the loop; see ``SimulatedDrive.run``."""
    return SimulatedDrive(spec or DriveSpec()).run(on_event=on_event, mutate=mutate, ecu_faults=ecu_faults)
