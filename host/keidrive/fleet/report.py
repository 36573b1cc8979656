"""``keidrive fleet report``: a run summarised per vehicle and profile
(economy distribution, warnings per 100 km), two runs compared drive by
drive (the firmware regression report), and a plot of either."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from ..errors import KeidriveError
from . import store

# Figures a comparison looks at, beside warnings by kind and success.
COMPARED = ("distance_km", "fuel_l", "energy_kwh", "km_per_l", "wh_per_km", "eco_score")
QUANTILES = (("min", 0.0), ("p10", 0.1), ("median", 0.5), ("p90", 0.9), ("max", 1.0))

# A trip's economy: km/L where it burnt fuel, pack Wh/km otherwise (an EV).
_ECONOMY = "CASE WHEN fuel_l > 0 THEN km_per_l ELSE wh_per_km END"
_UNIT = "CASE WHEN fuel_l > 0 THEN 'km/L' ELSE 'Wh/km' END"


def _rows(db, sql: str, params=()) -> list[dict]:
    cursor = db.execute(sql, list(params))
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def summary(db, run_id: int | None = None) -> dict:
    """A run summarised per vehicle and profile; in a database keidrive
    collect wrote, every collected trip (``collected`` in place of ``run``)."""
    from ..collect.store import is_collected

    if is_collected(db):
        if run_id is not None:
            raise KeidriveError("collected trips have no runs: leave out --run")
        return _collected(db)
    run_id = store.latest_run(db) if run_id is None else store.require_run(db, run_id)
    run = _rows(db, "SELECT run_id, started_at, command, scheduler, workers, trips, failed, wall_s FROM runs "
                    "WHERE run_id = ?", [run_id])[0]
    failures = _rows(db, "SELECT input, vehicle, profile, error FROM trips WHERE run_id = ? AND NOT ok "
                         "ORDER BY trip_id", [run_id])
    run["started_at"] = str(run["started_at"])
    return {"run": run_id, "info": run, "groups": _groups(db, "run_id = ?", [run_id], "run_id, trip_id"),
            "failures": failures, "quality": quality(db, run_id)}


def _collected(db) -> dict:
    info = _rows(db, "SELECT count(*) AS trips, count(DISTINCT device) AS devices, min(received_at) AS first, "
                     "max(received_at) AS last FROM trips")[0]
    info["first"], info["last"] = str(info["first"]), str(info["last"])
    return {"collected": info, "groups": _groups(db, "true", [], "device, trip_id"), "failures": [], "quality": None}


def _groups(db, where: str, params: list, keys: str) -> list[dict]:
    """Per vehicle and profile, the trips ``where`` selects (warnings joined on ``keys``)."""
    quantiles = ", ".join(f"quantile_cont(economy, {q}) AS {name}" for name, q in QUANTILES)
    groups = _rows(db, f"""
        SELECT vehicle, profile, unit, count(*) AS drives, sum(distance_km) AS distance_km, {quantiles},
               avg(economy) AS mean, avg(eco_score) AS eco_score, sum(warnings) AS warnings
        FROM (SELECT *, {_ECONOMY} AS economy, {_UNIT} AS unit FROM trips WHERE {where} AND ok)
        GROUP BY vehicle, profile, unit ORDER BY vehicle, profile""", params)
    kinds = defaultdict(dict)
    for row in _rows(db, f"""
            SELECT t.vehicle, t.profile, w.kind, count(*) AS n FROM warnings w
            JOIN trips t USING ({keys}) WHERE {where} GROUP BY ALL ORDER BY ALL""", params):
        kinds[(row["vehicle"], row["profile"])][row["kind"]] = row["n"]
    for group in groups:
        group["economy"] = {name: _rounded(group.pop(name)) for name, _ in QUANTILES + (("mean", None),)}
        group["distance_km"] = _rounded(group["distance_km"])
        group["eco_score"] = _rounded(group["eco_score"], 1)
        distance = group["distance_km"] or 0
        group["warnings_per_100km"] = round(group["warnings"] * 100 / distance, 2) if distance else None
        group["warnings_by_kind"] = kinds.get((group["vehicle"], group["profile"]), {})
    return groups


def quality(db, run_id: int) -> dict:
    """A run's data quality (the trips' quality columns): drives with a
    faulty speed source or time without a trusted speed, what came from a
    fallback source, frames rejected by reason, figures not measured (drives)."""
    totals = _rows(db, """
        SELECT count(*) FILTER (WHERE cardinality(faulty_sources) > 0) AS drives_with_faulty_sources,
               count(*) FILTER (WHERE untrusted_s > 0) AS drives_with_untrusted_speed,
               sum(untrusted_s) AS untrusted_s, sum(fallback_s) AS fallback_s, sum(fallback_km) AS fallback_km
        FROM trips WHERE run_id = ? AND ok""", [run_id])[0]
    for key in ("untrusted_s", "fallback_s", "fallback_km"):
        totals[key] = _rounded(totals[key], 3)
    totals["rejected_frames"] = {row["reason"]: row["n"] for row in _rows(db, """
        SELECT reason, sum(n)::BIGINT AS n FROM (SELECT unnest(map_keys(rejected_frames)) AS reason,
               unnest(map_values(rejected_frames)) AS n FROM trips WHERE run_id = ? AND ok)
        GROUP BY reason ORDER BY reason""", [run_id])}
    totals["not_measured"] = {row["figure"]: row["drives"] for row in _rows(db, """
        SELECT figure, count(*) AS drives FROM (SELECT unnest(not_measured) AS figure FROM trips
        WHERE run_id = ? AND ok) GROUP BY figure ORDER BY figure""", [run_id])}
    return totals


def quality_line(q: dict) -> str:
    """The run's data-quality row."""
    parts = [f"{q['drives_with_faulty_sources']} drives with a faulty speed source",
             f"{q['drives_with_untrusted_speed']} with time without a trusted speed ({q['untrusted_s'] or 0:.1f} s)",
             f"{q['fallback_km'] or 0:.3f} km from fallback sources"]
    rejected = {k: n for k, n in q["rejected_frames"].items() if n}
    if rejected:
        parts.append("frames rejected: " + ", ".join(f"{k} {n}" for k, n in rejected.items()))
    if q["not_measured"]:
        parts.append("not measured: " + ", ".join(f"{k} in {n} drives" for k, n in q["not_measured"].items()))
    return "data quality: " + "; ".join(parts)


