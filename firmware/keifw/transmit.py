"""The firmware's own frames (``transmit: true``), per dbc/keidrive_fw.dbc:
KD_ECO_STATUS, KD_WARNING and KD_TRIP_SUMMARY (three pages rotating), at
10 Hz, encoded by the generated module (which advances COUNTER and fills
CHECKSUM)."""

from . import economy as _econ
from .figures import trip_kmpl_x1000, wh_per_km_x10


class Transmitter:
    def __init__(self, gen, port):
        self.gen = gen
        self.port = port
        self.buf = bytearray(8)
        self.page = 0
        self.frames = 0
        self.dropped = 0
        gm = gen.MSG_INDEX_BY_NAME
        self.eco = gm.get("KD_ECO_STATUS", -1)
        self.warn = gm.get("KD_WARNING", -1)
        self.trip = gm.get("KD_TRIP_SUMMARY", -1)

    def send_status(self, fw):
        gen = self.gen
        values = fw.values
        slot = gen.SLOT
        inp = fw.inputs
        econ = fw.econ
        if self.eco >= 0:
            k = trip_kmpl_x1000(econ)
            instant = fw.windows.instant_x100
            values[slot["KD_ECO_STATUS.InstantKmPerL"]] = instant // 5 if instant > 0 else 0
            values[slot["KD_ECO_STATUS.TripKmPerL"]] = min(k // 50, 4095) if k > 0 else 0
            values[slot["KD_ECO_STATUS.EcoScore"]] = fw.eco.score
            values[slot["KD_ECO_STATUS.EcoLevel"]] = fw.eco.level
            values[slot["KD_ECO_STATUS.EcoHint"]] = fw.eco.hint
            values[slot["KD_ECO_STATUS.SignalsValid"]] = 1 if inp.speed_ok else 0
            x = wh_per_km_x10(econ) if fw.kind != 0 else None
            values[slot["KD_ECO_STATUS.TripWhPerKm"]] = 0 if (x is None or x < 0) else min(x // 10, 1023)
            self._send(self.eco, values)
        if self.warn >= 0:
            al = fw.alerts
            m = al.active_mask()
            values[slot["KD_WARNING.Overspeed"]] = m & 1
            values[slot["KD_WARNING.CannotHoldSpeed"]] = (m >> 1) & 1
            values[slot["KD_WARNING.BelowMinimum"]] = (m >> 2) & 1
            values[slot["KD_WARNING.EngineStress"]] = (m >> 3) & 1
            values[slot["KD_WARNING.WarningLevel"]] = al.highest_level()
            values[slot["KD_WARNING.SpeedProfile"]] = al.code
            values[slot["KD_WARNING.SpeedLimit"]] = min(al.limit // 100, 255)
            ex = (inp.v - al.limit) // 100
            values[slot["KD_WARNING.SpeedExcess"]] = -128 if ex < -128 else (127 if ex > 127 else ex)
            self._send(self.warn, values)
        if self.trip >= 0:
            acc = econ.acc
            page = self.page
            self.page = (page + 1) % 3
            values[slot["KD_TRIP_SUMMARY.TripPage"]] = page
            if page == 0:
                _limbs(values, slot["KD_TRIP_SUMMARY.TripDistance"], econ.dist_m())
                values[slot["KD_TRIP_SUMMARY.TripTime"]] = acc[_econ.TICKS] // 10
            elif page == 1:
                _limbs(values, slot["KD_TRIP_SUMMARY.TripFuel"], econ.fuel_ml())
                values[slot["KD_TRIP_SUMMARY.TripEnergy"]] = econ.net_wh()
            else:
                values[slot["KD_TRIP_SUMMARY.IdleTime"]] = acc[_econ.IDLE_TICKS] // 10
                values[slot["KD_TRIP_SUMMARY.WarningCount"]] = min(fw.alerts.log_total, 255)
                n = acc[_econ.ECO_N]
                values[slot["KD_TRIP_SUMMARY.EcoScoreAvg"]] = acc[_econ.ECO_SUM] // n if n else 100
            self._send(self.trip, values)

    def _send(self, idx, values):
        gen = self.gen
        buf = self.buf
        n = gen.encode(idx, values, buf)
        port = self.port
        if port is not None and port.send(gen.MSG_IDS[idx], gen.MSG_EXTENDED[idx], buf, n):
            self.frames += 1
        else:
            self.dropped += 1


def _limbs(values, slot, x):
    """Store x (< 2**30) as 16-bit limbs, least significant first."""
    values[slot] = x & 0xFFFF
    values[slot + 1] = x >> 16
