"""The library under the command line: a drive and a replay from Python
(``keidrive.run``, ``keidrive.replay``) are the drives ``keidrive run`` and
``keidrive replay`` make, key for key of their ``--json``; its errors name
settings as the library spells them, the command line's as flags."""

import json
import os

import keidrive as library
import pytest
from conftest import SHORT_CYCLE, keidrive, micropython_or_skip, one_line_error

micropython_or_skip()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("library")
    (folder / "short.csv").write_text(SHORT_CYCLE)
    environment = dict(os.environ, KEIDRIVE_BUS_DIR=str(folder / "bus"))
    saved = os.environ.get("KEIDRIVE_BUS_DIR")
    os.environ["KEIDRIVE_BUS_DIR"] = environment["KEIDRIVE_BUS_DIR"]  # the library's drives in this process
    yield folder, environment
    if saved is None:
        os.environ.pop("KEIDRIVE_BUS_DIR", None)
    else:
        os.environ["KEIDRIVE_BUS_DIR"] = saved


def _same_but_wall_time(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    assert {k: v for k, v in ours.items() if k != "wall_s"} == {k: v for k, v in theirs.items() if k != "wall_s"}


def test_a_run_from_python_is_the_commands_run(env):
    folder, environment = env
    cycle = str(folder / "short.csv")
    spec = library.DriveSpec(vehicle="alto-hybrid", cycle=cycle, profile="us-minitruck-35")
    trip = library.run(spec)
    printed = keidrive("run", "--vehicle", "alto-hybrid", "--cycle", cycle, "--profile", "us-minitruck-35", "--json",
                       env=environment, cwd=folder)
    assert printed.returncode == 0, printed.stderr
    _same_but_wall_time(trip.to_json(), json.loads(printed.stdout))
    assert set(trip.to_json()) == {"truth", "firmware", "quality", "frames", "wall_s", "runtime"}
    # what the Trip carries beyond the JSON: the firmware's own summary and lines, the trace, the counts
    assert trip.summary["type"] == "trip" and trip.summary["distance_km"] == trip.firmware["distance_km"]
    assert trip.warnings == trip.firmware["warnings"] and trip.trace["time_s"][-1] >= 33
    assert trip.counts["frames"] == trip.frames and trip.counts["status_lines"] == len(trip.report.statuses)
    assert trip.quality == trip.to_json()["quality"] and trip.quality["sources"][0]["source"]
    assert set(trip.quality["rejected"]) == {"dlc", "checksum", "counter", "rate", "plausibility", "stale"}


def test_a_replay_from_python_is_the_commands_replay(env):
    folder, environment = env
    log, truth = folder / "drive.blf", folder / "truth.json"
    made = keidrive("simulate", "--vehicle", "sakura-ev", "--cycle", str(folder / "short.csv"), "-o", str(log),
                    "--json", env=environment)
    assert made.returncode == 0, made.stderr
    truth.write_text(made.stdout)
    trip = library.replay(log, truth=truth, pace=8)
    printed = keidrive("replay", str(log), "--truth", str(truth), "--speed", "8", "--json", env=environment)
    assert printed.returncode == 0, printed.stderr
    ours, theirs = trip.to_json(), json.loads(printed.stdout)
    # the pace's lateness is this machine's, every other key the log's
    assert set(ours.pop("timing_error")) == set(theirs.pop("timing_error")) == {"mean_ms", "p99_ms", "max_ms"}
    _same_but_wall_time(ours, theirs)
    assert trip.log["dbc"] == "kei_ev" and trip.truth["vehicle"] == "sakura-ev"


def test_errors_name_settings_in_the_library_and_flags_on_the_command_line(env):
    folder, environment = env
    with pytest.raises(library.KeidriveError, match=r"^profile us-interstat: no such speed profile; did you mean "
                                                     r"us-interstate\?"):
        library.run(library.DriveSpec(profile="us-interstat"))
    one_line_error(keidrive("run", "--profile", "us-interstat", env=environment, cwd=folder),
                   "--profile us-interstat: no such speed profile; did you mean us-interstate?")
    with pytest.raises(library.KeidriveError, match="^vehicle nbox-trubo: no such vehicle; did you mean nbox-turbo"):
        library.run(library.DriveSpec(vehicle="nbox-trubo"))
    one_line_error(keidrive("run", "--cycle", "hwfte", env=environment, cwd=folder),
                   "--cycle hwfte: no such cycle; did you mean hwfet?")
    one_line_error(keidrive("replay", "x.blf", "--roles", "r.toml", env=environment, cwd=folder),
                   "--roles r.toml: a roles file needs --dbc")
    with pytest.raises(library.KeidriveError, match="^pace 2 with the firmware on socketcan:vcan9"):
        library.run(library.DriveSpec(bus="socketcan:vcan9", pace=2))


def test_a_bundled_dbc_needs_no_roles_file(env):
    """One pairing rule for run and replay: a bundled vehicle DBC brings its roles file; a preset with no
    signal for one of its roles is refused before the drive."""
    folder, environment = env
    cycle = str(folder / "short.csv")
    trip = library.run(library.DriveSpec(vehicle="alto-hybrid", cycle=cycle, dbc="kei_turbo_660"))
    assert trip.firmware["distance_km"] == pytest.approx(trip.truth["distance_km"], rel=0.01)
    printed = keidrive("run", "--vehicle", "alto-hybrid", "--cycle", cycle, "--dbc", "kei_turbo_660", "--json",
                       env=environment)
    assert printed.returncode == 0, printed.stderr
    _same_but_wall_time(trip.to_json(), json.loads(printed.stdout))
    one_line_error(keidrive("run", "--vehicle", "nbox-turbo", "--cycle", cycle, "--dbc", "kei_ev", env=environment,
                            cwd=folder), "the preset nbox-turbo has no such signal to drive it with")


def test_a_streamed_run_is_the_whole_drives_trip_holding_a_plots_worth_of_it(env):
    """keidrive.run streams the drive; given ``mutate`` it simulates it whole
    first. The trips are the same; the streamed one keeps a thinned trace and
    at most PLOT_STATUSES status lines, and still counts every line printed."""
    import numpy as np
    from keidrive.drive.harness import PLOT_STATUSES
    from keidrive.sim.core import TRACE_POINTS

    spec = library.DriveSpec(vehicle="alto-na", cycle="wltc-jp")
    streamed = library.run(spec)
    whole = library.run(spec, mutate=lambda records: records)
    assert streamed.summary == whole.summary and streamed.truth == whole.truth and streamed.frames == whole.frames
    steps = len(whole.trace["time_s"])
    stride = 1 << (-(-steps // TRACE_POINTS) - 1).bit_length()
    assert steps > TRACE_POINTS >= len(streamed.trace["time_s"])
    assert all(np.array_equal(streamed.trace[key], x[::stride]) for key, x in whole.trace.items())
    assert len(whole.report.statuses) > PLOT_STATUSES >= len(streamed.report.statuses)
    assert streamed.counts == whole.counts  # every line printed, kept or not