def compare(db, run_a: int, run_b: int) -> dict:
    """Every drive of ``run_a`` matched with the same drive (input and
    profile) of ``run_b``: what changed, by how much."""
    store.require_run(db, run_a)
    store.require_run(db, run_b)
    drives = {run: _keyed(db, run) for run in (run_a, run_b)}
    changed, unchanged = [], 0
    for key, a in drives[run_a].items():
        b = drives[run_b].get(key)
        if b is None:
            continue
        difference = _difference(a, b)
        if difference:
            changed.append({"input": key[0], "profile": key[1], "vehicle": b["vehicle"], **difference})
        else:
            unchanged += 1
    only = {run: [{"input": key[0], "profile": key[1]} for key in drives[run] if key not in drives[other]]
            for run, other in ((run_a, run_b), (run_b, run_a))}
    return {"run_a": run_a, "run_b": run_b, "compared": len(changed) + unchanged, "unchanged": unchanged,
            "changed": changed, "only_in_a": only[run_a], "only_in_b": only[run_b]}


def _keyed(db, run_id: int) -> dict:
    """A run's drives by (input, profile, n-th occurrence): a log given
    twice is two drives."""
    seen = Counter()
    keyed = {}
    for row in _rows(db, f"SELECT input, profile, vehicle, ok, error, warnings_by_kind, {', '.join(COMPARED)} "
                         "FROM trips WHERE run_id = ? ORDER BY trip_id", [run_id]):
        seen[(row["input"], row["profile"])] += 1
        keyed[(row["input"], row["profile"], seen[(row["input"], row["profile"])])] = row
    return keyed


