"""Compiled book + signal kernel over columnar events (:mod:`bot.fast.columnar`).

It is the readable :class:`~bot.book.book.OrderBook` and :class:`~bot.signals.features.SignalEngine`
rewritten over flat arrays, statement for statement where the result depends on it.

Book: a dense price ladder over the stream's distinct prices. Prices arrive as ranks into the
sorted table of every price the stream uses (``EventArrays.prices``), so each side is one array
``size[rank]`` (0.0 = no level) plus the best rank, the level count and an occupancy bitmap
(one bit per rank). Set, delete and the best are O(1); the next level after the best (when the
best goes, or to read the top N) is found a 64-bit word at a time with count-leading/trailing-
zeros, so empty ranks between levels cost nothing per rank. Every level is kept,
however far from the touch (the BTCUSDT recording has levels from 15k to 200k USDT), so top-N
results, paper fills walking the book and crossing checks are exact: there is no window and no
level is ever ignored. Memory is two float arrays of R entries (R = distinct prices: 45k for the
recording), fixed for the whole run. Ranks are monotone in price, so comparisons of ranks are
comparisons of the original float prices.

Update rules are those of ``OrderBook.apply``: snapshots replace, deltas set absolute sizes (a
size that is not > 0, NaN included, deletes), a BestBidAsk newer than the depth sequence is
overlaid (better levels removed, the best level set) and re-overlaid after an older delta,
BookInvalidated puts the book in RESYNC (deltas and bbos ignored until a snapshot), and a book
whose best bid >= best ask is CROSSED.

Signals: the same floating-point operations in the same order as ``SignalEngine.update``: OFI
terms ``e`` built with the same four conditional adds, appended when non-zero, a running sum
with the same removals when a term leaves the window (``ts <= now - window_ns``) and the same
reset to 0.0 when the window empties; book imbalance as ``sum w[i] * size_i`` level by level;
mid, spread, microprice offset and the weighted score with the same parenthesisation. Numba
compiles without fastmath, so LLVM neither reassociates nor contracts to FMA, and ``math.tanh``
calls the same C library function as CPython: the results are bit-identical (the equivalence
test checks them on the real recording; decisions must match exactly). The trade-flow and depth
features (``trade_imbalance``, ``vwap``/``vwap_deviation``/``vwap_deviation_z``,
``depth_depletion`` per side and signed) follow the same rule in :mod:`bot.fast.flow_kernel`:
trades enter their windows where ``Engine.on_event`` calls ``signals.observe``, and the flow
features' weights in the score are added term by term as ``SignalEngine`` adds them.

State lives in plain arrays (``I`` integers, ``F`` floats, the two sides, the OFI ring, the flow
windows' rings), so a
run can stop at any event, let Python look at the book, and resume.
"""

from __future__ import annotations

import math

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from bot.book.book import REANCHOR_SNAPSHOTS

from bot.fast import flow_kernel as FK
from bot.fast.jitopts import jit, jit_inline  # the compile options and why

SNAPSHOT, DELTA, BBO, TRADE, INVALIDATED = 0, 1, 2, 3, 4
SOUND, RESYNC, CROSSED, IMPLAUSIBLE = 0, 1, 2, 3

# integer state slots
I_NB = 0  # bid levels
I_NA = 1  # ask levels
I_STATUS = 2
I_DEPTH_SEQ = 3
I_HAS_BBO = 4
I_BBO_SEQ = 5
I_BBO_BID = 6  # rank
I_BBO_ASK = 7
I_LAST_TS = 8  # book.last_update_ts
I_CROSSED = 9  # book.crossed_events
I_RESYNCS = 10
I_UPDATES = 11  # book.updates
I_HAS_PREV = 12  # SignalEngine._prev is not None
I_HEAD = 13  # OFI ring head
I_COUNT = 14  # OFI ring length
I_VALID = 15  # state.valid
I_CHANGED = 16  # last event changed the book (OrderBook.apply's return)
I_CHANGED_TOTAL = 17  # engine.stats.book_updates
I_SIG_TS = 18  # state.ts
I_EVENTS = 19  # events applied
I_BB = 20  # best bid rank (-1: none)
I_BA = 21  # best ask rank (R: none)
I_IMPLAUSIBLE = 22  # book.implausible_events
I_PENDING = 23  # book._pending_count
I_REANCHORS = 24  # book.reanchors
I_FLOW = 25  # the flow windows and depth state (bot.fast.flow_kernel WI_ slots)
I_SIZE = I_FLOW + FK.WI_SIZE

