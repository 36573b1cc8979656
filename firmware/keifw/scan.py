"""The frame scanner: one viper call walks a whole block of stream records.

Per frame: the firmware clock (on a virtual clock, the records' timestamps
with discontinuities absorbed), message lookup (a 2048-entry table for
11-bit ids, a short list for 29-bit ones), then decode, judge, commit: the
DLC, CHECKSUM and decode into staging values in one call to the generated
``decode_at``, the COUNTER, the validity bookkeeping (validity.STRIDE
layout), the speed checks (CK_*) and the fuel plausibility; only a frame
that passes them all is copied into the values the tick, the economy and
the warnings read. Then the economy integration (economy.P_* layout), all
in exact integers below 2**31: the same figures
on 32-bit boards, where viper ints are machine words. It hands back to
Python only when a 10 Hz tick falls due, at a control record and at a
frame of an id a listener took (``Scanner.listen``).

Virtual clock: firmware time advances by the difference between
consecutive timestamps when that is 0..MAX_STEP_US; a step beyond it
(a logger glitch, a clock set forward) or backwards by more than
JITTER_US (a clock step back) is a discontinuity: counted, the timestamps
taken as the new reference, firmware time not moved. A frame a little out
of order counts at the current time. So one stamp 200 s ahead costs two
discontinuities and no driving, and the 10 Hz clock never stalls.
"""

from array import array

import micropython
from micropython import const

from .vehicle import scaled

# ctx: the scanner's scalars (array('i'))
C_NT = const(0)        # next 10 Hz tick, firmware time
C_STARTED = const(1)
C_T = const(2)         # firmware time of the current frame
C_VIRTUAL = const(3)   # 1: time from the records' timestamps
C_UNKNOWN = const(4)
C_SKIPPED = const(5)
C_NMSG = const(6)
C_STAMP = const(7)     # virtual clock: the timestamp firmware time last followed
C_JUMPS = const(8)     # virtual clock: discontinuities absorbed
C_WHY = const(9)       # why the scanner stopped before the end (WHY_*)
C_HOOK_MASK = const(10)  # 29-bit keys k with k & mask == value go to a listener
C_HOOK_VALUE = const(11)
C_NEXT = const(12)     # keys outside the 11-bit table: how many
C_EXT = const(13)      # ... then (key & mask, mask, index) triples, the narrowest masks first

WHY_TICK = const(1)     # a 10 Hz tick is due at the record (or the clock starts)
WHY_CONTROL = const(2)  # a control record
WHY_LISTENER = const(3)  # a frame for a listener

MAX_STEP_US = const(5000000)
JITTER_US = const(100000)

# rate (array('i')): per message, R_STRIDE words: the arrival window's start
# (firmware time), frames in it, the most a window may hold (twice the
# DBC's cycle time's count; 0: no cycle time, not checked), flooded (1: the
# message's frames are not decoded); the value slots a frame commits
# (gen.MSG_SLOT0[i] .. MSG_SLOT0[i + 1] - 1); its first speed check row and
# how many (CK_*)
R_STRIDE = const(8)
R_LIMIT = const(2)
R_FLOODED = const(3)
R_SLOT0 = const(4)
R_SLOT_END = const(5)
R_CHECK0 = const(6)
R_CHECKS = const(7)
RATE_WINDOW_US = const(1000000)

# checks (array('i')): per speed-bearing signal (the speed and wheel roles),
# CK_STRIDE words: its slot, the change a car can make in raw units per
# 16 us x 4096 (1.2 g: no division on the frame path, every product below
# 2**30 for up to 1 s and scales down to 0.001 km/h) and the slack
# (5 km/h), the last accepted raw value and its time, whether there is
# one, and the run of frames that agree with each other but not with the
# reference: their count, the last one's raw value and time. After its
# message timed out (validity's SEEN cleared) a signal has no reference.
CK_STRIDE = const(9)
CK_SLOT = const(0)
CK_MUL = const(1)
CK_SLACK = const(2)
CK_PREV = const(3)
CK_T = const(4)
CK_HAVE = const(5)
CK_RUN = const(6)
CK_CAND = const(7)
CK_CAND_T = const(8)
# 1.2 g is 42.4 km/h per second: 16 us x 4096 of it is 2.779 km/h (x 1000
# here; times sd / sn raw units per km/h)
DV_PER_16US_4096 = const(2779)
DV_SLACK_KMH = const(5)
# after a gap a new reference needs so many consecutive frames within 1.2 g
# of each other (the frames before it are stale); after rejected frames, a
# run of this many that agree with each other is a real change
AGREE_FRAMES = const(3)
SPEED_RESYNC_FRAMES = const(25)

