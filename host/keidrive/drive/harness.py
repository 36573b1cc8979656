"""Firmware in the loop: the real ``firmware/`` attached to a (virtual) CAN bus.

The firmware runs in a child process — the MicroPython unix port by default,
CPython (``runtime="cpython"``) for debugging and coverage, or the user's own
micropython build (``runtime="/path/to/micropython"``) — and reads 24-byte
frame records (``keidrive.io.record``) through its stream port: from a hub of
the keidrive virtual bus over a Unix socket, or from its stdin. Telemetry
comes back as JSON lines on its stdout.

Two clocks: ``virtual`` (lockstep: the firmware's time is the frames'
timestamps, so a run is reproducible bit for bit and as fast as the machine
allows) and ``real`` (the firmware's own clock, frames at recorded pace, for
boards and live tools).

A firmware that dies mid-run is reported with its last output; nothing here
waits forever.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeidriveError
from ..io import record
from ..paths import firmware_dir
from ..runtime import micropython_command, target_command
from .pacing import Pacer

# unix32, qemu (firmware frozen), qemu-mpy (.mpy files) and rp2040 (the
# emulated Pico, firmware frozen, frames through its MCP2515): the 32-bit
# targets ``keidrive target build`` makes (keidrive.target)
QEMU_RUNTIMES = ("qemu", "qemu-mpy")
RUNTIMES = ("micropython", "cpython", "unix32", *QEMU_RUNTIMES, "rp2040")
STDERR_TAIL_LINES = 40
# A running firmware prints a status line every second of its time; one that
# has said nothing for this long (wall time) is stuck, not slow.
SILENCE_LIMIT_S = 60.0
# Status lines keidrive run and replay keep for their plot, however long the drive.
PLOT_STATUSES = 1_000


def firmware_command(runtime: str = "micropython", tree: str | os.PathLike | None = None) -> list[str]:
    """The command that starts ``main.py`` of ``tree`` (default: the bundled
    ``firmware/``) in ``runtime``."""
    main = str(Path(tree or firmware_dir()) / "main.py")
    if runtime == "micropython":
        return [micropython_command(), main]
    if runtime == "cpython":
        return [sys.executable, main]
    if runtime == "unix32":
        return [target_command("unix32"), main]
    if runtime in QEMU_RUNTIMES:
        # the qemu board behind main.py's own command line (keidrive.target.bridge)
        return [sys.executable, "-m", "keidrive.target.bridge", runtime, "--tree", str(Path(main).parent)]
    if runtime == "rp2040":
        # the emulated Pico behind main.py's own command line (keidrive.target.pico)
        return [sys.executable, "-m", "keidrive.target.pico", "--tree", str(Path(main).parent)]
    binary = Path(runtime).expanduser()
    if binary.is_file() and os.access(binary, os.X_OK):
        # absolute: a bare relative name ("mp") would be looked up on PATH
        return [os.path.abspath(binary), main]
    raise KeidriveError(
        f"runtime {runtime!r}: not micropython, cpython, unix32, qemu, qemu-mpy, rp2040 or an executable micropython "
        "build"
    )


@dataclass
class FirmwareReport:
    """What the firmware said during a run."""

    returncode: int
    events: list = field(default_factory=list)
    stderr: str = ""  # its last lines
    timed_out: bool = False
    # status lines it printed, those thinned out of ``events`` included (``FirmwareProcess``'s status_limit)
    status_lines: int = 0

    def of_type(self, kind: str) -> list:
        return [event for event in self.events if event.get("type") == kind]

    @property
    def trip(self) -> dict | None:
        trips = self.of_type("trip")
        return trips[-1] if trips else None

    @property
    def statuses(self) -> list:
        return self.of_type("status")

    @property
    def warnings(self) -> list:
        """Warning events (raised, escalated, cleared) as they happened."""
        return self.of_type("warning")

    @property
    def signals(self) -> list:
        """Signal events (lost, restored)."""
        return self.of_type("signal")

    @property
    def errors(self) -> list:
        return self.of_type("error")

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.trip is not None

    def failure(self) -> str:
        """One line on why the run failed, with the firmware's last words."""
        if self.timed_out:
            why = "the firmware stopped answering (no output) or did not finish in time; it was stopped"
        elif self.returncode != 0:
            why = f"the firmware exited with code {self.returncode}"
        else:
            why = "the firmware ended without a trip summary"
        last = self.stderr.strip().splitlines()[-1:] or [
            json.dumps(self.events[-1]) if self.events else "(no output)"
        ]
        return f"{why}; its last output: {last[0]}"


