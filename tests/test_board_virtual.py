"""The board workflow end to end against the virtual dev board, with the real mpremote client.

One virtual ESP32 board (``keidrive board --pty``) on a private bus directory
serves the whole module: flash -> ``mpremote fs ls`` -> monitor a drive from
the virtual bus -> ``config set`` seen after a soft reset, plus bad input and
the staging switch.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from conftest import Lines, micropython_or_skip

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pty + procfs board (Linux)"),
]

if sys.platform.startswith("linux"):
    micropython_or_skip()  # as the virtual board finds it; a failure, not a skip, in CI

CHANNEL = "vboard"


def keidrive(*args, env, timeout=330, check=False):  # flash gives up by its own 300 s deadline
    result = subprocess.run([sys.executable, "-m", "keidrive", *args], capture_output=True, text=True,
                            env=env, timeout=timeout)
    if check:
        assert result.returncode == 0, f"keidrive {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def mpremote(*args, env, timeout=120):
    result = subprocess.run([sys.executable, "-m", "mpremote", *args], capture_output=True, text=True,
                            env=env, timeout=timeout)
    assert result.returncode == 0, f"mpremote {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ)
    e["KEIDRIVE_BUS_DIR"] = str(tmp_path_factory.mktemp("bus"))
    return e


@pytest.fixture(scope="module")
def board(env, tmp_path_factory):
    """(pty path, board folder, process) of a virtual ESP32 on the private bus."""
    root = tmp_path_factory.mktemp("board")
    process = subprocess.Popen(
        [sys.executable, "-m", "keidrive", "board", "--pty", "--board", "esp32", "--root", str(root),
         "--bus", f"keidrive:{CHANNEL}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    first = Lines(process.stdout).first(timeout=60)
    assert first, "the board printed no port within 60 s"
    port = first.split()[-1]
    assert port.startswith("/dev/"), first
    yield port, root, process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def flashed(board, env):
    port, root, _ = board
    result = keidrive("flash", "--port", port, "--board", "esp32", "--vehicle", "nbox-turbo",
                      "--profile", "jp-expressway", env=env, check=True)
    return result.stdout


def wait_lines(command, env, predicate, timeout):
    """Run ``command``, reading stdout lines until predicate(line) or timeout: (found, lines)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = Lines(process.stdout)
    try:
        found = output.until(lambda line: predicate(line.rstrip("\n")), timeout) is not None
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
    return found, [line.rstrip("\n") for line in output.seen]


def simulate(env, fast=True):
    args = [sys.executable, "-m", "keidrive", "simulate", "--vehicle", "nbox-turbo", "--cycle", "wltc-jp",
            "--bus", f"keidrive:{CHANNEL}", "--no-plot"] + (["--fast"] if fast else [])
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def stop(process):
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=10)


def soft_reset_lines(port, seconds):
    """Ctrl-C, Ctrl-B, Ctrl-D at the console, then what the board prints for ``seconds``."""
    with serial.Serial(port, 115200, timeout=0.2, exclusive=True) as ser:
        ser.write(b"\r\x03\x03")
        time.sleep(0.1)
        ser.write(b"\r\x02")
        time.sleep(0.1)
        ser.reset_input_buffer()
        ser.write(b"\x04")
        data = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data += ser.read(4096)
    return data.decode("utf-8", "replace")


# ---- flash ---------------------------------------------------------------------------


