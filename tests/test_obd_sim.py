"""The simulated engine ECU and the intake model behind it."""

import isotp
import numpy as np
import pytest
from keidrive import sim
from keidrive.errors import KeidriveError
from keidrive.sim import intake
from keidrive.sim.obd_ecu import EngineEcu


@pytest.fixture(scope="module")
def drives():
    return {name: sim.simulate(name, "hwfet", frames=False) for name in ("alto-na", "alto-hybrid", "nbox-turbo")}


def test_air_and_lambda_give_back_the_fuel(drives):
    for res in drives.values():
        e = res.ecu
        fuelled = e["running"] & (e["maf_gs"] > 0) & (res.ecu["fuel_lph"] > 0)
        fuel_gs = e["maf_gs"] / (intake.AFR_STOICH * e["lambda"])
        lph = fuel_gs * 3.6 / res.vehicle.p("engine.fuel_density_kg_per_l")
        assert np.allclose(lph[fuelled], e["fuel_lph"][fuelled], rtol=1e-9)


def test_speed_density_with_the_engines_own_ve_is_exact(drives):
    for res in drives.values():
        e = res.ecu
        vd = res.vehicle.p("engine.displacement_l") / 1000
        on = e["running"] & (e["rpm"] > 0)
        air = e["ve"] * e["map_kpa"] * 1000 * vd * e["rpm"] / 120 / (intake.R_AIR * (e["iat_c"] + 273.15))
        assert np.allclose(air[on] * 1000, e["maf_gs"][on], rtol=1e-9)
        ve = e["ve"][on & (e["fuel_lph"] > 0)]
        assert 0.3 < ve.min() and ve.max() < 1.0  # a real engine's range


def test_ve_map_rises_with_manifold_pressure():
    table = intake.ve_map(sim.load_vehicle("alto-na"))
    for row in table.values():
        known = [x for x in row if x is not None]
        assert known == sorted(known) and len(known) >= 3


def test_intake_is_warmer_than_ambient_and_boosted_intake_warmer_still(drives):
    na, turbo = drives["alto-na"].ecu, drives["nbox-turbo"].ecu
    assert na["iat_c"].min() >= 25 - 1e-6 and turbo["iat_c"].max() > na["iat_c"].max()


@pytest.mark.parametrize("name,offers,lacks", [
    ("alto-hybrid", [0x5E], []),
    ("nbox-turbo", [0x10, 0x44], [0x5E]),
    ("alto-na", [0x0B], [0x10, 0x5E]),
])
def test_each_preset_offers_what_its_engine_has(drives, name, offers, lacks):
    ecu = EngineEcu(drives[name])
    for pid in [0x05, 0x0C, 0x0D, 0x2F, 0xA6] + offers:
        assert pid in ecu.pids
        base = (pid - 1) // 32 * 32  # the map (0x00, 0x20, ...) that lists pid
        assert ecu.maps[base] >> (32 - (pid - base)) & 1, hex(pid)
    for pid in lacks:
        assert ecu.reply(bytes([1, pid]), 100.0) is None


def test_replies_are_the_state_when_asked_quantised_as_j1979_scales(drives):
    res = drives["alto-hybrid"]
    ecu = EngineEcu(res)
    t = 300.005
    i = ecu.step(t)
    reply = ecu.reply(b"\x01\x0d\x5e\x0c", t)
    assert reply[:2] == b"\x41\x0d" and reply[2] == round(res.ecu["speed_kmh"][i])
    assert reply[3] == 0x5E and int.from_bytes(reply[4:6], "big") == round(res.ecu["fuel_lph"][i] * 20)
    assert reply[6] == 0x0C and int.from_bytes(reply[7:9], "big") == round(res.ecu["rpm"][i] * 4)
    assert ecu.reply(b"\x01\x0d", res.truth["duration_s"] + 5) is None  # engine off after the drive


def test_vin_goes_multi_frame_through_can_isotp(drives):
    ecu = EngineEcu(drives["nbox-turbo"], seed=3)
    frames = []
    ecu.on_frame(0x7DF, b"\x02\x09\x02\x00\x00\x00\x00\x00", 10.0)
    (due, _), = ecu.pending
    assert 10.005 <= due <= 10.030
    ecu.process(due, lambda i, e, d: frames.append((i, d)))
    assert frames[0][0] == 0x7E8 and frames[0][1][0] >> 4 == 1  # a first frame
    receiver = isotp.TransportLayerLogic(
        rxfn=lambda timeout: None, txfn=lambda m: ecu.on_frame(m.arbitration_id, bytes(m.data), due),
        address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E0, rxid=0x7E8))
    inbox = [isotp.CanMessage(arbitration_id=i, data=d, dlc=8) for i, d in frames]
    receiver.rxfn = lambda timeout: inbox.pop(0) if inbox else None
    for _ in range(20):
        receiver.process()
        ecu.process(due, lambda i, e, d: inbox.append(isotp.CanMessage(arbitration_id=i, data=d, dlc=8)))
    vin = receiver.recv()
    assert vin[:3] == b"\x49\x02\x01" and vin[3:].decode() == "JHMJF5510P1345678"


def test_an_ev_has_no_engine_ecu():
    with pytest.raises(KeidriveError, match="no engine"):
        EngineEcu(sim.simulate("sakura-ev", "hwfet", frames=False))
