"""What the long commands show a person: a console that never wraps inside
a figure, a banner saying what runs where (and how to attach to a shared
bus), and a progress bar with the time left."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console

# Off a terminal (a pipe, a file, CI) a line is as long as its text: rich's
# 80 columns would break "3.75 L/100 km" across lines and cut table columns.
UNWRAPPED_WIDTH = 400


def console(stderr: bool = False) -> Console:
    """A rich console: the terminal's width on one, no wrapping off one."""
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=UNWRAPPED_WIDTH, soft_wrap=True)


def attach_hint(bus: str | None, dbc: str | None = None) -> str | None:
    """How others watch a drive on ``bus``, or None for a private bus."""
    if bus is None:
        return None
    interface, _, channel = bus.partition(":")
    channel = channel.rpartition("@")[0] if "@" in channel and channel.rpartition("@")[2].isdigit() else channel
    monitor = f"cantools monitor -i {interface} -c {channel}" + (f" {dbc}" if dbc else " DBC")
    return f"attach with `{monitor}` or `python -m can.logger -i {interface} -c {channel} -f drive.asc`"


def banner(out: Console, command: str, what: str, where: str, hint: str | None = None) -> None:
    """One line (two with a hint) before a long job starts."""
    out.print(f"[bold]keidrive {command}[/bold]: {what}; {where}", highlight=False)
    if hint:
        out.print(f"  {hint}", highlight=False)


@contextmanager
def progress(out: Console, label: str, total: float, unit: str = "s"):
    """A progress bar with ETA on a terminal (nothing off one); yields
    ``advance(done)`` taking the work done so far, in ``unit``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label), BarColumn(), TextColumn(f"{{task.completed:>7.0f}}/{total:.0f} {unit}"),
        TimeRemainingColumn(), TextColumn("left"),
        console=out, transient=True, disable=not out.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(done: float) -> None:
            bar.update(task, completed=min(done, total))

        yield advance


def finish_report(out: Console, trip, runtime: str, plot_path: str | None, as_json: bool) -> None:
    """A drive's report ends alike for run and replay: the runtime and pace
    lines, then the plot, written after the report so that a plot that fails
    late loses no drive."""
    from ..drive.pacing import describe
    from ..plot import plot_drive
    from ..report import runtime_line

    if not as_json:
        out.print(runtime_line(runtime, trip.runtime), highlight=False)
        if trip.timing_error is not None:
            out.print(f"pace: {describe(trip.bus)}", highlight=False)
    if plot_path is not None:
        plot_drive(plot_path, trip)
        if not as_json:
            out.print(f"plot: {plot_path}", highlight=False)
