"""The jurisdiction the firmware puts the car in, and the rule it warns by,
on simulated drives with a GNSS module (SIL, the MicroPython unix port):
GPS jitter and multipath jumps at a border, an outage (the rule held, then
the profile's), the date a rule takes effect, the override, 10 Hz fixes."""

import datetime as dt
import math

import numpy as np
import pytest
from conftest import micropython_or_skip
from gps_helpers import border_lat, route_drive
from keidrive.gps.nmea import Receiver
from keidrive.gps.route import Route

micropython_or_skip()

LON = -86.57  # US 231, Tennessee above Alabama
M_PER_DEG = 6371008.8 * math.pi / 180
# drive 1.9 km at 40 km/h, then stand still for ten minutes
PARK = "time_s,speed_kmh\n0,0\n10,40\n170,40\n180,0\n780,0\n"
PARKED_AT_M = 1944.4  # the distance PARK drives (target trace)


def _changes(report):
    return [(c["region"], c["reason"]) for c in report.of_type("jurisdiction")]


def _to_border(offset_m, start=None):
    """A straight route south along LON ending offset_m south of the
    Tennessee-Alabama line as the firmware draws it (negative: north of it)."""
    lat_b = border_lat(LON, 35.05, 34.95)
    end = lat_b - offset_m / M_PER_DEG
    begin = end + PARKED_AT_M / M_PER_DEG
    return Route("to-border", np.array([begin, end]), np.array([LON, LON]),
                 start or dt.datetime(2026, 6, 1, 14, tzinfo=dt.UTC))


def test_gps_jitter_across_a_border_moves_the_rules_nothing(tmp_path):
    """Parked 15 m inside Alabama with 10 m of noise each way: the fixes fall
    on both sides for ten minutes; the car stays in Tennessee (never 55 m
    inside Alabama), one line."""
    report, _ = route_drive(_to_border(15), PARK, tmp_path, Receiver(noise_m=10, seed=3))
    assert _changes(report) == [("TN", "no_rule")]


def test_parked_well_past_the_border_the_car_is_in_the_next_state(tmp_path):
    report, _ = route_drive(_to_border(150), PARK, tmp_path, Receiver(noise_m=10, seed=3))
    assert _changes(report) == [("TN", "no_rule"), ("AL", "rule")]


def test_a_multipath_jump_across_the_border_moves_the_rules_nothing(tmp_path):
    """Parked 300 m north of the line, the position jumps 800 m south (into
    Alabama, well past the margin) for 2 s, twice: under the 3 s dwell."""
    receiver = Receiver(noise_m=2.5, jumps=[(300, 2, 800, 180), (500, 2.5, 800, 180)], seed=1)
    report, _ = route_drive(_to_border(-300), PARK, tmp_path, receiver)
    assert _changes(report) == [("TN", "no_rule")]


def test_an_outage_holds_the_rule_then_the_profiles(tmp_path):
    """tn-al, a tunnel of 150 s in Alabama: the rule held for gps_hold_s
    (60 s), then the profile's (no_fix), then Alabama again after the dwell."""
    outage_at = 1200.0
    report, _ = route_drive("tn-al", "hwfet", tmp_path, Receiver(outages=[(outage_at, 150)]))
    changes = report.of_type("jurisdiction")
    assert _changes(report) == [("TN", "no_rule"), ("AL", "rule"), (None, "no_fix"), ("AL", "rule")]
    lost, back = changes[2], changes[3]
    assert outage_at - 1 + 60 < lost["t_s"] < outage_at + 61  # 60 s after the last fix before the tunnel
    assert lost["limit_kmh"] == pytest.approx(112.65) and lost["minimum_kmh"] == pytest.approx(64.37)
    assert outage_at + 150 < back["t_s"] < outage_at + 150 + 6
    assert back["limit_kmh"] == pytest.approx(104.61)


@pytest.mark.parametrize("start, reason", [
    (dt.datetime(2027, 6, 29, 16, tzinfo=dt.UTC), "not_in_force"),
    (dt.datetime(2027, 7, 2, 16, tzinfo=dt.UTC), "rule"),
])
def test_colorados_rule_from_the_day_it_takes_effect(tmp_path, start, reason):
    report, _ = route_drive("ut-co", "hwfet", tmp_path, start=start)
    assert _changes(report) == [("UT", "no_rule"), ("CO", reason)]
    co = report.of_type("jurisdiction")[-1]
    assert co["limit_kmh"] == pytest.approx(88.51 if reason == "rule" else 112.65)


def test_the_rule_changes_at_midnight_utc_when_it_takes_effect(tmp_path):
    """In Colorado across 2027-07-01 00:00 UTC (the RMC date): the profile,
    then the kei rule, without leaving the state."""
    start = dt.datetime(2027, 6, 30, 23, 30, tzinfo=dt.UTC)  # in Colorado from about 23:52
    report, _ = route_drive("ut-co", "hwfet", tmp_path, start=start)
    changes = report.of_type("jurisdiction")
    assert _changes(report) == [("UT", "no_rule"), ("CO", "not_in_force"), ("CO", "rule")]
    assert 30 * 60 <= changes[-1]["t_s"] < 30 * 60 + 2


def test_the_profile_overrides_the_rules_when_asked(tmp_path):
    report, _ = route_drive("tn-al", "hwfet", tmp_path, config={"gps_rules": False}, profile="us-minitruck-35")
    changes = report.of_type("jurisdiction")
    assert _changes(report) == [("TN", "no_rule"), ("AL", "override")]
    assert all(c["limit_kmh"] == pytest.approx(56.33) for c in changes)


def test_ten_fixes_a_second(tmp_path):
    one, _ = route_drive("tn-al", "hwfet", tmp_path, Receiver(rate_hz=1))
    ten, _ = route_drive("tn-al", "hwfet", tmp_path, Receiver(rate_hz=10))
    assert _changes(ten) == _changes(one)
    for a, b in zip(one.of_type("jurisdiction"), ten.of_type("jurisdiction")):
        assert abs(a["t_s"] - b["t_s"]) <= 1.5
    # an RMC in every epoch at 10 Hz; VTG (and GGA) once a second (9600 baud), as at 1 Hz
    assert ten.of_type("gps")[-1]["speed_fixes"] > 5 * one.of_type("gps")[-1]["speed_fixes"]
