"""keidrive run --obd and keidrive calibrate, as a user runs them."""

import json
import subprocess

import pytest


def keidrive(*args, cwd=None):
    return subprocess.run(["keidrive", *args], capture_output=True, text=True, timeout=600, cwd=cwd, check=False)


@pytest.fixture(scope="module")
def alto_na_run(tmp_path_factory):
    where = tmp_path_factory.mktemp("obd")
    out = keidrive("run", "--obd", "--vehicle", "alto-na", "--cycle", "hwfet", "--json", cwd=where)
    assert out.returncode == 0, out.stderr
    (where / "run.json").write_text(out.stdout)
    return where, json.loads(out.stdout)


def test_run_obd_json_names_the_method_and_the_obd_figures(alto_na_run):
    _, run = alto_na_run
    fw, truth = run["firmware"], run["truth"]
    assert fw["fuel_method"] == "obd_speed_density"
    assert set(fw["obd"]) == {"vin", "supported_pids", "requests", "responses", "timeouts", "negative", "engine_ecu",
                              "ecus", "fuel_fallbacks"}
    assert len(fw["obd"]["vin"]) == 17
    assert abs(fw["distance_km"] / truth["distance_km"] - 1) < 0.01
    assert abs(fw["fuel_l"] / truth["fuel_l"] - 1) < 0.08  # uncalibrated volumetric efficiency


def test_calibrate_writes_the_volumetric_efficiency_that_matches_the_pump(alto_na_run):
    where, run = alto_na_run
    litres = round(run["truth"]["fuel_l"], 3)  # the receipt
    out = keidrive("calibrate", "--trip", "run.json", "--litres", str(litres), "--config", "cfg.json", "--json",
                   cwd=where)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["ve_pct_before"] == 80
    assert got["ve_pct"] == round(80 * litres / run["firmware"]["fuel_l"])
    assert json.loads((where / "cfg.json").read_text()) == {"obd_ve_pct": got["ve_pct"]}
    rerun = keidrive("run", "--obd", "--vehicle", "alto-na", "--cycle", "hwfet", "--config", "cfg.json", "--json",
                     cwd=where)
    assert rerun.returncode == 0, rerun.stderr
    fw = json.loads(rerun.stdout)["firmware"]
    # the same drive after calibration: only the whole-percent rounding of VE is left
    assert abs(fw["fuel_l"] / run["truth"]["fuel_l"] - 1) < 0.01


@pytest.mark.parametrize("args,message", [
    (["--trip", "missing.json", "--litres", "1"], "cannot read"),
    (["--trip", "run.json", "--litres", "0"], "positive"),
    (["--trip", "run.json", "--litres", "0.01"], "outside 30..120"),
])
def test_calibrate_bad_input_is_one_line(alto_na_run, args, message):
    where, _ = alto_na_run
    out = keidrive("calibrate", *args, "--config", "other.json", cwd=where)
    assert out.returncode != 0 and message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_calibrate_refuses_a_trip_that_used_no_volumetric_efficiency(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"firmware": {"fuel_l": 1.0, "fuel_method": "obd_fuel_rate"}}))
    out = keidrive("calibrate", "--trip", "t.json", "--litres", "1", "--config", "c.json", cwd=tmp_path)
    assert out.returncode != 0 and "obd_speed_density" in out.stderr


def test_run_obd_refuses_an_ev_and_a_bus():
    ev = keidrive("run", "--obd", "--vehicle", "sakura-ev", "--cycle", "hwfet", "--json")
    assert ev.returncode != 0 and "no engine" in ev.stderr and "Traceback" not in ev.stderr
    bus = keidrive("run", "--obd", "--bus", "keidrive:x", "--json")
    assert bus.returncode != 0 and "lockstep" in bus.stderr


def test_simulate_obd_is_an_ecu_a_can_isotp_tester_can_poll():
    import time

    import can
    import isotp

    channel = f"obd-{time.monotonic_ns()}"
    ecu = subprocess.Popen(["keidrive", "simulate", "--vehicle", "nbox-turbo", "--cycle", "hwfet", "--obd",
                            "--bus", f"keidrive:{channel}", "--no-plot"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bus = can.Bus(interface="keidrive", channel=channel)
    try:
        stack = isotp.CanStack(bus, address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8),
                               params={"tx_padding": 0, "tx_data_min_length": 8})
        answers = {}
        deadline = time.monotonic() + 30
        while len(answers) < 2 and time.monotonic() < deadline:  # the ECU may not be on the bus yet
            for request in (b"\x09\x02", b"\x01\x00"):
                if request in answers:
                    continue
                stack.send(request)
                until = time.monotonic() + 1.0
                while time.monotonic() < until and request not in answers:
                    stack.process()
                    while stack.available():
                        reply = bytes(stack.recv())
                        if reply[:2] == bytes([request[0] + 0x40, request[1]]):
                            answers[request] = reply
                    time.sleep(0.002)
        assert answers[b"\x09\x02"] == b"\x49\x02\x01JHMJF5510P1345678"
        assert answers[b"\x01\x00"][:2] == b"\x41\x00"
    finally:
        bus.shutdown()
        ecu.kill()
        ecu.wait()