def test_flash_deploys_and_mpremote_lists_the_application(board, flashed, env):
    port, root, _ = board
    assert "keidrive virtual board" in flashed and "-march=x64" in flashed, flashed
    assert "a real esp32 would be xtensawin" in flashed
    assert "22 files, 22 to copy" in flashed or "to copy, 0 unchanged" in flashed, flashed
    listing = mpremote("connect", port, "fs", "ls", env=env)
    assert "main.py" in listing and "keifw/" in listing and "config.json" in listing, listing
    vehicles = mpremote("connect", port, "fs", "ls", ":keifw/vehicles", env=env)
    assert "kei_turbo_660.mpy" in vehicles, vehicles
    assert not (root / ".kd_stage").exists() and not (root / ".kd_old").exists()
    config = json.loads((root / "config.json").read_text())
    assert config == {"can_port": "mcp2515", "mcp2515_spi": 2, "pin_sck": 18, "pin_mosi": 23, "pin_miso": 19,
                      "pin_cs": 5, "pin_int": 4, "gps_uart": 2, "pin_gps_rx": 16, "pin_gps_tx": 17,
                      "profile": "jp-expressway", "vehicle": "kei_turbo_660"}
    # main.py stays source, everything else is .mpy
    assert not list((root / "keifw").rglob("*.py"))


def test_second_flash_copies_only_what_changed(board, flashed, env):
    port, root, _ = board
    again = keidrive("flash", "--port", port, "--board", "esp32", env=env, check=True).stdout
    assert "0 to copy" in again and "nothing copied" in again, again
    # a file damaged on the board is the only one sent again
    target = root / "keifw" / "eco.mpy"
    good = target.read_bytes()
    target.write_bytes(b"damaged")
    third = keidrive("flash", "--port", port, "--board", "esp32", env=env, check=True).stdout
    assert "1 to copy" in third and "copy keifw/eco.mpy" in third, third
    assert target.read_bytes() == good


def test_interrupted_flash_leaves_the_old_application(board, flashed, env):
    """A cut while staging: the live application is untouched; the next flash cleans up."""
    from keidrive.board import deploy
    from keidrive.board.boards import board_kind
    from keidrive.board.client import Board

    port, root, _ = board
    damaged = {p: b"old version of " + p.encode() for p in ("keifw/app.mpy", "keifw/loop.mpy", "keifw/alerts.mpy")}
    for path, data in damaged.items():
        (root / path).write_bytes(data)
    before = {p: (root / p).read_bytes() for p in ("main.py", *damaged)}

    board_ = Board(port)
    try:
        identity = board_.identity()
        arch, note = deploy.check_identity(identity, board_kind("esp32"), port)
        plan = deploy.Plan(kind=board_kind("esp32"), arch=arch, arch_note=note, files=deploy.build_application(arch))
        board_.exec(deploy.BOARD_HELPERS)
        deploy.compare(board_, plan)
        assert sorted(f.path for f in plan.upload) == sorted(damaged)
        real_write = board_.write_file
        calls = []

        def cut(path, data, progress=None):
            calls.append(path)
            if len(calls) == 2:
                raise KeyboardInterrupt("cable pulled")
            return real_write(path, data, progress)

        board_.write_file = cut
        with pytest.raises(KeyboardInterrupt):
            deploy.deploy(board_, plan, lambda *_: None)
    finally:
        board_.close()
    assert (root / ".kd_stage").is_dir()  # half-built, never switched in
    assert {p: (root / p).read_bytes() for p in before} == before
    again = keidrive("flash", "--port", port, "--board", "esp32", env=env, check=True).stdout
    assert "removing an incomplete stage" in again and "3 to copy" in again, again
    assert not (root / ".kd_stage").exists()
    assert all((root / p).read_bytes() != b"old version of " + p.encode() for p in damaged)


