"""The warnings tick in viper against the implementation it replaced, tick by tick.

The reference is keifw/alerts.py as of commit cfc9719 (four Alarm objects,
plain Python), read from git and loaded under another module name. Both run
the same input sequences, every profile and vehicle kind, and after every
tick their events, counts, levels, active flags, start times, highest level,
mask and trip log must be equal. The sequences are built from segments of
speed / pedal / engine values anchored at each rule's thresholds (one off on
either side), long enough to pass the dwells, with inputs dropping out.

On CPython hypothesis picks the segments; on MicroPython (the unix port, and
the 32-bit build when a source is configured) seeded random ones, with the
viper tick under ``micropython.heap_lock()``: viper's machine words, the
zero-extended array loads of a 64-bit port and no allocation per tick.
"""

import importlib.util
import os
import random
import subprocess
from array import array

import pytest
from conftest import ROOT, micropython_or_skip
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keidrive.fwconfig import firmware_module, schema_module
from keidrive.paths import firmware_dir

REFERENCE_COMMIT = "cfc9719"
N_FIELDS = 9  # t_ds, speed_ok, v, pedal_ok, pedal, eng_ok, rpm, boost, temp

# (config on top of the defaults, has_boost, is_ev)
CONFIGS = [
    ({"profile": "jp-expressway"}, True, False),
    ({"profile": "jp-expressway"}, False, True),
    ({"profile": "jp-expressway-120", "rpm_limit": 2000, "boost_limit_kpa": 10, "coolant_limit_c": 80}, True, False),
    ({"profile": "us-minitruck-55"}, False, False),
    ({"profile": "us-minitruck-35", "rpm_limit": 9000, "boost_limit_kpa": 200, "coolant_limit_c": 130}, True, False),
    ({"profile": "us-interstate"}, True, False),
    ({"profile": "us-interstate", "posted_limit_mph": 90, "minimum_mph": 0}, False, False),
    ({"profile": "us-interstate", "posted_limit_mph": 80, "minimum_mph": 60}, False, True),
    ({"profile": "custom", "custom_limit_kmh": 60, "custom_minimum_kmh": 0}, True, False),
    ({"profile": "custom", "custom_limit_kmh": 250, "custom_minimum_kmh": 150}, False, True),
    ({"profile": "custom", "custom_limit_kmh": 10, "custom_minimum_kmh": 1}, True, False),
]


def config(i):
    extra, has_boost, is_ev = CONFIGS[i]
    return dict(schema_module().DEFAULTS, **extra), has_boost, is_ev


