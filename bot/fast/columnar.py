"""Columnar encoding of a market event stream: one pass from events to flat numpy arrays.

The fast kernels (:mod:`bot.fast.kernel`) never touch Python objects: an event stream
(:func:`bot.data.binance.read_binance`, :func:`bot.data.sim.simulate`, a live recording) is
converted once into the arrays of :class:`EventArrays`, kept in memory, saved as an ``.npz``, or
written in chunks to the memory-mapped directory of :mod:`bot.fast.colstore` (the cache).

Layout (``n`` events, ``L`` price levels in total)::

    kind   int8   [n]    SNAPSHOT=0, DELTA=1, BBO=2, TRADE=3, INVALIDATED=4
    ts     int64  [n]    ts_local (ns): the engine's clock
    seq    int64  [n]    snapshot ``sequence``, delta ``last_seq``, bbo ``sequence``, trade ``trade_id``
    off    int64  [n+1]  levels of event i are ``off[i]:off[i+1]``
    nbid   int32  [n]    the first ``nbid[i]`` of them are bids, the rest asks (BBO: 1 bid + 1 ask;
                         trade: one level (price, size), nbid = 1 for a buy aggressor, 0 for a sell)
    lvl    int32  [L]    price as a rank into ``prices`` (the stream's distinct prices, ascending)
    sz     float64[L]    size, exactly the float of the event
    prices int64  [R]    distinct prices in integer units of ``10 ** -price_decimals``, ascending

Prices are exact: ``price_decimals`` is the smallest ``d`` for which ``units / 10**d`` gives
back every price of the stream bit for bit (checked for all of them; ``float / float`` of two
exact integers is correctly rounded, so ``6012345 / 100.0 == float("60123.45")``). Units and
ranks are strictly increasing in the price, so comparing ranks compares the original floats.
For Binance BTCUSDT (tick 0.01) ``d = 2`` and the unit is the tick. Ranks make the book a dense
ladder over the prices the stream actually uses (45k for the BTCUSDT recording, whose levels
span 15k to 200k USDT), whatever their spread.

Not kept (the engine does not read them): ``ts_exchange``, a delta's ``first_seq`` and an
invalidation's ``reason``. :func:`iter_events` rebuilds the events with those fields zero/empty.
Perpetual-futures events (:class:`MarkPrice`, :class:`Liquidation`) are skipped for now, since
the kernel neither marks nor funds positions yet; their numbers are kept in ``meta["skipped"]``
(absent when none) so that a replay can tell it did not see them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarketEvent, MarkPrice, Trade

SNAPSHOT, DELTA, BBO, TRADE, INVALIDATED = 0, 1, 2, 3, 4
KIND_NAMES = ("snapshot", "delta", "bbo", "trade", "invalidated")
ENCODING_VERSION = 5  # 5: caches are directories of mapped columns (bot.fast.colstore); 4: reader meta keeps the problems; 3: markets spot/linear/inverse (2 said "future"), perpetual events skipped
MAX_DECIMALS = 12

_ARRAYS = ("kind", "ts", "seq", "off", "nbid", "lvl", "sz", "prices")


@dataclass
class EventArrays:
    """A whole event stream as flat arrays (see the module docstring)."""

    kind: np.ndarray
    ts: np.ndarray
    seq: np.ndarray
    off: np.ndarray
    nbid: np.ndarray
    lvl: np.ndarray
    sz: np.ndarray
    prices: np.ndarray
    price_decimals: int
    meta: dict[str, Any] = field(default_factory=dict)
    # derived figures a replay needs again on every run over the same arrays (not saved)
    derived: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)
    # the mappings of arrays opened from disk (bot.fast.colstore.Pager), None for arrays in memory
    pager: Any = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @property
    def scale(self) -> float:
        return float(10**self.price_decimals)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.kind, minlength=len(KIND_NAMES))
        return {name: int(c[k]) for k, name in enumerate(KIND_NAMES)}

    def release(self, upto: int) -> None:
        """Done with events ``< upto``: memory-mapped columns give their resident pages back (a
        replay calls this as it goes, so its memory stays flat); no-op for arrays in memory."""
        if self.pager is not None and upto > 0:
            self.pager.release(upto, int(self.off[upto]))

    def price_table(self) -> np.ndarray:
        """Float price of every rank: ``prices / 10**d``, bit-identical to the events' floats."""
        return self.prices / self.scale

    def slice(self, start: int, stop: int) -> "EventArrays":
        """Events ``start:stop`` as a new stream (sharing the price table)."""
        lo, hi = int(self.off[start]), int(self.off[stop])
        return EventArrays(
            self.kind[start:stop].copy(), self.ts[start:stop].copy(), self.seq[start:stop].copy(),
            self.off[start : stop + 1] - lo, self.nbid[start:stop].copy(), self.lvl[lo:hi].copy(), self.sz[lo:hi].copy(),
            self.prices, self.price_decimals, meta=dict(self.meta),
        )


