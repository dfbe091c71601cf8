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

from collections.abc import Iterator
from pathlib import Path

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


# generator state kept between chunks (the book arrays are kept too, see _Generator)
G_B, G_A, G_UID, G_T, G_ND, G_E, G_POS, G_STARTED = range(8)
GEN_OK, GEN_LEVELS_FULL, GEN_WALKED_OUT = 0, 1, -1
STEP_EVENTS = 3  # a step emits at most a trade, a bookTicker and a full diff
STEP_LEVELS = 2 * MAX_DIRTY + 4


@njit(cache=True)
def _generate(n, seed, start_ns, gap_ns, S, bq, aq, dirty_b, dirty_a, dlist, e_stop, kind, ts, seq, offn, nbid, tick, sz):
    """Run whole steps of the stream until ``e_stop`` (or ``n``) events exist or the level
    buffer is full; resumable: everything that carries over is in ``S`` and the book arrays, and
    numba's random generator (seeded once, on the first call) keeps its state between calls.

    Events ``e`` go to ``kind[e - e0]`` etc. (``e0`` = ``S[G_E]`` on entry), levels ``pos`` to
    ``tick[pos - p0]``; ``offn[e - e0]`` is the global ``off[e + 1]``; ``tick`` holds the
    level's index in the generator's window (``base + index`` is the tick). A step is never cut:
    the event buffers need ``STEP_EVENTS`` of slack past ``e_stop``; the cut at ``n`` is the
    same whatever the chunks, so any chunking gives the same stream."""
    W = WINDOW
    e0 = S[G_E]
    p0 = S[G_POS]
    L = tick.shape[0]
    if S[G_STARTED] == 0:
        np.random.seed(seed)
        b = W // 2  # best bid index
        a = b + 1  # best ask index
        for k in range(200):
            bq[b - k] = _size()
            aq[a + k] = _size()
        uid = 1000
        t = start_ns
        pos = p0
        # snapshot
        kind[0] = SNAPSHOT
        ts[0] = t
        seq[0] = uid
        nbid[0] = 200
        for k in range(200):
            tick[pos - p0] = b - k
            sz[pos - p0] = bq[b - k] / 1e5
            pos += 1
        for k in range(200):
            tick[pos - p0] = a + k
            sz[pos - p0] = aq[a + k] / 1e5
            pos += 1
        offn[0] = pos
        e = 1
        nd = 0
        S[G_STARTED] = 1
    else:
        b, a, uid, t, nd, e, pos = S[G_B], S[G_A], S[G_UID], S[G_T], S[G_ND], S[G_E], S[G_POS]
    code = GEN_OK
    while e < n and e < e_stop:
        if pos - p0 + STEP_LEVELS > L:
            code = GEN_LEVELS_FULL
            break
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
            kind[e - e0] = TRADE
            ts[e - e0] = t
            seq[e - e0] = uid
            nbid[e - e0] = 1 if buy else 0
            tick[pos - p0] = px
            sz[pos - p0] = take / 1e5
            pos += 1
            offn[e - e0] = pos
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
                kind[e - e0] = DELTA
                ts[e - e0] = t
                seq[e - e0] = uid
                c = 0
                for q in range(nd):
                    if dlist[q] & 1 == 0:
                        j = dlist[q] >> 1
                        tick[pos - p0] = j
                        sz[pos - p0] = bq[j] / 1e5
                        pos += 1
                        c += 1
                        dirty_b[j] = 0
                nbid[e - e0] = c
                for q in range(nd):
                    if dlist[q] & 1 == 1:
                        j = dlist[q] >> 1
                        tick[pos - p0] = j
                        sz[pos - p0] = aq[j] / 1e5
                        pos += 1
                        dirty_a[j] = 0
                nd = 0
                offn[e - e0] = pos
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
            kind[e - e0] = BBO
            ts[e - e0] = t
            seq[e - e0] = uid
            nbid[e - e0] = 1
            tick[pos - p0] = b
            sz[pos - p0] = bq[b] / 1e5
            tick[pos + 1 - p0] = a
            sz[pos + 1 - p0] = aq[a] / 1e5
            pos += 2
            offn[e - e0] = pos
            e += 1
        if nd >= MAX_DIRTY and e < n:  # flush a full diff
            kind[e - e0] = DELTA
            ts[e - e0] = t
            seq[e - e0] = uid
            c = 0
            for q in range(nd):
                if dlist[q] & 1 == 0:
                    j = dlist[q] >> 1
                    tick[pos - p0] = j
                    sz[pos - p0] = bq[j] / 1e5
                    pos += 1
                    c += 1
                    dirty_b[j] = 0
            nbid[e - e0] = c
            for q in range(nd):
                if dlist[q] & 1 == 1:
                    j = dlist[q] >> 1
                    tick[pos - p0] = j
                    sz[pos - p0] = aq[j] / 1e5
                    pos += 1
                    dirty_a[j] = 0
            nd = 0
            offn[e - e0] = pos
            e += 1
        # keep the touch away from the window's edges (a reflecting wall far from any realistic walk)
        if b < 10_000 or a > W - 10_000:
            code = GEN_WALKED_OUT
            break
    S[G_B], S[G_A], S[G_UID], S[G_T], S[G_ND], S[G_E], S[G_POS] = b, a, uid, t, nd, e, pos
    return code