def test_flash_removes_only_the_files_keidrive_put_there(board, flashed, env):
    """Stale manifest entries in folders the user also uses (/lib, the /data
    trip store, even keifw/): those files go, the user's stay."""
    port, root, _ = board
    manifest_path = root / ".kd_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    ours = ["lib/kd_old_helper.mpy", "data/kd_old_table.mpy", "keifw/retired.mpy"]
    theirs = {"lib/my_driver.py": b"user driver", "data/trip_a.bin": b"trip slot", "keifw/notes.txt": b"mine"}
    for path in ours:
        (root / path).parent.mkdir(exist_ok=True)
        (root / path).write_bytes(b"from an older application")
        manifest["files"][path] = "0" * 64
    for path, data in theirs.items():
        (root / path).write_bytes(data)
    (root / "olddir").mkdir()
    (root / "olddir" / "gone.mpy").write_bytes(b"ours alone")
    manifest["files"]["olddir/gone.mpy"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    result = keidrive("flash", "--port", port, "--board", "esp32", env=env, check=True).stdout
    assert not any((root / path).exists() for path in ours), result
    assert {path: (root / path).read_bytes() for path in theirs} == theirs
    assert not (root / "olddir").exists()  # emptied of keidrive's files, and nobody else's
    assert not (root / ".kd_old").exists() and not (root / ".kd_stage").exists()
    assert set(json.loads(manifest_path.read_text())["files"]).isdisjoint(ours)
    for path in theirs:
        (root / path).unlink()


# ---- monitor -----------------------------------------------------------------------------


def test_monitor_shows_a_live_drive_from_the_virtual_bus(board, flashed, env, tmp_path):
    port, _, _ = board
    log = tmp_path / "telemetry.jsonl"
    sim = simulate(env, fast=False)  # recorded pace
    try:
        found, lines = wait_lines(
            [sys.executable, "-m", "keidrive", "monitor", "--port", port, "--reset", "--plain", "--duration", "20",
             "--log", str(log)],
            env, lambda line: line.startswith("t 3.0 s"), timeout=25)
    finally:
        stop(sim)
    assert found, "\n".join(lines)
    statuses = [json.loads(line) for line in log.read_text().splitlines() if '"status"' in line]
    assert len(statuses) >= 3
    last = statuses[-1]
    assert last["bus"] == "active" and last["valid"] and last["missing"] == [], last
    assert last["speed_kmh"] is not None and last["eco_hint"]
    text = "\n".join(lines)
    assert "bus active" in text and "valid yes" in text


def test_monitor_survives_the_board_resetting(board, flashed, env):
    """The engine dies (a crash / power cycle): the monitor goes on with the restarted firmware."""
    port, _, process = board
    sim = simulate(env, fast=True)
    seen = {"before": 0, "after": 0}
    killed = []

    def watch(line):
        if not line.startswith("t "):
            return False
        if not killed:
            seen["before"] += 1
            if seen["before"] == 2:
                children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
                for pid in children:
                    os.kill(int(pid), signal.SIGKILL)
                killed.append(children)
            return False
        seen["after"] += 1
        return seen["after"] >= 2 and "speed" in line

    try:
        found, lines = wait_lines(
            [sys.executable, "-m", "keidrive", "monitor", "--port", port, "--reset", "--plain", "--duration", "20"],
            env, watch, timeout=25)
    finally:
        stop(sim)
    assert killed and found, "\n".join(lines)
    assert any("power-cycling" in line for line in lines), "\n".join(lines)


def test_monitor_reads_the_sil_firmware_on_stdin(env, tmp_path):
    status = {"type": "status", "t_s": 1.0, "speed_kmh": 42.5, "instant_km_per_l": 18.2, "trip_km_per_l": 20.1,
              "eco_level": 4, "eco_hint": "coast", "warnings": ["overspeed"], "valid": True, "missing": [],
              "bus": "active", "frames": 10}
    lines = "\n".join([json.dumps(status), '{"type":"warning","kind":"overspeed","state":"raised","t_s":1.0}',
                       "not json"]) + "\n"
    log = tmp_path / "log.jsonl"
    result = subprocess.run([sys.executable, "-m", "keidrive", "monitor", "--stdin", "--plain", "--log", str(log)],
                            input=lines, capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "speed 42.5 km/h" in result.stdout and "warnings overspeed" in result.stdout
    assert "warning: kind=overspeed" in result.stdout
    assert len(log.read_text().splitlines()) == 2


# ---- config -------------------------------------------------------------------------------


def test_config_set_changes_only_the_config_and_is_seen_after_a_soft_reset(board, flashed, env):
    port, root, _ = board
    files = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "data" not in p.parts}
    result = keidrive("config", "set", "--port", port, "profile", "us-interstate", "--no-reset", env=env, check=True)
    assert "profile: 'jp-expressway' -> 'us-interstate'" in result.stdout
    changed = [p for p, m in files.items() if p.stat().st_mtime_ns != m]
    assert changed == [root / "config.json"]
    got = keidrive("config", "get", "--port", port, "profile", "--no-reset", env=env, check=True)
    assert got.stdout.strip() == '"us-interstate"'

    text = soft_reset_lines(port, 2.5)
    assert "MPY: soft reboot" in text
    statuses = [json.loads(line) for line in text.splitlines() if line.startswith('{"type":"status"')]
    assert statuses, text
    assert statuses[-1]["profile"] == "us-interstate"


def test_config_set_takes_effect_in_the_firmware(board, flashed, env):
    """custom profile with a 10 km/h limit: after the reset the firmware warns of overspeed."""
    port, _, _ = board
    keidrive("config", "set", "--port", port, "profile", "custom", "custom_limit_kmh", "10", env=env, check=True)
    # Recorded pace: the board runs on its own clock, and WLTC passes 11 km/h
    # within its first 20 s; the warning follows after its 3 s dwell.
    sim = simulate(env, fast=False)
    try:
        found, lines = wait_lines(
            [sys.executable, "-m", "keidrive", "monitor", "--port", port, "--reset", "--plain", "--duration", "40"],
            env, lambda line: line.startswith("warning: kind=overspeed"), timeout=45)
    finally:
        stop(sim)
        keidrive("config", "set", "--port", port, "profile", "jp-expressway", env=env, check=True)
    assert found, "\n".join(lines[-10:])


# ---- bad input ------------------------------------------------------------------------------


def one_error_line(result, fragment):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    return lines[0]


def test_bad_port_busy_port_silent_board(board, flashed, env):
    port, root, _ = board
    one_error_line(keidrive("flash", "--port", "/dev/ttyNOPE0", "--board", "esp32", env=env), "no such port")
    one_error_line(keidrive("monitor", "--port", "/dev/ttyNOPE0", "--duration", "1", env=env), "no such port")
    with serial.Serial(port, 115200, exclusive=True):
        one_error_line(keidrive("flash", "--port", port, "--board", "esp32", env=env), "port busy")
        one_error_line(keidrive("config", "get", "--port", port, env=env), "port busy")
    master, slave = os.openpty()  # a pty nobody answers on
    try:
        started = time.monotonic()
        one_error_line(keidrive("flash", "--port", os.ttyname(slave), "--board", "esp32", env=env),
                       "board did not answer")
        # ended by its 5 s answer timeout, not by flash's 300 s deadline (the
        # margin is for a loaded machine starting Python)
        assert time.monotonic() - started < 60
    finally:
        os.close(master)
        os.close(slave)


def test_bad_values_and_images_leave_the_board_as_it_was(board, flashed, env, tmp_path):
    port, root, _ = board
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "data" not in p.parts}
    one_error_line(keidrive("config", "set", "--port", port, "custom_limit_kmh", "5", env=env), "10..250")
    one_error_line(keidrive("config", "set", "--port", port, "profile", "autobahn", env=env), "profile must be one of")
    one_error_line(keidrive("config", "set", "--port", port, "colour", "red", env=env), "unknown config key")
    one_error_line(keidrive("flash", "--port", port, "--board", "esp32", "--profile", "warp", env=env),
                   "--profile warp: no such speed profile")
    uf2 = tmp_path / "pico.uf2"
    uf2.write_bytes((0x0A324655).to_bytes(4, "little") + (0x9E5D5157).to_bytes(4, "little")
                    + (0x2000).to_bytes(4, "little") + bytes(16) + (0xE48BFF56).to_bytes(4, "little") + bytes(480))
    line = one_error_line(keidrive("flash", "--port", port, "--board", "esp32", "--base-firmware", str(uf2),
                                   env=env), "not a esp32 MicroPython image")
    assert "UF2 image for RP2040" in line
    s3 = tmp_path / "s3.bin"
    s3.write_bytes(b"\xe9\x03\x02\x20" + bytes(8) + (9).to_bytes(2, "little") + bytes(50))
    one_error_line(keidrive("flash", "--port", port, "--board", "esp32", "--base-firmware", str(s3), env=env),
                   "image for the ESP32-S3, not the ESP32")
    one_error_line(keidrive("flash", "--port", port, "--board", "rp2040", env=env), "not for rp2040")
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "data" not in p.parts}
    assert after == before


