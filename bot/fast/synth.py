"""A seeded synthetic L2 stream, generated directly in columnar form (for benchmarks and tests).

Shaped like the Binance raw streams the reader produces, not calibrated to them: a true book
on an integer tick grid evolves by random changes and the stream reports it the way Binance
does. Each step is one of (probabilities per step)

    0.50  touch update     the best bid or ask level gets a new size     -> BestBidAsk
    0.15  trade            an aggressor takes part or all of the opposite best level
                           (a level taken whole moves the best)           -> Trade, BestBidAsk
    0.15  deep change      a level 1..40 ticks behind the touch (1% of them 100..5000 ticks
                           away) gets a new size or is cancelled          -> (next delta)
    0.05  inside spread    a new best level inside a spread wider than one tick, else a new
                           level behind the touch                         -> BestBidAsk
    0.08  depth diff       every level changed since the last diff, at its current size
                           (0 = deleted), ``last_seq`` = current update id -> BookDelta
    0.07  touch cancelled  the best level of one side is removed           -> BestBidAsk

and a spread wider than one tick is refilled (an inside-spread step) with probability
``0.2 * (spread_ticks - 1)`` per step, so the spread stays near one or two ticks.

Every change takes the next update id, so bookTicker ids and diff ids interleave as on Binance
(the book overlays a bookTicker newer than the depth it holds and re-overlays it after an older
diff). A diff also goes out once 64 levels are pending. Sizes are whole lots (1e-5) drawn from a
lognormal (median 0.05), inter-event gaps exponential (mean ``gap_ms``). The stream starts with a
snapshot of 200 levels a side and by default at 2024-08-08 23:00 UTC, so a long stream crosses
UTC midnight (a risk-day roll). The same ``seed`` gives the same stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bot.fast.columnar import BBO, DELTA, SNAPSHOT, TRADE, EventArrays

DEFAULT_START_NS = 1_723_158_000_000_000_000  # 2024-08-08 23:00:00 UTC
WINDOW = 1 << 18  # ticks of the generator's dense book
MAX_DIRTY = 64


@njit(cache=True)
def _size():
    lots = int(np.random.lognormal(np.log(5000.0), 1.0))
    return max(lots, 1)


@njit(cache=True)
def _generate(n, seed, start_ns, gap_ns, start_tick, kind, ts, seq, off, nbid, tick, sz):
    np.random.seed(seed)
    W = WINDOW
    base = start_tick - W // 2
    bq = np.zeros(W, dtype=np.int64)  # lots per tick, bids
    aq = np.zeros(W, dtype=np.int64)
    dirty_b = np.zeros(W, dtype=np.uint8)
    dirty_a = np.zeros(W, dtype=np.uint8)
    dlist = np.zeros(4 * MAX_DIRTY, dtype=np.int64)  # tick * 2 + side (0 bid, 1 ask)
    nd = 0
    b = W // 2  # best bid index
    a = b + 1  # best ask index
    for k in range(200):
        bq[b - k] = _size()
        aq[a + k] = _size()
    uid = 1000
    t = start_ns
    L = tick.shape[0]
    pos = 0
    # snapshot
    kind[0] = SNAPSHOT
    ts[0] = t
    seq[0] = uid
    off[0] = 0
    nbid[0] = 200
    for k in range(200):
        tick[pos] = base + b - k
        sz[pos] = bq[b - k] / 1e5
        pos += 1
    for k in range(200):
        tick[pos] = base + a + k
        sz[pos] = aq[a + k] / 1e5
        pos += 1
    off[1] = pos
    e = 1
    while e < n:
        if pos + 2 * MAX_DIRTY + 4 > L:
            return e, pos
        t += int(np.random.exponential(gap_ns)) + 1
        r = np.random.random()
        if a - b > 1 and np.random.random() < 0.2 * (a - b - 1):
            r = 0.84  # refill a wide spread: inside-spread step
        emit_bbo = False
        if r < 0.50:  # touch update
            if np.random.random() < 0.5:
                bq[b] = _size()
                if dirty_b[b] == 0:
                    dirty_b[b] = 1
                    dlist[nd] = b * 2
                    nd += 1
            else:
                aq[a] = _size()
                if dirty_a[a] == 0:
                    dirty_a[a] = 1
                    dlist[nd] = a * 2 + 1
                    nd += 1
            uid += 1
            emit_bbo = True
        elif r < 0.65:  # trade
            buy = np.random.random() < 0.5
            want = _size()
            uid += 1
            if buy:
                take = min(want, aq[a])
                px = a
                aq[a] -= take
                if dirty_a[a] == 0:
                    dirty_a[a] = 1
                    dlist[nd] = a * 2 + 1
                    nd += 1
                if aq[a] == 0:
                    j = a + 1
                    while j < W - 1 and aq[j] == 0:
                        j += 1
                    if aq[j] == 0:
                        aq[a + 1] = _size()
                        j = a + 1
                    a = j
            else:
                take = min(want, bq[b])
                px = b
                bq[b] -= take
                if dirty_b[b] == 0:
                    dirty_b[b] = 1
                    dlist[nd] = b * 2
                    nd += 1
                if bq[b] == 0:
                    j = b - 1
                    while j > 0 and bq[j] == 0:
                        j -= 1
                    if bq[j] == 0:
                        bq[b - 1] = _size()
                        j = b - 1
                    b = j
            kind[e] = TRADE
            ts[e] = t
            seq[e] = uid
            nbid[e] = 1 if buy else 0
            tick[pos] = base + px
            sz[pos] = take / 1e5
            pos += 1
            off[e + 1] = pos
            e += 1
            if e >= n:
                break
            emit_bbo = True
        elif r < 0.80:  # deep change
            if np.random.random() < 0.01:
                d = 100 + int(np.random.random() * 4900)
            else:
                d = 1 + int(np.random.exponential(6.0))
                if d > 40:
                    d = 40
            new = _size() if np.random.random() < 0.55 else 0
            if np.random.random() < 0.5:
                j = b - d
                if 0 < j:
                    bq[j] = new
                    if dirty_b[j] == 0:
                        dirty_b[j] = 1
                        dlist[nd] = j * 2
                        nd += 1
                    uid += 1
            else:
                j = a + d
                if j < W - 1:
                    aq[j] = new
                    if dirty_a[j] == 0:
                        dirty_a[j] = 1
                        dlist[nd] = j * 2 + 1
                        nd += 1
                    uid += 1
        elif r < 0.85:  # inside the spread, or behind the touch
            bid_side = np.random.random() < 0.5
            if bid_side:
                j = b + 1 if a - b > 1 else b - 1
                bq[j] = _size()
                if j > b:
                    b = j
                if dirty_b[j] == 0:
                    dirty_b[j] = 1
                    dlist[nd] = j * 2
                    nd += 1
            else:
                j = a - 1 if a - b > 1 else a + 1
                aq[j] = _size()
                if j < a:
                    a = j
                if dirty_a[j] == 0:
                    dirty_a[j] = 1
                    dlist[nd] = j * 2 + 1
                    nd += 1
            uid += 1
            emit_bbo = True
        elif r < 0.93:  # depth diff
            if nd > 0:
                kind[e] = DELTA
                ts[e] = t
                seq[e] = uid
                c = 0
                for q in range(nd):
                    if dlist[q] & 1 == 0:
                        j = dlist[q] >> 1
                        tick[pos] = base + j
                        sz[pos] = bq[j] / 1e5
                        pos += 1
                        c += 1
                        dirty_b[j] = 0
                nbid[e] = c
                for q in range(nd):
                    if dlist[q] & 1 == 1:
                        j = dlist[q] >> 1
                        tick[pos] = base + j
                        sz[pos] = aq[j] / 1e5
                        pos += 1
                        dirty_a[j] = 0
                nd = 0
                off[e + 1] = pos
                e += 1
        else:  # touch cancelled (only if the side keeps a level within 20 ticks)
            if np.random.random() < 0.5:
                j = b - 1
                while j > b - 20 and bq[j] == 0:
                    j -= 1
                if bq[j] > 0 and j > b - 20:
                    bq[b] = 0
                    if dirty_b[b] == 0:
                        dirty_b[b] = 1
                        dlist[nd] = b * 2
                        nd += 1
                    b = j
                    uid += 1
                    emit_bbo = True
            else:
                j = a + 1
                while j < a + 20 and aq[j] == 0:
                    j += 1
                if aq[j] > 0 and j < a + 20:
                    aq[a] = 0
                    if dirty_a[a] == 0:
                        dirty_a[a] = 1
                        dlist[nd] = a * 2 + 1
                        nd += 1
                    a = j
                    uid += 1
                    emit_bbo = True
        if emit_bbo and e < n:
            kind[e] = BBO
            ts[e] = t
            seq[e] = uid
            nbid[e] = 1
            tick[pos] = base + b
            sz[pos] = bq[b] / 1e5
            tick[pos + 1] = base + a
            sz[pos + 1] = aq[a] / 1e5
            pos += 2
            off[e + 1] = pos
            e += 1
        if nd >= MAX_DIRTY and e < n:  # flush a full diff
            kind[e] = DELTA
            ts[e] = t
            seq[e] = uid
            c = 0
            for q in range(nd):
                if dlist[q] & 1 == 0:
                    j = dlist[q] >> 1
                    tick[pos] = base + j
                    sz[pos] = bq[j] / 1e5
                    pos += 1
                    c += 1
                    dirty_b[j] = 0
            nbid[e] = c
            for q in range(nd):
                if dlist[q] & 1 == 1:
                    j = dlist[q] >> 1
                    tick[pos] = base + j
                    sz[pos] = aq[j] / 1e5
                    pos += 1
                    dirty_a[j] = 0
            nd = 0
            off[e + 1] = pos
            e += 1
        # keep the touch away from the window's edges (a reflecting wall far from any realistic walk)
        if b < 10_000 or a > W - 10_000:
            return -e, pos
    return e, pos


def synthetic_arrays(n: int, seed: int = 7, *, start_ns: int = DEFAULT_START_NS, gap_ms: float = 4.0, start_price: float = 60_000.0) -> EventArrays:
    """``n`` events of the synthetic stream as :class:`EventArrays` (prices with 2 decimals)."""
    start_tick = int(round(start_price * 100))
    cap = 3 * n + 1024
    while True:
        kind = np.zeros(n, dtype=np.int8)
        ts = np.zeros(n, dtype=np.int64)
        seq = np.zeros(n, dtype=np.int64)
        off = np.zeros(n + 1, dtype=np.int64)
        nbid = np.zeros(n, dtype=np.int32)
        tick = np.zeros(cap, dtype=np.int64)
        sz = np.zeros(cap, dtype=np.float64)
        got, used = _generate(n, seed, start_ns, gap_ms * 1e6, start_tick, kind, ts, seq, off, nbid, tick, sz)
        if got < 0:
            raise RuntimeError("synthetic book walked out of its window")
        if got == n:
            break
        del kind, ts, seq, off, nbid, tick, sz
        cap = int(cap * 1.5)
    tick = tick[:used]
    sz = sz[:used].copy()
    # ranks via a dense table (ticks lie in the generator's window)
    lo = int(tick.min())
    present = np.zeros(int(tick.max()) - lo + 1, dtype=bool)
    present[tick - lo] = True
    table = np.flatnonzero(present).astype(np.int64) + lo
    rank_of = np.cumsum(present, dtype=np.int64) - 1
    lvl = rank_of[tick - lo].astype(np.int32)
    del tick, present, rank_of
    return EventArrays(kind, ts, seq, off, nbid, lvl, sz, table, 2, meta={"source": "synthetic", "seed": seed, "events": n, "gap_ms": gap_ms})
