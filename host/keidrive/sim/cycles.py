"""Drive cycles: bundled standard cycles and a user's own CSV.

``load_cycle(name_or_path) -> Cycle`` accepts a bundled name (``wltc-jp``,
``wltc-3b``, ``udds``, ``hwfet``, ``us06``; see ``list_cycles()``) or the path
of a CSV file::

    time_s,speed_kmh,grade_pct
    0,0,0
    1,3.5,0
    ...

The header needs ``time_s`` and exactly one speed column (``speed_kmh``,
``speed_mph`` or ``speed_mps``); ``grade_pct`` (rise over run, in percent) is
optional. Lines starting with ``#`` and blank lines are ignored. Sample times
must increase but need not be regular. An interval longer than
``PARK_GAP_S`` between two samples at standstill is a *parked gap*: the
simulator switches the car off (bus silent, engine cooling down) and starts it
again at the next sample, the way a recorded day of driving has parked hours
in it. Any other interval is interpolated linearly. A bad row raises
``KeidriveError`` naming the file and line number.

Bundled tables are unchanged copies of FASTSim 2.1.5's cycle CSVs
(Apache-2.0, see NOTICE); ``resources/cycles/cycles.toml`` says which files
make up each cycle and names its phases.
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KeidriveError, did_you_mean
from ..paths import resources_dir

#: An interval between two standstill samples longer than this is a parked gap.
PARK_GAP_S = 30.0

_SPEED_COLUMNS = {"speed_kmh": 1 / 3.6, "speed_mph": 0.44704, "speed_mps": 1.0}


@dataclass
class Cycle:
    """A speed trace: ``time_s`` (s, increasing), ``speed_mps``, ``grade``
    (fraction, rise/run) and named ``phases`` as ``(name, t_start, t_end)``."""

    name: str
    time_s: np.ndarray
    speed_mps: np.ndarray
    grade: np.ndarray
    phases: list = field(default_factory=list)
    description: str = ""
    source: str = ""

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0])

    @property
    def distance_km(self) -> float:
        """Distance of the target trace (trapezoidal), parked gaps count zero."""
        dt = np.diff(self.time_s)
        return float(np.sum(dt * (self.speed_mps[1:] + self.speed_mps[:-1]) / 2) / 1000)

    @property
    def top_speed_kmh(self) -> float:
        return float(self.speed_mps.max() * 3.6)

    def segments(self) -> list[tuple[int, int]]:
        """Index ranges ``[i0, i1]`` (inclusive) of driving separated by parked gaps."""
        dt = np.diff(self.time_s)
        still = self.speed_mps < 0.01
        gap = (dt > PARK_GAP_S) & still[:-1] & still[1:]
        cuts = np.flatnonzero(gap)
        starts = [0] + [int(c) + 1 for c in cuts]
        ends = [int(c) for c in cuts] + [len(self.time_s) - 1]
        return [(s, e) for s, e in zip(starts, ends)]


def _bundled_dir() -> Path:
    return resources_dir() / "cycles"


def _index() -> dict:
    with open(_bundled_dir() / "cycles.toml", "rb") as fh:
        return tomllib.load(fh)


def list_cycles() -> list[str]:
    """Names of the bundled cycles."""
    return list(_index())


def _read_fastsim_csv(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    return np.array([float(r[1]) for r in rows[1:] if r], dtype=np.float64)


def _load_bundled(name: str) -> Cycle:
    entry = _index()[name]
    speeds, phases, t = [], [], 0
    for fname, pname in zip(entry["files"], entry["phases"]):
        v = _read_fastsim_csv(_bundled_dir() / fname)
        start = t - 1 if t else 0  # a phase starts where the previous one ended
        speeds.append(v)
        t += len(v)
        phases.append((pname, float(start), float(t - 1)))
    speed = np.concatenate(speeds)
    time = np.arange(len(speed), dtype=np.float64)
    return Cycle(name, time, speed, np.zeros_like(speed), phases, entry.get("description", ""), "bundled")


def _load_csv(path: Path) -> Cycle:
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as e:
        raise KeidriveError(f"cannot read cycle file {path}: {e.strerror}") from None
    with fh:
        try:
            return _parse_csv(path, fh)
        except UnicodeDecodeError as e:
            raise KeidriveError(f"{path}: not UTF-8 text (byte {e.start})") from None
        except csv.Error as e:
            raise KeidriveError(f"{path}: not a CSV file ({e})") from None


def _parse_csv(path: Path, fh) -> Cycle:
    reader = csv.reader(fh)
    header, header_line = None, 0
    times, speeds, grades = [], [], []
    for row in reader:
        line = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            header_line = line
            if "time_s" not in header:
                raise KeidriveError(f"{path}:{line}: header needs a 'time_s' column (got {', '.join(header)})")
            found = [c for c in header if c in _SPEED_COLUMNS]
            if len(found) != 1:
                raise KeidriveError(
                    f"{path}:{line}: header needs exactly one speed column of "
                    f"{', '.join(_SPEED_COLUMNS)} (got {', '.join(header)})")
            i_t, i_v = header.index("time_s"), header.index(found[0])
            scale = _SPEED_COLUMNS[found[0]]
            i_g = header.index("grade_pct") if "grade_pct" in header else None
            continue
        if len(row) != len(header):
            raise KeidriveError(f"{path}:{line}: expected {len(header)} fields, got {len(row)}")
        try:
            t = float(row[i_t])
            v = float(row[i_v])
            g = float(row[i_g]) if i_g is not None and row[i_g].strip() != "" else 0.0
        except ValueError:
            raise KeidriveError(f"{path}:{line}: not a number in row {','.join(row)!r}") from None
        if not (math.isfinite(t) and math.isfinite(v) and math.isfinite(g)):
            raise KeidriveError(f"{path}:{line}: non-finite value in row {','.join(row)!r}")
        if times and t <= times[-1]:
            raise KeidriveError(f"{path}:{line}: time_s {t:g} does not increase (previous {times[-1]:g})")
        if v < 0 or v * scale > 100:
            raise KeidriveError(f"{path}:{line}: speed {v:g} out of range (0 to 360 km/h)")
        if abs(g) > 40:
            raise KeidriveError(f"{path}:{line}: grade_pct {g:g} out of range (-40 to 40)")
        times.append(t)
        speeds.append(v * scale)
        grades.append(g / 100.0)
    if header is None:
        raise KeidriveError(f"{path}: empty cycle file")
    if len(times) < 2:
        raise KeidriveError(f"{path}:{header_line}: a cycle needs at least two rows")
    t = np.array(times)
    name = path.stem
    cyc = Cycle(name, t, np.array(speeds), np.array(grades), [], f"user cycle {path.name}", str(path))
    cyc.phases = [(name, float(t[0]), float(t[-1]))]
    return cyc


def load_cycle(name_or_path) -> Cycle:
    """A bundled cycle by name, or a CSV file by path (``Path`` or a string
    containing a path separator or ending in ``.csv``)."""
    if isinstance(name_or_path, Cycle):
        return name_or_path
    text = str(name_or_path)
    names = list_cycles()
    if text in names:
        return _load_bundled(text)
    path = Path(text)
    if isinstance(name_or_path, Path) or text.lower().endswith(".csv") or "/" in text or path.exists():
        return _load_csv(path)
    raise KeidriveError(f"{text}: no such cycle{did_you_mean(text, names)} (valid cycles: {', '.join(names)}, "
                        "or a path to a .csv file)", option="cycle")