def _difference(a: dict, b: dict) -> dict:
    out = {}
    if a["ok"] != b["ok"]:
        out["ok"] = {"a": a["ok"], "b": b["ok"], "error": b["error"] or a["error"]}
    figures = {}
    for name in COMPARED:
        if a[name] != b[name]:
            figure = {"a": a[name], "b": b[name]}
            if a[name] is not None and b[name] is not None:
                figure["delta"] = _rounded(b[name] - a[name])
                figure["percent"] = round((b[name] - a[name]) / a[name] * 100, 3) if a[name] else None
            figures[name] = figure
    if figures:
        out["figures"] = figures
    kinds_a, kinds_b = dict(a["warnings_by_kind"] or {}), dict(b["warnings_by_kind"] or {})
    if kinds_a != kinds_b:
        out["warnings"] = {kind: {"a": kinds_a.get(kind, 0), "b": kinds_b.get(kind, 0)}
                           for kind in sorted(kinds_a.keys() | kinds_b.keys())
                           if kinds_a.get(kind, 0) != kinds_b.get(kind, 0)}
    return out


def _rounded(value, digits: int = 6):
    return None if value is None else round(value, digits)


def print_result(result: dict, console=None) -> None:
    from rich.console import Console

    console = console or Console()
    if "changed" in result:
        _print_comparison(result, console)
    else:
        _print_summary(result, console)


def _print_summary(result: dict, console) -> None:
    from rich.table import Table

    if "collected" in result:
        info = result["collected"]
        console.print(f"collected: {info['trips']} trips from {info['devices']} devices "
                      f"(received {info['first']} .. {info['last']} UTC)")
    else:
        info = result["info"]
        console.print(f"fleet run {result['run']}: {info['trips']} trips, {info['failed']} failed on "
                      f"{info['scheduler']} ({info['started_at']} UTC): {info['command']}")
    table = Table()
    for column in ("vehicle", "profile", "drives", "km", "economy p10 / median / p90", "mean", "eco score",
                   "warnings /100 km", "warnings by kind"):
        table.add_column(column, justify="left" if column in ("vehicle", "profile", "warnings by kind") else "right")
    for g in result["groups"]:
        e = g["economy"]
        table.add_row(
            g["vehicle"], g["profile"], str(g["drives"]), f"{g['distance_km']:.1f}",
            f"{e['p10']:.2f} / {e['median']:.2f} / {e['p90']:.2f} {g['unit']}", f"{e['mean']:.2f}",
            "—" if g["eco_score"] is None else f"{g['eco_score']:.0f}",
            "-" if g["warnings_per_100km"] is None else f"{g['warnings_per_100km']:.1f}",
            ", ".join(f"{kind} {n}" for kind, n in g["warnings_by_kind"].items()) or "none",
        )
    console.print(table)
    if result["quality"] is not None:  # collected trips keep the board's quality object as it came, per trip
        console.print(quality_line(result["quality"]), highlight=False)
    for failure in result["failures"]:
        console.print(f"failed: {failure['input']} ({failure['profile']}): {failure['error']}")


def _print_comparison(result: dict, console) -> None:
    from rich.table import Table

    console.print(f"run {result['run_a']} -> run {result['run_b']}: {result['compared']} drives compared, "
                  f"{len(result['changed'])} changed, {result['unchanged']} unchanged, "
                  f"{len(result['only_in_a'])} only in {result['run_a']}, {len(result['only_in_b'])} only in "
                  f"{result['run_b']}")
    if result["changed"]:
        table = Table(title="changed drives", title_justify="left")
        for column in ("drive", "profile", "what changed"):
            table.add_column(column)
        for drive in result["changed"]:
            parts = []
            if "ok" in drive:
                parts.append(f"{'ok' if drive['ok']['a'] else 'failed'} -> {'ok' if drive['ok']['b'] else 'failed'}"
                             f" ({drive['ok']['error']})")
            for name, f in drive.get("figures", {}).items():
                percent = f" ({f['percent']:+.3f} %)" if f.get("percent") is not None else ""
                parts.append(f"{name} {f['a']} -> {f['b']}{percent}")
            for kind, n in drive.get("warnings", {}).items():
                parts.append(f"{kind} warnings {n['a']} -> {n['b']}")
            table.add_row(drive["input"], drive["profile"], "; ".join(parts))
        console.print(table)
    for side in ("only_in_a", "only_in_b"):
        run = result["run_a"] if side == "only_in_a" else result["run_b"]
        for drive in result[side]:
            console.print(f"only in run {run}: {drive['input']} ({drive['profile']})")