# float state slots
F_BBO_BQ = 0
F_BBO_AQ = 1
F_PB = 2
F_PBQ = 3
F_PA = 4
F_PAQ = 5
F_OFI_SUM = 6
F_OBI = 7
F_OFI = 8
F_MICRO = 9
F_MID = 10
F_SPREAD = 11
F_SCORE = 12
F_LAST_MID = 13  # mid of the last valid state (engine.last_mid)
F_REF_MID = 14  # book.ref_mid: the last sound mid (NaN: none yet)
F_BAND = 15  # book.price_band (inf: no band)
F_PENDING_REF = 16  # book._pending_ref
F_FLOW = 17  # the flow sums, depth means and flow features (bot.fast.flow_kernel WF_ slots)
F_SIZE = F_FLOW + FK.WF_SIZE

# parameter slots
PF_W_OBI, PF_W_OFI, PF_W_MICRO, PF_OFI_SCALE = 0, 1, 2, 3
PF_TAU_NS = 4  # DepthDepletion.tau_ns
PF_W_FLOW = 5  # weights of trade_imbalance, vwap_deviation, depth_depletion in the score
PF_SIZE = 8
PI_LEVELS, PI_WINDOW_NS, PI_RING_MASK = 0, 1, 2
PI_EXTRA = 3  # FK.X_ bits: the flow features with a weight in the score
PI_FLOW_ON = 4  # 1: compute the flow features (0: nothing reads them, trades and flow skipped)
PI_FLOW = 5  # the flow windows' lengths and ring segments (FK.WP_ slots)
PI_SIZE = PI_FLOW + FK.WP_SIZE

# output flag bits of run_signals
OUT_CHANGED, OUT_SOUND, OUT_VALID = 1, 2, 4
# rows of run_signals' float output
OUT_ROWS = ("book_imbalance", "ofi", "microprice_offset", "mid", "spread", "score", *FK.FLOW_ROWS)


# --------------------------------------------------------------------------- book
_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@jit_inline
def next_below(bits, r):
    """Highest rank < r holding a level, or -1 (one 64-bit word of the occupancy bitmap at a time)."""
    if r <= 0:
        return -1
    j = r - 1
    wi = j >> 6
    w = bits[wi] & (_ALL >> np.uint64(63 - (j & 63)))
    while True:
        if w != 0:
            return (wi << 6) + 63 - np.int64(leading_zeros(w))
        wi -= 1
        if wi < 0:
            return -1
        w = bits[wi]


@jit_inline
def next_above(bits, r, n):
    """Lowest rank > r holding a level, or n (the number of ranks)."""
    j = r + 1
    if j >= n:
        return n
    wi = j >> 6
    last = bits.shape[0]
    w = bits[wi] & (_ALL << np.uint64(j & 63))
    while True:
        if w != 0:
            return (wi << 6) + np.int64(trailing_zeros(w))
        wi += 1
        if wi >= last:
            return n
        w = bits[wi]


@jit
def _bid_set(bsz, bbits, I, r, s):
    """OrderBook._set_levels for one bid level."""
    if s > 0.0:
        if not bsz[r] > 0.0:
            I[I_NB] += 1
            bbits[r >> 6] |= _ONE << np.uint64(r & 63)
            if r > I[I_BB]:
                I[I_BB] = r
        bsz[r] = s
    elif bsz[r] > 0.0:
        bsz[r] = 0.0
        I[I_NB] -= 1
        bbits[r >> 6] &= ~(_ONE << np.uint64(r & 63))
        if r == I[I_BB]:
            I[I_BB] = next_below(bbits, r)


@jit
def _ask_set(asz, abits, I, r, s):
    """OrderBook._set_levels for one ask level."""
    if s > 0.0:
        if not asz[r] > 0.0:
            I[I_NA] += 1
            abits[r >> 6] |= _ONE << np.uint64(r & 63)
            if r < I[I_BA]:
                I[I_BA] = r
        asz[r] = s
    elif asz[r] > 0.0:
        asz[r] = 0.0
        I[I_NA] -= 1
        abits[r >> 6] &= ~(_ONE << np.uint64(r & 63))
        if r == I[I_BA]:
            I[I_BA] = next_above(abits, r, asz.shape[0])


