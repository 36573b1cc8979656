"""The uplink, measured (``keidrive bench --only uplink``).

* A whole drive in the SIL firmware (MicroPython unix port, lockstep over
  stdin) without and with its uplink publishing to the embedded broker
  (amqtt on loopback): the same trip either way, and what the uplink sent, by
  message type, per hour of driving (the payloads' bytes as a paho-mqtt
  subscriber received them, MQTT headers and topics not counted) and its
  journal's flash writes per hour.
* The loop's frames per second without and with the uplink in the same run
  (keidrive/bench/mp_uplink.py: ``Firmware.records`` over the drive, timed,
  the uplink connected before the clock starts; the best of 5 alternating
  runs each). Wall-clock figures, as loaded as the machine is: the
  deterministic cost is the Cortex-M3 count below.
* The uplink's heap on the unix port (keidrive/bench/mp_uplink.py): without
  TLS, and with TLS against the embedded broker's TLS listener (a throwaway
  CA made for it): what TLS adds, how long connecting took and the longest
  single step of it (the handshake's crypto runs inside one, on this
  machine's CPU).
* The uplink's idle cost per 10 Hz tick in Cortex-M3 instructions on the
  qemu board (no network there: a stand-in socket), when the MicroPython
  source for the target is at hand (KEIDRIVE_MICROPYTHON_SRC).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from .. import sim
from ..io import record
from ..drive.harness import firmware_config, run_records
from ..paths import firmware_dir
from ..runtime import micropython_command

HERE = Path(__file__).resolve().parent


def heap_figures(interpreter: str, cfg: dict, data_dir, records_path, timeout: float = 300) -> dict:
    """mp_uplink.heap in ``interpreter`` (a MicroPython unix port): the uplink's heap and connect figures."""
    return _mp(interpreter, "heap", cfg, data_dir, records_path, timeout)