class FirmwareProcess:
    """``firmware/main.py`` in a child process, attached to a record stream.

    ``socket_path`` attaches it to that hub socket; otherwise records are fed
    through ``write`` into its stdin. ``on_event`` is called from a reader
    thread with every telemetry object as it arrives. ``status_limit`` keeps
    at most that many status lines in ``events`` (evenly thinned over the
    drive, for a plot), so a drive of any length holds a bounded report;
    None keeps them all.
    """

    def __init__(
        self,
        config: dict,
        *,
        runtime: str = "micropython",
        socket_path: str | None = None,
        clock: str = "virtual",
        workdir: str | os.PathLike | None = None,
        on_event=None,
        tree: str | os.PathLike | None = None,
        status_limit: int | None = None,
    ):
        self._owned_dir = None
        if workdir is None:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="keidrive-fw-")
            workdir = self._owned_dir.name
        work = Path(workdir)
        (work / "data").mkdir(parents=True, exist_ok=True)
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config))
        source = ["--socket", socket_path] if socket_path else ["--stdin"]
        command = firmware_command(runtime, tree) + source + [
            "--config", str(config_path), "--data", str(work / "data"), "--clock", clock,
        ]
        self.events: list = []
        self._stderr: deque = deque(maxlen=STDERR_TAIL_LINES)
        self._last_output = time.monotonic()
        self._on_event = on_event
        self._status_limit = status_limit
        self._statuses_seen = self._statuses_held = 0
        self._status_stride = 1
        self._timed_out = False
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL if socket_path else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as error:
            raise KeidriveError(f"cannot start the firmware ({command[0]}): {error.strerror}") from None
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except ValueError:
                event = {"type": "console", "line": text}
            self._keep(event)
            self._last_output = time.monotonic()
            if self._on_event is not None:
                self._on_event(event)

    def _keep(self, event) -> None:
        """Into ``events``; status lines beyond ``status_limit`` thinned: every
        stride-th kept, the stride doubling (every other one dropped) when
        the limit is passed, so those kept stay evenly spaced."""
        status = isinstance(event, dict) and event.get("type") == "status"
        self._statuses_seen += status
        if self._status_limit is None or not status:
            self.events.append(event)
            return
        if (self._statuses_seen - 1) % self._status_stride:
            return
        self.events.append(event)
        self._statuses_held += 1
        if self._statuses_held > self._status_limit:
            held = 0
            kept = []
            for item in self.events:
                if isinstance(item, dict) and item.get("type") == "status":
                    held += 1
                    if held % 2 == 0:
                        continue
                kept.append(item)
            self.events[:] = kept
            self._statuses_held = (held + 1) // 2
            self._status_stride *= 2

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def write(self, records: bytes) -> bool:
        """Feed records into the firmware's stdin; False if it has gone."""
        try:
            self.process.stdin.write(records)
            return True
        except (BrokenPipeError, ValueError):
            return False

    def close_input(self) -> None:
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def alive(self) -> bool:
        return self.process.poll() is None

    def watch(self, deadline: float, silence_limit: float = SILENCE_LIMIT_S) -> bool:
        """Whether it still runs; past ``deadline`` (monotonic) or silent for
        ``silence_limit`` seconds it is killed and its report says it timed out."""
        if self.process.poll() is not None:
            return False
        now = time.monotonic()
        if now > deadline or now - self._last_output > silence_limit:
            self._timed_out = True
            self.process.kill()
            return False
        return True

    def wait(self, timeout: float, silence_limit: float = SILENCE_LIMIT_S) -> FirmwareReport:
        """Its report once it exits; killed (``timed_out``) after ``timeout``
        or after ``silence_limit`` seconds without a line of output."""
        deadline = time.monotonic() + timeout
        while self.watch(deadline, silence_limit):
            time.sleep(0.05)
        self.kill()
        return FirmwareReport(self.process.returncode, self.events, "\n".join(self._stderr), self._timed_out,
                              self._statuses_seen)

    def kill(self) -> None:
        """Stop it now if it runs, and release what it holds: the process
        reaped, its output read to the end, its own folder removed (only
        once it has exited: a firmware still saving would race the removal)."""
        if self.alive():
            self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        if self._owned_dir is not None:
            self._owned_dir.cleanup()