@jit
def _overlay(bsz, bbits, asz, abits, I, bid_r, bid_sz, ask_r, ask_sz):
    while I[I_NB] > 0 and I[I_BB] > bid_r:
        _bid_set(bsz, bbits, I, I[I_BB], 0.0)
    while I[I_NA] > 0 and I[I_BA] < ask_r:
        _ask_set(asz, abits, I, I[I_BA], 0.0)
    _bid_set(bsz, bbits, I, bid_r, bid_sz)
    _ask_set(asz, abits, I, ask_r, ask_sz)


@jit_inline
def _touched(I, F, ptab, ts, fresh):
    I[I_LAST_TS] = ts
    I[I_UPDATES] += 1
    if I[I_NB] > 0 and I[I_NA] > 0:
        if I[I_BB] >= I[I_BA]:
            if I[I_STATUS] != CROSSED:
                I[I_CROSSED] += 1
            I[I_STATUS] = CROSSED
            return
        mid = (ptab[I[I_BB]] + ptab[I[I_BA]]) * 0.5
        ref = F[F_REF_MID]
        band = F[F_BAND]
        if abs(mid - ref) > band * ref:  # False while ref is NaN
            if fresh:  # OrderBook._touched: fresh snapshots in a row may move the reference
                pending = F[F_PENDING_REF]
                if abs(mid - pending) <= band * pending:
                    I[I_PENDING] += 1
                else:
                    I[I_PENDING] = 1
                F[F_PENDING_REF] = mid
                if I[I_PENDING] >= REANCHOR_SNAPSHOTS:
                    I[I_REANCHORS] += 1
                    I[I_PENDING] = 0
                    F[F_PENDING_REF] = np.nan
                    F[F_REF_MID] = mid
                    I[I_STATUS] = SOUND
                    return
            if I[I_STATUS] != IMPLAUSIBLE:
                I[I_IMPLAUSIBLE] += 1
            I[I_STATUS] = IMPLAUSIBLE
            return
        if fresh:
            I[I_PENDING] = 0
            F[F_PENDING_REF] = np.nan
        F[F_REF_MID] = mid
    I[I_STATUS] = SOUND


@jit
def _clear(bsz, bbits, asz, abits, I):
    bsz[:] = 0.0
    bbits[:] = 0
    asz[:] = 0.0
    abits[:] = 0
    I[I_NB] = 0
    I[I_NA] = 0
    I[I_BB] = -1
    I[I_BA] = asz.shape[0]


@jit_inline
def _apply(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, I, F, ptab):
    """OrderBook.apply(event i); returns True when the levels may have changed."""
    k = kind[i]
    t = ts[i]
    if k == BBO:
        if I[I_STATUS] == RESYNC:
            return False
        q = seq[i]
        if q != 0 and q <= I[I_DEPTH_SEQ]:
            return False
        j = off[i]
        I[I_HAS_BBO] = 1
        I[I_BBO_SEQ] = q
        I[I_BBO_BID] = lvl[j]
        I[I_BBO_ASK] = lvl[j + 1]
        F[F_BBO_BQ] = sz[j]
        F[F_BBO_AQ] = sz[j + 1]
        _overlay(bsz, bbits, asz, abits, I, lvl[j], sz[j], lvl[j + 1], sz[j + 1])
        _touched(I, F, ptab, t, False)
        return True
    if k == TRADE:
        return False
    if k == DELTA:
        if I[I_STATUS] == RESYNC:
            return False
        lo = off[i]
        mid = lo + nbid[i]
        hi = off[i + 1]
        for j in range(lo, mid):
            _bid_set(bsz, bbits, I, lvl[j], sz[j])
        for j in range(mid, hi):
            _ask_set(asz, abits, I, lvl[j], sz[j])
        if seq[i] != 0:
            I[I_DEPTH_SEQ] = seq[i]
        if I[I_HAS_BBO] != 0 and I[I_BBO_SEQ] > I[I_DEPTH_SEQ]:
            _overlay(bsz, bbits, asz, abits, I, I[I_BBO_BID], F[F_BBO_BQ], I[I_BBO_ASK], F[F_BBO_AQ])
        _touched(I, F, ptab, t, False)
        return True
    if k == SNAPSHOT:
        _clear(bsz, bbits, asz, abits, I)
        lo = off[i]
        mid = lo + nbid[i]
        hi = off[i + 1]
        for j in range(lo, mid):
            _bid_set(bsz, bbits, I, lvl[j], sz[j])
        for j in range(mid, hi):
            _ask_set(asz, abits, I, lvl[j], sz[j])
        I[I_DEPTH_SEQ] = seq[i]
        I[I_HAS_BBO] = 0
        fresh = I[I_STATUS] == RESYNC
        I[I_STATUS] = SOUND
        _touched(I, F, ptab, t, fresh)
        return True
    if k == INVALIDATED:
        if I[I_STATUS] != RESYNC:
            I[I_RESYNCS] += 1
        I[I_STATUS] = RESYNC
        return True
    raise ValueError("unknown event kind")


