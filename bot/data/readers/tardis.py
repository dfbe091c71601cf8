"""Tardis.dev CSV datasets (plain or gzip), recognized by their header line.

Every dataset starts with ``exchange,symbol,timestamp,local_timestamp``; ``timestamp`` is the
exchange's time and ``local_timestamp`` Tardis' receive time, both in µs since the epoch (ns here:
``ts_exchange`` and ``ts_local``). The remaining columns tell the dataset:

* ``incremental_book_L2`` (``is_snapshot,side,price,amount``; side ``bid``/``ask``, amount the new
  absolute size, 0 removes): a run of ``is_snapshot=true`` rows with one timestamp is one
  :class:`BookSnapshot` that resets the book (a new run after updates is a reset too); other rows
  with the same (timestamp, local_timestamp) are one :class:`BookDelta`. Updates before the
  first snapshot cannot be applied and are counted in ``dropped_deltas``.
* ``book_snapshot_25`` / ``book_snapshot_5`` (``asks[0].price,asks[0].amount,bids[0].price,...``):
  every row is a :class:`BookSnapshot` (empty levels left out).
* ``quotes`` (``ask_amount,ask_price,bid_price,bid_amount``): :class:`BestBidAsk`.
* ``trades`` (``id,side,price,amount``; side is the taker's; ``unknown`` sides are skipped and
  counted in ``ignored``): :class:`Trade`.
* ``liquidations``: the same columns as trades, so the file name tells them apart (it contains
  ``liquidation``, as Tardis names its downloads); ``--format tardis-liquidations`` reads any
  such file as liquidations. Side is the liquidation order's side: :class:`Liquidation`.
* ``derivative_ticker`` (``funding_timestamp,funding_rate,...,index_price,mark_price``):
  :class:`MarkPrice` (rows without a mark price are skipped and counted in ``ignored``).

Several files (say the book, trades and ticker of one day) are merged by ``local_timestamp``; they
must be of one exchange and symbol. Rows whose ``local_timestamp`` goes back within a file are
skipped (``out_of_order``); malformed rows (wrong field count, non-numeric or non-positive price,
bad side) are counted in ``malformed`` and named in ``problems``, never applied.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, Liquidation, MarkPrice, MarketEvent, Trade
from bot.data.binance import ReaderStats
from bot.data.readers.io import head_lines, iter_lines
from bot.data.readers.registry import Format, register
from bot.data.recording import RecordingError

PREFIX = "exchange,symbol,timestamp,local_timestamp"
_US = 1000
_INF = math.inf


class _Bad(ValueError):
    pass


def market_type_of(exchange: str, symbol: str) -> str:
    """A guess from Tardis' exchange id: ``spot``, ``linear`` or ``inverse`` ("" when unknown)."""
    ex = exchange.lower()
    sym = symbol.upper()
    if ex == "binance-futures":
        return "linear"
    if ex in ("binance-delivery", "deribit", "bitmex"):
        return "inverse" if not sym.endswith(("USDT", "USDC")) else "linear"
    if ex in ("bybit", "okex-swap", "okex-futures", "huobi-dm-swap", "huobi-dm", "ftx", "bitfinex-derivatives"):
        return "linear" if "USDT" in sym or "USDC" in sym else "inverse"
    if ex.endswith(("-futures", "-swap", "-derivatives", "-delivery")):
        return ""
    return "spot"


def dataset_of(header: str, name: str = "") -> str:
    """The dataset a header line belongs to ("" when it is not a Tardis header)."""
    cols = header.strip().split(",")
    if ",".join(cols[:4]) != PREFIX:
        return ""
    rest = set(cols[4:])
    if {"is_snapshot", "side", "price", "amount"} <= rest:
        return "incremental_book_L2"
    if "asks[0].price" in rest or "bids[0].price" in rest:
        return "book_snapshot"
    if {"ask_price", "bid_price", "ask_amount", "bid_amount"} <= rest:
        return "quotes"
    if "mark_price" in rest:
        return "derivative_ticker"
    if {"id", "side", "price", "amount"} <= rest:
        return "liquidations" if "liquidation" in name.lower() else "trades"
    return ""


def sniff(path: Path) -> bool:
    lines = head_lines(path, 1)
    return bool(lines) and bool(dataset_of(lines[0], path.name))