def firmware_config(vehicle: str, profile: str = "jp-expressway", overrides: dict | None = None) -> dict:
    """The firmware's config.json for a run: the generated decoder module of
    ``vehicle`` (a preset name, a vehicle TOML or a DBC file/module name) and
    the speed profile."""
    from .. import sim

    name = Path(vehicle).stem
    if not (firmware_dir() / "keifw" / "vehicles" / f"{name}.py").is_file():
        name = Path(sim.load_vehicle(vehicle).dbc).stem
    config = {"vehicle": name, "profile": profile}
    config.update(overrides or {})
    return config


def as_records(traffic) -> bytes:
    """Stream records from the simulator's frame arrays, python-can Messages,
    a ``record.DTYPE`` array, or bytes already packed."""
    if isinstance(traffic, (bytes, bytearray)):
        return bytes(traffic)
    if getattr(traffic, "dtype", None) == record.DTYPE:
        return traffic.tobytes()
    if isinstance(traffic, (list, tuple)) or hasattr(traffic, "__next__"):
        return record.from_messages(traffic).tobytes()
    return record.from_frames(traffic).tobytes()


def run_firmware(
    traffic,
    *,
    vehicle: str,
    profile: str = "jp-expressway",
    config: dict | None = None,
    runtime: str = "micropython",
    timeout: float = 600.0,
    workdir=None,
) -> FirmwareReport:
    """The firmware over ``traffic`` (see ``as_records``) on the virtual
    clock, records through its stdin: the quickest firmware in the loop."""
    return run_records(
        as_records(traffic), firmware_config(vehicle, profile, config),
        runtime=runtime, timeout=timeout, workdir=workdir,
    )


def run_records(
    records: bytes,
    config: dict,
    *,
    runtime: str = "micropython",
    timeout: float = 600.0,
    workdir=None,
    tree=None,
    silence_limit: float = SILENCE_LIMIT_S,
) -> FirmwareReport:
    """Feed ``records`` through stdin with the virtual clock; at end of input
    the firmware reports its trip and exits."""
    firmware = FirmwareProcess(config, runtime=runtime, workdir=workdir, tree=tree)
    writer = threading.Thread(target=lambda: (firmware.write(records), firmware.close_input()), daemon=True)
    writer.start()
    try:
        report = firmware.wait(timeout, silence_limit)
    finally:
        firmware.kill()
    writer.join(timeout=5)
    return report


