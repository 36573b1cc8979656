"""The virtual dev board's GNSS UART: a module's NMEA put on the board's bus
as UART records reaches the firmware through machine.UART, opened as
main.py opens it on a board, and read at its ticks on the real clock."""

import datetime as dt
import subprocess
import threading
import time
from pathlib import Path

import keidrive.board
from conftest import micropython_or_skip
from keidrive.gps.nmea import gga, rmc, uart_records, vtg
from keidrive.paths import firmware_dir
from keidrive.vbus.bus import KeidriveBus
from keidrive.vbus.hub import socket_path

VBOARD = Path(keidrive.board.__file__).resolve().parent / "vboard"

BOARD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import kd_machine
kd_machine._configure(sys.argv[3], "esp32", "2,5,4")
sys.modules["machine"] = kd_machine
import main
from keifw import app, config
from keifw.compat import now_us
cfg = dict(config.DEFAULTS)
cfg.update({"gps": True, "gps_uart": 2, "pin_gps_tx": 17, "pin_gps_rx": 16, "profile": "us-interstate"})
uart, err = main.open_gps_uart(cfg)
print("uart", type(uart).__name__, err)
fw, _ = app.build(cfg_obj=cfg, uart=uart)
end = time.ticks_add(time.ticks_ms(), int(sys.argv[4]) * 1000)
while time.ticks_diff(end, time.ticks_ms()) > 0:
    fw.clock(now_us())
    time.sleep_ms(20)
fw.gps.summary()
"""


def test_the_virtual_boards_uart_carries_the_modules_nmea(tmp_path):
    mp = micropython_or_skip()
    channel = f"gps-{time.monotonic_ns()}"
    sender = KeidriveBus(channel)
    try:
        board = subprocess.Popen([mp, "-c", BOARD, str(firmware_dir()), str(VBOARD), socket_path(channel), "9"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while sender.bus_stats()["clients"] < 2 and time.monotonic() < deadline:  # the board's UART attached
            time.sleep(0.05)

        def module():  # 7 s of fixes, once a second, in Alabama (US 231)
            start = dt.datetime(2026, 6, 1, 15, tzinfo=dt.UTC)
            for k in range(7):
                when = start + dt.timedelta(seconds=k)
                timed = [(0.0, gga(when, 34.7304, -86.5861, 9, 0.9)), (0.0, rmc(when, 34.7304, -86.5861, 40, 180)),
                         (0.0, vtg(40, 180))]
                sender.send_records(uart_records(timed).tobytes())
                time.sleep(1)

        thread = threading.Thread(target=module, daemon=True)
        thread.start()
        out, err = board.communicate(timeout=60)
        thread.join(timeout=10)
    finally:
        sender.shutdown()
    assert board.returncode == 0, err
    assert "uart UART None" in out
    assert '"type":"jurisdiction"' in out and '"region":"AL"' in out, out
    assert '"sentences":21' in out and '"garbled":0' in out, out
