"""keidrive monitor's port reader against a board that prints without ever
ending a line: the line is cut at a bound, memory stays bounded, telemetry
after it still reads."""

import os
import pty
import sys
import time

import pytest

from keidrive.board.monitor import MAX_LINE, Source

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminal")


def test_a_line_that_never_ends_is_cut_and_the_next_one_reads():
    primary, secondary = pty.openpty()
    path = os.ttyname(secondary)
    try:
        source = Source(path)
        lines = source.lines(time.monotonic() + 20)
        assert next(lines) is None  # opened, nothing yet
        chatter = b"x" * (MAX_LINE + 8192)
        for start in range(0, len(chatter), 4096):
            os.write(primary, chatter[start:start + 4096])
            got = next(lines)
            while got is not None:
                assert len(got) <= MAX_LINE
                got = next(lines)
        assert len(source.buffer) <= MAX_LINE + 4096
        os.write(primary, b'\n{"type":"status","t_s":1.0}\n')
        seen = []
        while len(seen) < 20 and '{"type":"status","t_s":1.0}' not in seen:
            seen.append(next(lines))
        assert '{"type":"status","t_s":1.0}' in seen
    finally:
        source.close()
        os.close(primary)
        os.close(secondary)
