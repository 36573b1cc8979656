"""GPS on the 32-bit targets: the short drive across the Tennessee-Alabama
line (UART records among the frames, a tunnel, broken bytes) on the qemu
Cortex-M3 board (the records over its UART link) and the 32-bit unix port
gives the jurisdiction lines and the reader's counts of the 64-bit port.

Needs the MicroPython source (KEIDRIVE_MICROPYTHON_SRC); skips without it,
fails without it under CI=true. About 55,000 records: a minute on qemu."""

import pytest
from gps_helpers import across_the_line
from keidrive.drive.harness import firmware_config, run_records
from test_target import micropython_source


@pytest.fixture(scope="module")
def drive():
    micropython_source()
    records = across_the_line()
    config = firmware_config("nbox-turbo", "us-interstate", {"gps": True})
    reference = run_records(records.tobytes(), config, timeout=300)
    assert reference.ok, reference.failure()
    return records, config, reference


@pytest.mark.parametrize("runtime", ["qemu", "unix32"])
def test_the_gps_lines_equal_the_64_bit_ports(runtime, drive):
    records, config, reference = drive
    report = run_records(records.tobytes(), config, runtime=runtime, timeout=900)
    assert report.ok, report.failure()
    assert report.of_type("jurisdiction") == reference.of_type("jurisdiction")
    assert [c["region"] for c in report.of_type("jurisdiction")] == ["TN", "AL", None, "AL"]
    assert report.of_type("gps") == reference.of_type("gps")
    assert report.trip == reference.trip
