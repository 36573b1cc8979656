"""A finished drive: what the firmware computed, beside what was true."""

from __future__ import annotations

from dataclasses import dataclass, field

from .harness import FirmwareReport

@dataclass
class Trip:
    """The outcome of ``keidrive.run`` or ``keidrive.replay``.

    ``truth``: the simulator's ground truth (a replay's only when one was
    given); ``summary``: the firmware's own trip summary, every key it
    printed; ``report``: every telemetry line it printed, in order (a
    streamed drive's status lines thinned evenly to at most
    ``harness.PLOT_STATUSES``, see ``SimulatedDrive.run``);
    ``frames``: frames on the bus (for OBD-II, the requests and replies);
    ``runtime``: the interpreter the firmware ran in; ``config``: the
    firmware config it ran with; ``trace``: the simulator's plot trace (a
    run's: every 10 ms step, or for a streamed drive thinned evenly to at
    most ``sim.core.TRACE_POINTS`` points); ``bus``: the bus's figures (pace
    timing error, bus load); ``log``: a replay's log coverage and where it
    was cut; ``notes``: what could not be computed and why, one line each;
    ``route``: the route a simulated drive went along (keidrive.gps.route).
    """

    title: str
    profile: str
    truth: dict | None
    summary: dict
    report: FirmwareReport
    frames: int
    wall_s: float
    runtime: str
    config: dict = field(default_factory=dict)
    trace: dict | None = None
    bus: dict = field(default_factory=dict)
    log: dict | None = None
    notes: list = field(default_factory=list)
    route: object = None

    @property
    def firmware(self) -> dict:
        """The firmware's figures as ``--json`` carries them."""
        from ..report import firmware_figures

        return firmware_figures(self.summary)

    @property
    def warnings(self) -> list:
        """[{"kind", "level", "start_s", "end_s"}] as the firmware closed them."""
        return self.firmware["warnings"]

    @property
    def quality(self) -> dict | None:
        """The trip's data quality as the firmware reported it (docs/firmware.md,
        "Data quality": speed sources, fallback and untrusted time, rejected
        frames by reason, faulty sources, what was not measured), with the
        OBD-II client's word on its ECUs where it polled; None from a firmware
        that does not report it."""
        from ..report import quality

        return quality(self.summary)

    @property
    def counts(self) -> dict:
        """Frames on the bus and the firmware's telemetry lines by type (all
        the status lines it printed, also those a streamed drive's report
        thinned out)."""
        counts = {"frames": self.frames}
        for event in self.report.events:
            kind = f"{event.get('type')}_lines"
            counts[kind] = counts.get(kind, 0) + 1
        if self.report.status_lines > counts.get("status_lines", 0):
            counts["status_lines"] = self.report.status_lines
        return counts

    @property
    def gps(self) -> dict | None:
        """With a GNSS module on the board: ``jurisdictions`` (the firmware's
        jurisdiction lines: where the rule in force changed) and ``gps`` (its
        NMEA reader's summary line, or None); None without one."""
        if not self.config.get("gps"):
            return None
        from ..gps.report import json_figures

        return json_figures(self.report)

    @property
    def uplink(self) -> dict | None:
        """What the firmware's uplink sent, had acknowledged, queued and
        dropped (its last summary line); None when it had no uplink."""
        from ..uplink import summary

        return summary(self.report)

    @property
    def timing_error(self) -> dict | None:
        """How late paced frames left (mean, p99, max ms), for a paced drive."""
        if "mean_ms" not in self.bus:
            return None
        return {key: self.bus[key] for key in ("mean_ms", "p99_ms", "max_ms")}

    def to_json(self) -> dict:
        """Exactly what ``keidrive run --json`` (or ``replay --json``) prints."""
        if self.log is None:
            out = {"truth": self.truth, "firmware": self.firmware, "quality": self.quality, "frames": self.frames,
                   "wall_s": round(self.wall_s, 3), "runtime": self.runtime}
            if self.uplink is not None:
                out["uplink"] = self.uplink
            out.update(self.gps or {})
            return out
        out = {"firmware": self.firmware, "quality": self.quality, "frames": self.frames, "wall_s": round(self.wall_s, 3),
               "runtime": self.runtime, "unknown_frames": self.log["unknown_frames"],
               "explained_share": self.log["explained_share"], "truncated": self.log["truncated"]}
        if self.truth is not None:
            out["truth"] = self.truth
        if self.timing_error is not None:
            out["timing_error"] = self.timing_error
        out.update(self.gps or {})
        return out
