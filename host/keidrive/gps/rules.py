"""The kei / mini-truck road rules per jurisdiction: ``data/kei_rules.toml``
(each row with its source, effective date and what was read), compiled into
the firmware's ``keifw/kei_rules.py`` by ``keidrive geo compile``.

A rule gives the speed the overspeed warning uses (``limit``) and, on an
expressway rule, the minimum of the below-minimum warning. The kinds:

- ``roads_max``: only roads posted up to the limit (and no interstates):
  faster means a road the car may not use, or speeding;
- ``no_interstates``: any road but interstates; the limit is the state's
  highest limit off the interstates (the row says where it comes from);
- ``expressway``: allowed on expressways between a minimum and a limit (Japan).
"""

from __future__ import annotations

import datetime as _dt
import tomllib
from dataclasses import dataclass
from importlib import resources

from ..errors import KeidriveError

KINDS = ("roads_max", "no_interstates", "expressway")
CHECKED = ("statute", "enacted bill", "secondary")
MODULE = "kei_rules"
ROW_WORDS = 5  # region, effective yyyymmdd, kind, limit 0.01 km/h, minimum 0.01 km/h


@dataclass(frozen=True)
class Rule:
    region: str
    kind: str
    limit_ckmh: int
    minimum_ckmh: int
    effective: _dt.date
    source: str
    url: str
    checked: str
    limit_why: str
    effective_note: str = ""

    @property
    def limit_kmh(self) -> float:
        return self.limit_ckmh / 100

    @property
    def limit_mph(self) -> float:
        return self.limit_ckmh / 100 / 1.609344

    def in_force(self, day: _dt.date) -> bool:
        return day >= self.effective


def mph_to_ckmh(mph: float) -> int:
    """0.01 km/h, rounded (55 mph -> 8851, 35 mph -> 5633: the profiles' figures)."""
    return round(mph * 160.9344)


@dataclass(frozen=True)
class Table:
    rules: tuple[Rule, ...]
    unverified: tuple[dict, ...]
    as_of: _dt.date  # rules in force on this day apply when the GPS gives no date

    def for_region(self, region: str, day: _dt.date | None = None) -> Rule | None:
        """The rule in force in ``region`` on ``day`` (default: ``as_of``), or None."""
        day = day or self.as_of
        rows = [r for r in self.rules if r.region == region and r.in_force(day)]
        return max(rows, key=lambda r: r.effective) if rows else None


def load(path=None) -> Table:
    """The rules table (default: the bundled one); one clear error on a bad row."""
    source = path or resources.files(__package__).joinpath("data", "kei_rules.toml")
    try:
        with source.open("rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise KeidriveError(f"{source}: cannot read the rules table: {error}") from None
    rules = []
    for i, row in enumerate(data.get("rule", []), 1):
        where = f"{source}: rule {i} ({row.get('region', '?')})"
        try:
            kind = row["kind"]
            if kind not in KINDS:
                raise KeidriveError(f"{where}: kind must be one of {', '.join(KINDS)}")
            if row["checked"] not in CHECKED:
                raise KeidriveError(f"{where}: checked must be one of {', '.join(CHECKED)}")
            if ("limit_mph" in row) == ("limit_kmh" in row):
                raise KeidriveError(f"{where}: give limit_mph or limit_kmh")
            limit = mph_to_ckmh(row["limit_mph"]) if "limit_mph" in row else round(row["limit_kmh"] * 100)
            minimum = round(row.get("minimum_kmh", 0) * 100)
            if kind != "expressway" and minimum:
                raise KeidriveError(f"{where}: only an expressway rule has a minimum")
            if not isinstance(row["effective"], _dt.date):
                raise KeidriveError(f"{where}: effective must be a date (YYYY-MM-DD)")
            rules.append(Rule(row["region"], kind, limit, minimum, row["effective"], row["source"], row["url"],
                              row["checked"], row["limit_why"], row.get("effective_note", "")))
        except KeyError as missing:
            raise KeidriveError(f"{where}: missing {missing}") from None
    as_of = data.get("as_of")
    if not isinstance(as_of, _dt.date):
        raise KeidriveError(f"{source}: as_of must be the date the rows were checked (YYYY-MM-DD)")
    return Table(tuple(rules), tuple(data.get("unverified", [])), as_of)


def _yyyymmdd(day: _dt.date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def module_text(table: Table, codes: list[str], command: str) -> str:
    """The firmware's rules table, rows in region order (keifw/gps.py reads it)."""
    import struct

    from .boundaries import _bytes_literal

    unknown = sorted({r.region for r in table.rules} - set(codes))
    if unknown:
        raise KeidriveError(f"rules for regions the boundaries do not have: {', '.join(unknown)}")
    rows = sorted(table.rules, key=lambda r: (codes.index(r.region), r.effective))
    data = b"".join(struct.pack("<5i", codes.index(r.region), _yyyymmdd(r.effective), KINDS.index(r.kind),
                                r.limit_ckmh, r.minimum_ckmh) for r in rows)
    lines = "".join(f"# {r.region} from {r.effective}: {r.kind}, {r.limit_kmh:g} km/h"
                    f"{f', minimum {r.minimum_ckmh / 100:g} km/h' if r.minimum_ckmh else ''} - {r.source}\n"
                    for r in rows)
    return (
        f"# Generated by `{command}` from keidrive/gps/data/kei_rules.toml - do not edit;\n"
        "# edit the table (each row's source is there) and regenerate.\n"
        + lines
        + '"""Kei road rules: ROWS of int32 (region, effective yyyymmdd, kind, limit and minimum in 0.01 km/h)."""\n\n'
        "from micropython import const\n\n"
        f"AS_OF = const({_yyyymmdd(table.as_of)})  # rules in force on this day apply when the GPS gives no date\n"
        f"N_ROWS = const({len(rows)})\n"
        f"KINDS = {tuple(k.encode() for k in KINDS)!r}\n"
        f"ROWS = {_bytes_literal(data)}\n"
    )
