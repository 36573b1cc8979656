"""Ending a command early, as cleanly as Ctrl-C ends it.

Python turns Ctrl-C (SIGINT) into KeyboardInterrupt, so every ``finally``
on the way out runs: firmware processes are killed and reaped, bus clients
leave their hub, temporary folders are removed. SIGTERM (``kill``) and
SIGHUP (the terminal closing) would end the process at once and leave all
of that behind; ``install`` makes them raise ``Stopped`` (a
KeyboardInterrupt) instead. A worker thread that finds the run cannot go on
(the telemetry reader closed its pipe) ends it the same way with ``stop``.
"""

from __future__ import annotations

import os
import signal
import sys
import _thread

SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # and SIGINT where Python raises KeyboardInterrupt for it


class Stopped(KeyboardInterrupt):
    """The command was asked to stop: ``why`` in words, ``status`` its exit status."""

    def __init__(self, why: str, status: int):
        super().__init__(why)
        self.why = why
        self.status = status


_requested: Stopped | None = None


def install() -> None:
    """SIGTERM, SIGHUP and SIGINT (unless ignored, as in a background job)
    raise ``Stopped`` in the main thread; after the first, the others are
    ignored while the command cleans up."""
    for signum in SIGNALS:
        signal.signal(signum, _handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)


def stop(why: str, status: int = 0) -> None:
    """From any thread: end the command's main thread with ``Stopped(why, status)``."""
    global _requested
    _requested = Stopped(why, status)
    _thread.interrupt_main(signal.SIGTERM if signal.getsignal(signal.SIGTERM) is _handler else signal.SIGINT)


def _handler(signum, _frame):
    global _requested
    # the way out (killing children, removing folders) must not itself be cut short
    for other in (*SIGNALS, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    stopped, _requested = _requested, None
    why = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    raise stopped or Stopped(why, 128 + signum)


def quiet_stdout() -> None:
    """Point stdout at /dev/null once its reader has closed the pipe, so the
    flush at exit does not fail a second time."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