# --------------------------------------------------------------------------- prices
def price_units(prices: np.ndarray, start_decimals: int = 0) -> tuple[np.ndarray, int]:
    """Exact integer units of ``prices`` and the number of decimals used (ValueError if none fits)."""
    prices = np.asarray(prices, dtype=np.float64)
    if prices.size == 0:
        return np.zeros(0, np.int64), max(start_decimals, 0)
    if not np.all(np.isfinite(prices)):
        raise ValueError("prices must be finite")
    for d in range(max(start_decimals, 0), MAX_DECIMALS + 1):
        scale = float(10**d)
        scaled = np.rint(prices * scale)
        if np.max(np.abs(scaled)) >= 2.0**53:
            break
        units = scaled.astype(np.int64)
        if np.array_equal(units / scale, prices):
            return units, d
    raise ValueError(f"prices are not exact multiples of 10**-d for any d <= {MAX_DECIMALS}; cannot encode them exactly")


# --------------------------------------------------------------------------- encode / decode
def encode_events(events: Iterable[MarketEvent], meta: dict[str, Any] | None = None, start_decimals: int = 0) -> EventArrays:
    """Convert an event stream into :class:`EventArrays` in memory (one pass, then vectorised
    price checks). :func:`bot.fast.colstore.write_events` does the same to disk in chunks."""
    skipped: dict[str, int] = {}
    kind, ts, seq, nbid, nlev, prices, sizes = next(encode_chunks(events, skipped, None))
    units, decimals = price_units(np.frombuffer(prices, dtype=np.float64), start_decimals)
    off = np.zeros(len(nlev) + 1, dtype=np.int64)
    np.cumsum(np.frombuffer(nlev, dtype=np.int64), out=off[1:])
    table, lvl = rank_prices(units)
    meta = dict(meta or {})
    if skipped:
        meta["skipped"] = skipped
    return EventArrays(
        np.frombuffer(kind, dtype=np.int8).copy(),
        np.frombuffer(ts, dtype=np.int64).copy(),
        np.frombuffer(seq, dtype=np.int64).copy(),
        off,
        np.frombuffer(nbid, dtype=np.int32).copy(),
        lvl,
        np.frombuffer(sizes, dtype=np.float64).copy(),
        table,
        decimals,
        meta=meta,
    )