class _Generator:
    """The stream produced chunk by chunk: :meth:`chunks` yields the events of each call of
    :func:`_generate` as views of reused buffers (valid until the next chunk)."""

    def __init__(self, n: int, seed: int, start_ns: int, gap_ms: float, start_price: float):
        self.n, self.seed, self.start_ns, self.gap_ns = n, seed, start_ns, gap_ms * 1e6
        self.base = int(round(start_price * 100)) - WINDOW // 2  # tick of window index 0
        self.S = np.zeros(8, dtype=np.int64)
        self.book = (np.zeros(WINDOW, np.int64), np.zeros(WINDOW, np.int64), np.zeros(WINDOW, np.uint8), np.zeros(WINDOW, np.uint8),
                     np.zeros(4 * MAX_DIRTY, np.int64))
        self.present = np.zeros(WINDOW, dtype=bool)  # window indices any level used: the price table

    def chunks(self, chunk: int, level_cap: int | None = None) -> Iterator[tuple[np.ndarray, ...]]:
        """(kind, ts, seq, off_next, nbid, window index, size) per chunk of about ``chunk`` events."""
        cap_e = chunk + STEP_EVENTS
        bufs = (np.zeros(cap_e, np.int8), np.zeros(cap_e, np.int64), np.zeros(cap_e, np.int64), np.zeros(cap_e, np.int64),
                np.zeros(cap_e, np.int32))
        cap_l = level_cap or 3 * chunk + 1024
        tick, sz = np.zeros(cap_l, np.int32), np.zeros(cap_l, np.float64)
        S = self.S
        while S[G_E] < self.n:
            e0, p0 = int(S[G_E]), int(S[G_POS])
            code = _generate(self.n, self.seed, self.start_ns, self.gap_ns, S, *self.book, min(self.n, e0 + chunk), *bufs, tick, sz)
            if code == GEN_WALKED_OUT:
                raise RuntimeError("synthetic book walked out of its window")
            ne, nl = int(S[G_E]) - e0, int(S[G_POS]) - p0
            self.present[tick[:nl]] = True
            yield (*(b[:ne] for b in bufs), tick[:nl], sz[:nl])

    def table(self) -> tuple[np.ndarray, np.ndarray]:
        """(price table in ticks, rank of every window index)."""
        return np.flatnonzero(self.present).astype(np.int64) + self.base, (np.cumsum(self.present, dtype=np.int64) - 1).astype(np.int32)


def _meta(n: int, seed: int, gap_ms: float) -> dict:
    return {"source": "synthetic", "seed": seed, "events": n, "gap_ms": gap_ms}


def synthetic_arrays(n: int, seed: int = 7, *, start_ns: int = DEFAULT_START_NS, gap_ms: float = 4.0, start_price: float = 60_000.0) -> EventArrays:
    """``n`` events of the synthetic stream as :class:`EventArrays` (prices with 2 decimals), in memory."""
    gen = _Generator(n, seed, start_ns, gap_ms, start_price)
    kinds, tss, seqs, offs, nbids, ticks, szs = [], [], [], [np.zeros(1, np.int64)], [], [], []
    for kind, ts, seq, offn, nbid, tick, sz in gen.chunks(max(n, 1), 3 * n + 1024):
        kinds.append(kind.copy()), tss.append(ts.copy()), seqs.append(seq.copy()), offs.append(offn.copy()), nbids.append(nbid.copy())
        ticks.append(tick.copy()), szs.append(sz.copy())
    table, rank_of = gen.table()
    lvl = rank_of[np.concatenate(ticks)] if ticks else np.zeros(0, np.int32)
    return EventArrays(np.concatenate(kinds) if kinds else np.zeros(0, np.int8), np.concatenate(tss) if tss else np.zeros(0, np.int64),
                       np.concatenate(seqs) if seqs else np.zeros(0, np.int64), np.concatenate(offs),
                       np.concatenate(nbids) if nbids else np.zeros(0, np.int32), lvl, np.concatenate(szs) if szs else np.zeros(0, np.float64),
                       table, 2, meta=_meta(n, seed, gap_ms))


def write_synthetic(path: str | Path, n: int, seed: int = 7, *, start_ns: int = DEFAULT_START_NS, gap_ms: float = 4.0,
                    start_price: float = 60_000.0, chunk: int = 1 << 20) -> Path:
    """The same stream as :func:`synthetic_arrays` written chunk by chunk to the memory-mapped
    layout of :mod:`bot.fast.colstore` at ``path`` (a directory), in memory bounded by ``chunk``.

    The level column holds window indices while the chunks are written; once the price table is
    known (the window indices used) they are rewritten as ranks in place, chunk by chunk."""
    from bot.fast.colstore import ColumnWriter

    gen = _Generator(n, seed, start_ns, gap_ms, start_price)
    with ColumnWriter(path) as w:
        for kind, ts, seq, offn, nbid, tick, sz in gen.chunks(chunk):
            w.append(kind, ts, seq, offn, nbid, tick, sz)
        table, rank_of = gen.table()
        w.map_levels(lambda idx: rank_of[idx])
        w.finish(table, 2, _meta(n, seed, gap_ms))
    return Path(path)