def test_dry_run_prints_the_plan_without_touching_the_board(env):
    result = keidrive("flash", "--port", "/dev/ttyUSB7", "--board", "esp32", "--vehicle", "kei_ev",
                      "--profile", "us-interstate", "--dry-run", env=env, check=True)
    out = result.stdout
    assert "dry run" in out and "mpy-cross -march=xtensawin" in out
    assert "keifw/vehicles/kei_ev.mpy" in out and "main.py" in out
    assert "vehicle='kei_ev', profile='us-interstate'" in out


# ---- the virtual board itself ------------------------------------------------------------------


def test_virtual_board_repl_boot_files_and_can(board, flashed, env, monkeypatch):
    """boot.py/main.py on soft reset, raw-paste of a large program, machine.CAN on the bus."""
    import can

    port, root, _ = board
    (root / "boot.py").write_text("print('boot.py ran')\n")
    try:
        text = soft_reset_lines(port, 1.5)
        assert text.index("MPY: soft reboot") < text.index("boot.py ran") < text.index('{"type"')
    finally:
        (root / "boot.py").unlink()
    # raw-paste flow control with a program far bigger than the window
    big = "x = 0\n" + "".join(f"x += {i}\n" for i in range(3000)) + "print('sum', x)\n"
    script = root.parent / "big.py"
    script.write_text(big)
    assert f"sum {sum(range(3000))}" in mpremote("connect", port, "run", str(script), env=env)
    # an ESP32 has no machine.CAN upstream (v1.28); its MCP2515 on SPI is on the
    # virtual bus: hardware filters, listen-only refusing to send, transmit
    code = (
        "try:\n from machine import CAN\nexcept ImportError:\n print('no machine.CAN')\n"
        "import time, json\nfrom keifw import config\nfrom keifw.mcp2515 import MCP2515Port\n"
        "from keifw.vehicles import kei_turbo_660 as gen\n"
        "cfg = config.load('/config.json')[0]\n"
        "c = MCP2515Port.from_config(gen, cfg)\n"
        "if not c.send(0x123, False, b'x', 1):\n print('silent refuses tx')\n"
        "cfg['transmit'] = True\n"
        "c = MCP2515Port.from_config(gen, cfg)\n"
        "print('ready')\n"
        "got = []\nblock = bytearray(24 * 32)\n"
        "t = time.ticks_ms()\n"
        "while time.ticks_diff(time.ticks_ms(), t) < 60000 and len(got) < 2:\n"
        " n = c.read(block)\n"
        " for o in range(0, 24 * n, 24):\n"
        "  got.append((hex(block[o + 8] | (block[o + 9] << 8)), bytes(block[o + 16:o + 16 + block[o + 13]])))\n"
        " if not n:\n  time.sleep_ms(2)\n"
        "print('got', got)\n"
        "c.send(0x321, False, b'\\x01\\x02', 2)\n"
    )
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", env["KEIDRIVE_BUS_DIR"])
    bus = can.Bus(interface="keidrive", channel=CHANNEL)
    try:
        process = subprocess.Popen([sys.executable, "-m", "mpremote", "connect", port, "exec", code],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        output = Lines(process.stdout)
        # the board waits up to 60 s of its own time for the frames sent on "ready"
        ready = output.until(lambda line: line.startswith("ready"), timeout=120)
        assert ready, output.text(timeout=5)
        for ident in (0x130, 0x200, 0x1A0):  # 0x200 is no message of the DBC: filtered out by the chip
            bus.send(can.Message(arbitration_id=ident, data=bytes([ident & 0xFF]), is_extended_id=False))
        out = output.text(timeout=120)
        process.wait(timeout=10)
        sent = bus.recv(timeout=30)
    finally:
        bus.shutdown()
    assert "no machine.CAN" in out and "silent refuses tx" in out, out
    assert "got [('0x130', b'0'), ('0x1a0', b'\\xa0')]" in out, out
    assert sent is not None and sent.arbitration_id == 0x321 and bytes(sent.data) == b"\x01\x02"


def test_monitor_survives_the_port_vanishing(env, tmp_path):
    """The port goes away (USB re-enumeration) and comes back under the same name."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.py").write_text(
        "import time\nn = 0\nwhile True:\n"
        " n += 1\n print('{\"type\":\"status\",\"t_s\":%d.0,\"speed_kmh\":%d.0,\"valid\":true,\"bus\":\"active\"}'"
        " % (n, n))\n time.sleep_ms(200)\n")
    link = tmp_path / "ttyKD0"
    command = [sys.executable, "-m", "keidrive", "board", "--pty", "--root", str(root), "--bus", "none",
               "--link", str(link)]
    boards = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)]
    assert Lines(boards[0].stdout).first(timeout=60), "the board printed no port within 60 s"
    events = []

    def watch(line):
        events.append(line)
        statuses = sum(1 for e in events if e.startswith("t "))
        if statuses == 3 and len(boards) == 1:
            boards[0].terminate()
            boards[0].wait(timeout=10)
            time.sleep(0.5)
            boards.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                           env=env))
        back = any("port came back" in e for e in events)
        return back and events[-1].startswith("t ")

    try:
        found, lines = wait_lines([sys.executable, "-m", "keidrive", "monitor", "--port", str(link), "--plain",
                                   "--duration", "15"], env, watch, timeout=20)
    finally:
        for b in boards:
            stop(b)
    assert found, "\n".join(lines)
    assert any("port lost" in line for line in lines)


# ---- the HIL plugin's serial device ------------------------------------------------


def test_hil_serial_device_drives_the_board_on_the_bus(board, flashed, env, monkeypatch, tmp_path):
    """``--dut serial:PORT --bus keidrive:CHANNEL``: the HIL plugin configures
    the board, plays a drive onto its bus at recorded pace and reads back
    what it saw (a short drive: it runs in real time)."""
    from keidrive.io import record
    from keidrive.sim import simulate as sim_drive
    from keidrive_hil import SerialDevice

    port, _, _ = board
    monkeypatch.setenv("KEIDRIVE_BUS_DIR", env["KEIDRIVE_BUS_DIR"])
    cycle = tmp_path / "short.csv"
    cycle.write_text("time_s,speed_kmh\n0,0\n2,0\n12,60\n20,60\n26,0\n28,0\n")
    result = sim_drive("nbox-turbo", str(cycle))
    device = SerialDevice(port, f"keidrive:{CHANNEL}")
    report, figures = device.run(record.from_frames(result.frames), {"profile": "custom", "custom_limit_kmh": 50})
    assert report.ok, report.failure()
    trip = report.trip
    assert trip["distance_km"] == pytest.approx(result.truth["distance_km"], rel=0.02)
    assert trip["fuel_l"] == pytest.approx(result.truth["fuel_l"], rel=0.05, abs=0.002)
    assert [w["kind"] for w in trip["warnings"]] == ["overspeed"]  # 60 km/h against a 50 km/h limit
    assert figures["frames"] == len(result.frames["timestamp"])