def feed_over_bus(
    records,
    config: dict,
    *,
    bus: str | None = None,
    runtime: str = "micropython",
    realtime: bool = False,
    speed: float | None = None,
    on_event=None,
    on_sent=None,
    timeout: float = 3600.0,
    clock: str | None = None,
    tree=None,
    status_limit: int | None = None,
) -> tuple[FirmwareReport, dict]:
    """Put ``records`` on a bus the firmware listens to (``tree``: the
    firmware tree to run, default the bundled one): a ``record.DTYPE`` array,
    or an iterable of such arrays handed on as they come (a drive of any
    length in bounded memory, e.g. ``sim.Simulation``'s pieces).

    ``bus`` None: a private bus no other program can attach to: in lockstep
    the records go straight into the firmware's stdin in bus order
    (``record.bus_order``), no hub process; paced, a private channel of the
    keidrive virtual bus. ``keidrive:NAME``: that channel, so ``cantools
    monitor -i keidrive -c NAME`` and ``python -m can.logger`` can watch;
    any other python-can ``INTERFACE:CHANNEL``: the frames go onto it and a
    bridge carries what the bus delivers into the firmware. ``realtime``
    plays at recorded pace (``speed`` times it) with the firmware on its own
    clock; otherwise frames go as fast as the firmware takes them, on the
    virtual clock. ``clock`` "virtual" keeps the firmware on the frames' time
    while ``realtime`` paces their delivery (a replay at ``speed`` N
    integrates the log's trip). ``status_limit``: see ``FirmwareProcess``.

    Returns the firmware's report and the bus figures (frames sent, pace
    timing error, bus load where the bus reports it).
    """
    clock = clock or ("real" if realtime else "virtual")
    pace = (speed or 1.0) if realtime else None
    pieces = _pieces(records)
    firmware_options = dict(runtime=runtime, clock=clock, on_event=on_event, tree=tree, status_limit=status_limit)
    if bus is None and pace is None:
        firmware = FirmwareProcess(config, **firmware_options)
        try:
            frames = _feed_stdin(firmware, pieces, on_sent, time.monotonic() + timeout)
            report = firmware.wait(timeout)
        finally:
            firmware.kill()
        return report, {"frames": frames}
    from .busio import open_bus, parse_bus, play  # python-can: not needed above

    if bus is None or bus.startswith("keidrive:"):
        from ..vbus.bus import KeidriveBus
        from ..vbus.hub import socket_path

        _, channel, bitrate = parse_bus(bus) if bus else (None, f"run-{os.getpid()}-{time.monotonic_ns()}", None)
        sender = KeidriveBus(channel, bitrate=bitrate)  # starts the channel's hub (at that bitrate) if none runs
        try:
            sender.claim()  # a second drive on this channel is refused, never mixed with this one
            # Watchers (cantools monitor, can.logger) may be attached already:
            # the firmware is there once the count rises above this.
            attached = sender.bus_stats()["clients"]
            firmware = FirmwareProcess(config, socket_path=socket_path(channel), **firmware_options)
            try:
                _wait_for_listener(sender, firmware, attached)
                figures = _send_records(sender, pieces, pace, on_sent)
                sender.send_records(record.control(record.CONTROL_END_OF_DRIVE))
                stats = sender.bus_stats()
                figures.update(bus_load=stats["load"], bus_peak_load=stats["peak_load"])
                report = firmware.wait(timeout)
            finally:
                firmware.kill()
        finally:
            sender.shutdown()
        return report, figures

    # Any other python-can bus: play onto it, bridge what it delivers.
    transmitter = open_bus(bus)
    receiver = open_bus(bus)
    firmware = FirmwareProcess(config, **firmware_options)
    bridged = [0]
    played = [None]  # frames played, once all are
    stop = threading.Event()

    def bridge():
        while not stop.is_set() or played[0] is None or bridged[0] < played[0]:
            msg = receiver.recv(0.2)
            if msg is None:
                if stop.is_set():
                    break
                continue
            if not firmware.write(record.from_messages([msg]).tobytes()):
                break
            bridged[0] += 1

    thread = threading.Thread(target=bridge, daemon=True)
    thread.start()
    try:
        messages = (message for piece in pieces for message in record.to_messages(piece))
        figures = play(transmitter, messages, speed=pace, on_frame=on_sent)
        played[0] = figures["frames"]
        stop.set()
        thread.join(timeout=10)
        figures["bridged"] = bridged[0]
        firmware.close_input()
        report = firmware.wait(timeout)
    finally:
        stop.set()
        firmware.kill()
        transmitter.shutdown()
        receiver.shutdown()
    return report, figures


# Records handed on at a time when a whole array is given.
SEND_RECORDS = 20_000


