"""The viper code reads its tables by literal offsets (a module attribute
costs a lookup per use on a board): those literals against the named
layouts, checked here on CPython rather than at import on a board."""

import sys

from keidrive.paths import firmware_dir

sys.path.insert(0, str(firmware_dir()))
import keifw.compat  # noqa: F401  (stands in for the micropython module)
from keifw import economy, fusion, inputs, loop, scan


def test_the_scanners_literals_are_the_layouts():
    assert (scan.R_STRIDE, scan.R_FLOODED, scan.R_SLOT0, scan.R_SLOT_END, scan.R_CHECK0, scan.R_CHECKS) == (
        8, 3, 4, 5, 6, 7)
    assert (scan.CK_STRIDE, scan.CK_MUL, scan.CK_SLACK, scan.CK_PREV, scan.CK_T, scan.CK_HAVE, scan.CK_RUN,
            scan.CK_CAND, scan.CK_CAND_T) == (9, 1, 2, 3, 4, 5, 6, 7, 8)
    assert (economy.P_STOPPED, economy.P_SPEED_OK, economy.P_TRUSTED, economy.P_SPEED_JUMPS, economy.P_FUEL_MAX,
            economy.P_S_RPM, economy.P_FUEL_RUN, economy.P_RPM_VALID, economy.P_REJ_DLC, economy.P_REJ_RATE,
            economy.P_REJ_PLAUSIBILITY, economy.P_REJ_STALE) == (14, 15, 16, 18, 19, 20, 21, 22, 23, 26, 27, 28)
    assert (scan.SPEED_RESYNC_FRAMES, scan.AGREE_FRAMES) == (25, 3)
    assert economy.REJECT_REASONS == (b"dlc", b"checksum", b"counter", b"rate", b"plausibility", b"stale")


def test_the_fusions_literals_are_the_layouts():
    assert (fusion.F_STRIDE, fusion.MAX_ROWS, fusion.S_N, fusion.S_ENGINE, fusion.S_GS, fusion.S_VH,
            fusion.S_PHASE, fusion.S_PRIMARY, fusion.S_WITNESS, fusion.S_CHANGES, fusion.S_LEN) == (
        25, 8, 200, 201, 202, 218, 228, 229, 230, 234, 235)
    assert loop._S_CHANGES == fusion.S_CHANGES
    assert (fusion.F_V, fusion.F_FRESH, fusion.F_AGE, fusion.F_FAULT, fusion.F_PENDING, fusion.F_EVIDENCE,
            fusion.F_CLEAR, fusion.F_PHYS, fusion.F_LAST, fusion.F_SAME, fusion.F_WRANGE, fusion.F_RMIN,
            fusion.F_RMAX, fusion.F_FAULT_TICKS, fusion.F_EVER, fusion.F_LEAD_TICKS, fusion.F_JUMPED) == tuple(
        range(8, 25))
    assert (inputs.O_RUNNING, inputs.O_FAULTY, inputs.O_LEADER, inputs.O_LEAD_INTEG, inputs.O_FALLBACK) == (
        9, 10, 11, 12, 21)
