"""keidrive target build: the clear lines without source or toolchain, and the cache.

The builds themselves need MicroPython's source (KEIDRIVE_MICROPYTHON_SRC,
set by .ci/run from ../shared); without it those tests skip, except under
CI=true, where a target that cannot be built fails the run.
"""

import json
import os
import subprocess
import sys

import pytest
from keidrive.errors import KeidriveError
from keidrive.target import builder as target_build
from keidrive.target import source


def keidrive(*args, env=None):
    return subprocess.run([sys.executable, "-m", "keidrive", *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


def micropython_source():
    """The source the targets are built from, or a skip (a failure under CI=true)."""
    src = os.environ.get(source.ENV_VAR)
    if not src:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{source.ENV_VAR} is not set: CI must build the 32-bit targets")
        pytest.skip(f"set {source.ENV_VAR} to a MicroPython v1.28 source tree or tarball to build the targets")
    return src


def test_without_a_source_one_line_says_what_to_get(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != source.ENV_VAR}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    done = keidrive("target", "build", "qemu", env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "--micropython-src" in lines[0] and source.ENV_VAR in lines[0] and "v1.28" in lines[0]


def test_a_missing_source_path_is_named(tmp_path):
    done = keidrive("target", "build", "unix32", "--micropython-src", str(tmp_path / "nope.tar.xz"))
    assert done.returncode == 2
    expected = f"keidrive: error: --micropython-src={tmp_path / 'nope.tar.xz'}: no such file or folder"
    assert done.stderr.strip().splitlines() == [expected]


def test_missing_debian_packages_are_named_in_one_line(tmp_path):
    """No toolchain on PATH: the packages to install, before any extraction."""
    fake = tmp_path / "micropython.tar.xz"
    fake.write_bytes(b"not read: the toolchain is checked first")
    env = dict(os.environ, PATH=str(tmp_path / "empty"), XDG_CACHE_HOME=str(tmp_path / "cache"))
    done = keidrive("target", "build", "qemu", "--micropython-src", str(fake), env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "apt-get install" in lines[0]
    for package in ("make", "gcc-arm-none-eabi", "qemu-system-arm"):
        assert package in lines[0].split()
    assert not (tmp_path / "cache" / "keidrive" / "src").exists()


def test_a_file_that_is_no_source_tarball_is_refused(tmp_path):
    fake = tmp_path / "micropython.tar.xz"
    fake.write_bytes(b"\x00" * 100)
    with pytest.raises(KeidriveError, match="not a readable source tarball"):
        source.prepare(fake, "test-" + source.fingerprint(fake))


def test_bad_heap_sizes_are_refused():
    with pytest.raises(KeidriveError, match="multiple of 1024"):
        target_build.build("qemu", "/nonexistent", heap=1000)
    with pytest.raises(KeidriveError, match="qemu target only"):
        target_build.build("unix32", "/nonexistent", heap=65536)


@pytest.mark.parametrize("name", ["unix32", "qemu"])
def test_a_second_build_is_a_cache_hit(name, monkeypatch):
    src = micropython_source()
    first = keidrive("target", "build", name, "--json")
    assert first.returncode == 0, first.stderr
    built = json.loads(first.stdout)
    assert list(built) == ["target", "path", "heap_size", "mpy_arch"]
    assert built["target"] == name and os.path.isfile(built["path"])
    assert built["mpy_arch"] == {"qemu": "armv7m", "unix32": "x86"}[name]
    assert built["heap_size"] == (128 * 1024 if name == "qemu" else None)
    # in process, with make made to fail: nothing is built again
    monkeypatch.setattr(target_build, "make", lambda *a: pytest.fail("a cache hit ran make"))
    again = target_build.build(name, src)
    assert again.summary() == built


def test_unix32_is_a_32_bit_micropython():
    micropython_source()
    binary = target_build.build("unix32").path
    done = subprocess.run([binary, "-c", "import sys; print(sys.maxsize, sys.implementation._mpy & 0xff)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split()[0] == str(2**31 - 1)


def test_a_relative_runtime_path_is_not_looked_up_on_path(tmp_path):
    """``--runtime mp`` (a build in the current folder) runs that file."""
    from keidrive.runtime import micropython_command

    (tmp_path / "mp").symlink_to(micropython_command())
    (tmp_path / "short.csv").write_text("time_s,speed_kmh\n0,0\n5,20\n10,0\n")
    for runtime in ("mp", "./mp"):
        done = subprocess.run([sys.executable, "-m", "keidrive", "run", "--runtime", runtime, "--cycle", "short.csv",
                               "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["frames"] > 0 and report["firmware"]["distance_km"] > 0