def encode_chunks(events: Iterable[MarketEvent], skipped: dict[str, int], chunk: int | None) -> Iterator[tuple[array, ...]]:
    """The one event-to-columns rule: (kind, ts, seq, nbid, level count, level prices, level
    sizes) as ``array`` buffers, ``chunk`` events at a time (None: one chunk of everything, also
    for no events). Skipped perpetual events are counted into ``skipped`` once the stream is
    exhausted: ``{"mark_price": m, "liquidation": l}``, left empty when both are zero."""
    marks = liquidations = 0
    it = iter(events)
    while True:
        kind, ts, seq, nbid, nlev, prices, sizes = array("b"), array("q"), array("q"), array("i"), array("q"), array("d"), array("d")
        k_append, ts_append, seq_append, nb_append, nl_append = kind.append, ts.append, seq.append, nbid.append, nlev.append
        p_append, s_append = prices.append, sizes.append
        left = -1 if chunk is None else chunk
        for ev in it:
            t = type(ev)
            if t is BestBidAsk:
                k_append(BBO)
                ts_append(ev.ts_local)
                seq_append(ev.sequence)
                nb_append(1)
                nl_append(2)
                p_append(ev.bid_price)
                s_append(ev.bid_size)
                p_append(ev.ask_price)
                s_append(ev.ask_size)
            elif t is Trade:
                k_append(TRADE)
                ts_append(ev.ts_local)
                seq_append(ev.trade_id)
                nb_append(1 if ev.side == "buy" else 0)
                nl_append(1)
                p_append(ev.price)
                s_append(ev.size)
            elif t is BookDelta or t is BookSnapshot:
                k_append(DELTA if t is BookDelta else SNAPSHOT)
                ts_append(ev.ts_local)
                seq_append(ev.last_seq if t is BookDelta else ev.sequence)
                nb_append(len(ev.bids))
                nl_append(len(ev.bids) + len(ev.asks))
                for p, s in ev.bids:
                    p_append(p)
                    s_append(s)
                for p, s in ev.asks:
                    p_append(p)
                    s_append(s)
            elif t is BookInvalidated:
                k_append(INVALIDATED)
                ts_append(ev.ts_local)
                seq_append(0)
                nb_append(0)
                nl_append(0)
            elif t is MarkPrice:
                marks += 1
                continue
            elif t is Liquidation:
                liquidations += 1
                continue
            else:
                raise TypeError(f"not a market event: {t.__name__}")
            left -= 1
            if left == 0:
                break
        last = left != 0  # the stream ran out inside this chunk
        if last:
            if marks or liquidations:
                skipped.update({"mark_price": marks, "liquidation": liquidations})
        if len(kind) or last and chunk is None:
            yield kind, ts, seq, nbid, nlev, prices, sizes
        if last:
            return