@jit_inline
def _is_sound(I):
    return I[I_STATUS] == SOUND and I[I_NB] > 0 and I[I_NA] > 0


@jit
def top_levels(sz, bits, start, n, down, out_r):
    """Ranks of up to ``n`` levels beyond rank ``start`` (exclusive), nearest first: below it
    for bids (``down``), above it for asks. From the touch: ``start = best + 1`` (bids) or
    ``best - 1`` (asks). Returns the count written to ``out_r``."""
    limit = sz.shape[0]
    r = next_below(bits, start) if down else next_above(bits, start, limit)
    m = 0
    while m < n and 0 <= r < limit:
        out_r[m] = r
        m += 1
        if m < n:
            r = next_below(bits, r) if down else next_above(bits, r, limit)
    return m


# --------------------------------------------------------------------------- signals
@jit
def _reset_signals(I, F):
    I[I_COUNT] = 0
    I[I_HEAD] = 0
    I[I_HAS_PREV] = 0
    F[F_OFI_SUM] = 0.0
    F[F_OBI] = 0.0
    F[F_OFI] = 0.0
    F[F_MICRO] = 0.0
    F[F_MID] = np.nan
    F[F_SPREAD] = np.nan
    F[F_SCORE] = 0.0
    FK.reset_flow(I, I_FLOW, F, F_FLOW)


@jit_inline
def _update_signals(bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi, t):
    """SignalEngine.update(book, t)."""
    I[I_SIG_TS] = t
    if not _is_sound(I):
        if I[I_HAS_PREV] != 0:
            _reset_signals(I, F)
        I[I_VALID] = 0
        return
    rb = I[I_BB]
    ra = I[I_BA]
    bid = ptab[rb]
    ask = ptab[ra]
    bq = bsz[rb]
    aq = asz[ra]

    mask = pi[PI_RING_MASK]
    if I[I_HAS_PREV] != 0:
        pb = F[F_PB]
        pbq = F[F_PBQ]
        pa = F[F_PA]
        paq = F[F_PAQ]
        e = 0.0
        if bid >= pb:
            e += bq
        if bid <= pb:
            e -= pbq
        if ask <= pa:
            e -= aq
        if ask >= pa:
            e += paq
        if e != 0.0:
            if I[I_COUNT] > mask:
                raise ValueError("OFI ring capacity exceeded")
            slot = (I[I_HEAD] + I[I_COUNT]) & mask
            rts[slot] = t
            re[slot] = e
            I[I_COUNT] += 1
            F[F_OFI_SUM] += e
    F[F_PB] = bid
    F[F_PBQ] = bq
    F[F_PA] = ask
    F[F_PAQ] = aq
    I[I_HAS_PREV] = 1
    horizon = t - pi[PI_WINDOW_NS]
    head = I[I_HEAD]
    count = I[I_COUNT]
    ofi_sum = F[F_OFI_SUM]
    while count > 0 and rts[head] <= horizon:
        ofi_sum -= re[head]
        head = (head + 1) & mask
        count -= 1
    if count == 0:
        ofi_sum = 0.0
    I[I_HEAD] = head
    I[I_COUNT] = count
    F[F_OFI_SUM] = ofi_sum

    levels = pi[PI_LEVELS]
    b_sum = 0.0
    b_depth = 0.0
    r = rb
    for j in range(levels):
        b_sum += w[j] * bsz[r]
        b_depth += bsz[r]
        if j + 1 == levels:
            break
        r = next_below(bbits, r)
        if r < 0:
            break
    a_sum = 0.0
    a_depth = 0.0
    r = ra
    n_ranks = asz.shape[0]
    for j in range(levels):
        a_sum += w[j] * asz[r]
        a_depth += asz[r]
        if j + 1 == levels:
            break
        r = next_above(abits, r, n_ranks)
        if r >= n_ranks:
            break
    depth = b_sum + a_sum
    obi = (b_sum - a_sum) / depth if depth > 0.0 else 0.0

    spread = ask - bid
    mid = (bid + ask) * 0.5
    l1 = bq + aq
    micro = (bid * aq + ask * bq) / l1 if l1 > 0.0 else mid
    micro_off = (micro - mid) / (spread * 0.5) if spread > 0.0 else 0.0

    ofi_norm = math.tanh(ofi_sum / pf[PF_OFI_SCALE])
    F[F_OBI] = obi
    F[F_OFI] = ofi_sum
    F[F_MICRO] = micro_off
    F[F_MID] = mid
    F[F_SPREAD] = spread
    if pi[PI_FLOW_ON] != 0:
        FK.update_flow(t, mid, b_depth, a_depth, pf[PF_TAU_NS], I, I_FLOW, F, F_FLOW, wts, wv, part, pi, PI_FLOW)
    score = pf[PF_W_OBI] * obi + pf[PF_W_OFI] * ofi_norm + pf[PF_W_MICRO] * micro_off
    extra = pi[PI_EXTRA]
    if extra != 0:
        score = FK.add_flow_score(score, F, F_FLOW, pf, PF_W_FLOW, extra)
    F[F_SCORE] = score
    F[F_LAST_MID] = mid
    I[I_VALID] = 1