def _mp(interpreter: str, function: str, cfg: dict, data_dir, records_path, timeout: float = 300) -> dict:
    """mp_uplink.FUNCTION(cfg, data_dir, records) in ``interpreter``: its JSON line."""
    script = (f"import sys\nsys.path[:0] = [{str(firmware_dir())!r}, {str(HERE)!r}]\nimport json, mp_uplink\n"
              f"mp_uplink.{function}(json.loads({json.dumps(cfg)!r}), {str(data_dir)!r}, {str(records_path)!r})\n")
    done = subprocess.run([interpreter, "-X", "heapsize=2M", "-c", script], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"mp_uplink.{function} failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def uplink_figures(vehicle: str = "nbox-turbo", cycle: str = "wltc-jp") -> dict:
    from ..collect import EmbeddedBroker

    result = sim.simulate(vehicle, cycle)
    records = record.from_frames(result.frames)
    hours = result.truth["duration_s"] / 3600
    figures: dict = {"vehicle": vehicle, "cycle": cycle, "driving_h": round(hours, 3)}
    with tempfile.TemporaryDirectory(prefix="keidrive-bench-uplink-") as tmp:
        folder = Path(tmp)
        tls = _tls_files(folder)
        port, tls_port = _free_port(), _free_port()
        broker = EmbeddedBroker("127.0.0.1", port, tls=(tls_port, tls) if tls else None).start()
        try:
            figures.update(_drive(records, vehicle, hours, port))
            path = folder / "drive.bin"
            path.write_bytes(records.tobytes())
            base = {**firmware_config(vehicle), "mqtt_url": f"mqtt://127.0.0.1:{port}", "device_id": "bench",
                    "uplink_status_s": 3600, "uplink_trip_min": 120}
            figures.update(_mp(micropython_command(), "loop_fps", {**base, "uplink_status_s": 60,
                                                                  "uplink_trip_min": 10}, _fresh(folder / "loop"), path))
            plain = heap_figures(micropython_command(), base, _fresh(folder / "plain"), path)
            figures["heap_bytes"] = plain["uplink_heap_bytes"]
            figures["heap_idle_tick"] = plain["idle"]
            if tls:
                secure = heap_figures(micropython_command(), {**base, "mqtt_url": f"mqtts://127.0.0.1:{tls_port}",
                                                             "mqtt_ca": str(tls["ca"])}, _fresh(folder / "tls"), path)
                figures["heap_bytes_tls"] = secure["uplink_heap_bytes"]
                figures["tls_heap_bytes_added"] = secure["uplink_heap_bytes"] - plain["uplink_heap_bytes"]
                figures["tls_connect_heap_peak_bytes"] = secure["connect_heap_peak_bytes"]
                figures["tls_connect_ms"] = secure["connect_ms"]
                figures["tls_longest_step_ms"] = round(secure["longest_step_us"] / 1000, 1)
                figures["plain_longest_step_ms"] = round(plain["longest_step_us"] / 1000, 1)
            else:
                figures["heap_bytes_tls"] = None
        finally:
            broker.stop()
    figures.update(_on_qemu(vehicle))
    return figures


def _drive(records, vehicle: str, hours: float, port: int) -> dict:
    """The drive without and with the uplink, in the same run; what the
    broker passed on, by message type."""
    import paho.mqtt.client as mqtt

    from ..collect.collector import TOPIC

    sizes: Counter = Counter()
    counts: Counter = Counter()

    def on_message(_client, _userdata, message):
        if not message.topic.endswith("/online"):
            kind = json.loads(message.payload)["type"]
            kind = kind if kind in ("status", "trip") else "event"
            sizes[kind] += len(message.payload)
            counts[kind] += 1

    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber")
    subscriber.on_message = on_message
    subscriber.connect("127.0.0.1", port)
    subscriber.subscribe(TOPIC, qos=1)
    subscriber.loop_start()
    try:
        data = records.tobytes()
        runs = {}
        for name, extra in (("off", {}), ("on", {"mqtt_url": f"mqtt://127.0.0.1:{port}", "device_id": "bench"})):
            report = run_records(data, firmware_config(vehicle, overrides=extra), timeout=900)
            runs[name] = report
            if not report.ok:
                raise RuntimeError(report.failure())
        summary = [e for e in runs["on"].events if e.get("type") == "uplink" and e.get("state") == "summary"][-1]
        deadline = time.monotonic() + 30
        while sum(counts.values()) < summary["seq"] and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()
    return {
        "frames": len(records),
        "messages": dict(counts),
        "bytes_per_hour": {kind: round(sizes[kind] / hours) for kind in ("status", "event", "trip")},
        "journal_writes_per_hour": round(summary["journal_writes"] / hours, 1),
        "acknowledged": summary["acked"],
        "same_trip": runs["off"].trip == runs["on"].trip,
    }


def _on_qemu(vehicle: str) -> dict:
    """The idle per-tick cost on the Cortex-M3, or why it was not measured."""
    import os

    from ..target import build
    from ..target.qemu import Machine, Session
    from ..target.source import ENV_VAR

    if not os.environ.get(ENV_VAR):
        return {"instr_per_tick_uplink_idle": None, "qemu": f"not measured: {ENV_VAR} is not set"}
    target = build("qemu")
    cfg = {**firmware_config(vehicle), "mqtt_url": "mqtt://127.0.0.1:1883", "device_id": "qemu",
           "uplink_status_s": 3600, "uplink_trip_min": 120}
    code = (HERE / "mp_uplink.py").read_text().replace('if __name__ == "__main__":', "if False:")
    code += f"\nidle_ticks({cfg!r})\n"
    with Machine(target.path) as machine:
        session = Session(machine)
        session.start(code)
        for line in session.lines():
            if line.startswith(b"uplink "):
                return json.loads(line[len(b"uplink "):])
        last = session.error_output.decode(errors="replace").strip().splitlines()[-1:]
    raise RuntimeError(f"the uplink bench on the qemu board failed: {last[0] if last else 'no output'}")


def make_ca(folder: Path) -> dict:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost
    signed by it (ECDSA P-256): {"ca", "cert", "key"} PEM paths in
    ``folder``. Needs ``cryptography`` (the test extra)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keidrive test CA")])

    def certificate(subject, public_key, extension, critical):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)).add_extension(extension, critical=critical)
                .sign(ca_key, hashes.SHA256()))

    ca = certificate(ca_name, ca_key.public_key(), x509.BasicConstraints(ca=True, path_length=0), True)
    names = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), key.public_key(), names,
                         False)
    paths = {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def _tls_files(folder: Path) -> dict | None:
    try:
        return make_ca(folder)
    except ImportError:  # cryptography: the TLS figures are left out
        return None


def _fresh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def print_uplink(figures: dict) -> None:
    print(f"uplink, {figures['vehicle']} on {figures['cycle']} ({figures['frames']} frames), SIL on the unix port:")
    print(f"  frames/s, uplink off / on  {figures['fps_uplink_off']:>10,} / {figures['fps_uplink_on']:,}"
          f" (best of 5 each, wall clock; same trip: {figures['same_trip']})")
    per_hour = figures["bytes_per_hour"]
    print(f"  bytes per hour of driving  status {per_hour['status']:,}, event {per_hour['event']:,}, "
          f"trip {per_hour['trip']:,} (payloads; messages {figures['messages']})")
    print(f"  journal writes per hour    {figures['journal_writes_per_hour']:>10}")
    print(f"  heap, connected            {figures['heap_bytes']:>10,} bytes without TLS"
          + (f", {figures['heap_bytes_tls']:,} with TLS (+{figures['tls_heap_bytes_added']:,})"
             if figures.get("heap_bytes_tls") is not None else ", TLS not measured (no cryptography)"))
    if figures.get("heap_bytes_tls") is not None:
        print(f"  TLS connect                {figures['tls_connect_ms']:>10} ms, longest step "
              f"{figures['tls_longest_step_ms']} ms (plain: {figures['plain_longest_step_ms']} ms), heap peak "
              f"{figures['tls_connect_heap_peak_bytes']:,} bytes while connecting")
    if figures.get("instr_per_tick_uplink_idle") is not None:
        print(f"  idle per tick, Cortex-M3   {figures['instr_per_tick_uplink_idle']:>10,} instructions (qemu, "
              f"{figures['alloc_bytes_per_tick']} bytes allocated per tick)")
    else:
        print(f"  idle per tick, Cortex-M3   {figures.get('qemu')}")
