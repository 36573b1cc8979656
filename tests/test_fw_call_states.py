"""The tick's Python functions keep their call state off the heap.

MicroPython takes the call state (locals and value stack) of a bytecode
function from the heap on every call when it is over 11 words
(VM_MAX_STATE_ON_STACK in py/objfun.c) and frees it on return: neither
gc.mem_alloc nor heap_lock shows it, and on a board it cost the 10 Hz tick
about 24k Cortex-M3 instructions, more or less with the heap's layout. The
sizes are read from what mpy-cross compiles, with MicroPython's own
tools/mpy-tool.py from the source the targets are built from.
"""

import re
import subprocess
import sys

from keidrive.paths import firmware_dir
from keidrive.runtime import mpy_cross_command
from keidrive.target import source
from test_target import micropython_source

VM_MAX_STATE_ON_STACK_WORDS = 11

# per module, the functions that run on every 10 Hz tick or every pass of
# the board loop
HOT = {
    "loop.py": ("clock", "tick", "_measure", "_eco_sample", "_chores", "at"),
    # the MCP2515's per pass and per tick calls (its drains are viper: no call state)
    "mcp2515.py": ("read", "drain", "_release", "state", "state_of"),
    "uplink.py": ("tick",),  # with the uplink on: its call on every tick
    # the GNSS tick and the stream's UART records (keifw/gps.py)
    "gps.py": ("tick", "records"),
}


def _states(tool, module, tmp_path):
    out = tmp_path / (module + ".mpy")
    subprocess.run([mpy_cross_command(), "-march=armv7m", "-o", str(out), str(firmware_dir() / "keifw" / module)],
                   check=True, capture_output=True, timeout=60)
    dump = subprocess.run([sys.executable, str(tool), "-d", str(out)], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    # "simple_name: NAME", its raw bytecode, then "prelude: (n_state, n_exc_stack, ...)"
    return {name: (int(n_state), int(n_exc)) for name, n_state, n_exc in
            re.findall(r"simple_name: (\S+)\n(?:  .*\n)*?  prelude: \((\d+), (\d+),", dump)}


def test_the_tick_and_the_board_loop_take_no_call_state_from_the_heap(tmp_path):
    path = source.locate(micropython_source())
    tool = source.prepare(path, source.fingerprint(path)) / "tools" / "mpy-tool.py"
    for module, names in HOT.items():
        states = _states(tool, module, tmp_path)
        for name in names:
            n_state, n_exc = states[name]
            assert n_exc == 0 and n_state <= VM_MAX_STATE_ON_STACK_WORDS, (
                f"{module} {name}: {n_state} words of state (at most {VM_MAX_STATE_ON_STACK_WORDS} stay on the stack)")