def plot(db, path: str | Path, runs: list[int]) -> Path:
    """Economy per vehicle and profile as box plots (one panel per unit),
    the runs side by side, and warnings per 100 km."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if not path.parent.is_dir():
        raise KeidriveError(f"cannot write plot {path}: directory {path.parent} does not exist")
    rows = _rows(db, f"""SELECT run_id, vehicle, profile, {_UNIT} AS unit, {_ECONOMY} AS economy,
                               distance_km, warnings FROM trips
                        WHERE ok AND run_id IN ({", ".join("?" for _ in runs)}) ORDER BY vehicle, profile""", runs)
    units = sorted({row["unit"] for row in rows})
    if not units:
        raise KeidriveError(f"run {', '.join(map(str, runs))}: no trip to plot")
    figure, axes = plt.subplots(len(units) + 1, 1, figsize=(11, 3.2 * (len(units) + 1)), squeeze=False)
    groups = sorted({(row["vehicle"], row["profile"]) for row in rows})
    width = 0.8 / len(runs)
    for axis, unit in zip(axes[:-1, 0], units):
        in_unit = [group for group in groups
                   if any(row["unit"] == unit and (row["vehicle"], row["profile"]) == group for row in rows)]
        for offset, run in enumerate(runs):
            data = [[row["economy"] for row in rows if row["unit"] == unit and row["run_id"] == run
                     and (row["vehicle"], row["profile"]) == group and row["economy"] is not None]
                    for group in in_unit]
            positions = [index + (offset - (len(runs) - 1) / 2) * width for index in range(len(in_unit))]
            kept = [(p, d) for p, d in zip(positions, data) if d]
            axis.plot([], [], color=f"C{offset}", lw=6, label=f"run {run}")
            if not kept:
                continue
            boxes = axis.boxplot([d for _, d in kept], positions=[p for p, _ in kept], widths=width * 0.9,
                                 patch_artist=True, manage_ticks=False)
            for box in boxes["boxes"]:
                box.set_facecolor(f"C{offset}")
        axis.set_ylabel(unit)
        axis.set_xlim(-0.5, len(in_unit) - 0.5)
        axis.set_xticks(range(len(in_unit)), [f"{v}\n{p}" for v, p in in_unit], fontsize=7)
        axis.legend(fontsize=8)
    warn_axis = axes[-1, 0]
    for offset, run in enumerate(runs):
        per_100km = []
        for group in groups:
            chosen = [row for row in rows if row["run_id"] == run and (row["vehicle"], row["profile"]) == group]
            distance = sum(row["distance_km"] or 0 for row in chosen)
            per_100km.append(sum(row["warnings"] for row in chosen) * 100 / distance if distance else 0)
        warn_axis.bar([i + (offset - (len(runs) - 1) / 2) * width for i in range(len(groups))], per_100km,
                      width=width * 0.9, color=f"C{offset}", label=f"run {run}")
    warn_axis.set_ylabel("warnings /100 km")
    warn_axis.set_xticks(range(len(groups)), [f"{v}\n{p}" for v, p in groups], fontsize=7)
    warn_axis.legend(fontsize=8)
    figure.suptitle(f"keidrive fleet, run {' vs '.join(map(str, runs))}")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise KeidriveError(f"cannot write plot {path}: {error.strerror}") from None
    finally:
        plt.close(figure)
    return path
