"""Where a channel's hub lives: the bus folder, checked before anyone trusts
it, a socket per channel name, and starting the hub when none runs.

Whoever controls the folder controls the bus (they could run a hub that
injects frames, or plant a symlink where a client writes), so the folder must
be a real directory owned by this user that nobody else can write to.
"""

import contextlib
import errno
import fcntl
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import time

from ..errors import KeidriveError

# A plain file name: no path separators, no leading dot or dash (a hidden file,
# an option to a shell tool), nothing a terminal or a shell would mangle.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
# sun_path of struct sockaddr_un holds 108 bytes, NUL included.
MAX_SOCKET_PATH = 107


def bus_dir() -> str:
    """Where channel sockets live: $KEIDRIVE_BUS_DIR, else a per-user temp folder."""
    configured = os.environ.get("KEIDRIVE_BUS_DIR")
    if configured:
        return configured
    return os.path.join(tempfile.gettempdir(), f"keidrive-bus-{os.getuid()}")


def check_channel(channel: str) -> str:
    if not CHANNEL_NAME.fullmatch(channel) or ".." in channel:
        raise KeidriveError(
            f"invalid keidrive bus channel {channel!r}: use a plain name of letters, digits and _.+- "
            "that does not start with . or - (e.g. sim0)"
        )
    return channel


def socket_path(channel: str) -> str:
    path = os.path.join(bus_dir(), f"{check_channel(channel)}.sock")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise KeidriveError(
            f"keidrive bus socket path {path} is longer than a Unix socket allows ({MAX_SOCKET_PATH} bytes): "
            "set KEIDRIVE_BUS_DIR to a shorter folder"
        )
    return path


def open_bus_dir() -> int:
    """A descriptor of the bus folder, created 0700 if missing, after checking
    it is this user's own: a directory, not a symlink, owned by us, writable
    by nobody else. The caller closes it (and may flock it)."""
    folder = bus_dir()
    parent = os.path.dirname(os.path.abspath(folder))
    try:
        os.makedirs(parent, exist_ok=True)
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise KeidriveError(f"cannot create the keidrive bus folder {folder}: {error.strerror}") from None
    try:
        # O_NOFOLLOW: a symlink in the folder's place is refused, not followed;
        # the checks below run on what was opened, so it cannot be swapped after.
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        if os.path.islink(folder):
            raise KeidriveError(f"keidrive bus folder {folder} is a symlink: refusing it") from None
        raise KeidriveError(f"cannot open the keidrive bus folder {folder}: {error.strerror}") from None
    info = os.fstat(fd)
    problem = None
    if info.st_uid != os.getuid():
        problem = f"belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem:
        os.close(fd)
        raise KeidriveError(
            f"keidrive bus folder {folder} {problem}: refusing it; remove it, or point KEIDRIVE_BUS_DIR "
            "at a folder of your own"
        )
    return fd


def check_bus_dir() -> None:
    os.close(open_bus_dir())


def ensure_hub(channel: str, bitrate: int | None = None, timeout: float = 5.0) -> str:
    """Connectable socket path of ``channel``'s hub, spawning the hub if none runs."""
    path = socket_path(channel)
    folder = open_bus_dir()
    try:
        # The folder itself is the lock: no lock file to leave behind, to be
        # planted as a symlink, or to be followed.
        fcntl.flock(folder, fcntl.LOCK_EX)
        # Earlier versions locked with CHANNEL.sock.lock files and left them
        # behind; unlinking one (a symlink included) never touches its target.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".lock")
        if accepts(path):
            return path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left behind by a hub that died
        command = [sys.executable, "-m", "keidrive.vbus.hub", channel]
        if bitrate:
            command += ["--bitrate", str(bitrate)]
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            # its numpy is element-wise: a BLAS thread pool would only cost its start-up
            env={**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if accepts(path):
                return path
            time.sleep(0.02)
    finally:
        os.close(folder)
    raise KeidriveError(f"the keidrive bus hub for channel {channel!r} did not start at {path}")


def accepts(path: str) -> bool:
    """Whether a hub serves at ``path``."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError as error:
        if error.errno not in (errno.ENOENT, errno.ECONNREFUSED):
            raise
        return False
    finally:
        probe.close()