@jit_inline
def _step(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi):
    """Engine.on_event's book + signal part for event i; returns whether the book changed."""
    changed = _apply(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, I, F, ptab)
    I[I_EVENTS] += 1
    if not changed and kind[i] == TRADE and pi[PI_FLOW_ON] != 0:  # Engine.on_event: signals.observe(trade)
        j = off[i]
        FK.observe_trade(ts[i], ptab[lvl[j]], sz[j], nbid[i] != 0, I, I_FLOW, F, F_FLOW, wts, wv, part, pi, PI_FLOW)
    if changed:
        I[I_CHANGED] = 1
        I[I_CHANGED_TOTAL] += 1
        _update_signals(bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi, ts[i])
    else:
        I[I_CHANGED] = 0
    return changed


# --------------------------------------------------------------------------- runs
@jit
def run_signals(kind, ts, seq, off, nbid, lvl, sz, i0, i1, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi, out_flags, out_vals):
    """Apply events ``i0:i1``; write each event's flags and SignalState fields at ``i - i0``.

    ``out_flags``: OUT_CHANGED | OUT_SOUND | OUT_VALID bits; ``out_vals[r, i - i0]`` for the
    rows of OUT_ROWS. For an event that did not change the book the state is the previous one
    (the engine does not call ``SignalEngine.update`` then).
    """
    for i in range(i0, i1):
        _step(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi)
        o = i - i0
        flags = 0
        if I[I_CHANGED] != 0:
            flags |= OUT_CHANGED
        if _is_sound(I):
            flags |= OUT_SOUND
        if I[I_VALID] != 0:
            flags |= OUT_VALID
        out_flags[o] = flags
        out_vals[0, o] = F[F_OBI]
        out_vals[1, o] = F[F_OFI]
        out_vals[2, o] = F[F_MICRO]
        out_vals[3, o] = F[F_MID]
        out_vals[4, o] = F[F_SPREAD]
        out_vals[5, o] = F[F_SCORE]
        for r in range(FK.N_FLOW_ROWS):
            out_vals[6 + r, o] = F[F_FLOW + FK.WF_TRADE_IMBALANCE + r]


@jit
def run_count(kind, ts, seq, off, nbid, lvl, sz, i0, i1, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi, threshold):
    """Apply events ``i0:i1`` keeping only a summary (valid states, |score| >= threshold, score sum).

    Same work per event as :func:`run_signals` without the per-event output arrays.
    """
    n_valid = 0
    n_hot = 0
    total = 0.0
    for i in range(i0, i1):
        if _step(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi):
            if I[I_VALID] != 0:
                n_valid += 1
                s = F[F_SCORE]
                total += s
                if s >= threshold or s <= -threshold:
                    n_hot += 1
    return n_valid, n_hot, total


