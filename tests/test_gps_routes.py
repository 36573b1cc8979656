"""keidrive run --route on each bundled route: the jurisdiction changes and
the warnings the rules table predicts for it.

The prediction is made here without the firmware's code: the regions the
route passes through by shapely on the boundary data, the rule of each from
the rules table (data/kei_rules.toml) on the route's date, and the overspeed
warnings from the simulated speed against each region's limit."""

import datetime as dt
import json

import numpy as np
import pytest
from conftest import keidrive, micropython_or_skip
from keidrive import sim
from keidrive.gps import boundaries, rules
from keidrive.gps.route import bundled_routes, load_route, repeat_cycle

shapely = pytest.importorskip("shapely")
micropython_or_skip()

CYCLE = {"jp-tomei": "wltc-jp"}  # the others drive hwfet
PROFILE = {"jp-tomei": "jp-expressway"}  # the others: us-interstate
PROFILE_KMH = {"us-interstate": (112.65, 64.37), "jp-expressway": (100.0, 50.0)}
DWELL_S = 3  # the jurisdiction's; an overspeed needs 3 s above the limit + 1 km/h


@pytest.fixture(scope="module")
def regions():
    b = boundaries.bundled()
    return b.codes, shapely.STRtree(b.polygons())


def _predicted(name, regions):
    """(the regions in order, the simulated trace)."""
    codes, tree = regions
    route = load_route(name)
    result = sim.simulate("nbox-turbo", repeat_cycle(sim.load_cycle(CYCLE.get(name, "hwfet")), route))
    t = result.trace["time_s"]
    v = result.trace["speed_kmh"]
    distance = np.concatenate(([0.0], np.cumsum(np.diff(t) * (v[1:] + v[:-1]) / 2 / 3.6)))
    lat, lon, _ = route.at(distance[::100])  # once a second
    sequence = []
    for la, lo in zip(lat, lon):
        hits = tree.query(shapely.Point(lo, la), predicate="within")
        if len(hits) and (not sequence or sequence[-1] != codes[hits[0]]):
            sequence.append(codes[hits[0]])
    return route, sequence, t, v


def _rule(region, day, profile):
    rule = rules.load().for_region(region, day)
    if rule is not None:
        return "rule", rule.limit_ckmh / 100, rule.minimum_ckmh / 100 or None
    limit, minimum = PROFILE_KMH[profile]
    has_rows = any(r.region == region for r in rules.load().rules)
    return ("not_in_force" if has_rows else "no_rule"), limit, minimum


def _overspeed_expected(t, v, start, end, limit):
    """Whether the speed stays above limit + 1 km/h for 3.5 s somewhere in [start, end)."""
    above = (v > limit + 1) & (t >= start) & (t < end)
    run = 0
    for a in above:
        run = run + 1 if a else 0
        if run >= 350:
            return True
    return False


@pytest.mark.parametrize("name", bundled_routes())
def test_a_bundled_route_gives_the_changes_and_warnings_the_rules_predict(name, regions, tmp_path):
    route, sequence, t, v = _predicted(name, regions)
    profile = PROFILE.get(name, "us-interstate")
    done = keidrive("run", "--route", name, "--cycle", CYCLE.get(name, "hwfet"), "--profile", profile, "--json",
                    env=None, timeout=900)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    changes = out["jurisdictions"]
    assert [c["region"] for c in changes] == sequence
    ends = [c["t_s"] for c in changes[1:]] + [float(t[-1])]
    warned = set()
    for change, end in zip(changes, ends):
        start_day = route.start + dt.timedelta(seconds=change["t_s"])
        reason, limit, minimum = _rule(change["region"], start_day.date(), profile)
        assert (change["reason"], change["limit_kmh"], change["minimum_kmh"]) == pytest.approx(
            (reason, limit, minimum), abs=0.01), change
        raised = [w for w in out["firmware"]["warnings"]
                  if w["kind"] == "overspeed" and change["t_s"] <= w["start_s"] < end]
        # overspeed in this region exactly where its speed ran over its limit
        if _overspeed_expected(t, v, change["t_s"] + DWELL_S, end, limit):
            assert raised, (change, end)
        if raised:
            warned.add(change["region"])
        for w in raised:
            i = int(np.searchsorted(t, w["start_s"]))
            assert (v[i - 300:i] > limit + 0.9).all(), (change, w)
        if minimum is None:  # no minimum in force: no below_minimum warning raised here
            assert not [w for w in out["firmware"]["warnings"]
                        if w["kind"] == "below_minimum" and change["t_s"] + DWELL_S <= w["start_s"] < end], change
    assert out["gps"]["bad_checksum"] == out["gps"]["garbled"] == out["gps"]["stale"] == 0
    # hwfet runs over 55 mph (Louisiana, Colorado from 2027-07-01) and 35 mph
    # (Florida), not over Alabama's 65 mph or the profile's 70
    assert warned == {"gulf-coast": {"LA", "FL"}, "ut-co": {"CO"}}.get(name, set()), warned


def test_the_changes_are_printed(tmp_path):
    done = keidrive("run", "--route", "tn-al", "--cycle", "hwfet", "--profile", "us-interstate", "--no-plot",
                    env=None, timeout=900)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "jurisdiction changes" in text
    for words in ("TN", "no_rule", "AL", "no_interstates", "104.6 km/h (65 mph)"):
        assert words in text, words


@pytest.mark.parametrize("args, words", [
    (["--route", "nowhere"], "route nowhere: no such file or bundled route"),
    (["--route", "tn-al", "--gps-rate", "5"], "--gps-rate 5: 1 or 10"),
    (["--route", "tn-al", "--gps-outage", "10"], "--gps-outage 10: expected START:SECONDS"),
    (["--route", "tn-al", "--gps-jump", "10:x:5"], "--gps-jump 10:x:5: expected"),
    (["--route", "tn-al", "--start", "yesterday"], "--start yesterday: not a date"),
    (["--route", "tn-al", "--obd"], "--route drives the vehicle's own bus"),
])
def test_bad_route_options_are_one_line(args, words):
    from conftest import one_line_error

    one_line_error(keidrive("run", *args, "--no-plot", env=None, timeout=120), words)


def test_a_route_file_that_is_not_one_is_one_line(tmp_path):
    from conftest import one_line_error

    bad = tmp_path / "bad.gpx"
    bad.write_text("<gpx><trk>")
    one_line_error(keidrive("run", "--route", str(bad), "--no-plot", env=None, timeout=120), "not a GPX file")
    csv = tmp_path / "bad.csv"
    csv.write_text("lat,lon\n35.0,-86.5\nnorth,-86.5\n")
    one_line_error(keidrive("run", "--route", str(csv), "--no-plot", env=None, timeout=120), "line 3")