# tab (bytearray): message index + 1 by 11-bit id (0: unknown, LISTENED: a
# listener's), then per message its DLC, then its economy handler kind
T_LEN = const(2048)
LISTENED = const(255)
# the index _scan sees for a listener's frame (a 29-bit one is matched by mask)
_I_LISTENED = const(254)


@micropython.viper
def _scan(buf: ptr8, st: ptr32, j: int, n: int, ctx: ptr32, tab: ptr8, bufo, stgo, p: ptr32, acc: ptr32, dec,
          rate: ptr32, valo, ck: ptr32) -> int:
    """Process stream records j..n-1 of buf (bufo: the same buffer, passed
    on to the decoder); returns the index of the first record left for
    Python (ctx[C_WHY] says why), n when all are done. The record buffer
    and the validity words come first: viper keeps its first three locals
    in registers on a Cortex-M, the rest on the stack.

    Decode, judge, commit: a frame is decoded into the staging values
    (stgo), judged (DLC, CHECKSUM, COUNTER, arrival rate, the speed checks,
    the fuel plausibility), and only a frame that passes is copied into the
    values everything else reads (valo); a rejected one is undone in the
    staging values and counted by reason (economy.P_REJ_*).
    Words read back from int arrays are zero-extended on 64-bit ports:
    values that may be negative are range-checked or sign-fixed before use.
    """
    values = ptr32(valo)
    stg = ptr32(stgo)
    nm = ctx[6]
    virtual = ctx[3]
    t = ctx[2]
    nt = ctx[0]
    started = ctx[1]
    sp = ctx[7]
    while j < n:
        o = j * 24
        fl = buf[o + 12]
        if fl & 0x86:
            if fl & 0x80:  # a control record: Python's
                ctx[9] = 2
                ctx[2] = t
                ctx[7] = sp
                return j
            ctx[5] += 1  # remote or error frame: nothing to decode
            j += 1
            continue
        if virtual:
            # the low 30 bits of the u64 timestamp
            s = buf[o] | (buf[o + 1] << 8) | (buf[o + 2] << 16) | ((buf[o + 3] & 0x3F) << 24)
            if not started:
                ctx[9] = 1
                ctx[2] = s
                ctx[7] = s
                return j
            dl = ((s - sp + 0x20000000) & 0x3FFFFFFF) - 0x20000000
            if dl >= 0:
                if dl > 5000000:  # MAX_STEP_US
                    ctx[8] += 1
                else:
                    t = (t + dl) & 0x3FFFFFFF
                sp = s
            elif dl < -100000:  # JITTER_US
                ctx[8] += 1
                sp = s
            if ((t - nt + 0x20000000) & 0x3FFFFFFF) >= 0x20000000:  # a tick is due
                ctx[9] = 1
                ctx[2] = t
                ctx[7] = sp
                return j
        key = buf[o + 8] | (buf[o + 9] << 8) | (buf[o + 10] << 16) | ((buf[o + 11] & 0x1F) << 24)
        i = -1
        if fl & 1:
            key |= 0x20000000
            if (key & ctx[10]) == ctx[11]:
                i = 254
            else:
                # a J1939 parameter group's frames match on its bits of the key (gen.MSG_KEY_MASK)
                k = 13
                ne = 13 + 3 * ctx[12]
                while k < ne:
                    if (key & ctx[k + 1]) == ctx[k]:
                        i = ctx[k + 2]
                        break
                    k += 3
        elif key < 2048:
            i = tab[key] - 1
        if i == 254:  # a listener's frame: Python's
            ctx[9] = 3
            ctx[2] = t
            ctx[7] = sp
            return j
        j += 1
        if i < 0:
            ctx[4] += 1
            continue
        # arrival rate (the R_* layout): more frames in a 1 s window than
        # twice the DBC's cycle time allows are foreign frames on the id:
        # none of its frames of the right DLC is decoded until a window
        # within the limit
        r = i * 8
        lim = rate[r + 2]
        flood = 0
        if lim:
            dw = ((t - rate[r] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
            if dw >= 1000000 or dw < 0:
                rate[r + 3] = 1 if rate[r + 1] > lim else 0
                rate[r] = t
                rate[r + 1] = 0
            rate[r + 1] += 1
            if rate[r + 1] > lim:
                rate[r + 3] = 1
            flood = rate[r + 3]
        b = i * 13
        # bad: 1 a wrong DLC, 2 a CHECKSUM mismatch (neither decoded: the
        # next frame's COUNTER is the new reference), 3 a COUNTER that did
        # not advance by one (decoded: undone below)
        bad = 0
        if buf[o + 13] != tab[2048 + i]:
            bad = 1
        elif flood:
            # and invalid, as after bad frames (lost latched): nothing reads
            # its stale values as current
            if st[b + 7]:
                st[b + 12] = 1
            st[b + 7] = 0
            st[b + 9] = 0
            p[18] += 1  # P_SPEED_JUMPS
            p[26] += 1  # P_REJ_RATE
            continue
        elif int(dec(i, bufo, o + 16, stgo)) < 0:
            bad = 2
        else:
            cs = st[b + 3]
            if cs >= 0 and cs < 0x10000:
                c = stg[cs]
                prev = st[b + 2]
                st[b + 2] = c
                resync = st[b + 11]
                st[b + 11] = 0
                if st[b + 6] and not resync and c != ((prev + 1) & st[b + 4]):
                    bad = 3
        s0 = rate[r + 4]
        s1 = rate[r + 5]
        if bad:
            # validity.mark_bad's bookkeeping, inline: a viper call passing a
            # pointer boxes the address on a 32-bit board, an allocation per
            # bad frame
            p[22 + bad] += 1  # P_REJ_DLC, P_REJ_CHECKSUM, P_REJ_COUNTER
            if bad == 3:
                while s0 < s1:  # undo the decode
                    stg[s0] = values[s0]
                    s0 += 1
            else:
                st[b + 11] = 1
            st[b + 10] += 1
            st[b + 9] = 0
            if st[b + 8] < 255:
                st[b + 8] += 1
            if st[b + 8] >= 5:
                if st[b + 7]:
                    st[b + 12] = 1
                st[b + 7] = 0
            continue
        st[b + 8] = 0
        if not st[b + 7]:
            st[b + 9] += 1
            if st[b + 9] >= 2:
                st[b + 7] = 1
        d = 0
        seen = st[b + 6]  # 0: the first frame after a gap over the timeout (or ever)
        if seen:
            d = ((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
            if d < 0 or d > st[b + 5]:
                d = 0  # a gap over the timeout adds nothing
        else:
            st[b + 6] = 1
        st[b] = t
        h = tab[2048 + nm + i]
        # judge: each speed-bearing signal against its last accepted value,
        # whatever the frame's timestamp (a change faster than 1.2 g plus the
        # slack is no car's); after a gap, or with no reference yet, a new
        # one only from AGREE_FRAMES consecutive frames within that bound of
        # each other (before: stale); a run of SPEED_RESYNC_FRAMES rejected
        # frames that agree with each other is a real change. Either verdict
        # rejects the whole frame; a signal that passes takes its value as
        # its reference at once (it passed its own check, whatever the
        # frame's other signals do).
        why = 0
        c = rate[r + 6] * 9
        ce = c + rate[r + 7] * 9
        while c < ce:
            x = stg[ck[c]]
            if (x >> 31) == 1:  # zero-extended negative (64-bit port)
                x -= (x >> 31) << 16 << 16
            if not seen:  # after a gap: a new reference only from agreement
                ck[c + 5] = 0
            ok = 0
            if ck[c + 5]:
                el = ((t - ck[c + 4] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
                if el > 1000000 or el < 0:  # the bound grows for 1 s of rejected frames at most
                    el = 1000000
                dv = ck[c + 3]
                if (dv >> 31) == 1:
                    dv -= (dv >> 31) << 16 << 16
                dv = x - dv
                if dv < 0:
                    dv = 0 - dv
                ok = 1 if dv <= (((el >> 4) * ck[c + 1]) >> 12) + ck[c + 2] else 2
            if ok != 1:
                # the run of frames that agree with each other but not with a
                # reference: this frame within the bound of the last in it
                ec = ((t - ck[c + 8] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
                dr = ck[c + 7]
                if (dr >> 31) == 1:
                    dr -= (dr >> 31) << 16 << 16
                dr = x - dr
                if dr < 0:
                    dr = 0 - dr
                if ck[c + 6] and ec >= 0 and ec <= 1000000 and dr <= (((ec >> 4) * ck[c + 1]) >> 12) + ck[c + 2]:
                    ck[c + 6] += 1
                else:
                    ck[c + 6] = 1
                ck[c + 7] = x
                ck[c + 8] = t
                if ok == 2 and ck[c + 6] < 25:  # SPEED_RESYNC_FRAMES
                    why = 27  # P_REJ_PLAUSIBILITY
                elif ok == 0 and ck[c + 6] < 3:  # AGREE_FRAMES
                    if why == 0:
                        why = 28  # P_REJ_STALE
                else:
                    ok = 1  # agreed on: the new reference
                    ck[c + 5] = 1
            if ok == 1:
                ck[c + 3] = x
                ck[c + 4] = t
                if ck[c + 6]:  # a passing frame ends a run
                    ck[c + 6] = 0
            c += 9
        if h == 2 and why == 0:
            # fuel: more than the engine can burn, or fuel with the engine at
            # rest (economy.P_FUEL_*)
            x = stg[p[4]]
            if (x >> 31) == 1:
                x -= (x >> 31) << 16 << 16
            sr = p[20]
            sv = p[22]
            if x > p[19] or (x > 0 and sr >= 0 and sr < 0x10000 and values[sr] == 0
                             and sv >= 0 and sv < 0x1000000 and st[sv]):
                why = 27
                if p[21] < 255:
                    p[21] += 1
            else:
                p[21] = 0
        if why:
            p[why] += 1
            if why == 27:
                p[18] += 1  # P_SPEED_JUMPS: implausible_frames
            while s0 < s1:  # undo the decode
                stg[s0] = values[s0]
                s0 += 1
            continue
        # commit: the frame's values become current (two words a pass)
        while s0 + 1 < s1:
            values[s0] = stg[s0]
            values[s0 + 1] = stg[s0 + 1]
            s0 += 2
        if s0 < s1:
            values[s0] = stg[s0]
        if not st[b + 7] or h == 0:
            continue
        # valid: time since the previous good frame in 100 us units, the
        # sub-100 us part carried per message
        d += st[b + 1]
        d100 = d // 100
        st[b + 1] = d - d100 * 100
        # economy: acc pair k (and k2) += x, remainder below div
        k = -1
        k2 = -1
        x = 0
        div = 1
        if h == 1:  # speed: distance, while it is the trusted speed; stopped below 1 km/h
            if p[15]:
                raw = values[p[0]]
                if (raw >> 31) == 1:  # zero-extended negative (64-bit port)
                    raw -= (raw >> 31) << 16 << 16
                p[14] = 1 if raw < p[3] else 0
                if d100:
                    k = 0
                    x = raw * p[1] * d100
                    div = p[2]
        elif h == 2:  # fuel rate: fuel, and idle fuel while stopped
            if d100:
                x = values[p[4]]
                if (x >> 31) == 1:
                    x -= (x >> 31) << 16 << 16
                k = 2
                x = x * p[5] * d100
                div = p[6]
                if p[14] and p[16]:
                    k2 = 4
        elif h == 3:  # pack power, rounded to its quantum: energy out / in / regen
            if d100:
                v = values[p[7]]
                if (v >> 31) == 1:  # zero-extended negative (64-bit port)
                    v -= (v >> 31) << 16 << 16
                ci = values[p[8]]
                if (ci >> 31) == 1:
                    ci -= (ci >> 31) << 16 << 16
                # round(v * ci * p_mul / p_div) without a product beyond 2**31
                a = v * p[9]
                pd = p[10]
                q = a // pd
                pw = q * ci + ((a - q * pd) * ci + (pd >> 1)) // pd
                x = pw * d100
                div = p[11]
                if x >= 0:
                    k = 6
                else:
                    k = 8
                    x = -x
                    sr = p[12]
                    if sr >= 0 and sr < 0x10000 and values[sr]:
                        k2 = 10
        elif h == 4:  # hybrid idle-stop time
            if d100 and values[p[13]]:
                k = 12
                x = d100
                div = 10000  # economy's idle-stop divisor: 100 us units per second
        while k >= 0:
            r = acc[k + 1] + x
            if r >= div or r < 0:
                q = r // div
                acc[k] += q
                r -= q * div
            acc[k + 1] = r
            k = k2
            k2 = -1
    ctx[2] = t
    ctx[7] = sp
    return j


@micropython.viper
def put(rec: ptr8, o: int, key: int, data, dlc: int, flags: int):
    """A frame from a port as the stream record at byte o of rec (flags:
    record.FLAG_REMOTE / FLAG_ERROR kept; the time is unused: not virtual)."""
    rec[o + 8] = key & 0xFF
    rec[o + 9] = (key >> 8) & 0xFF
    rec[o + 10] = (key >> 16) & 0xFF
    rec[o + 11] = (key >> 24) & 0x1F
    rec[o + 12] = (flags & 6) | (1 if key & 0x20000000 else 0)
    rec[o + 13] = dlc
    m = int(len(data))
    if m > 8:
        m = 8
    src = ptr8(data)
    k = 0
    while k < m:
        rec[o + 16 + k] = src[k]
        k += 1
    while k < 8:
        rec[o + 16 + k] = 0
        k += 1


class Scanner:
    """The scanner's tables for one vehicle module, and its calls.

    values: the values everything reads (committed); stage: as many words,
    what a frame decodes into before it is judged; checks: the speed-bearing
    signals, (message index, slot) pairs (see CK_*)."""

    def __init__(self, gen, values, stage, val, econ, kinds, checks):
        n = gen.N_MESSAGES
        tab = bytearray(T_LEN + 2 * n)
        far = []
        masks = getattr(gen, "MSG_KEY_MASK", None) or {}
        for key in gen.MSG_KEY:
            i = gen.MSG_KEY[key]
            if key < T_LEN:
                tab[key] = i + 1
            else:
                mask = masks.get(i, 0x3FFFFFFF)
                far.append((-bin(mask).count("1"), key & mask, mask, i))
        far.sort()
        for i in range(n):
            tab[T_LEN + i] = gen.MSG_LEN[i]  # the DLC a frame must have
            tab[T_LEN + n + i] = kinds[i]
        self.tab = tab
        rate = array("i", bytes(4 * R_STRIDE * n))
        ck = array("i", bytes(4 * CK_STRIDE * len(checks)))
        row = 0
        for i in range(n):
            r = R_STRIDE * i
            c = gen.MSG_CYCLE_MS[i]
            rate[r + R_LIMIT] = 2 * RATE_WINDOW_US // 1000 // c if c > 0 else 0
            rate[r + R_SLOT0] = gen.MSG_SLOT0[i]
            rate[r + R_SLOT_END] = gen.MSG_SLOT0[i + 1]
            rate[r + R_CHECK0] = row
            for m, slot in checks:
                if m == i:
                    sn, sd = scaled(gen, slot)[:2]  # km/h per raw
                    b = CK_STRIDE * row
                    ck[b + CK_SLOT] = slot
                    ck[b + CK_MUL] = DV_PER_16US_4096 * sd // sn // 1000
                    ck[b + CK_SLACK] = DV_SLACK_KMH * sd // sn
                    row += 1
            rate[r + R_CHECKS] = row - rate[r + R_CHECK0]
        self.rate = rate
        self.ck = ck
        ctx = array("i", bytes(4 * (C_EXT + 3 * len(far))))
        ctx[C_NMSG] = n
        ctx[C_NEXT] = len(far)
        ctx[C_HOOK_MASK] = -1  # no 29-bit listener: no key matches
        ctx[C_HOOK_VALUE] = 0
        for k in range(len(far)):
            ctx[C_EXT + 3 * k] = far[k][1]
            ctx[C_EXT + 3 * k + 1] = far[k][2]
            ctx[C_EXT + 3 * k + 2] = far[k][3]
        self.ctx = ctx
        self.values = values
        self.stage = stage
        self.st = val.st
        self.p = econ.p
        self.acc = econ.acc
        self.dec = gen.decode_at
        self.listener = None

    def flooded(self, i):
        """Message i arrives faster than its cycle time allows (see R_*)."""
        return self.rate[R_STRIDE * i + R_FLOODED] != 0

    def listen(self, keys, handler, ext_mask=0, ext_value=-1):
        """Hand frames of the 11-bit ``keys`` and of the 29-bit keys k with
        ``k & ext_mask == ext_value`` (key flag included) to
        ``handler(key, data, dlc, t)`` instead of decoding them (OBD-II
        replies and the like; one listener)."""
        for key in keys:
            self.tab[key] = LISTENED
        if ext_value != -1:
            self.ctx[C_HOOK_MASK] = ext_mask
            self.ctx[C_HOOK_VALUE] = ext_value
        self.listener = handler

    def scan(self, buf, j, n):
        """Records j..n-1 of buf; the first left for Python (see C_WHY), or n."""
        # (viper takes any buffer as a pointer: pyright ignores the arguments)
        return _scan(buf, self.st, j, n, self.ctx, self.tab, buf, self.stage, self.p, self.acc, self.dec, self.rate, self.values, self.ck)  # pyright: ignore[reportArgumentType]