SEL_ALL, SEL_TRADES, SEL_BOOK = 0, 1, 2  # which events max_in_window counts


@jit
def max_in_window(ts, kind, sel, window_ns, i0, i1, st):
    """Most events with timestamps in any window ``(t - window_ns, t]``: bounds a ring (the OFI
    terms, and the flow windows: ``sel`` SEL_TRADES counts trades only, SEL_BOOK the other events).

    Over events ``i0:i1``, resumed from ``st`` = (best so far, window start ``j``, selected events
    in ``j..i``) and updated in place, so that a caller can run it in chunks over a mapped ``ts``
    and release the pages behind ``j`` (:func:`bot.fast.sizing.max_in_window`). Returns -1 when the
    timestamps ever go back (the bound does not hold then), else the best so far."""
    best = st[0]
    j = st[1]
    c = st[2]
    for i in range(i0, i1):
        if i > 0 and ts[i] < ts[i - 1]:
            return -1
        if sel == SEL_ALL or (kind[i] == TRADE) == (sel == SEL_TRADES):
            c += 1
        h = ts[i] - window_ns
        while j < i and ts[j] <= h:
            if sel == SEL_ALL or (kind[j] == TRADE) == (sel == SEL_TRADES):
                c -= 1
            j += 1
        if c > best:
            best = c
    st[0] = best
    st[1] = j
    st[2] = c
    return best


# --------------------------------------------------------------------------- pipeline scan
# integer parameters of run_scan (copied from the engine's Python objects before each call)
S_ENGINE_SOUND = 0  # engine.sound_seen
S_STOP_ALL = 1  # 1: stop at every event (venue state the scan cannot model)
S_PENDING = 2  # venue.has_pending: no decisions, no marks
S_DUE = 3  # earliest due time of the venue's pending work (orders, cancels)
S_FLAT = 4
S_SIGN = 5  # +1 long, -1 short
S_EVERY = 6  # the strategy or the risk manager may act on any mark (their wake's every_event)
S_DAY_END = 7  # RiskWake.day_end
S_WAKE_NOT_BEFORE = 8  # Wake.not_before
S_WAKE_DEADLINE = 9  # Wake.deadline (-1: none)
S_NEXT_EQUITY = 10  # in/out: engine.next_equity_ts
S_EQUITY_INTERVAL = 11
S_NSAMPLES = 12  # out: equity samples written
S_SPREAD_N = 13  # in/out: engine.spread_n
S_ENGINE_STATUS = 14  # engine.status_seen, as a kernel status code
S_MIDS_DUE = 15  # Markouts.next_due: the engine hands the first mid at or after it to the markouts (NEVER: none)
S_FUNDING_NEXT = 16  # FundingClock.next_ts: the engine looks at funding at the first event at or after it (NEVER: spot)
S_WAKE_FEATURE = 17  # F slot of Wake.feature (-1: none)
S_NBANDS = 18  # how many of Wake.bands (at most MAX_BANDS)
S_BAND_SLOT = 19  # ... the F slot of each band's field (MAX_BANDS slots)
MAX_BANDS = 10
S_NREST = S_BAND_SLOT + MAX_BANDS  # the paper venue's resting orders the scan watches (at most MAX_RESTING)
S_REST = S_NREST + 1  # per resting order: 1 for a buy, and the rank of its price (-1: a price the stream never shows)
MAX_RESTING = 2
S_ISIZE = S_REST + 2 * MAX_RESTING
# float parameters
SF_CASH = 0  # float(portfolio.equity_cash)
SF_QTY = 1  # float(portfolio.equity_qty)
SF_PEAK = 2  # in/out: risk.peak_equity
SF_PEAK_FRACTION = 3  # RiskWake.peak_fraction
SF_DAY_FLOOR = 4  # RiskWake.day_floor
SF_EXIT_FLOOR = 5  # RiskWake.exit_floor, widened up by two ulps (a superset of the Decimal comparison)
SF_EXIT_CAP = 6  # RiskWake.exit_cap, widened down by two ulps
SF_WAKE_ABOVE = 7  # Wake.score_above
SF_WAKE_BELOW = 8  # Wake.score_below
SF_SPREAD_SUM = 9  # in/out: engine.spread_sum (sum of spread / mid over valid states, in order)
SF_MID_BEFORE = 10  # out: the last valid mid before the returned event (engine.last_mid when it starts on it)
SF_INV = 11  # float(portfolio.equity_inv): an inverse position's term of equity (divided by the mark)
SF_LIQ_BELOW = 12  # RiskWake.liquidation_below: a mid at or below it may liquidate the position
SF_LIQ_ABOVE = 13  # RiskWake.liquidation_above
SF_WAKE_FEATURE_ABOVE = 14  # Wake.feature_above
SF_WAKE_FEATURE_BELOW = 15  # Wake.feature_below
SF_BAND_BELOW = 16  # each band's lower bound (MAX_BANDS slots), then its upper bound
SF_BAND_ABOVE = SF_BAND_BELOW + MAX_BANDS
SF_REST = SF_BAND_ABOVE + MAX_BANDS  # per resting order: its price, and the band its level's size holds in (inclusive)
SF_FSIZE = SF_REST + 3 * MAX_RESTING

