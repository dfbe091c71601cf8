"""Compiled parser of Binance raw-stream recordings straight into columnar arrays.

:func:`bot.data.binance.read_binance` is the reference reader: it explains every fault and
handles every odd line, at about 30-60 k lines/s, since each line becomes Python objects first.
This module reads the *clean* recording, the one that reader replays without a single problem,
at the speed of the decompressor: one numba pass over the decompressed bytes extracts each line's
fields (the ``<ts> <json>`` line of a depth diff, bookTicker, trade or depth snapshot), a second
pass applies the depth sync rules, and numpy gathers the result into :class:`EventArrays`.

It accepts only what it can read with certainty, a strict subset of what the reader accepts:
JSON without whitespace or escapes, the combined-stream envelope ``{"stream":..,"data":{..}}`` in
that order, plain decimal strings for prices and sizes, integer ids, one symbol. Whenever a line
falls outside that subset, or the stream needs any of the reader's problem handling (a sequence
gap, a line out of order, a crossed bookTicker, a malformed line, a perpetual's markPrice or
forceOrder stream, diffs left without a snapshot), :func:`parse` returns ``None`` and the caller
reads the recording with the reference reader. So this parser never decides anything the reader
would decide differently; it only skips the Python objects. ``tests/test_fast_parse.py`` checks
that both give identical arrays and statistics on every shared recording.

Numbers: a decimal string with mantissa ``m < 2**53`` and ``k <= 22`` decimals is read as
``m / 10**k``, both exact doubles, whose correctly rounded quotient is the double nearest the
decimal, which is what ``float(str)`` returns. Prices are kept as integer units of the largest
decimal count seen, so the price table and ranks come out exactly as
:func:`bot.fast.columnar.price_units` computes them from the floats (it is called on the table).

The depth sync rules mirrored here (and only these; anything else is a fallback) are those of
:class:`bot.data.binance._Reader`: diffs are buffered until a snapshot, then replayed with the
snapshot line's timestamp; spot drops ``u <= lastUpdateId``, needs ``U <= id + 1 <= u`` for the
first diff and ``U == prev_u + 1`` later; futures drop ``u < id``, need ``U <= id <= u`` then
``pu == prev_u``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from bot.fast.columnar import BBO, DELTA, SNAPSHOT, TRADE, EventArrays, price_units, rank_prices
from bot.fast.parse_json import (
    BOOK_TICKER, F_A, F_B, F_U, F_a, F_asks, F_b, F_bids, F_lid, F_m, F_p, F_pu, F_q, F_t, F_u, N_FIELDS,
    read_int, read_object, skip_string, word_at,
)
from bot.fast.inflate import Unreadable, blocks_ahead

MAX_BUFFERED_DIFFS = 20_000  # bot.data.binance.MAX_BUFFERED_DIFFS: past it the reader drops silently; we fall back

# line kinds of the first pass
K_NONE = -1
K_SNAP, K_DELTA, K_BBO, K_TRADE = SNAPSHOT, DELTA, BBO, TRADE  # the columnar kinds, so records need no mapping

# the first pass's outcome codes (0 = every line read)
OK = 0
SLOW = 1  # a line outside the fast subset: read the recording with the reference reader
FULL = 2  # the output arrays are full: grow them and call again (it resumes at the line it stopped at)

_POW10 = np.array([10.0**k for k in range(23)])  # 1e0 .. 1e22 are exact doubles


@njit(cache=True, nogil=True)
def _scan(buf, n_used, symbol, futures, l_kind, l_ts, l_U, l_u, l_pu, l_seq, l_nb, l_lo, l_n,
          mant, pdec, size, pow10, state):
    """First pass over ``buf[:n_used]`` (whole lines): one record per non-blank line.

    ``state``: [0] lines so far (next record), [1] levels so far, [2] last ts, [3] outcome code,
    [4] the byte to start at (0, or where a FULL call stopped). Level records: a depth line's bids
    then asks; a bookTicker's (bid, ask); a trade's (price, size).
    """
    tmp = np.zeros(2, np.int64)
    ints = np.zeros(N_FIELDS, np.int64)
    seen = np.zeros(N_FIELDS, np.int64)
    lev_lo = np.zeros(N_FIELDS, np.int64)
    lev_n = np.zeros(N_FIELDS, np.int64)
    nlev = np.zeros(1, np.int64)
    nlev[0] = state[1]
    line = state[0]
    last_ts = state[2]
    nsym = symbol.shape[0]
    i = state[4]
    while i < n_used:
        end = i
        while end < n_used and buf[end] != 10:
            end += 1
        nxt = end + 1
        if end == i:
            i = nxt
            continue
        # a level takes >= 5 bytes (["1","1"], or "b":"1"), and a non-canonical order copies them once
        if line >= l_kind.shape[0] or nlev[0] + 2 * ((end - i) // 5) + 8 > mant.shape[0]:
            state[0] = line
            state[1] = nlev[0]
            state[2] = last_ts
            state[3] = FULL
            state[4] = i
            return
        # "<ts> "
        j = read_int(buf, i, end, tmp)
        if j < 0 or j >= end or buf[j] != 32 or tmp[0] <= 0 or buf[i] == 45:
            state[3] = SLOW
            return
        ts = tmp[0]
        if ts < last_ts:
            state[3] = SLOW
            return
        j += 1
        lo = nlev[0]
        kind = K_NONE
        if end - j > 11 and buf[j] == 123 and buf[j + 1] == 34 and buf[j + 2] == 115:  # {"stream":"
            if not (buf[j + 3] == 116 and buf[j + 4] == 114 and buf[j + 5] == 101 and buf[j + 6] == 97
                    and buf[j + 7] == 109 and buf[j + 8] == 34 and buf[j + 9] == 58 and buf[j + 10] == 34):
                state[3] = SLOW
                return
            s0 = j + 11
            s1 = skip_string(buf, j + 10, end)
            if s1 < 0:
                state[3] = SLOW
                return
            # <symbol>@<suffix>
            if s1 - 1 - s0 <= nsym or buf[s0 + nsym] != 64:
                state[3] = SLOW
                return
            for q in range(nsym):
                if buf[s0 + q] != symbol[q]:
                    state[3] = SLOW
                    return
            a0 = s0 + nsym + 1
            an = s1 - 1 - a0
            if an == 5 and buf[a0] == 116 and buf[a0 + 1] == 114 and buf[a0 + 2] == 97 and buf[a0 + 3] == 100 and buf[a0 + 4] == 101:
                kind = K_TRADE
            elif an == 10 and word_at(buf, a0, BOOK_TICKER):
                kind = K_BBO
            elif an >= 5 and buf[a0] == 100 and buf[a0 + 1] == 101 and buf[a0 + 2] == 112 and buf[a0 + 3] == 116 and buf[a0 + 4] == 104 and (an == 5 or buf[a0 + 5] == 64):
                kind = K_DELTA
            if kind == K_NONE:  # markPrice, forceOrder, streams the reader ignores: its business
                state[3] = SLOW
                return
            p = s1
            if not (p + 8 <= end and buf[p] == 44 and buf[p + 1] == 34 and buf[p + 2] == 100 and buf[p + 3] == 97
                    and buf[p + 4] == 116 and buf[p + 5] == 97 and buf[p + 6] == 34 and buf[p + 7] == 58):
                state[3] = SLOW
                return
            at = p + 8
        elif end - j > 1 and buf[j] == 123:
            at = j
            kind = K_SNAP
        else:
            state[3] = SLOW
            return
        # one call site: read_object is inlined (numba inline="always"), twice would double the compile time
        p = read_object(buf, at, end, ints, seen, lev_lo, lev_n, mant, pdec, size, nlev, pow10, tmp)
        if kind == K_SNAP:
            if p != end or not seen[F_lid]:
                state[3] = SLOW
                return
        elif p < 0 or p + 1 != end or buf[p] != 125:
            state[3] = SLOW
            return
        # what the reader needs of each kind, checked as it checks it
        if kind == K_BBO:
            if not (seen[F_b] and seen[F_B] and seen[F_a] and seen[F_A] and seen[F_u]) or lev_n[F_b] != -1 \
                    or lev_n[F_B] != -1 or lev_n[F_a] != -1 or lev_n[F_A] != -1:
                state[3] = SLOW
                return
            bi, bq, ai, aq = lev_lo[F_b], lev_lo[F_B], lev_lo[F_a], lev_lo[F_A]
            bp = mant[bi] / pow10[pdec[bi]]
            ap = mant[ai] / pow10[pdec[ai]]
            if not (bp > 0.0 and ap > 0.0) or bp >= ap:
                state[3] = SLOW
                return
            # records: (bid price, bid size), (ask price, ask size); read before they are overwritten
            m_b, d_b, m_a, d_a = mant[bi], pdec[bi], mant[ai], pdec[ai]
            s_b, s_a = size[bq], size[aq]
            mant[lo], pdec[lo], size[lo] = m_b, d_b, s_b
            mant[lo + 1], pdec[lo + 1], size[lo + 1] = m_a, d_a, s_a
            nlev[0] = lo + 2
            l_seq[line] = ints[F_u]
            l_nb[line] = 1
        elif kind == K_TRADE:
            if not (seen[F_p] and seen[F_q] and seen[F_m] and seen[F_t]) or lev_n[F_p] != -1 or lev_n[F_q] != -1:
                state[3] = SLOW
                return
            pi, qi = lev_lo[F_p], lev_lo[F_q]
            if mant[pi] <= 0:
                state[3] = SLOW
                return
            m_p, d_p, s_q = mant[pi], pdec[pi], size[qi]
            mant[lo], pdec[lo], size[lo] = m_p, d_p, s_q
            nlev[0] = lo + 1
            l_seq[line] = ints[F_t]
            l_nb[line] = 0 if ints[F_m] == 1 else 1
        else:
            bk, ak = (F_bids, F_asks) if kind == K_SNAP else (F_b, F_a)
            if not (seen[bk] and seen[ak]) or lev_n[bk] < 0 or lev_n[ak] < 0:
                state[3] = SLOW
                return
            if kind == K_DELTA:
                if not (seen[F_U] and seen[F_u]) or (futures and not seen[F_pu]) or (not futures and seen[F_pu]):
                    state[3] = SLOW
                    return
                l_U[line] = ints[F_U]
                l_u[line] = ints[F_u]
                l_pu[line] = ints[F_pu] if futures else 0
                l_seq[line] = ints[F_u]
            else:
                l_seq[line] = ints[F_lid]
                # the reader sorts a snapshot's levels; ours must already be strictly in order
                b0, nb_, a0_, na_ = lev_lo[bk], lev_n[bk], lev_lo[ak], lev_n[ak]
                for q in range(1, nb_):
                    x, y = b0 + q - 1, b0 + q
                    if not mant[x] / pow10[pdec[x]] > mant[y] / pow10[pdec[y]]:
                        state[3] = SLOW
                        return
                for q in range(1, na_):
                    x, y = a0_ + q - 1, a0_ + q
                    if not mant[x] / pow10[pdec[x]] < mant[y] / pow10[pdec[y]]:
                        state[3] = SLOW
                        return
            # bids are the first list in the file for both diff and snapshot in Binance's order;
            # move them into place if not
            b0, nb_, a0_, na_ = lev_lo[bk], lev_n[bk], lev_lo[ak], lev_n[ak]
            if b0 != lo or a0_ != lo + nb_:
                # copy bids then asks to the end and back down to lo (rare: only a non-canonical order)
                base = nlev[0]
                if base + nb_ + na_ > mant.shape[0]:
                    state[3] = SLOW
                    return
                for q in range(nb_):
                    mant[base + q], pdec[base + q], size[base + q] = mant[b0 + q], pdec[b0 + q], size[b0 + q]
                for q in range(na_):
                    mant[base + nb_ + q], pdec[base + nb_ + q], size[base + nb_ + q] = mant[a0_ + q], pdec[a0_ + q], size[a0_ + q]
                for q in range(nb_ + na_):
                    mant[lo + q], pdec[lo + q], size[lo + q] = mant[base + q], pdec[base + q], size[base + q]
            nlev[0] = lo + nb_ + na_
            l_nb[line] = nb_
        l_kind[line] = kind
        l_ts[line] = ts
        l_lo[line] = lo
        l_n[line] = nlev[0] - lo
        last_ts = ts
        line += 1
        i = nxt
    state[0] = line
    state[1] = nlev[0]
    state[2] = last_ts
    state[4] = 0


@njit(cache=True, nogil=True)
def _sync(n_lines, futures, l_kind, l_ts, l_U, l_u, l_pu, out_line, out_ts, counts):
    """Second pass: the depth sync rules; returns the number of events, or -1 for a fallback.

    ``counts``: [0] dropped (obsolete) diffs. ``out_line``/``out_ts``: each event's line and ts.
    """
    buf = np.empty(MAX_BUFFERED_DIFFS + 1, np.int64)
    nbuf = 0
    synced = False
    lid = 0
    prev = 0
    have_prev = False
    n = 0
    for i in range(n_lines):
        k = l_kind[i]
        if k == K_SNAP:
            synced = True
            lid = l_U[i]
            have_prev = False
            out_line[n] = i
            out_ts[n] = l_ts[i]
            n += 1
            ts = l_ts[i]
            for b in range(nbuf):
                n, have_prev, prev = _take(buf[b], ts, futures, lid, have_prev, prev, l_U, l_u, l_pu, out_line, out_ts, n, counts)
                if n < 0:
                    return -1
            nbuf = 0
        elif k == K_DELTA:
            if not synced:
                if nbuf >= MAX_BUFFERED_DIFFS:
                    return -1
                buf[nbuf] = i
                nbuf += 1
                continue
            n, have_prev, prev = _take(i, l_ts[i], futures, lid, have_prev, prev, l_U, l_u, l_pu, out_line, out_ts, n, counts)
            if n < 0:
                return -1
        else:
            out_line[n] = i
            out_ts[n] = l_ts[i]
            n += 1
    if nbuf:
        return -1  # diffs that never got a snapshot: the reader reports them
    return n


@njit(cache=True, nogil=True)
def _take(j, ts, futures, lid, have_prev, prev, l_U, l_u, l_pu, out_line, out_ts, n, counts):
    """Diff ``j`` through the sync rules at time ``ts``: emitted (event ``n``), dropped as obsolete
    (``counts[0]``), or a gap; returns (events so far or -1 for a gap, have_prev, prev)."""
    r = _diff(j, futures, lid, have_prev, prev, l_U, l_u, l_pu)
    if r < 0:
        return -1, have_prev, prev
    if r == 0:
        counts[0] += 1
        return n, have_prev, prev
    out_line[n] = j
    out_ts[n] = ts
    return n + 1, True, l_u[j]


@njit(cache=True, nogil=True)
def _diff(j, futures, lid, have_prev, prev, l_U, l_u, l_pu):
    """1 apply, 0 obsolete (dropped), -1 a gap (fallback)."""
    first = l_U[j]
    last = l_u[j]
    if futures:
        if not have_prev:
            if last < lid:
                return 0
            if not (first <= lid <= last):
                return -1
        elif l_pu[j] != prev:
            return -1
    else:
        if not have_prev:
            if last <= lid:
                return 0
            if not (first <= lid + 1 <= last):
                return -1
        elif first != prev + 1:
            return -1
    return 1


@njit(cache=True, nogil=True)
def _gather(n, out_line, l_lo, l_n, src, dst_off, dst):
    k = 0
    for e in range(n):
        i = out_line[e]
        lo = l_lo[i]
        for q in range(l_n[i]):
            dst[k] = src[lo + q]
            k += 1
        dst_off[e + 1] = k


def parse(files: Sequence[Path], symbol: str, market_type: str,
          on_block: Callable[[], None] | None = None) -> tuple[EventArrays, dict[str, Any]] | None:
    """Columnar arrays and reader statistics of a clean recording (files in replay order), or None.

    ``symbol``/``market_type`` are what :func:`bot.data.recording.probe_recording` found; None
    (fall back to the reference reader) when either is unknown or any line needs the reader.
    """
    if not symbol or market_type not in ("spot", "linear", "inverse"):
        return None
    futures = market_type != "spot"
    sym = np.frombuffer(symbol.lower().encode(), dtype=np.uint8)
    try:
        return _parse(files, futures, sym, on_block)
    except Unreadable:
        return None


class _Part(NamedTuple):
    """One file's first-pass records (:func:`_scan`'s arrays, cut to the lines and levels read)."""

    kind: np.ndarray
    lines: list[np.ndarray]  # ts, U, u, pu, seq, lo, n
    nb: np.ndarray
    levels: list[np.ndarray]  # mant, pdec, size


def _scan_file(path: Path, futures: bool, sym: np.ndarray, stop: threading.Event,
               on_block: Callable[[], None]) -> _Part | None:
    """The first pass over one file, block by block as the inflating thread hands them over;
    None (and ``stop`` set, so the other files' scans end early) when it needs the reader."""
    state = np.zeros(5, np.int64)
    l_kind = np.empty(0, np.int8)
    arrs = [np.empty(0, np.int64) for _ in range(7)]
    l_nb = np.empty(0, np.int32)
    mant, pdec, size = np.empty(0, np.int64), np.empty(0, np.int8), np.empty(0, np.float64)
    try:
        for block in blocks_ahead(path, stop):
            buf = np.frombuffer(block, dtype=np.uint8)
            while True:
                ts, U, u, pu, seq, lo, nl = arrs
                _scan(buf, buf.shape[0], sym, futures, l_kind, ts, U, u, pu, seq, l_nb, lo, nl, mant, pdec, size, _POW10, state)
                if state[3] != FULL:
                    break
                state[3] = OK  # room for the rest of this block at the spot recordings' ~270 bytes a line, ~30 a level
                left = buf.shape[0] - int(state[4])
                cap = max(2 * l_kind.shape[0], int(state[0]) + left // 128 + 1024)
                l_kind, l_nb, arrs = _grow(l_kind, cap), _grow(l_nb, cap), [_grow(a, cap) for a in arrs]
                cap = max(2 * mant.shape[0], int(state[1]) + left // 8 + 4096)
                mant, pdec, size = _grow(mant, cap), _grow(pdec, cap), _grow(size, cap)
            if state[3] != OK:
                stop.set()
                return None
            on_block()
    except BaseException:
        stop.set()
        raise
    if stop.is_set():
        return None  # another file needs the reader (this one's scan may have been cut short)
    n, m = int(state[0]), int(state[1])
    return _Part(l_kind[:n], [a[:n] for a in arrs], l_nb[:n], [mant[:m], pdec[:m], size[:m]])


def _scan_files(files: Sequence[Path], futures: bool, sym: np.ndarray,
                on_block: Callable[[], None] | None) -> list[_Part] | None:
    """Every file's first pass, the files concurrently (the scan and the inflation release the
    GIL, so on two cores two files take little more than one); None if any needs the reader."""
    stop = threading.Event()
    lock = threading.Lock()

    def block_done() -> None:
        if on_block is not None:
            with lock:
                on_block()

    if len(files) == 1:
        parts = [_scan_file(files[0], futures, sym, stop, block_done)]
    else:
        with ThreadPoolExecutor(max_workers=min(len(files), os.cpu_count() or 1), thread_name_prefix="scan") as pool:
            jobs = [pool.submit(_scan_file, f, futures, sym, stop, block_done) for f in files]
            parts = [job.result() for job in jobs]  # the first failure is raised after every job ended
    if any(p is None for p in parts):
        return None
    return parts  # type: ignore[return-value]


def _join(parts: list[_Part]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list[np.ndarray]] | None:
    """The files' records as one stream, as if scanned in one pass: level spans moved past the
    earlier files' levels; None when a file starts before the previous one ended (the reader's
    lines out of order, across the boundary)."""
    last = 0
    for p in parts:
        if p.kind.shape[0]:
            if p.lines[0][0] < last:
                return None
            last = p.lines[0][-1]
    if len(parts) == 1:
        p = parts[0]
        return p.kind, p.lines, p.nb, p.levels
    shift = np.cumsum([0] + [p.levels[0].shape[0] for p in parts[:-1]])
    lines = [np.concatenate([p.lines[c] for p in parts]) for c in range(7)]
    lines[5] = np.concatenate([p.lines[5] + s for p, s in zip(parts, shift)])
    return (np.concatenate([p.kind for p in parts]), lines, np.concatenate([p.nb for p in parts]),
            [np.concatenate([p.levels[c] for p in parts]) for c in range(3)])


def _parse(files: Sequence[Path], futures: bool, sym: np.ndarray, on_block: Callable[[], None] | None) -> tuple[EventArrays, dict[str, Any]] | None:
    parts = _scan_files(files, futures, sym, on_block)
    joined = _join(parts) if parts is not None else None
    if joined is None:
        return None
    l_kind, arrs, l_nb, (mant, pdec, size) = joined
    n_lines = int(l_kind.shape[0])
    if n_lines == 0:
        return None
    ts, U, u, pu, seq, lo, nl = arrs
    # a snapshot's lastUpdateId is in seq; the sync pass reads it from U
    snap = l_kind[:n_lines] == K_SNAP
    U[:n_lines][snap] = seq[:n_lines][snap]
    out_line = np.empty(n_lines, np.int64)
    out_ts = np.empty(n_lines, np.int64)
    counts = np.zeros(1, np.int64)
    n = _sync(n_lines, futures, l_kind, ts, U, u, pu, out_line, out_ts, counts)
    if n <= 0:
        return None
    out_line, out_ts = out_line[:n], out_ts[:n]
    kinds = l_kind[out_line]
    nbid = l_nb[out_line]
    off = np.zeros(n + 1, np.int64)
    n_lev = int(nl[out_line].sum())
    g_mant = np.empty(n_lev, np.int64)
    g_pdec = np.empty(n_lev, np.int8)
    g_size = np.empty(n_lev, np.float64)
    _gather(n, out_line, lo, nl, mant, off, g_mant)
    _gather(n, out_line, lo, nl, pdec, off, g_pdec)
    _gather(n, out_line, lo, nl, size, off, g_size)
    top = int(g_pdec.max()) if n_lev else 0
    shift = top - g_pdec.astype(np.int64)
    if n_lev and float((g_mant * _POW10[shift]).max()) >= 2.0**52:
        return None  # integer units would not stay exact
    units = g_mant * (10 ** shift)
    try:  # too many distinct prices for int32 ranks, or no decimals that hold them exactly: the reader
        table_units, lvl = rank_prices(units)
        final_units, decimals = price_units(table_units / _POW10[top])
    except ValueError:
        return None
    counted = np.bincount(kinds, minlength=4)
    arrays = EventArrays(
        kinds.astype(np.int8), out_ts.copy(), seq[out_line].copy(), off, nbid.astype(np.int32),
        lvl, g_size, final_units.astype(np.int64), decimals,
    )
    stats = {
        "lines": n_lines,
        "events": {"snapshot": int(counted[K_SNAP]), "delta": int(counted[K_DELTA]), "bbo": int(counted[K_BBO]),
                   "trade": int(counted[K_TRADE]), "invalidated": 0},
        "dropped_deltas": int(counts[0]),
        "first_ts": int(ts[0]),
        "last_ts": int(ts[n_lines - 1]),
    }
    return arrays, stats


def _grow(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.empty(cap, a.dtype)
    out[: a.shape[0]] = a
    return out