def _num(text: str, what: str, positive: bool = False) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Bad(f"{what} must be a number, got {text[:30]!r}") from None
    if not -_INF < value < _INF or (positive and value <= 0.0):
        raise _Bad(f"{what} must be {'a positive' if positive else 'a'} finite number, got {text[:30]!r}")
    return value


def _size(text: str, what: str, stats: ReaderStats) -> float:
    value = _num(text, what)
    if value < 0.0:
        stats.negative_sizes += 1
        raise _Bad(f"{what} is negative ({text})")
    return value


class _File:
    """One Tardis CSV file: its rows turned into events (a generator per file)."""

    def __init__(self, path: Path, stats: ReaderStats, as_liquidations: bool) -> None:
        self.path = path
        self.stats = stats
        self.as_liquidations = as_liquidations

    def events(self) -> Iterator[MarketEvent]:
        stats = self.stats
        lines = iter_lines(self.path)
        header = next(lines, "")
        dataset = dataset_of(header, self.path.name)
        if not dataset:
            raise RecordingError(f"{self.path}: not a Tardis CSV (expected a header starting with {PREFIX!r}, got {header[:60]!r})")
        if dataset == "trades" and self.as_liquidations:
            dataset = "liquidations"
        cols = header.strip().split(",")
        self.col = {c: i for i, c in enumerate(cols)}
        self.ncols = len(cols)
        parse = getattr(self, "_" + dataset)
        self.pending = None  # incremental_book_L2: the snapshot or delta being gathered
        self.synced = False
        last = 0
        name = self.path.name
        for lineno, line in enumerate(lines, start=2):
            if not line:
                continue
            stats.lines += 1
            f = line.split(",")
            if len(f) != self.ncols:
                self._problem(lineno, f"expected {self.ncols} fields, got {len(f)}")
                continue
            try:
                ex, sym = f[0], f[1]
                ts_ex = int(f[2]) * _US if f[2] else 0
                ts = int(f[3]) * _US
            except ValueError:
                self._problem(lineno, f"timestamps must be integers of µs, got {f[2][:20]!r}, {f[3][:20]!r}")
                continue
            if ts < last:
                stats.out_of_order += 1
                stats.problem(f"{name}:{lineno}: local_timestamp goes back ({ts // _US} < {last // _US}); row skipped")
                continue
            if not stats.symbol:
                stats.symbol, stats.exchange = sym, ex
                stats.market_type = market_type_of(ex, sym)
            elif sym != stats.symbol or ex != stats.exchange:
                raise RecordingError(f"{name}:{lineno}: {ex} {sym} is not {stats.exchange} {stats.symbol}: "
                                     f"give the files of one exchange and symbol")
            if not stats.first_ts or ts < stats.first_ts:
                stats.first_ts = ts
            last = ts  # per file: several files are merged by time afterwards
            stats.last_ts = max(stats.last_ts, ts)
            try:
                yield from parse(f, ts_ex, ts)
            except _Bad as exc:
                self._problem(lineno, str(exc))
        if self.pending is not None:
            yield self._flush()

    def _problem(self, lineno: int, what: str) -> None:
        self.stats.malformed += 1
        self.stats.problem(f"{self.path.name}:{lineno}: {what}")

    # -- incremental_book_L2 -------------------------------------------------------------
    def _flush(self) -> MarketEvent:
        kind, ts_ex, ts, _key, bids, asks = self.pending
        self.pending = None
        stats = self.stats
        if kind == "snapshot":
            stats.events["snapshot"] += 1
            return BookSnapshot(ts, ts_ex, tuple(sorted(((p, q) for p, q in bids.items() if q > 0), reverse=True)),
                                tuple(sorted((p, q) for p, q in asks.items() if q > 0)))
        stats.events["delta"] += 1
        return BookDelta(ts, ts_ex, tuple(bids.items()), tuple(asks.items()))

    def _incremental_book_L2(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        c = self.col
        snap = f[c["is_snapshot"]]
        if snap not in ("true", "false"):
            raise _Bad(f"is_snapshot must be true or false, got {snap[:10]!r}")
        side = f[c["side"]]
        if side not in ("bid", "ask"):
            raise _Bad(f"side must be bid or ask, got {side[:10]!r}")
        price = _num(f[c["price"]], "price", positive=True)
        amount = _size(f[c["amount"]], "amount", self.stats)
        kind = "snapshot" if snap == "true" else "delta"
        key = (ts_ex, ts)
        p = self.pending
        if p is None or p[0] != kind or p[3] != key:
            if p is not None:
                yield self._flush()
            if kind == "delta" and not self.synced:
                self.stats.dropped_deltas += 1
                return
            self.synced = True
            self.pending = p = (kind, ts_ex, ts, key, {}, {})
        (p[4] if side == "bid" else p[5])[price] = amount

    # -- the other datasets --------------------------------------------------------------
    def _book_snapshot(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        sides = []
        for side in ("bids", "asks"):
            levels = []
            i = 0
            while (pc := self.col.get(f"{side}[{i}].price")) is not None:
                pt, at = f[pc], f[self.col[f"{side}[{i}].amount"]]
                i += 1
                if not pt or not at:
                    continue
                q = _size(at, f"{side}[{i - 1}].amount", self.stats)
                if q > 0:
                    levels.append((_num(pt, f"{side}[{i - 1}].price", positive=True), q))
            sides.append(tuple(sorted(levels, reverse=side == "bids")))
        self.stats.events["snapshot"] += 1
        yield BookSnapshot(ts, ts_ex, sides[0], sides[1])

    def _quotes(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        c = self.col
        values = [f[c[k]] for k in ("bid_price", "bid_amount", "ask_price", "ask_amount")]
        if not all(values):
            self.stats.ignored += 1  # one side empty: no quote to give
            return
        bp = _num(values[0], "bid_price", positive=True)
        ap = _num(values[2], "ask_price", positive=True)
        bq = _size(values[1], "bid_amount", self.stats)
        aq = _size(values[3], "ask_amount", self.stats)
        if bp >= ap:
            self.stats.crossed_bbo += 1
            return
        self.stats.events["bbo"] += 1
        yield BestBidAsk(ts, ts_ex, bp, bq, ap, aq)

    def _side_price_amount(self, f: list[str]) -> tuple[str, float, float]:
        c = self.col
        side = f[c["side"]]
        price = _num(f[c["price"]], "price", positive=True)
        amount = _size(f[c["amount"]], "amount", self.stats)
        return side, price, amount

    def _trades(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        side, price, amount = self._side_price_amount(f)
        if side not in ("buy", "sell"):
            if side == "unknown":
                self.stats.ignored += 1
                return
            raise _Bad(f"side must be buy, sell or unknown, got {side[:10]!r}")
        tid = f[self.col["id"]]
        self.stats.events["trade"] += 1
        yield Trade(ts, ts_ex, price, amount, side, int(tid) if tid.isdigit() else 0)

    def _liquidations(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        side, price, amount = self._side_price_amount(f)
        if side not in ("buy", "sell"):
            raise _Bad(f"side must be buy or sell, got {side[:10]!r}")
        self.stats.liquidations += 1
        yield Liquidation(ts, ts_ex, price, amount, side)

    def _derivative_ticker(self, f: list[str], ts_ex: int, ts: int) -> Iterator[MarketEvent]:
        c = self.col

        def get(key: str) -> str:
            i = c.get(key)
            return f[i] if i is not None else ""

        mark = get("mark_price")
        if not mark:
            self.stats.ignored += 1
            return
        index = get("index_price")
        rate = get("funding_rate")
        nxt = get("funding_timestamp")
        try:
            next_ts = int(nxt) * _US if nxt else 0
        except ValueError:
            raise _Bad(f"funding_timestamp must be an integer of µs, got {nxt[:20]!r}") from None
        self.stats.mark_prices += 1
        yield MarkPrice(ts, ts_ex, _num(mark, "mark_price", positive=True),
                        _num(index, "index_price") if index else 0.0,
                        _num(rate, "funding_rate") if rate else 0.0, next_ts)


def _read(paths: Sequence[Path], stats: ReaderStats, as_liquidations: bool) -> Iterator[MarketEvent]:
    stats.files = [str(p) for p in paths]
    streams = [_File(Path(p), stats, as_liquidations).events() for p in paths]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=lambda e: e.ts_local)


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    return _read(paths, stats, False)


def read_liquidations(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    return _read(paths, stats, True)


FORMAT = register(Format(
    "tardis",
    "Tardis.dev CSV (incremental_book_L2, book_snapshot_N, quotes, trades, liquidations, derivative_ticker), plain or gzip",
    sniff, read,
))
LIQUIDATIONS = register(Format(
    "tardis-liquidations",
    "Tardis.dev liquidations CSV whose file name does not say so (only with --format; same columns as trades)",
    lambda _path: False, read_liquidations,
))