def _pieces(records):
    """``records`` as consecutive arrays: a whole array in slices, an
    iterable of arrays as it comes."""
    if getattr(records, "dtype", None) == record.DTYPE:
        return (records[start:start + SEND_RECORDS] for start in range(0, len(records), SEND_RECORDS))
    return iter(records)


# Whether a lockstep drive makes its next piece while the firmware reads the
# last one (the quickest drive: two cores busy) or once the firmware has it
# (one core at a time: a fleet worker's, the machine's other cores driving
# other drives). ``one_core()`` sets it for what runs inside it.
_overlap: contextvars.ContextVar = contextvars.ContextVar("keidrive_overlap", default=True)


@contextlib.contextmanager
def one_core():
    """Drives in here keep to one core: each piece is made once the firmware has the last."""
    token = _overlap.set(False)
    try:
        yield
    finally:
        _overlap.reset(token)


def _feed_stdin(firmware: FirmwareProcess, pieces, on_sent, deadline: float) -> int:
    """Every piece into the firmware's stdin in bus order as it comes, through
    a writer thread (a firmware that stops reading is then still watched);
    the next piece is made meanwhile unless inside ``one_core()``. Returns
    the records fed."""
    from queue import Full, Queue

    waiting: Queue = Queue(maxsize=1)
    overlap = _overlap.get()

    def write():
        fed = True
        while (blob := waiting.get()) is not None:
            fed = fed and firmware.write(blob)  # a firmware that has gone takes no more; its report says why
            waiting.task_done()
        firmware.close_input()

    def put(item) -> bool:
        """``item`` into the queue; False if the firmware stopped (or was
        stopped, stuck) while the queue was full."""
        while True:
            try:
                waiting.put(item, timeout=0.5)
                return True
            except Full:
                if not firmware.watch(deadline):
                    return False

    def handed(blob) -> bool:
        """``put``, and keeping to one core, wait until it is written."""
        if not put(blob):
            return False
        with waiting.all_tasks_done:
            while not overlap and waiting.unfinished_tasks:
                if not waiting.all_tasks_done.wait(0.5) and not firmware.watch(deadline):
                    return False
        return True

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    frames = 0
    try:
        for piece in pieces:
            if not handed(record.bus_order(piece).tobytes()):
                break  # stuck or gone: wait() reports it
            frames += len(piece)
            if on_sent is not None:
                on_sent(frames)
            if not firmware.alive():
                break
    finally:
        # a writer stuck on a firmware that stopped reading is freed by killing it (watch)
        while not put(None) and writer.is_alive():
            pass
        while writer.is_alive():
            writer.join(0.5)
            firmware.watch(deadline)
    return frames


def _wait_for_listener(sender, firmware: FirmwareProcess, attached: int, timeout: float = 30.0) -> None:
    """Frames sent before the firmware has attached would be lost to it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not firmware.alive():
            raise KeidriveError(firmware.wait(1).failure())
        if sender.bus_stats()["clients"] > attached:
            return
        time.sleep(0.02)
    firmware.kill()
    raise KeidriveError("the firmware did not attach to the bus within 30 s")


def _send_records(sender, pieces, pace: float | None, on_sent) -> dict:
    """Each piece as it comes in lockstep (the hub and the socket buffer
    them), or each record at its due time for a real-time run."""
    frames = 0
    if pace is None:
        for piece in pieces:
            for start in range(0, len(piece), SEND_RECORDS):
                sender.send_records(piece[start:start + SEND_RECORDS].tobytes())
            frames += len(piece)
            if on_sent is not None:
                on_sent(frames)
        return {"frames": frames}
    pacer = Pacer(pace)
    for piece in pieces:
        for row in piece:
            pacer.wait(row["timestamp_us"] / 1e6)
            sender.send_records(row.tobytes())
            if on_sent is not None and frames % 1000 == 0:
                on_sent(frames)
            frames += 1
    return {**pacer.timing_error(), "frames": frames}
