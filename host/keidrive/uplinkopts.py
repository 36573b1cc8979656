"""``--uplink`` for ``keidrive run`` and ``keidrive board``: the firmware
config keys that make the SIL firmware or a virtual board publish to an MQTT
broker (keifw/uplink.py, docs/uplink.md), and what the run reports of it."""

from __future__ import annotations

import secrets
from pathlib import Path

from .errors import KeidriveError

# the embedded broker of `keidrive collect` without --broker
DEFAULT_URL = "mqtt://127.0.0.1:1883"


def add_arguments(parser, board: bool = False) -> None:
    group = parser.add_argument_group("uplink (docs/uplink.md)")
    if board:
        group.add_argument("--uplink", metavar="mqtt(s)://HOST:PORT",
                           help="the board publishes its trips and events to this broker (mqtt_url in its "
                                "/config.json; its network is this machine's)")
        return
    group.add_argument("--uplink", nargs="?", const=DEFAULT_URL, metavar="mqtt(s)://[USER@]HOST:PORT",
                       help=f"publish trips, events and statuses over MQTT while driving (default {DEFAULT_URL}: "
                            "a `keidrive collect` on this machine)")
    group.add_argument("--device-id", metavar="ID",
                       help="the device id in the topics (default: sil-<vehicle>-<6 random hex digits>)")
    group.add_argument("--uplink-password-file", metavar="FILE", help="the MQTT password, first line of FILE")
    group.add_argument("--uplink-ca", metavar="CA.pem", help="CA certificate the broker's must chain to (mqtts://)")


def config(args, vehicle: str) -> dict:
    """The firmware config keys for ``args``' uplink options ({} without --uplink)."""
    url = getattr(args, "uplink", None)
    if url is None:
        for name in ("device_id", "uplink_password_file", "uplink_ca"):
            if getattr(args, name, None) is not None:
                raise KeidriveError(f"--{name.replace('_', '-')} goes with --uplink")
        return {}
    keys = split_url(url)
    keys["device_id"] = args.device_id or f"sil-{Path(vehicle).stem}-{secrets.token_hex(3)}"
    if args.uplink_password_file is not None:
        if keys.get("mqtt_username") is None:
            raise KeidriveError("--uplink-password-file needs a user: --uplink mqtts://USER@HOST:PORT")
        keys["mqtt_password"] = _first_line(args.uplink_password_file)
    if args.uplink_ca is not None:
        ca = Path(args.uplink_ca)
        if not ca.is_file():
            raise KeidriveError(f"--uplink-ca {ca}: no such file")
        keys["mqtt_ca"] = str(ca.resolve())
    return keys


def split_url(url: str) -> dict:
    """mqtt(s)://[USER@]HOST[:PORT] -> mqtt_url (and mqtt_username); a
    password in the URL is refused (it would show in the process list)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("mqtt", "mqtts"):
        raise KeidriveError(f"--uplink wants mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
    keys = {}
    if "@" in rest:
        user, _, rest = rest.rpartition("@")
        if ":" in user:
            raise KeidriveError("--uplink: no password in the URL (it would show in the process list): "
                                "--uplink-password-file")
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