NEVER = np.iinfo(np.int64).max

DAY_NS = 86_400 * 1_000_000_000


@jit_inline
def _equity(sf, mid):
    """``Portfolio.equity(mid)`` with the same float operations: ``cash + qty * mid`` (spot, linear)
    or ``cash + inv / mid`` (inverse, when its term is not zero)."""
    inv = sf[SF_INV]
    if inv != 0.0:
        return sf[SF_CASH] + inv / mid
    return sf[SF_CASH] + sf[SF_QTY] * mid


@jit
def _must_stop(I, F, t, sound, changed, si, sf):
    """True when Engine.on_event could do anything at this event besides what the scan reproduces.

    What the scan reproduces for a skipped event: the book and signals, ``last_mid``, the
    engine's spread accumulator, the equity sample (``now >= next_equity_ts``) and the
    peak-equity mark of ``RiskManager.on_mark``. The decisions are not copied here: the scan
    stops wherever the risk manager (:meth:`RiskManager.wake`) or the strategy
    (:meth:`Strategy.wake`) said it could act, at a perpetual's funding time and where the
    modelled liquidation could hit, and Python runs the readable engine on that event. The
    conditions are a superset: stopping too often costs time, never correctness.
    """
    if si[S_STOP_ALL] != 0:
        return True
    if t >= si[S_FUNDING_NEXT]:
        return True  # Engine._funding: a funding payment may be due (a few times a day)
    if sound != (si[S_ENGINE_SOUND] != 0) or I[I_STATUS] != si[S_ENGINE_STATUS]:
        return True  # _soundness_changed (also a new reason to be unsound)
    if si[S_DUE] >= 0 and sound and t >= si[S_DUE]:
        return True  # venue.on_book executes due work (nothing happens while unsound or not due)
    if not changed or I[I_VALID] == 0:
        return False
    if si[S_FLAT] == 0:
        mid = F[F_MID]  # RiskManager.liquidation_hit, as the wake publishes it (checked even with work in flight)
        if mid <= sf[SF_LIQ_BELOW] or mid >= sf[SF_LIQ_ABOVE]:
            return True
    if t >= si[S_MIDS_DUE]:
        return True  # Markouts.on_mid takes this mid for a maker fill's 1 s / 10 s markout
    if si[S_PENDING] != 0:
        return False  # no decision while work is in flight (only the equity sample)
    if si[S_EVERY] != 0:
        return True
    # RiskManager.on_mark, as its wake publishes it; the peak is tracked (it only raises the floor)
    equity = _equity(sf, F[F_MID])
    peak = sf[SF_PEAK]
    if equity > peak:
        peak = equity
    if t >= si[S_DAY_END]:
        return True
    if equity < peak * sf[SF_PEAK_FRACTION] or equity < sf[SF_DAY_FLOOR]:
        return True
    if si[S_FLAT] == 0:
        # the exit side's price: F_PB/F_PA hold this event's best bid/ask (stored as "previous")
        price = F[F_PB] if si[S_SIGN] > 0 else F[F_PA]
        if price <= sf[SF_EXIT_FLOOR] or price >= sf[SF_EXIT_CAP]:
            return True
    # the strategy, as its wake publishes it (score bands, the band of the one feature it names)
    if si[S_WAKE_DEADLINE] >= 0 and t >= si[S_WAKE_DEADLINE]:
        return True
    if t < si[S_WAKE_NOT_BEFORE]:
        return False
    score = F[F_SCORE]
    if score >= sf[SF_WAKE_ABOVE] or score <= sf[SF_WAKE_BELOW]:
        return True
    slot = si[S_WAKE_FEATURE]
    if slot >= 0:
        x = F[slot]
        if x >= sf[SF_WAKE_FEATURE_ABOVE] or x <= sf[SF_WAKE_FEATURE_BELOW]:
            return True
    for b in range(si[S_NBANDS]):  # Wake.bands: the answer holds while each value stays strictly inside (NaN: outside)
        x = F[si[S_BAND_SLOT + b]]
        if not (x > sf[SF_BAND_BELOW + b] and x < sf[SF_BAND_ABOVE + b]):
            return True
    return False