def rank_prices(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct units ascending, int32 rank of each element): ``np.unique(.., return_inverse=True)``
    by :func:`bot.fast.ranks.ranks` (hashing, so only the distinct prices are sorted); ValueError
    when the ranks would not fit int32. The encoders and the compiled parser all rank through it."""
    from bot.fast.ranks import ranks  # numba: imported when an encoding happens, not with this module

    table, lvl = ranks(units)
    if table.size >= 2**31:
        raise ValueError("too many distinct prices")
    return table.astype(np.int64), lvl.astype(np.int32).reshape(-1)


def event_at(a: EventArrays, i: int, levels: bool = True) -> MarketEvent:
    """Event ``i`` rebuilt as a :mod:`bot.core.events` record (prices bit-identical).

    ``levels=False`` leaves a depth event's ``bids``/``asks`` empty: for a consumer whose book
    already holds the event (the fast replay's engine, see :class:`bot.fast.book.BookView`), the
    levels are never read, and building their tuples was a tenth of the replay's engine time.
    """
    # ndarray.item(): a Python scalar without an intermediate numpy scalar (the fast replay
    # rebuilds every event the engine handles)
    k = a.kind.item(i)
    ts = a.ts.item(i)
    lo, hi = a.off.item(i), a.off.item(i + 1)
    scale = a.scale
    prices, lvl, sz_all = a.prices, a.lvl, a.sz
    if k == BBO:
        return BestBidAsk(ts, 0, prices.item(lvl.item(lo)) / scale, sz_all.item(lo), prices.item(lvl.item(lo + 1)) / scale, sz_all.item(lo + 1), a.seq.item(i))
    if k == TRADE:
        return Trade(ts, 0, prices.item(lvl.item(lo)) / scale, sz_all.item(lo), "buy" if a.nbid.item(i) else "sell", a.seq.item(i))
    if k == INVALIDATED:
        return BookInvalidated(ts, 0, "")
    if not levels:
        return BookSnapshot(ts, 0, (), (), a.seq.item(i)) if k == SNAPSHOT else BookDelta(ts, 0, (), (), 0, a.seq.item(i))
    mid = lo + a.nbid.item(i)
    px = (prices[lvl[lo:hi]] / scale).tolist()
    sz = sz_all[lo:hi].tolist()
    bids = tuple(zip(px[: mid - lo], sz[: mid - lo]))
    asks = tuple(zip(px[mid - lo :], sz[mid - lo :]))
    if k == SNAPSHOT:
        return BookSnapshot(ts, 0, bids, asks, a.seq.item(i))
    return BookDelta(ts, 0, bids, asks, 0, a.seq.item(i))


def iter_events(a: EventArrays, start: int = 0, stop: int | None = None) -> Iterator[MarketEvent]:
    """Rebuild the events (for the readable engine, tests, or a fallback)."""
    stop = len(a) if stop is None else stop
    for i in range(start, stop):
        yield event_at(a, i)


# --------------------------------------------------------------------------- files
def save_npz(a: EventArrays, path: str | Path) -> Path:
    """Write ``a`` to ``path`` (uncompressed .npz, atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"version": ENCODING_VERSION, "price_decimals": a.price_decimals, "meta": a.meta}
    fd, tmp = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, info=np.frombuffer(json.dumps(info, default=str).encode(), dtype=np.uint8), **{n: getattr(a, n) for n in _ARRAYS})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_npz(path: str | Path) -> EventArrays:
    with np.load(path) as z:
        info = json.loads(bytes(z["info"]).decode())
        if info.get("version") != ENCODING_VERSION:
            raise ValueError(f"{path}: encoding version {info.get('version')} != {ENCODING_VERSION}")
        arrays = {n: z[n] for n in _ARRAYS}
    return EventArrays(
        **arrays,
        price_decimals=int(info["price_decimals"]),
        meta=info.get("meta", {}),
    )


def _files_key(paths: Sequence[str | Path]) -> str:
    h = hashlib.sha256(f"v{ENCODING_VERSION}".encode())
    for p in sorted(str(Path(p).resolve()) for p in paths):
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def default_cache_dir() -> Path:
    """``$BOT_FAST_CACHE`` or ``<tmp>/imbalance-bot-fast-cache`` (never inside the repository)."""
    env = os.environ.get("BOT_FAST_CACHE")
    return Path(env) if env else Path(tempfile.gettempdir()) / "imbalance-bot-fast-cache"