def reference_source():
    """keifw/alerts.py at REFERENCE_COMMIT, importing keifw.fixed absolutely."""
    shown = subprocess.run(["git", "show", f"{REFERENCE_COMMIT}:firmware/keifw/alerts.py"], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        message = f"the reference implementation needs the git history ({shown.stderr.strip()})"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return shown.stdout.replace("from .fixed import small", "from keifw.fixed import small")


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "alerts_reference.py"
    path.write_text(reference_source())
    return path


@pytest.fixture(scope="module")
def modules(reference_file):
    new = firmware_module("alerts")  # imports keifw first: its micropython stand-in for the reference too
    spec = importlib.util.spec_from_file_location("alerts_reference", reference_file)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    return reference, new


def anchors(al):
    """Speeds at and one off every threshold the rules compare v with (0.01 km/h)."""
    limit, minimum = al.limit, al.minimum
    thr = min(limit, 12070) if al.interstate else limit
    points = [0, 1999, 2000, 2999, 3000, 6999, 7000, thr + 100, thr + 101, thr - 300, thr - 301,
              limit, limit + 1, limit + 1000, limit + 1001]
    if minimum:
        points += [minimum - 1, minimum, minimum + 300, minimum - 1500, minimum - 1501, minimum + 2000,
                   minimum + 1999]
    return points


# a segment: (ticks, speed anchor, anchor offset, slope per tick, jitter, validity, pedal, rpm, boost, temp)
# the last four are indices into the thresholds' neighbourhoods below
PEDALS = (0, 799, 800, 899, 900, 1000)
NEAR_RPM = (-501, -500, -499, 0, 1, 2000)
NEAR_BOOST = (-1000, -101, -100, -99, 0, 1)
NEAR_TEMP = (-1600, -51, -50, -49, 0, 1, 100)


def ticks_of(al, segments, t0, rng):
    """The tick sequence of ``segments`` (flat ints, N_FIELDS per tick)."""
    points = anchors(al)
    out = []
    t = t0
    for ticks, anchor, offset, slope, jitter, validity, pedal, rpm, boost, temp in segments:
        v0 = points[anchor % len(points)] + offset
        for i in range(ticks):
            v = v0 + slope * i + (rng.randint(-jitter, jitter) if jitter else 0)
            if validity == 0:  # all valid
                oks = (1, 1, 1)
            elif validity == 1:  # every input flickering
                oks = (rng.random() < 0.8, rng.random() < 0.8, rng.random() < 0.8)
            else:  # one combination held: 2..8 -> bits
                bits = validity - 1
                oks = (bits & 1, bits >> 1 & 1, bits >> 2 & 1)
            out += [t, int(oks[0]), max(-5000, min(40000, v)), int(oks[1]), PEDALS[pedal % len(PEDALS)],
                    int(oks[2]), al.rpm_limit + NEAR_RPM[rpm % len(NEAR_RPM)],
                    al.boost_limit + NEAR_BOOST[boost % len(NEAR_BOOST)],
                    al.temp_limit + NEAR_TEMP[temp % len(NEAR_TEMP)]]
            t += 1
    return out


def snapshot(al):
    return (bytes(al.events), al.n_events, al.highest_level(), al.active_mask(),
            [(bool(a.active), a.level, a.start_ds) for a in al.alarms], al.log_n, al.log_total)


def replay(reference, new, cfg_index, flat):
    """Both implementations over ``flat``; the first difference fails. Returns the events seen."""
    cfg, has_boost, is_ev = config(cfg_index)
    ref, al = reference.Alerts(cfg, has_boost, is_ev), new.Alerts(cfg, has_boost, is_ev)
    events = 0
    for i in range(0, len(flat), N_FIELDS):
        t, s_ok, v, p_ok, pedal, e_ok, rpm, boost, temp = flat[i:i + N_FIELDS]
        for x in (ref, al):
            x.update(t, s_ok != 0, v, p_ok != 0, pedal, e_ok != 0, rpm, boost, temp)
        assert snapshot(al) == snapshot(ref), (CONFIGS[cfg_index], i // N_FIELDS, flat[i:i + N_FIELDS])
        if ref.n_events:
            events += ref.n_events
            assert list(al.log) == list(ref.log) and list(al.log_open) == list(ref.log_open)
    for x in (ref, al):
        x.close_all(flat[-N_FIELDS] + 1 if flat else 0)
    assert list(al.log) == list(ref.log)
    return events


segment = st.tuples(st.integers(1, 320), st.integers(0, 40), st.integers(-3, 3), st.integers(-25, 25),
                    st.sampled_from((0, 0, 1, 150)), st.sampled_from((0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8)),
                    st.integers(0, 5), st.integers(0, 5), st.integers(0, 5), st.integers(0, 6))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(cfg_index=st.integers(0, len(CONFIGS) - 1), segments=st.lists(segment, min_size=1, max_size=24),
       seed=st.integers(0, 2**16), t0=st.sampled_from((0, 1, 123456, 50000000)))
def test_same_as_reference_on_cpython(modules, cfg_index, segments, seed, t0):
    reference, new = modules
    al = reference.Alerts(*config(cfg_index))
    replay(reference, new, cfg_index, ticks_of(al, segments, t0, random.Random(seed)))


def random_segments(rng, n):
    return [(rng.choice((rng.randint(1, 40), rng.randint(40, 400))), rng.randint(0, 40), rng.randint(-3, 3),
             rng.choice((0, 0, rng.randint(-25, 25))), rng.choice((0, 0, 1, 150)),
             rng.choice((0, 0, 0, 1, rng.randint(2, 8))), rng.randint(0, 5), rng.randint(0, 5), rng.randint(0, 5),
             rng.randint(0, 6)) for _ in range(n)]


# on the highway (30 s at minimum + 20 km/h), below the minimum, then further below (below_minimum
# raised, escalated, cleared); on the highway again, losing speed at full pedal down below the minimum
# (cannot_hold_speed raised, escalated, cleared)
HIGHWAY = [(310, 20, 0, 0, 0, 0, 0, 0, 0, 0), (220, 15, 0, 0, 0, 0, 0, 0, 0, 0), (220, 19, 0, 0, 0, 0, 0, 0, 0, 0),
           (40, 17, 0, 0, 0, 0, 0, 0, 0, 0), (310, 20, 0, 0, 0, 0, 0, 0, 0, 0), (130, 20, 0, -20, 0, 0, 4, 0, 0, 0),
           (40, 17, 0, 0, 0, 0, 0, 0, 0, 0)]


def long_sequences(reference):
    """Per config: seeded random segments (about 20,000 ticks) and one over the log's capacity."""
    sequences = []
    for i in range(len(CONFIGS)):
        al = reference.Alerts(*config(i))
        rng = random.Random(1000 + i)
        flat = ticks_of(al, random_segments(rng, 120), rng.choice((0, 777, 50000000)), rng)
        # then overspeed and engine stress raised, escalated and cleared 90 times: past MAX_LOG
        seg = [(60, 13, 0, 0, 0, 0, 0, 4, 4, 4), (40, 14, 0, 0, 0, 0, 0, 4, 4, 5), (60, 10, 0, 0, 0, 0, 0, 0, 0, 1)]
        flat += ticks_of(al, seg * 90, flat[-N_FIELDS] + 1, rng)
        flat += ticks_of(al, HIGHWAY * 3, flat[-N_FIELDS] + 1, rng)
        sequences.append(flat)
    return sequences


def test_long_sequences_on_cpython(modules):
    reference, new = modules
    for i, flat in enumerate(long_sequences(reference)):
        assert replay(reference, new, i, flat) > 100, CONFIGS[i]


def test_log_counters_restored_then_continued(modules):
    """persist.load sets log_n / log_total: the tick carries on from them."""
    reference, new = modules
    cfg, has_boost, is_ev = config(0)
    ref, al = reference.Alerts(cfg, has_boost, is_ev), new.Alerts(cfg, has_boost, is_ev)
    for x in (ref, al):
        x.log_n, x.log_total = 62, 900
    for t in range(400):
        v = 10200 if t % 100 < 50 else 9000
        for x in (ref, al):
            x.update(t, True, v, True, 0, True, 0, 0, 0)
        assert snapshot(al) == snapshot(ref)
    assert al.log_n == 64 and al.log_total == 904 and list(al.log) == list(ref.log)


MP_REPLAY = """
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from array import array
import micropython
from keifw import alerts as new
import alerts_reference as reference
N_FIELDS = 9
def snapshot(al):
    return (bytes(al.events), al.n_events, al.highest_level(), al.active_mask(),
            [(bool(a.active), a.level, a.start_ds) for a in al.alarms], al.log_n, al.log_total)
f = open(sys.argv[3], "rb")
head = array("i", bytes(8))
block = array("i", bytes(4 * N_FIELDS * 256))
while f.readinto(head) == 8:
    which, n = head[0], head[1] // N_FIELDS
    cfg = {}
    for kv in sys.argv[4 + which].split(","):
        k, v = kv.split("=")
        cfg[k] = v if k == "profile" else int(v)
    has_boost, is_ev = cfg.pop("has_boost") != 0, cfg.pop("is_ev") != 0
    ref, al = reference.Alerts(cfg, has_boost, is_ev), new.Alerts(cfg, has_boost, is_ev)
    events = 0
    bad = None
    done = 0
    while done < n:
        m = min(256, n - done)
        f.readinto(memoryview(block)[:m * N_FIELDS])
        for i in range(0, m * N_FIELDS, N_FIELDS):
            if bad:
                break
            t, s_ok, v, p_ok, pedal, e_ok = block[i], block[i + 1] != 0, block[i + 2], block[i + 3] != 0, block[i + 4], block[i + 5] != 0
            rpm, boost, temp = block[i + 6], block[i + 7], block[i + 8]
            ref.update(t, s_ok, v, p_ok, pedal, e_ok, rpm, boost, temp)
            micropython.heap_lock()
            al.update(t, s_ok, v, p_ok, pedal, e_ok, rpm, boost, temp)
            micropython.heap_unlock()
            if snapshot(al) != snapshot(ref) or (ref.n_events and (list(al.log) != list(ref.log) or list(al.log_open) != list(ref.log_open))):
                bad = ("mismatch", which, done + i // N_FIELDS, list(block[i:i + N_FIELDS]), snapshot(ref), snapshot(al))
            events += ref.n_events
        done += m
    if bad:
        print(*bad)
        continue
    ref.close_all(t + 1)
    al.close_all(t + 1)
    print("ok" if list(al.log) == list(ref.log) else "mismatch at close_all", which, n, events, al.log_total)
"""


def unix32_or_none():
    if not os.environ.get("KEIDRIVE_MICROPYTHON_SRC"):
        return None
    from keidrive.target import build

    return build("unix32").path


@pytest.mark.parametrize("port", ["unix", "unix32"])
def test_same_as_reference_on_micropython(modules, reference_file, tmp_path, port):
    runtime = micropython_or_skip() if port == "unix" else unix32_or_none()
    if runtime is None:
        pytest.skip("the 32-bit build comes from a MicroPython v1.28 source: set KEIDRIVE_MICROPYTHON_SRC")
    reference, _ = modules
    data = bytearray()
    for i, flat in enumerate(long_sequences(reference)):
        data += array("i", [i, len(flat)]).tobytes() + array("i", flat).tobytes()
    (tmp_path / "ticks.bin").write_bytes(data)
    cfgs = []
    for i in range(len(CONFIGS)):
        cfg, has_boost, is_ev = config(i)
        keys = ("profile", "posted_limit_mph", "minimum_mph", "custom_limit_kmh", "custom_minimum_kmh",
                "rpm_limit", "boost_limit_kpa", "coolant_limit_c")
        cfgs.append(",".join(f"{k}={cfg[k]}" for k in keys) + f",has_boost={int(has_boost)},is_ev={int(is_ev)}")
    done = subprocess.run([str(runtime), "-c", MP_REPLAY, str(firmware_dir()), str(reference_file.parent),
                           str(tmp_path / "ticks.bin"), *cfgs], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.split("\n")[:-1]
    assert len(lines) == len(CONFIGS) and all(line.startswith("ok ") for line in lines), done.stdout
    assert all(int(line.split()[3]) > 100 for line in lines), done.stdout  # events: the rules were exercised
