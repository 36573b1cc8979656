"""The uplink seen from the host: the firmware config keys that make the SIL
firmware or a virtual board publish to an MQTT broker (keifw/uplink.py,
docs/uplink.md), and what a drive reports of it."""

from __future__ import annotations

import secrets
from pathlib import Path

from .errors import KeidriveError

# the embedded broker of `keidrive collect` without --broker
DEFAULT_URL = "mqtt://127.0.0.1:1883"


def firmware_keys(url: str, vehicle: str, *, device_id: str | None = None, password_file: str | None = None,
                  ca: str | None = None) -> dict:
    """The firmware config keys that publish to ``url`` as ``device_id``
    (default: sil-<vehicle>-<6 random hex digits>), the MQTT password read
    from the first line of ``password_file``, the broker's certificate
    chaining to ``ca`` (mqtts://)."""
    keys = split_url(url)
    keys["device_id"] = device_id or f"sil-{Path(vehicle).stem}-{secrets.token_hex(3)}"
    if password_file is not None:
        if keys.get("mqtt_username") is None:
            raise KeidriveError("needs a user: {uplink} mqtts://USER@HOST:PORT", option="uplink_password_file",
                                mentions=("uplink",))
        keys["mqtt_password"] = _first_line(password_file)
    if ca is not None:
        path = Path(ca)
        if not path.is_file():
            raise KeidriveError(f"{path}: no such file", option="uplink_ca")
        keys["mqtt_ca"] = str(path.resolve())
    return keys


def split_url(url: str) -> dict:
    """mqtt(s)://[USER@]HOST[:PORT] -> mqtt_url (and mqtt_username); a
    password in the URL is refused (it would show in the process list)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mqtt", "mqtts"):
        raise KeidriveError(f"wants mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}", option="uplink")
    keys = {}
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if ":" in user:
            raise KeidriveError(": no password in the URL (it would show in the process list): "
                                "{uplink_password_file}", option="uplink", mentions=("uplink_password_file",))
        keys["mqtt_username"] = user
    keys["mqtt_url"] = f"{scheme}://{rest}"
    return keys


def provision(root: Path, url: str, board: str) -> None:
    """A virtual board's /config.json with the broker (its network is this
    machine's): mqtt_url (and user) merged into what is there, the device
    id ``vboard-<board>`` unless it has one; the rest stays for flash."""

    from .board.deploy import merged_config
    from .board.settings import check_writable, read_local, write_local

    path = Path(root) / "config.json"
    Path(root).mkdir(parents=True, exist_ok=True)
    check_writable(str(path))
    current = read_local(str(path), missing_ok=True)
    changes = split_url(url)
    if "device_id" not in current:
        changes["device_id"] = f"vboard-{board}"
    write_local(str(path), merged_config(current, changes, str(path)))


def _first_line(path: str) -> str:
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise KeidriveError(f"cannot read the password file {path}: "
                            f"{getattr(error, 'strerror', None) or error}") from None
    return lines[0] if lines else ""


def summary(report) -> dict | None:
    """The firmware's last ``uplink`` summary line: sent, acked, queued, dropped..."""
    lines = [e for e in report.events if e.get("type") == "uplink" and e.get("state") == "summary"]
    if not lines:
        return None
    return {k: v for k, v in lines[-1].items() if k not in ("type", "state")}


def describe(figures: dict) -> str:
    """The run report's uplink line."""
    dropped = sum(figures[f"dropped_{c}"] for c in ("status", "event", "trip"))
    return (f"uplink: {figures['sent']} messages sent, {figures['acked']} acknowledged, {figures['queued']} left in "
            f"the journal, {dropped} dropped ({figures['journal_writes']} journal writes, "
            f"{figures['connects']} connects)")
