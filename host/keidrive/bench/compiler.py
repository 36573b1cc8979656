"""The DBC compiler at real-DBC scale: compile time, filter-search work and module size.

Over the firmware's vehicle modules and, when $KEIDRIVE_OPENDBC names a
folder, every DBC in it. Wall time is only printed; the deterministic
filter-search work (see dbccompiler.filters.SearchWork) is what the tests
bound.
"""

import os
import re
import time
from pathlib import Path

from ..dbccompiler import FIRMWARE_NODE, SearchWork, compile_dbc, firmware_modules
from ..dbccompiler.budget import MPY_BUDGET, mpy_size
from ..errors import KeidriveError


def _cases() -> list[tuple[str, list[Path], str | None]]:
    cases = [(output.stem, list(inputs), FIRMWARE_NODE) for output, inputs in firmware_modules()]
    folder = os.environ.get("KEIDRIVE_OPENDBC")
    if folder:
        cases += [(path.name, [path], None) for path in sorted(Path(folder).glob("*.dbc"))]
    return cases


def compiler_figures() -> dict:
    files = []
    for name, paths, node in _cases():
        work = SearchWork()
        start = time.perf_counter()
        try:
            text = compile_dbc(paths, node=node, work=work, warn=False)
        except KeidriveError as error:
            files.append({"file": name, "error": str(error)})
            continue
        seconds = time.perf_counter() - start
        size = mpy_size(text)
        files.append({
            "file": name, "compile_s": round(seconds, 3),
            "messages": int(re.search(r"^N_MESSAGES = const\((\d+)\)", text, re.M).group(1)),
            "masked_ids": work.masked_ids, "merges": work.merges, "source_bytes": len(text.encode()),
            "mpy_armv7m_bytes": size if isinstance(size, int) else None,
        })
    return {"opendbc": bool(os.environ.get("KEIDRIVE_OPENDBC")), "mpy_budget_bytes": MPY_BUDGET, "files": files}


def print_compiler(figures: dict) -> None:
    where = "the firmware's modules and $KEIDRIVE_OPENDBC" if figures["opendbc"] else (
        "the firmware's modules (set KEIDRIVE_OPENDBC for opendbc's)")
    print(f"DBC compiler, {where}; board budget {figures['mpy_budget_bytes']} B armv7m .mpy:")
    for entry in figures["files"]:
        if "error" in entry:
            print(f"  {entry['file']:<38} refused: {entry['error']}")
            continue
        mpy = entry["mpy_armv7m_bytes"]
        print(f"  {entry['file']:<38} {entry['compile_s']:>6.2f} s  {entry['messages']:>4} messages  "
              f"{entry['masked_ids']:>9} masked ids  {entry['merges']:>6} merges  "
              f"{entry['source_bytes']:>7} B source  {mpy if mpy is not None else '-':>7} B .mpy")
