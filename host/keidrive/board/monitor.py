"""The live dashboard of a board's (or the SIL firmware's) telemetry lines.

Telemetry is one JSON object per line on the console, with a "type":
``status`` (1 Hz), ``warning`` and ``signal`` events, ``trip``, ``error``,
``info``. Anything else on the console (the REPL banner, "MPY: soft reboot",
a traceback) is shown as a board message; a soft reboot banner or the port
vanishing and coming back is counted as a reset and the dashboard goes on.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import serial

from ..errors import KeidriveError



@dataclass
class State:
    status: dict = field(default_factory=dict)
    statuses: int = 0
    warnings: deque = field(default_factory=lambda: deque(maxlen=6))
    signals: deque = field(default_factory=lambda: deque(maxlen=4))
    errors: deque = field(default_factory=lambda: deque(maxlen=4))
    messages: deque = field(default_factory=lambda: deque(maxlen=4))
    trip: dict | None = None
    profile: str | None = None
    vehicle: str | None = None
    resets: int = 0
    connected: bool = False
    lines: int = 0
    last_line_at: float | None = None
    at_prompt: bool = False
    reset_pending: bool = False
    own_reset: bool = False
    notes: list = field(default_factory=list)

    def note(self, text: str) -> None:
        """Something the monitor itself saw (the port going and coming back)."""
        self.messages.append(text)
        self.notes.append(text)

    def feed(self, line: str) -> dict | None:
        """Take one console line; the telemetry object if it was one."""
        text = line.strip()
        if not text:
            return None
        self.lines += 1
        self.last_line_at = time.monotonic()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "type" in obj:
                self.at_prompt = False
                self._telemetry(obj)
                return obj
        if "soft reboot" in text:
            if self.own_reset:  # the one --reset asked for
                self.own_reset = False
            else:
                self.resets += 1
            self.reset_pending = True
            self.messages.append("board soft reboot")
        elif text.startswith(">>>") or text.endswith(">>>") or text.startswith("Type \"help()\""):
            self.at_prompt = True
        elif text.startswith("MicroPython v"):
            self.at_prompt = True
            self.messages.append(text[:100])
        else:
            self.messages.append(text[:100])
        return None

    def _telemetry(self, obj: dict) -> None:
        kind = obj.get("type")
        if kind == "status":
            previous = self.status.get("t_s")
            if isinstance(previous, (int, float)) and isinstance(obj.get("t_s"), (int, float)) \
                    and obj["t_s"] < previous and not self.reset_pending:
                # uptime went back without a soft reboot banner: a hard reset
                self.resets += 1
                self.messages.append("board restarted")
            self.reset_pending = False
            self.status = obj
            self.statuses += 1
            if obj.get("profile"):
                self.profile = obj["profile"]
            if obj.get("vehicle"):
                self.vehicle = obj["vehicle"]
        elif kind == "warning":
            self.warnings.append(obj)
        elif kind == "signal":
            self.signals.append(obj)
        elif kind == "source":
            self.messages.append(f"speed source {obj.get('name')} {obj.get('state')} ({obj.get('reason')}) "
                                 f"at {obj.get('t_s')} s"[:100])
        elif kind == "error":
            self.errors.append(obj.get("message", ""))
        elif kind == "trip":
            self.trip = obj
            self.profile = obj.get("profile") or self.profile
            self.vehicle = obj.get("vehicle") or self.vehicle
        elif kind == "info":
            self.profile = obj.get("profile") or self.profile
            self.vehicle = obj.get("vehicle") or self.vehicle
            detail = ", ".join(f"{k}={v}" for k, v in obj.items() if k != "type")
            self.messages.append(f"info: {detail}"[:100])


def _num(value, unit="", digits=1) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}f}{unit}"


def _txt(value) -> str:
    """A status field as shown: "—" where the firmware could not compute it (null)."""
    return "—" if value is None else str(value)


def status_text(s: dict, profile: str | None = None) -> str:
    """One plain line for a status object (--plain, logs, tests)."""
    warnings = ",".join(s.get("warnings") or []) or "none"
    missing = s.get("missing") or []
    parts = [
        f"t {_num(s.get('t_s'), ' s')}",
        f"speed {_num(s.get('speed_kmh'), ' km/h')}",
        f"instant {_num(s.get('instant_km_per_l'), ' km/L')}",
        f"trip {_num(s.get('trip_km_per_l'), ' km/L', 2)}",
        f"eco {_txt(s.get('eco_level'))} {s.get('eco_hint') or ''}".rstrip(),
        f"warnings {warnings}",
        f"valid {'yes' if s.get('valid') else 'no'}" + (f" (missing {','.join(missing)})" if missing else ""),
        f"bus {s.get('bus', '—')}",
        f"frames {s.get('frames', 0)}",
    ]
    if profile or s.get("profile"):
        parts.append(f"profile {s.get('profile') or profile}")
    return " | ".join(parts)


def render(state: State, source: str):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    s = state.status
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold")
    table.add_column()
    speed = s.get("speed_kmh")
    table.add_row("speed", Text(_num(speed, " km/h"), style="bold cyan"))
    if "instant_km_per_l" in s or "trip_km_per_l" in s:
        table.add_row("instant", _num(s.get("instant_km_per_l"), " km/L"))
        table.add_row("rolling", _num(s.get("rolling_km_per_l"), " km/L"))
        table.add_row("trip", _num(s.get("trip_km_per_l"), " km/L", 2) + f"   ({_num(s.get('l_per_100km'), ' L/100km', 2)}, "
                      f"{_num(s.get('mpg_us'), ' mpg', 1)})")
    if "wh_per_km" in s:
        table.add_row("energy", f"{_num(s.get('energy_kwh'), ' kWh', 3)}   {_num(s.get('wh_per_km'), ' Wh/km')}")
    table.add_row("distance", _num(s.get("distance_km"), " km", 3))
    level = s.get("eco_level")
    bar = "●" * level + "○" * (5 - level) if isinstance(level, int) and 0 <= level <= 5 else "—"
    table.add_row("eco", f"{bar} level {_txt(level)}/5  score {_txt(s.get('eco_score'))}  hint: "
                  f"{_txt(s.get('eco_hint'))}")
    warn_style = {"none": "green", "advisory": "yellow", "caution": "dark_orange", "critical": "bold red"}
    active = ", ".join(s.get("warnings") or []) or "none"
    table.add_row("warnings", Text(f"{active}  [{s.get('warning_level', '—')}]",
                                   style=warn_style.get(s.get("warning_level"), "")))
    validity = "all signals valid" if s.get("valid") else "INVALID"
    if s.get("missing"):
        validity += "  missing: " + ", ".join(s["missing"])
    if s.get("implausible"):
        validity += "  implausible: " + ", ".join(s["implausible"])
    table.add_row("signals", Text(validity, style="green" if s.get("valid") else "red"))
    table.add_row("bus", f"{s.get('bus', '—')}   frames {s.get('frames', 0)}")
    if state.profile or state.vehicle:
        table.add_row("config", f"vehicle {state.vehicle or '?'}   profile {state.profile or '?'}")
    parts = [table]
    if state.warnings:
        events = Table.grid(padding=(0, 1))
        for w in list(state.warnings)[-4:]:
            events.add_row(f"{_num(w.get('t_s'), ' s')}", w.get("kind", ""), w.get("level", ""), w.get("state", ""))
        parts.append(Panel(events, title="warning events", title_align="left"))
    notes = [f"error: {e}" for e in state.errors] + list(state.messages)[-3:]
    if state.at_prompt and not s:
        notes.append("the board is at the REPL prompt (main.py not running): use --reset")
    if notes:
        parts.append(Text("\n".join(notes[-5:]), style="dim"))
    link = "connected" if state.connected else "waiting for the board…"
    title = f"keidrive monitor — {source} — {link} — resets {state.resets}"
    return Panel(Group(*parts), title=title, title_align="left")


MAX_LINE = 64 * 1024  # longer than any telemetry line: what the board prints past it is not telemetry


def split_lines(buffer: bytes) -> tuple[list, bytes]:
    """The whole lines in ``buffer`` (text, without line ends) and what is
    left; a writer that prints without newlines must not grow the rest
    without bound, so past MAX_LINE it is a line of its own."""
    *whole, rest = buffer.split(b"\n")
    lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in whole]
    if len(rest) > MAX_LINE:
        lines.append(rest[:MAX_LINE].decode("utf-8", "replace"))
        rest = b""
    return lines, rest


class Source:
    """Lines from a serial port that may vanish (a board reset) and come back."""

    def __init__(self, port: str, reset: bool = False, state: State | None = None):
        self.port = port
        self.reset = reset
        self.state = state
        self.serial: serial.Serial | None = None
        self.buffer = b""
        self.opened_once = False

    def _open(self) -> bool:
        try:
            self.serial = serial.Serial(self.port, 115200, timeout=0.2, exclusive=True)
        except serial.SerialException as error:
            if not self.opened_once:
                text = str(error)
                if "exclusively lock" in text:
                    raise KeidriveError(f"port busy: {self.port} is open in another program") from None
                raise KeidriveError(f"cannot open {self.port}: {text}") from None
            return False
        first = not self.opened_once
        self.opened_once = True
        if self.state:
            self.state.connected = True
            if not first:
                self.state.resets += 1
                self.state.reset_pending = True  # its uptime restarts: one reset, not two
                self.state.note("port came back")
        if self.reset and first:
            if self.state:
                self.state.own_reset = True
            # Stop whatever runs, leave the raw REPL, soft reset: main.py starts
            self.serial.write(b"\r\x03\x03")
            time.sleep(0.1)
            self.serial.write(b"\r\x02")
            time.sleep(0.1)
            self.serial.reset_input_buffer()
            self.serial.write(b"\x04")
        return True

    def lines(self, deadline: float | None):
        if not os.path.exists(self.port) and "://" not in self.port:
            raise KeidriveError(f"no such port: {self.port}")
        self._open()
        while deadline is None or time.monotonic() < deadline:
            if self.serial is None:
                if not self._open():
                    time.sleep(0.5)
                    yield None
                    continue
            try:
                chunk = self.serial.read(4096)
            except (serial.SerialException, OSError):
                self._lost()
                yield None
                continue
            if not chunk:
                yield None
                continue
            lines, self.buffer = split_lines(self.buffer + chunk)
            yield from lines
            if self.buffer.endswith(b">>> ") or self.buffer.endswith(b"\x04>"):
                yield self.buffer.decode("utf-8", "replace")
                self.buffer = b""

    def _lost(self) -> None:
        if self.serial is not None:
            try:
                self.serial.close()
            except OSError:
                pass
        self.serial = None
        if self.state:
            self.state.connected = False
            self.state.note("port lost; waiting for the board to come back")

    def close(self) -> None:
        if self.serial is not None:
            self.serial.close()


def stdin_lines(deadline: float | None, fd: int | None = None):
    """Lines from stdin (or ``fd``) until its end or ``deadline``; None
    while nothing arrives, so the dashboard keeps refreshing. A pipe or a
    terminal is waited on with select; a regular file (``< drive.jsonl``)
    is always ready and is read straight through (epoll refuses files)."""
    import select
    import stat

    fd = sys.stdin.fileno() if fd is None else fd
    regular = stat.S_ISREG(os.fstat(fd).st_mode)
    buffer = b""
    while deadline is None or time.monotonic() < deadline:
        if not regular and not select.select([fd], [], [], 0.2)[0]:
            yield None
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        lines, buffer = split_lines(buffer + chunk)
        yield from lines
    if buffer and (deadline is None or time.monotonic() < deadline):
        yield buffer.decode("utf-8", "replace")


def run(lines, source: str, log_path: str | None, plain: bool, state: State, out=sys.stdout) -> State:
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    live = None
    if not plain:
        from rich.console import Console
        from rich.live import Live

        live = Live(render(state, source), console=Console(file=out), refresh_per_second=4, transient=False)
        live.start()
    try:
        for line in lines:
            if plain and state.notes:
                for text in state.notes:
                    print(f"monitor: {text}", file=out, flush=True)
                state.notes.clear()
            if line is None:
                if live:
                    live.update(render(state, source))
                continue
            obj = state.feed(line)
            if log is not None and obj is not None:
                log.write(line.strip() + "\n")
                log.flush()
            if plain:
                if obj is None:
                    if line.strip():
                        print(f"board: {line.strip()[:120]}", file=out, flush=True)
                elif obj["type"] == "status":
                    print(status_text(obj, state.profile), file=out, flush=True)
                else:
                    print(f"{obj['type']}: " + ", ".join(f"{k}={v}" for k, v in obj.items() if k != "type"),
                          file=out, flush=True)
            elif live:
                live.update(render(state, source))
    finally:
        if live:
            live.update(render(state, source))
            live.stop()
        if log is not None:
            log.close()
    return state
