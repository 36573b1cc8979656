"""The shape of the house: a thin command line over a library. Only the
command line (``cli.py`` and ``subparsers/``) parses arguments or reads an
argparse namespace (a module's own ``python -m`` entry may parse its own);
no library module imports a command module; every subcommand has its own
``--help``; run, replay, simulate and fleet spell their shared flags alike."""

import ast
import contextlib
import io
from pathlib import Path

import pytest
from keidrive.cli import SUBCOMMANDS, build_parser, main

PACKAGE = Path(__file__).resolve().parents[1] / "host" / "keidrive"
PLUGIN = PACKAGE.parents[1] / "hil" / "plugin.py"
PARSER_CALLS = {"add_argument", "parse_args", "parse_known_args", "add_parser", "add_subparsers",
                "add_argument_group", "add_mutually_exclusive_group", "set_defaults"}


def _library_modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("subparsers", "cli.py", "__main__.py") or "vboard" in relative.parts:
            continue  # the command line; the virtual board's modules run inside MicroPython
        yield path, ast.parse(path.read_text(encoding="utf-8"))
    yield PLUGIN, ast.parse(PLUGIN.read_text(encoding="utf-8"))


def _own_entry(tree) -> bool:
    """``if __name__ == "__main__":`` at module level: a ``python -m`` entry."""
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare) \
                and getattr(node.test.left, "id", None) == "__name__":
            return True
    return False


def _argument_parsing(tree) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
            if "argparse" in names:
                found.append(f"line {node.lineno}: imports argparse")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "args":
            found.append(f"line {node.lineno}: reads args.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PARSER_CALLS:
            found.append(f"line {node.lineno}: calls .{node.func.attr}()")
    return found


def _imported_modules(path: Path, tree) -> list[str]:
    """Absolute names of what ``path`` imports (relative imports resolved)."""
    package = ["keidrive", *path.relative_to(PACKAGE).parts[:-1]] if path != PLUGIN else []
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names += [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            names += [part.value for part in ast.walk(node) if isinstance(part, ast.Constant) and isinstance(part.value, str)]
    return names


def test_only_the_command_line_parses_arguments():
    leaks = {}
    for path, tree in _library_modules():
        found = _argument_parsing(tree)
        if found and not _own_entry(tree):
            leaks[str(path.relative_to(PACKAGE.parents[1]))] = found
    assert not leaks, f"argparse or an args namespace below the command line: {leaks}"


def test_no_library_module_imports_a_command_module():
    upward = {}
    for path, tree in _library_modules():
        bad = [name for name in _imported_modules(path, tree)
               if name.startswith(("keidrive.subparsers", "keidrive.cli")) or name.startswith("subparsers")]
        if bad:
            upward[str(path.relative_to(PACKAGE.parents[1]))] = bad
    assert not upward, f"library modules importing the command line: {upward}"


def _run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        main(argv)
    return stop.value.code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("command", [*SUBCOMMANDS, "fleet report"])
def test_every_subcommand_has_its_own_help(command):
    status, out, _ = _run_main([*command.split(), "--help"])
    assert status == 0 and out.startswith(f"usage: keidrive {command} ")


def _options(command: str) -> dict:
    subparsers = next(action for action in build_parser()._actions if action.dest == "subcommand")
    return {string: action for action in subparsers.choices[command]._actions for string in action.option_strings}


@pytest.mark.parametrize("flag", ["--bus", "--plot", "--no-plot", "--json", "--realtime", "--fast", "--vehicle",
                                  "--cycle", "--profile", "--dbc", "--roles", "--runtime", "--speed"])
def test_shared_flags_are_spelled_alike_everywhere(flag):
    """The same metavar, default and kind (the help says what it is for in each command)."""
    import argparse

    taking = {}
    for command in ("run", "replay", "simulate", "fleet", "fleet report"):
        action = _options(command).get(flag)
        if action is not None and action.help != argparse.SUPPRESS:
            taking[command] = action
    assert len(taking) >= 2, f"{flag} is shared by {sorted(taking)} only"
    first = next(iter(taking.values()))
    for command, action in taking.items():
        assert (action.default, action.metavar, action.nargs, type(action)) == (
            first.default, first.metavar, first.nargs, type(first)), f"{flag} of keidrive {command}"
