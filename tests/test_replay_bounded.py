"""Reading a drive log within bounds: a line past the limit, a .gz that
inflates far beyond a log, what is not a regular file, each in one line
naming the file; and a log is read as it goes (its frames spooled to disk,
no python-can Message kept), whatever its length."""

import gc
import gzip
import os

import can
import numpy as np
import pytest
from conftest import SHORT_CYCLE, keidrive, one_line_error
from keidrive import sim
from keidrive.errors import KeidriveError
from keidrive.io import drivelog, record


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, KEIDRIVE_BUS_DIR=str(tmp_path / "bus"))


@pytest.fixture(scope="module")
def candump(tmp_path_factory):
    """A 34 s alto-na drive as a candump log."""
    folder = tmp_path_factory.mktemp("logs")
    (folder / "short.csv").write_text(SHORT_CYCLE)
    log = folder / "short.log"
    sim.write_log(sim.simulate("alto-na", folder / "short.csv"), log)
    return log


def test_a_log_gz_of_zeros_is_refused_at_the_line_limit(tmp_path, env):
    """509 KB of gzip that inflates to 500 MB of zeros (no line break) took 1.3 GB."""
    bomb = tmp_path / "zeros.log.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        for _ in range(100):
            out.write(bytes(5 << 20))
    one_line_error(keidrive("replay", str(bomb), env=env, timeout=120),
                   f"line 1 is longer than {drivelog.MAX_LINE_BYTES} bytes")


def test_a_sparse_log_is_refused_at_the_line_limit(tmp_path, env):
    """A 1 GB sparse .log took 2.2 GB and 15 s."""
    sparse = tmp_path / "sparse.log"
    with open(sparse, "wb") as out:
        out.truncate(1 << 30)
    result = keidrive("replay", str(sparse), env=env, timeout=120)
    one_line_error(result, f"{sparse}: line 1 is longer than {drivelog.MAX_LINE_BYTES} bytes")


def test_a_gz_inflating_far_beyond_a_log_is_refused(candump, tmp_path):
    """Valid lines, repeated: gzip packs them a thousand times over, no recorded log so."""
    line = candump.read_text().splitlines()[5] + "\n"
    bomb = tmp_path / "repeated.log.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        out.write(line.encode() * 400_000)
    assert bomb.stat().st_size * drivelog.MAX_GZIP_RATIO < len(line) * 400_000
    with pytest.raises(KeidriveError, match=f"inflates to more than {drivelog.MAX_GZIP_RATIO} times its size"):
        drivelog.read_drive_log(bomb)
    # a real log compressed is read as the log itself
    packed = tmp_path / "short.log.gz"
    with gzip.open(packed, "wb") as out:
        out.write(candump.read_bytes())
    packed_records = next(iter(drivelog.read_drive_log(packed).messages.records()))
    assert packed_records.tobytes() == next(iter(drivelog.read_drive_log(candump).messages.records())).tobytes()


def test_what_is_not_a_regular_file_is_named_for_what_it_is(tmp_path, env):
    fifo = tmp_path / "drive.log"
    os.mkfifo(fifo)
    (tmp_path / "folder.blf").mkdir()
    (tmp_path / "zero.log").symlink_to("/dev/zero")
    (tmp_path / "gone.log").symlink_to(tmp_path / "nothing.log")
    for name, words in (("drive.log", "a named pipe (FIFO), not a log file"),
                        ("folder.blf", "a directory, not a log file"),
                        ("zero.log", "a character device, not a log file"),
                        ("gone.log", "no such log file (a symbolic link to nothing)"),
                        ("missing.log", "no such log file")):
        one_line_error(keidrive("replay", str(tmp_path / name), env=env, timeout=60), f"{tmp_path / name}: {words}")


def _messages_alive() -> int:
    gc.collect()
    return sum(isinstance(obj, can.Message) for obj in gc.get_objects())


def test_a_log_is_read_as_it_goes(candump, monkeypatch):
    """No python-can Message outlives its batch; the records come back from
    the spool in pieces; the census is the log's."""
    monkeypatch.setattr(drivelog, "SPOOL_RECORDS", 500)
    messages = list(can.LogReader(str(candump)))
    expected = record.from_messages(messages)
    counts = {}
    for msg in messages:
        counts[msg.arbitration_id, msg.is_extended_id] = counts.get((msg.arbitration_id, msg.is_extended_id), 0) + 1
    del messages, msg
    alive_before = _messages_alive()
    log = drivelog.read_drive_log(candump)
    assert _messages_alive() == alive_before  # none of the log's frames is kept
    pieces = list(log.messages.records())
    assert max(len(piece) for piece in pieces) == 500 and len(pieces) == -(-len(expected) // 500)
    assert np.array_equal(np.concatenate(pieces), expected) and len(log.messages.records()) == len(expected)
    assert log.messages.frame_keys == counts
    assert log.span_s == pytest.approx((expected["timestamp_us"].max() - expected["timestamp_us"].min()) / 1e6)
