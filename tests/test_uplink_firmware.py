"""The uplink inside the firmware: its RAM, an idle tick that allocates
nothing, secrets never printed, a board without a network, and the Wi-Fi
bring-up of an ESP32 / Pico W."""

import json
import os
import sys

import pytest
from conftest import keidrive, micropython_or_skip, one_line_error
from keidrive.io import record
from keidrive.bench.uplink import heap_figures
from keidrive.fwconfig import firmware_module
from keidrive.drive.harness import firmware_config, run_records
from keidrive.sim import load_cycle, load_vehicle, simulate
from mqtt_helpers import Mosquitto

# bytes of heap for the uplink without TLS: 8 KiB on a board's 32-bit words;
# the 64-bit port's objects hold twice the pointers
RAM_BUDGET = {"unix32": 8 * 1024, "micropython": 10 * 1024}

@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    micropython_or_skip()
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto"), {"ram": "ram-secret"}).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture(scope="module")
def drive_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("drive") / "us06.bin"
    path.write_bytes(record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle("us06")).frames).tobytes())
    return path


def _interpreter(runtime):
    if runtime == "micropython":
        return micropython_or_skip()
    from keidrive.target import build
    from test_target import micropython_source

    micropython_source()
    return str(build("unix32").path)


@pytest.mark.parametrize("runtime", ["micropython", "unix32"])  # 64-bit, and a board's 32-bit words
def test_the_uplink_takes_under_8_kib_and_its_idle_tick_allocates_nothing(broker, drive_file, tmp_path, runtime):
    cfg = {"vehicle": "kei_turbo_660", "profile": "jp-expressway", "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
           "mqtt_username": "ram", "mqtt_password": "ram-secret", "device_id": "ram", "uplink_status_s": 3600,
           "uplink_trip_min": 120}
    (tmp_path / "data").mkdir()
    out = heap_figures(_interpreter(runtime), cfg, tmp_path / "data", drive_file)
    print(f"\nuplink heap without TLS, connected, {runtime}: {out['uplink_heap_bytes']} bytes")
    assert out["idle"] == "none" and out["state"] == 5  # still connected
    assert 0 < out["uplink_heap_bytes"] <= RAM_BUDGET[runtime]


@pytest.fixture(scope="module")
def short_drive(tmp_path_factory):
    cycle = tmp_path_factory.mktemp("cycle") / "short.csv"
    cycle.write_text("time_s,speed_kmh\n0,0\n2,0\n6,30\n10,0\n12,0\n")
    return record.from_frames(simulate(load_vehicle("nbox-turbo"), load_cycle(str(cycle))).frames).tobytes()


def test_secrets_are_never_printed(tmp_path, short_drive):
    """config get shows them masked; the firmware's error line about a bad
    one names the key, never the value; config set echoes it masked."""
    env = dict(os.environ)
    config = tmp_path / "config.json"
    result = keidrive("config", "set", "--file", str(config), "mqtt_password", "hunter2-secret",
                      "wifi_password", "wifi-secret-9", "mqtt_url", "mqtts://broker.example:8883", env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr and "wifi-secret" not in result.stdout
    shown = keidrive("config", "get", "--file", str(config), env=env)
    assert "hunter2" not in shown.stdout and "wifi-secret" not in shown.stdout
    assert 'mqtt_password = "********"' in shown.stdout
    assert keidrive("config", "get", "--file", str(config), "mqtt_password", env=env).stdout.strip() == '"********"'
    bad = firmware_config("nbox-turbo", overrides={"mqtt_password": "tab\there-secret", "wifi_password": 42})
    report = run_records(short_drive, bad, timeout=60)
    assert report.ok, report.failure()
    text = json.dumps(report.events)
    assert "here-secret" not in text and "mqtt_password" in text and "wifi_password" in text
    one_line_error(keidrive("config", "set", "--file", str(config), "mqtt_password", "x\ty-secret", env=env),
                   "mqtt_password")


def _lines(stream):
    return [json.loads(line) for line in stream.getvalue().decode().splitlines()]


def test_a_board_without_a_network_runs_without_uplink_and_says_so_once(monkeypatch, tmp_path, short_drive):
    """An RP2040 without radio has neither ``network`` nor ``socket``: one
    line, no uplink, the drive as without one (under CPython, the modules
    made missing)."""
    import io

    app = firmware_module("app")
    monkeypatch.setitem(sys.modules, "network", None)
    monkeypatch.setitem(sys.modules, "socket", None)
    out = io.BytesIO()
    fw, _ = app.build(cfg_obj={"mqtt_url": "mqtt://127.0.0.1:1883"}, data_dir=str(tmp_path), out=out)
    fw.records(bytearray(short_drive), len(short_drive) // 24, True)
    fw.finish()
    lines = _lines(out)
    said = [e for e in lines if e.get("type") == "uplink"]
    assert said == [{"type": "uplink", "state": "off",
                     "why": "this board has no network interface: running without uplink"}]
    assert fw.uplink is None and lines[-1]["type"] == "trip"


def test_wifi_is_joined_from_the_config_and_waited_for_without_blocking(monkeypatch, broker, tmp_path, short_drive):
    """ESP32 / Pico W: WLAN(STA_IF).connect(wifi_ssid, wifi_password)
    returns at once; the client looks at isconnected() a second at a time
    and connects once it is true. The WLAN here is a stand-in with the
    documented calls (network.WLAN of MicroPython's ESP32 and rp2 ports);
    the broker is mosquitto."""
    import io
    import types

    calls = []

    class WLAN:
        def __init__(self, interface):
            calls.append(("WLAN", interface))
            self.polls = 0

        def active(self, on):
            calls.append(("active", on))

        def connect(self, ssid, password):
            calls.append(("connect", ssid, password))

        def isconnected(self):
            self.polls += 1
            return self.polls > 3  # associated after a few looks

        def ifconfig(self):
            return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    network = types.SimpleNamespace(WLAN=WLAN, STA_IF=0)
    monkeypatch.setitem(sys.modules, "network", network)
    app = firmware_module("app")
    out = io.BytesIO()
    cfg = {"mqtt_url": f"mqtt://127.0.0.1:{broker.port}", "mqtt_username": "ram", "mqtt_password": "ram-secret",
           "device_id": "ram", "wifi_ssid": "kei-garage", "wifi_password": "wifi-secret", "uplink_flush_s": 10}
    fw, _ = app.build(cfg_obj=cfg, data_dir=str(tmp_path), out=out)
    assert calls == [("WLAN", 0), ("active", True), ("connect", "kei-garage", "wifi-secret")]
    fw.records(bytearray(short_drive), len(short_drive) // 24, True)
    fw.finish()
    lines = _lines(out)
    summary = [e for e in lines if e.get("type") == "uplink" and e.get("state") == "summary"][-1]
    assert summary["connects"] == 1 and summary["queued"] == 0, lines
    assert "wifi-secret" not in json.dumps(lines)