@jit_inline
def _resting_moved(i, kind, off, nbid, lvl, bsz, asz, ptab, I, si, sf):
    """Could ``PaperVenue._match_resting`` change a resting order at event i (the book sound)?
    As the venue publishes it (``PaperVenue.resting_wake``): the other side's best price at or
    through the order's, a trade by the side that hits it at or through its price, or (any other
    event) the size at its price outside the band that leaves its queue as it is."""
    trade = kind[i] == TRADE
    for q in range(si[S_NREST]):
        buy = si[S_REST + 2 * q] != 0
        rank = si[S_REST + 2 * q + 1]
        price = sf[SF_REST + 3 * q]
        if buy:
            if ptab[I[I_BA]] <= price:
                return True
        elif ptab[I[I_BB]] >= price:
            return True
        if trade and (nbid[i] == 0) == buy:  # a sell aggressor hits bids, a buy aggressor asks
            tp = ptab[lvl[off[i]]]
            if (tp <= price) if buy else (tp >= price):
                return True
            continue  # a hitting trade short of our price: the venue leaves the order alone
        level = 0.0
        if rank >= 0:
            level = bsz[rank] if buy else asz[rank]
        if not (level >= sf[SF_REST + 3 * q + 1] and level <= sf[SF_REST + 3 * q + 2]):
            return True
    return False


@jit
def run_scan(kind, ts, seq, off, nbid, lvl, sz, i0, i1, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi, si, sf, smp_ts, smp_mid):
    """Apply events from ``i0`` until one needs the engine; return its index (``i1`` if none).

    The returned event has been applied (book and signals) but none of its engine effects
    (spread accumulator, equity sample, peak mark) are taken: the engine does them; the mid
    before it is in ``sf[SF_MID_BEFORE]`` (what ``engine.last_mid`` is when the engine starts on
    it: a fill's markout is taken against it). For skipped
    events the equity samples go to ``smp_ts``/``smp_mid`` (``si[S_NSAMPLES]`` of them, from 0),
    the peak to ``sf[SF_PEAK]`` and the spread sum and count to ``sf[SF_SPREAD_SUM]`` and
    ``si[S_SPREAD_N]``.
    """
    ns = 0
    interval = si[S_EQUITY_INTERVAL]
    for i in range(i0, i1):
        before = F[F_LAST_MID]
        changed = _step(kind, ts, seq, off, nbid, lvl, sz, i, bsz, bbits, asz, abits, ptab, I, F, rts, re, wts, wv, part, w, pf, pi)
        t = ts[i]
        sound = _is_sound(I)
        if _must_stop(I, F, t, sound, changed, si, sf) or (sound and si[S_NREST] > 0 and _resting_moved(i, kind, off, nbid, lvl, bsz, asz, ptab, I, si, sf)):
            si[S_NSAMPLES] = ns
            sf[SF_MID_BEFORE] = before
            return i
        if changed and I[I_VALID] != 0:
            sf[SF_SPREAD_SUM] += F[F_SPREAD] / F[F_MID]
            si[S_SPREAD_N] += 1
            if t >= si[S_NEXT_EQUITY]:
                smp_ts[ns] = t
                smp_mid[ns] = F[F_MID]
                ns += 1
                si[S_NEXT_EQUITY] = t - t % interval + interval
            if si[S_PENDING] == 0:
                equity = _equity(sf, F[F_MID])
                if equity > sf[SF_PEAK]:
                    sf[SF_PEAK] = equity
    si[S_NSAMPLES] = ns
    return i1
