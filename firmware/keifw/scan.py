"""The frame scanner: one viper call walks a whole block of stream records.

Per frame: the firmware clock (on a virtual clock, the records' timestamps
with discontinuities absorbed), message lookup (a 2048-entry table for
11-bit ids, a short list for 29-bit ones), the DLC, CHECKSUM and decode in
one call to the generated ``decode_at``, the COUNTER, the validity
bookkeeping (validity.STRIDE layout) and the economy integration
(economy.P_* layout), all in exact integers below 2**31: the same figures
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
# message's frames are not decoded)
R_STRIDE = const(4)
R_LIMIT = const(2)
R_FLOODED = const(3)
RATE_WINDOW_US = const(1000000)

# tab (bytearray): message index + 1 by 11-bit id (0: unknown, LISTENED: a
# listener's), then per message its DLC, then its economy handler kind
T_LEN = const(2048)
LISTENED = const(255)
# the index _scan sees for a listener's frame (a 29-bit one is matched by mask)
_I_LISTENED = const(254)


@micropython.viper
def _scan(buf: ptr8, st: ptr32, j: int, n: int, ctx: ptr32, tab: ptr8, bufo, valo, p: ptr32, acc: ptr32, dec,
          rate: ptr32) -> int:
    """Process stream records j..n-1 of buf (bufo: the same buffer, passed
    on to the decoder); returns the index of the first record left for
    Python (ctx[C_WHY] says why), n when all are done. The record buffer
    and the validity words come first: viper keeps its first three locals
    in registers on a Cortex-M, the rest on the stack.
    Words read back from int arrays are zero-extended on 64-bit ports:
    values that may be negative are range-checked or sign-fixed before use.
    """
    values = ptr32(valo)
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
        r = i * 4
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
        # bad: 1 before decoding (wrong DLC or CHECKSUM: not decoded, and the
        # next frame's COUNTER is the new reference), 2 a COUNTER that did
        # not advance by one
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
            p[20] += 1
            continue
        elif int(dec(i, bufo, o + 16, valo)) < 0:
            bad = 1
        else:
            cs = st[b + 3]
            if cs >= 0 and cs < 0x10000:
                c = values[cs]
                prev = st[b + 2]
                st[b + 2] = c
                resync = st[b + 11]
                st[b + 11] = 0
                if st[b + 6] and not resync and c != ((prev + 1) & st[b + 4]):
                    bad = 2
        if bad:
            # validity.mark_bad's bookkeeping, inline: a viper call passing a
            # pointer boxes the address on a 32-bit board, an allocation per
            # bad frame
            if bad == 1:
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
        if st[b + 6]:
            d = ((t - st[b] + 0x20000000) & 0x3FFFFFFF) - 0x20000000
            if d < 0 or d > st[b + 5]:
                d = 0  # a gap over the timeout adds nothing
        else:
            st[b + 6] = 1
        st[b] = t
        if not st[b + 7]:
            continue
        # valid: time since the previous good frame in 100 us units, the
        # sub-100 us part carried per message
        d += st[b + 1]
        d100 = d // 100
        st[b + 1] = d - d100 * 100
        h = tab[2048 + nm + i]
        if h == 0:
            continue
        # economy: acc pair k (and k2) += x, remainder below div
        k = -1
        k2 = -1
        x = 0
        div = 1
        if h == 1:  # speed: distance; stopped below 1 km/h
            raw = values[p[0]]
            if (raw >> 31) == 1:  # zero-extended negative (64-bit port)
                raw -= (raw >> 31) << 16 << 16
            if d100 and p[19]:
                # faster than a car changes speed since the previous frame:
                # neither integrated nor seen by the tick (economy.P_DV_*)
                lim = d100 * p[17] // 1000 + p[18]
                dv = raw - p[16]
                if dv < 0:
                    dv = 0 - dv
                if dv > lim:
                    # consecutive rejects that agree with each other: after
                    # SPEED_RESYNC_FRAMES (25) they are the new reference
                    dr = raw - p[22]
                    if dr < 0:
                        dr = 0 - dr
                    p[21] = p[21] + 1 if dr <= lim else 1
                    p[22] = raw
                    if p[21] < 25:
                        values[p[0]] = p[16]
                        p[20] += 1
                        continue
            p[21] = 0
            p[16] = raw
            p[19] = 1
            p[14] = 1 if raw < p[3] else 0
            if d100 and p[15]:
                k = 0
                x = raw * p[1] * d100
                div = p[2]
        elif h == 2:  # fuel rate: fuel, and idle fuel while stopped
            x = values[p[4]]
            if (x >> 31) == 1:
                x -= (x >> 31) << 16 << 16
            # more than the engine can burn, or fuel with the engine at rest
            # (economy.P_FUEL_*): not integrated, counted
            sr = p[24]
            sv = p[26]
            if x > p[23] or (x > 0 and sr >= 0 and sr < 0x10000 and values[sr] == 0
                             and sv >= 0 and sv < 0x1000000 and st[sv]):
                p[20] += 1
                if p[25] < 255:
                    p[25] += 1
                continue
            p[25] = 0
            if d100:
                k = 2
                x = x * p[5] * d100
                div = p[6]
                if p[14] and p[15]:
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
    """The scanner's tables for one vehicle module, and its calls."""

    def __init__(self, gen, values, val, econ, kinds):
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
        for i in range(n):
            c = gen.MSG_CYCLE_MS[i]
            rate[R_STRIDE * i + R_LIMIT] = 2 * RATE_WINDOW_US // 1000 // c if c > 0 else 0
        self.rate = rate
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
        return _scan(buf, self.st, j, n, self.ctx, self.tab, buf, self.values, self.p, self.acc, self.dec, self.rate)  # pyright: ignore[reportArgumentType]  (viper: any buffer is a pointer)
