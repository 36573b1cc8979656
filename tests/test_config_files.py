"""keidrive config get|set --file: what is written is a config the firmware
takes whole, and every bad file or path is one line naming it."""

import json
import subprocess
import sys

import pytest

from keidrive.fwconfig import schema_module


def keidrive(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "keidrive", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


def one_line_error(result, *words):
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr


@pytest.mark.parametrize("text", ['{"custom_limit_kmh": 1e999}', '{"custom_limit_kmh": Infinity}',
                                  '{"custom_limit_kmh": NaN}', '{"custom_limit_kmh": -1e999}'])
def test_a_non_finite_number_is_refused_naming_its_key(tmp_path, text):
    config = tmp_path / "config.json"
    config.write_text(text)
    one_line_error(keidrive("config", "set", "--file", str(config), "transmit", "true"), "custom_limit_kmh")
    assert config.read_text() == text  # nothing written
    one_line_error(keidrive("config", "get", "--file", str(config)), "custom_limit_kmh")


def test_the_whole_merged_config_is_validated(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"profile": "autobahn", "transmit": false}')
    one_line_error(keidrive("config", "set", "--file", str(config), "transmit", "true"), "profile", str(config))
    # the change that repairs it is taken
    fixed = keidrive("config", "set", "--file", str(config), "profile", "custom")
    assert fixed.returncode == 0, fixed.stderr
    assert schema_module().validate(json.loads(config.read_text()))[1] == []


def test_get_of_a_missing_file_is_an_error(tmp_path):
    one_line_error(keidrive("config", "get", "--file", str(tmp_path / "nope.json")), "no such config file")


def test_set_into_a_missing_folder_is_one_line(tmp_path):
    target = tmp_path / "nodir" / "config.json"
    one_line_error(keidrive("config", "set", "--file", str(target), "profile", "custom"), "does not exist")
    assert not target.parent.exists()


def test_set_creates_a_new_file_the_firmware_takes_whole(tmp_path):
    target = tmp_path / "config.json"
    result = keidrive("config", "set", "--file", str(target), "profile", "us-interstate", "posted_limit_mph", "65")
    assert result.returncode == 0, result.stderr
    written = json.loads(target.read_text())
    assert written == {"profile": "us-interstate", "posted_limit_mph": 65}
    assert schema_module().validate(written)[1] == []
    got = keidrive("config", "get", "--file", str(target), "posted_limit_mph")
    assert got.returncode == 0 and got.stdout.strip() == "65"
