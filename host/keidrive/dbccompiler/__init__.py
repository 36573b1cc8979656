"""DBC -> MicroPython compiler: ``keidrive dbc compile``.

``compile_dbc()`` returns the generated module's text; ``write_module()``
writes it atomically; ``firmware_modules()``/``regenerate_firmware()`` keep
the firmware's committed vehicle modules in step with ``dbc/``.
"""

import os
import sys
import tempfile
from pathlib import Path

from ..errors import KeidriveError
from .filters import DEFAULT_MAX_FILTERS, SearchWork

# The compiler's own modules (and cantools, which reading a DBC takes) are
# imported by compile_dbc: a simulated drive uses dbccompiler.checksum alone.

FIRMWARE_NODE = "KEIDRIVE"
FIRMWARE_VEHICLES = ("kei_turbo_660", "kei_hybrid_660", "kei_ev")
FIRMWARE_SHARED_DBC = "keidrive_fw.dbc"


def compile_dbc(
    paths: list[Path],
    node: str | None = None,
    message_names: list[str] | None = None,
    max_filters: int = DEFAULT_MAX_FILTERS,
    style: str | None = None,
    work: SearchWork | None = None,
    warn: bool = True,
    roles_path: Path | None = None,
) -> str:
    """The generated module's text; ``style``: the generated decoders' (codegen.STYLES; default
    codegen.DEFAULT_STYLE); ``work`` (if given) counts the filter searches' work;
    ``warn``: print a line per skipped message or relaxed check; ``roles_path``: a roles file
    (roles.py), which selects the messages its roles name."""
    from .codegen import DEFAULT_STYLE, generate
    from .load import select_messages
    from .read import load_dbc, print_warnings
    from .roles import load_roles

    paths = [Path(p) for p in paths]
    loaded = [load_dbc(path) for path in paths]
    roles = load_roles(Path(roles_path)) if roles_path is not None else None
    messages = select_messages(loaded, node, message_names, roles)
    options = []
    if node is not None:
        options.append(f"--node {node}")
    if message_names is not None:
        options.append(f"--messages {','.join(message_names)}")
    if roles is not None:
        options.append(f"--roles {roles.path.name}")
    options.append(f"--hw-filters {max_filters}")
    text = generate(loaded, messages, " ".join(options), max_filters, style or DEFAULT_STYLE, work, roles)
    if warn:
        print_warnings(loaded)
    return text


def import_firmware_module(name: str):
    """A firmware module (``keifw....``) imported in this process, the firmware tree on ``sys.path``
    (importing keifw on CPython also stands in for the ``micropython`` module there)."""
    import importlib

    from ..paths import firmware_dir

    if str(firmware_dir()) not in sys.path:
        sys.path.insert(0, str(firmware_dir()))
    return importlib.import_module(name)


def exec_generated(text: str) -> dict:
    """Run a generated module's text in this process; its namespace.

    The module imports the shared runtime ``keifw.dbcrt``.
    """
    import_firmware_module("keifw.dbcrt")
    namespace: dict = {}
    exec(compile(text, "<generated>", "exec"), namespace)
    return namespace


def write_module(text: str, output: Path) -> None:
    """Write via a temporary file and rename, so a failure never leaves a partial module."""
    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    except OSError as error:
        raise KeidriveError(f"{output}: cannot write: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def firmware_modules() -> list[tuple[Path, tuple[Path, ...]]]:
    """(output module, input DBCs) of each vehicle module the firmware imports."""
    from ..paths import dbc_dir, firmware_dir

    vehicles = firmware_dir() / "keifw" / "vehicles"
    return [
        (vehicles / f"{vehicle}.py", (dbc_dir() / f"{vehicle}.dbc", dbc_dir() / FIRMWARE_SHARED_DBC))
        for vehicle in FIRMWARE_VEHICLES
    ]


def compile_firmware_module(inputs: tuple[Path, ...]) -> str:
    """The vehicle DBC's roles file sits beside it (dbc/kei_ev.toml for dbc/kei_ev.dbc)."""
    return compile_dbc(list(inputs), node=FIRMWARE_NODE, roles_path=inputs[0].with_suffix(".toml"))


def regenerate_firmware() -> list[Path]:
    """Recompile every vehicle module into the firmware tree; the paths written."""
    written = []
    for output, inputs in firmware_modules():
        write_module(compile_firmware_module(inputs), output)
        written.append(output)
    return written