def load_binance(paths: Sequence[str | Path], cache_dir: str | Path | None = None, *, refresh: bool = False,
                 compiled: bool = True, on_block: Any = None) -> tuple[EventArrays, dict[str, Any]]:
    """Columnar arrays of a Binance recording, memory-mapped from the cache directory
    ``<cache_dir>/binance-<key>.cols`` (:mod:`bot.fast.colstore`), built on first use.

    The key covers the files' absolute paths, sizes and modification times and the encoding
    version (caches of older versions are never read; a version bump makes a new key). Returns
    the arrays and timings ``{"parse_s", "encode_s", "load_s", "cached"}`` (``parse_s``: reading
    and encoding, which run interleaved; ``encode_s`` stays 0; ``load_s``: opening the cache).
    A cache that cannot be opened (truncated, damaged, half deleted) is parsed again and
    rewritten; the timings' ``rebuilt`` then says what was wrong with it.
    The reader's statistics are kept in ``arrays.meta["reader"]``; ``meta["market_type"]`` is
    ``"spot"``, ``"linear"`` or ``"inverse"`` (empty when no depth diff told it) and
    ``meta["unified_symbol"]`` the ccxt symbol (``BTC/USD:BTC``) or None. Raises
    :class:`bot.data.binance.RecordingError` as the reader does (also for a file of another format
    or a recording without market events; a cached parse of no events, from before the reader
    refused those, is parsed again so that the reader says what is wrong).

    A clean recording is parsed by the compiled parser (:mod:`bot.fast.parse_binance`, 10x the
    reader's speed, identical arrays and statistics); one that needs the reader's problem
    handling, or ``compiled=False``, by :func:`read_binance`. The timings' ``parser`` says which.
    Memory: the compiled parser still builds the whole recording's arrays in memory before writing
    them (about 1 KB an event at its peak); the reader's events are encoded chunk by chunk
    (:func:`bot.fast.colstore.write_events`). A replay of the cache is bounded either way.
    ``on_block()`` is called after each block the compiled parser scanned (a progress bar).
    """
    import time

    from bot.data.binance import ReaderStats, read_binance
    from bot.data.symbols import unified_symbol

    from bot.fast.colstore import ColumnsError, open_columns, save_columns, write_events

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"binance-{_files_key(paths)}.cols"
    unreadable = None
    if path.exists() and not refresh:
        t = time.perf_counter()
        try:
            a = open_columns(path)
        except ColumnsError as exc:  # damaged or half-deleted: parsed again and rewritten
            unreadable = str(exc)
        else:
            if len(a) == 0:
                return load_binance(paths, cache_dir, refresh=True, compiled=compiled, on_block=on_block)
            return a, {"parse_s": 0.0, "encode_s": 0.0, "load_s": time.perf_counter() - t, "cached": True, "path": str(path)}
    t0 = time.perf_counter()
    fast = _parse_compiled(paths, on_block) if compiled else None
    parser = "compiled" if fast is not None else "reader"

    def meta(stats: Any, extra: dict[str, Any]) -> dict[str, Any]:
        info = {"source": "binance", "files": [str(p) for p in paths], "symbol": stats.symbol, "market_type": stats.market_type,
                "unified_symbol": unified_symbol(stats.symbol, stats.market_type) if stats.market_type else None, **extra}
        info["reader"] = stats.as_dict()  # with its problems (at most MAX_PROBLEMS lines): the command lists them
        return info

    if fast is not None:  # the compiled parser builds the whole recording's arrays in memory (then mapped from the cache)
        arrays, stats = fast
        arrays.meta = meta(stats, arrays.meta)
        save_columns(arrays, path)
        del arrays, fast
    else:  # the reader's events are encoded chunk by chunk: nothing of the whole stream is held
        stats = ReaderStats()
        write_events(read_binance(list(paths), stats), path, lambda: meta(stats, {}))
    t1 = time.perf_counter()
    a = open_columns(path)
    out = {"parse_s": t1 - t0, "encode_s": 0.0, "load_s": 0.0, "cached": False, "path": str(path),
           "parser": parser}
    if unreadable:
        out["rebuilt"] = unreadable
    return a, out


def _parse_compiled(paths: Sequence[str | Path], on_block: Any = None) -> tuple[EventArrays, Any] | None:
    """The compiled parser's arrays and a :class:`ReaderStats` equal to the reader's, or None when
    the recording needs the reference reader (see :mod:`bot.fast.parse_binance`). Files the
    probe refuses raise its :class:`RecordingError`, as the reader would."""
    from bot.data.binance import ReaderStats
    from bot.data.recording import chain_files, probe_head
    from bot.fast.parse_binance import parse

    if not paths:
        return None
    files = chain_files([probe_head(p) for p in paths])
    symbols = {f.symbol for f in files if f.symbol}
    types = [f.market_type for f in files if f.market_type]
    if len(symbols) != 1 or not types:
        return None
    symbol, market_type = symbols.pop(), types[0]
    out = parse([f.path for f in files], symbol, market_type, on_block)
    if out is None:
        return None
    arrays, figures = out
    stats = ReaderStats(files=[str(f.path) for f in files], symbol=symbol, market_type=market_type, lines=figures["lines"],
                        dropped_deltas=figures["dropped_deltas"], first_ts=figures["first_ts"], last_ts=figures["last_ts"])
    stats.events.update(figures["events"])
    return arrays, stats
