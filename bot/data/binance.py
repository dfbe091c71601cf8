"""Reader for Binance raw-stream recordings (hftbacktest collector format).

File format: gzip text, one message per line, ``<local_receive_ts_ns> <json>``. The JSON is a
Binance combined-stream payload ``{"stream": "<sym>@depth@100ms" | "<sym>@depth@0ms" |
"<sym>@bookTicker" | "<sym>@trade" | "<sym>@markPrice[@1s]" | "<sym>@forceOrder", "data": {...}}``,
except one line per recording that is the raw REST depth snapshot ``{"lastUpdateId": ...,
"bids": [[p, q], ...], "asks": [...]}`` (the futures snapshot also has ``E``/``T``). ``<sym>`` is
the lower-case exchange id: ``btcusdt`` (spot, USD-M), ``btcusd_perp`` (COIN-M, sizes in contracts).
A recording split at midnight is given as all its files and replays as one continuous stream
(only the first file holds the snapshot).

:func:`read_binance` turns such files into :mod:`bot.core.events` records (what a file is before
its replay, the probe of its first lines and the chaining of split files, is
:mod:`bot.data.recording`; the perpetual streams are parsed by :mod:`bot.data.derivatives`). Behaviour:

* **Files** are ordered by the local timestamp of their first line, so they may be given in any
  order. A file that starts before the previous one ends, a missing/unreadable/non-gzip file,
  a file of another format (none of its first 1000 non-blank lines is a timestamped stream
  message or depth snapshot: a gzipped CSV, other JSON, an empty file), or files of different
  symbols or markets raise :class:`RecordingError`. The iterator is lazy: these checks run on
  the first ``next()``, before any event is yielded (the CLI relies on this to catch the error
  inside its ``try``). The check decompresses every file once up front (JSON parsing of the first
  few lines only; about 0.1 s per 15 MB of text). A recording that yields no market event at all
  (every line malformed, no usable stream) raises :class:`RecordingError` at its end, which is
  the first ``next()`` too, since nothing was yielded before.
* **Order and clocks**: events come in file line order. ``ts_local`` is the line's timestamp,
  ``ts_exchange`` the message's ``E`` (``T`` for trades) converted from ms to ns, 0 when absent
  (spot bookTicker). A line whose local timestamp is earlier than the previous line's is counted
  in ``out_of_order`` and skipped, so ``ts_local`` never decreases.
* **Depth sync** (Binance rules). Diffs are buffered until a snapshot line arrives; then
  :class:`BookSnapshot` is emitted (``sequence`` = ``lastUpdateId``, levels best first) and the
  buffered diffs are replayed through the rules below **with ``ts_local`` = the snapshot line's
  timestamp** (they are in the past by then; a monotonic clock matters more than their original
  stamps). Spot: drop ``u <= lastUpdateId``; the first applied diff needs
  ``U <= lastUpdateId + 1 <= u``; every later one ``U == prev_u + 1``. Futures (USD-M, COIN-M): drop
  ``u < lastUpdateId``; first applied needs ``U <= lastUpdateId <= u``; later ``pu == prev_u``.
  A violation is a gap: counted, reported as a problem (file:line, expected/got ids), a
  :class:`BookInvalidated` is emitted and the reader awaits a new snapshot. While awaiting, diffs
  are *buffered* again (not discarded at once): the next snapshot line replays them with the
  same rules, exactly as for the initial sync, since discarding them would make the first diff
  after a fresh snapshot fail too. Diffs that the snapshot makes obsolete, that overflow the
  buffer (:data:`MAX_BUFFERED_DIFFS`) or that are still waiting at the end of the recording are
  counted in ``dropped_deltas``; so ``deltas + dropped_deltas`` equals the number of well-formed
  diffs. A snapshot line resets the sync state at any time.
* **Market type** is decided by the first depth diff: ``pu`` present (or a ``@depth@0ms``
  stream, which only futures have) means futures, otherwise ``"spot"``; futures are ``"inverse"``
  (COIN-M) when the symbol names a contract (``BTCUSD_PERP``), else ``"linear"`` (USD-M). A futures diff without ``pu`` is malformed; a diff
  with ``pu`` in a spot recording raises :class:`RecordingError` (mixed markets). When the
  first lines of the files hold a diff (real recordings start with one), the type is known
  before the first event, like the symbol, so a caller can refuse a config of the other market
  before replaying anything.
* **bookTicker** rows are emitted also before the first snapshot and while resyncing (the book
  ignores them in that state; a strategy may still want the quote). Rows with bid >= ask are
  counted in ``crossed_bbo`` and not emitted. ``BestBidAsk.sequence`` is ``u``.
* **Trades**: ``side`` is ``"sell"`` when ``m`` (buyer is maker) is true, else ``"buy"``;
  ``trade_id`` is ``t``.
* **Perpetual streams**: ``markPrice`` lines become :class:`MarkPrice`, ``forceOrder`` lines
  :class:`Liquidation` (parsed by :mod:`bot.data.derivatives`), counted in ``mark_prices`` and
  ``liquidations`` (not in ``events``, which counts the book's own kinds). They do not decide the
  market type (only depth diffs do). All-market streams (``!forceOrder@arr``) are ``ignored``.
* **Bad input never raises** (only the :class:`RecordingError` conditions above do): a file
  with a few bad lines among good ones replays, the bad lines counted and named. A line
  without a space, with a bad timestamp, invalid JSON, missing fields or non-numeric/non-finite/
  non-positive prices is counted in ``malformed``; a message with a negative size anywhere is
  rejected whole and counted in ``negative_sizes``. Each such line is named in ``problems`` as
  ``file:line: what``. A rejected *depth diff* breaks the update-id chain, so when the book is
  synced it is treated as a gap (``gaps`` + 1, :class:`BookInvalidated`, await a snapshot);
  while already awaiting a snapshot it is only counted (the sync rules catch any hole it leaves
  when the snapshot arrives). A rejected snapshot leaves the sync state unchanged. Well-formed
  lines of streams this reader does not use (``aggTrade``, ``depth20`` ...) are counted in
  ``ignored``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from math import isfinite
from pathlib import Path
from typing import Any

from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Level, MarketEvent, Trade
from bot.data.derivatives import Reject as _Reject
from bot.data.derivatives import liquidation, mark_price
from bot.data.recording import EXPECTED_FORMAT, RecordingError, RecordingFile, chain_files, probe_recording, stream_kind
from bot.data.recording import iter_lines as _iter_lines
from bot.data.symbols import market_type_of

__all__ = [
    "EXPECTED_FORMAT", "MAX_BUFFERED_DIFFS", "MAX_PROBLEMS", "ReaderStats", "RecordingError", "RecordingFile",
    "chain_files", "probe_recording", "read_binance",
]

MAX_PROBLEMS = 100
"""At most this many problem lines are kept in :attr:`ReaderStats.problems` (all are counted)."""

MAX_BUFFERED_DIFFS = 20_000
"""Diffs kept while awaiting a snapshot; older ones are dropped (and counted) beyond this."""

_INF = float("inf")
_MS = 1_000_000
_KINDS = ("snapshot", "delta", "bbo", "trade", "invalidated")


@dataclass
class ReaderStats:
    """What :func:`read_binance` saw; filled in while iterating."""

    lines: int = 0  # non-blank lines read
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_KINDS, 0))  # yielded, by kind
    malformed: int = 0  # lines that could not be parsed (bad timestamp/JSON, missing or bad fields)
    problems: list[str] = field(default_factory=list)  # "file:line: what", first MAX_PROBLEMS only
    problems_total: int = 0  # all problems, including those not kept in ``problems``
    gaps: int = 0  # sequence gaps (each yields BookInvalidated)
    dropped_deltas: int = 0  # well-formed diffs not applied: obsolete, buffer overflow, no snapshot
    negative_sizes: int = 0  # messages rejected for a negative size
    crossed_bbo: int = 0  # bookTicker rows with bid >= ask (not yielded)
    out_of_order: int = 0  # lines whose local timestamp goes backwards (skipped)
    ignored: int = 0  # well-formed lines of streams this reader does not use
    mark_prices: int = 0  # MarkPrice events yielded (markPrice streams, perpetuals only)
    liquidations: int = 0  # Liquidation events yielded (forceOrder streams)
    files: list[str] = field(default_factory=list)  # in replay order
    market_type: str = ""  # "spot", "linear" (USD-M) or "inverse" (COIN-M), from the first depth diff
    symbol: str = ""  # e.g. "BTCUSDT", known before the first event
    first_ts: int = 0  # local ns timestamp of the first and last line read
    last_ts: int = 0
    format: str = ""  # the reader's format name (bot.data.readers), "" when read_binance is called directly
    exchange: str = ""  # the venue when the format tells it ("binance", "deribit", "nasdaq" ...)

    def problem(self, message: str) -> None:
        self.problems_total += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(message)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- parsing helpers
def _levels(raw: Any, what: str) -> tuple[Level, ...]:
    """``[[price, qty], ...]`` strings -> tuple of float pairs, validated.

    Fast path in C-level builtins (one ``float`` map, aggregate checks); anything suspicious
    goes through :func:`_levels_checked`, which names the fault.
    """
    if type(raw) is not list:
        raise _Reject(f"{what}: expected a list of [price, qty], got {type(raw).__name__}")
    if not raw:
        return ()
    try:
        if set(map(type, raw)) != {list} or set(map(len, raw)) != {2}:
            return _levels_checked(raw, what)
        flat = list(map(float, chain.from_iterable(raw)))
    except (TypeError, ValueError):
        return _levels_checked(raw, what)
    prices = flat[0::2]
    sizes = flat[1::2]
    # sum() is NaN/inf if any element is: together with min() this checks every level
    if min(prices) > 0.0 and min(sizes) >= 0.0 and isfinite(sum(prices)) and isfinite(sum(sizes)):
        return tuple(zip(prices, sizes))
    return _levels_checked(raw, what)


def _levels_checked(raw: list[Any], what: str) -> tuple[Level, ...]:
    out = []
    negative = None
    for level in raw:
        try:
            if type(level) is not list:
                raise TypeError
            p_raw, q_raw = level
            price = float(p_raw)
            qty = float(q_raw)
        except (TypeError, ValueError):
            raise _Reject(f"{what}: expected [price, qty] numbers, got {str(level)[:60]}") from None
        if not 0.0 < price < _INF:
            raise _Reject(f"{what}: price must be a positive finite number, got {p_raw!r}")
        if not 0.0 <= qty < _INF:
            if qty < 0.0:
                negative = negative or (price, qty)
            else:
                raise _Reject(f"{what}: size must be a finite number, got {q_raw!r}")
        out.append((price, qty))
    if negative:
        raise _Reject(f"{what}: negative size {negative[1]} at price {negative[0]}; message rejected", negative=True)
    return tuple(out)


def _int_field(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if type(value) is not int:
        raise _Reject(f"expected integer field {key!r}, got {value!r}" if key in data else f"missing field {key!r}")
    return value


def _ms(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    return value * _MS if type(value) is int else 0


_DECODER = json.JSONDecoder()



# --------------------------------------------------------------------------- the reader
class _Reader:
    def __init__(self, paths: Sequence[str | Path], stats: ReaderStats) -> None:
        self.paths = [Path(p) for p in paths]
        self.stats = stats
        # depth sync state
        self.synced = False
        self.last_update_id = 0
        self.prev_u: int | None = None
        self.buffer: list[tuple[Any, ...]] = []
        self.future: bool | None = None  # decided by the first depth diff

    # -- problems -------------------------------------------------------------------------
    def _problem(self, where: str, message: str) -> None:
        self.stats.problem(f"{where}: {message}")

    # -- file order -----------------------------------------------------------------------
    def _ordered_files(self) -> list[RecordingFile]:
        stats = self.stats
        if not self.paths:
            raise RecordingError("no recording files given")
        files = chain_files([probe_recording(path) for path in self.paths])
        stats.files = [str(f.path) for f in files]
        symbols = {f.symbol for f in files if f.symbol}
        if symbols:
            stats.symbol = symbols.pop()
        types = [f.market_type for f in files if f.market_type]
        if types:  # known before the first event, like the symbol (the CLI checks both)
            stats.market_type = types[0]
            self.future = types[0] != "spot"
        return files

    # -- depth sync -----------------------------------------------------------------------
    def _gap(self, ts: int, ts_exchange: int, where: str, message: str) -> BookInvalidated:
        stats = self.stats
        stats.gaps += 1
        stats.events["invalidated"] += 1
        self._problem(where, f"sequence gap: {message}; book invalidated, awaiting a new snapshot")
        self.synced = False
        self.prev_u = None
        return BookInvalidated(ts, ts_exchange, f"{where}: {message}")

    def _diff(self, diff: tuple[Any, ...], ts: int) -> Iterator[MarketEvent]:
        """Run one parsed diff ``(where, E_ns, U, u, pu, bids, asks)`` through the sync rules."""
        stats = self.stats
        if not self.synced:
            buffer = self.buffer
            buffer.append(diff)
            if len(buffer) > MAX_BUFFERED_DIFFS:
                del buffer[0]
                stats.dropped_deltas += 1
            return
        where, ets, first, last, pu, bids, asks = diff
        lid = self.last_update_id
        prev = self.prev_u
        if self.future:
            if prev is None:
                if last < lid:
                    stats.dropped_deltas += 1
                    return
                if not first <= lid <= last:
                    yield self._gap(ts, ets, where, f"first diff after snapshot {lid} must have U <= {lid} <= u, got U={first} u={last}")
                    self.buffer.append(diff)
                    return
            elif pu != prev:
                yield self._gap(ts, ets, where, f"expected pu={prev}, got pu={pu} (U={first} u={last})")
                self.buffer.append(diff)
                return
        else:
            if prev is None:
                if last <= lid:
                    stats.dropped_deltas += 1
                    return
                if not first <= lid + 1 <= last:
                    yield self._gap(ts, ets, where, f"first diff after snapshot {lid} must have U <= {lid + 1} <= u, got U={first} u={last}")
                    self.buffer.append(diff)
                    return
            elif first != prev + 1:
                yield self._gap(ts, ets, where, f"expected U={prev + 1}, got U={first} (u={last})")
                self.buffer.append(diff)
                return
        self.prev_u = last
        stats.events["delta"] += 1
        yield BookDelta(ts, ets, bids, asks, first, last)

    def _snapshot(self, obj: dict[str, Any], ts: int) -> Iterator[MarketEvent]:
        lid = _int_field(obj, "lastUpdateId")
        bids = _levels(obj.get("bids"), "snapshot bids")
        asks = _levels(obj.get("asks"), "snapshot asks")
        bids = tuple(sorted(bids, key=lambda lv: -lv[0]))
        asks = tuple(sorted(asks))
        stats = self.stats
        stats.events["snapshot"] += 1
        self.synced = True
        self.last_update_id = lid
        self.prev_u = None
        yield BookSnapshot(ts, _ms(obj, "E"), bids, asks, lid)
        pending, self.buffer = self.buffer, []
        for diff in pending:
            yield from self._diff(diff, ts)

    def _parse_diff(self, data: dict[str, Any], stream: str, where: str) -> tuple[Any, ...]:
        first = _int_field(data, "U")
        last = _int_field(data, "u")
        has_pu = "pu" in data
        if self.future is None:
            # futures diffs (USD-M and COIN-M) carry pu; @depth@0ms exists only on futures (so a
            # damaged first diff without pu is still recognised there)
            self.future = has_pu or stream.endswith("@0ms")
            self.stats.market_type = market_type_of(self.stats.symbol, self.future)
        if self.future:
            pu = _int_field(data, "pu")
        elif has_pu:
            raise RecordingError(f"{where}: futures diff (has 'pu') in a spot recording; mixed markets")
        else:
            pu = 0
        bids = _levels(data.get("b"), "diff bids")
        asks = _levels(data.get("a"), "diff asks")
        return (where, _ms(data, "E"), first, last, pu, bids, asks)

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> Iterator[MarketEvent]:
        stats = self.stats
        files = self._ordered_files()
        counts = stats.events
        scan = _DECODER.scan_once  # json.loads minus its wrapper layers (~25% faster per line)
        kinds: dict[str, str] = {}
        symbol = stats.symbol
        last_ts = 0
        for info in files:
            name = info.path.name
            lineno = 0
            for line in _iter_lines(info.path):
                lineno += 1
                if not line:
                    continue
                stats.lines += 1
                ts_raw, sep, body = line.partition(" ")
                try:
                    ts = int(ts_raw)
                except ValueError:
                    ts = -1
                if not sep or ts <= 0:
                    stats.malformed += 1
                    what = "no space between timestamp and JSON" if not sep else f"timestamp must be a positive integer of ns, got {ts_raw[:30]!r}"
                    stats.problem(f"{name}:{lineno}: {what}")
                    continue
                if ts < last_ts:
                    stats.out_of_order += 1
                    stats.problem(f"{name}:{lineno}: local timestamp {ts} is earlier than the previous line's {last_ts}; line skipped")
                    continue
                try:
                    obj, end = scan(body, 0)
                    if end != len(body) and body[end:].strip():
                        raise ValueError
                except (StopIteration, ValueError, RecursionError):
                    try:  # the slow way: accepts surrounding whitespace, explains the fault
                        obj = json.loads(body)
                    except (ValueError, RecursionError) as exc:
                        stats.malformed += 1
                        stats.problem(f"{name}:{lineno}: invalid JSON: {exc}")
                        continue
                if not last_ts:
                    stats.first_ts = ts
                last_ts = ts
                stats.last_ts = ts
                try:
                    if type(obj) is not dict:
                        raise _Reject(f"expected a JSON object, got {type(obj).__name__}")
                    stream = obj.get("stream")
                    if stream is None:
                        if "lastUpdateId" not in obj:
                            raise _Reject("expected a combined-stream message ('stream', 'data') or a depth snapshot ('lastUpdateId')")
                        yield from self._snapshot(obj, ts)
                        continue
                    kind = kinds.get(stream)
                    if kind is None:
                        if type(stream) is not str or "@" not in stream:
                            raise _Reject(f"expected 'stream' like 'btcusdt@trade', got {str(stream)[:40]!r}")
                        sym, _, suffix = stream.partition("@")
                        if sym.startswith("!"):  # all-market (!forceOrder@arr): not this instrument's alone
                            kind = kinds[stream] = ""
                        else:
                            sym = sym.upper()
                            if not symbol:
                                symbol = stats.symbol = sym
                            elif sym != symbol:
                                raise RecordingError(f"{name}:{lineno}: stream {stream!r} is not {symbol}: mixed symbols in one recording")
                            kind = kinds[stream] = stream_kind(suffix)
                    data = obj.get("data")
                    if type(data) is not dict:
                        raise _Reject(f"expected an object in 'data' of stream {stream}")
                    if kind == "bbo":
                        try:
                            bp = float(data["b"])
                            bq = float(data["B"])
                            ap = float(data["a"])
                            aq = float(data["A"])
                        except KeyError as exc:
                            raise _Reject(f"bookTicker: missing field {exc}") from None
                        except (TypeError, ValueError):
                            raise _Reject("bookTicker: expected numeric b, B, a, A") from None
                        if not (0.0 < bp < _INF and 0.0 < ap < _INF and 0.0 <= bq < _INF and 0.0 <= aq < _INF):
                            if bq < 0.0 or aq < 0.0:
                                raise _Reject(f"bookTicker: negative size B={bq} A={aq}; message rejected", negative=True)
                            raise _Reject(f"bookTicker: prices must be positive and sizes finite, got b={bp} B={bq} a={ap} A={aq}")
                        if bp >= ap:
                            stats.crossed_bbo += 1
                            stats.problem(f"{name}:{lineno}: crossed bookTicker bid {bp} >= ask {ap}; not emitted")
                            continue
                        seq = data.get("u")
                        if type(seq) is not int:
                            seq = _int_field(data, "u")  # raises, naming the fault
                        exch = data.get("E")  # USD-M only
                        counts["bbo"] += 1
                        yield BestBidAsk(ts, exch * _MS if type(exch) is int else 0, bp, bq, ap, aq, seq)
                    elif kind == "trade":
                        try:
                            price = float(data["p"])
                            qty = float(data["q"])
                            maker = data["m"]
                        except KeyError as exc:
                            raise _Reject(f"trade: missing field {exc}") from None
                        except (TypeError, ValueError):
                            raise _Reject("trade: expected numeric p and q") from None
                        if not (0.0 < price < _INF and 0.0 <= qty < _INF) or type(maker) is not bool:
                            if qty < 0.0:
                                raise _Reject(f"trade: negative quantity {qty}; message rejected", negative=True)
                            raise _Reject(f"trade: expected positive price, finite quantity and boolean m, got p={price} q={qty} m={maker!r}")
                        trade_id = _int_field(data, "t")
                        counts["trade"] += 1
                        yield Trade(ts, _ms(data, "T"), price, qty, "sell" if maker else "buy", trade_id)
                    elif kind == "depth":
                        where = f"{name}:{lineno}"
                        try:
                            diff = self._parse_diff(data, stream, where)
                        except _Reject as exc:
                            self._reject(exc, where)
                            if self.synced:
                                yield self._gap(ts, _ms(data, "E"), where, "depth diff rejected, the update-id chain is broken")
                            continue
                        yield from self._diff(diff, ts)
                    elif kind == "mark":
                        mark = mark_price(data, ts)
                        stats.mark_prices += 1
                        yield mark
                    elif kind == "liq":
                        liq = liquidation(data, ts, symbol)
                        stats.liquidations += 1
                        yield liq
                    else:
                        stats.ignored += 1
                        stats.problem(f"{name}:{lineno}: stream {stream!r} is not used by this reader; line ignored")
                except _Reject as exc:
                    self._reject(exc, f"{name}:{lineno}")
        if self.buffer:
            n = len(self.buffer)
            stats.dropped_deltas += n
            stats.problem(f"{self.buffer[0][0]}: {n} depth diff(s) from here on never got a snapshot to apply to; dropped at end of recording")
            self.buffer = []
        if not any(counts.values()) and not stats.mark_prices and not stats.liquidations:
            raise RecordingError(self._no_events())

    def _no_events(self) -> str:
        stats = self.stats
        seen = [f"{n} {what}" for n, what in (
            (stats.malformed, "malformed"), (stats.negative_sizes, "with negative sizes"),
            (stats.crossed_bbo, "crossed bookTicker"), (stats.out_of_order, "out of order"),
            (stats.ignored, "of unused streams"), (stats.dropped_deltas, "depth diff(s) without a snapshot to apply to"),
        ) if n]
        first = f"; first problem: {stats.problems[0]}" if stats.problems else ""
        return (f"{', '.join(stats.files)}: the recording yields no market events ({stats.lines} line(s) read"
                f"{': ' + ', '.join(seen) if seen else ''}{first}); {EXPECTED_FORMAT}")

    def _reject(self, exc: _Reject, where: str) -> None:
        if exc.negative:
            self.stats.negative_sizes += 1
        else:
            self.stats.malformed += 1
        self.stats.problem(f"{where}: {exc}")


def read_binance(paths: Sequence[str | Path], stats: ReaderStats | None = None) -> Iterator[MarketEvent]:
    """Replay Binance raw-stream recordings as market events (see the module docstring).

    ``paths`` are the files of one recording in any order (a recording split at midnight is
    given as all its files). ``stats``, if given, is filled in while iterating. Raises
    :class:`RecordingError` (on the first ``next()``, before any event) when the files cannot be
    replayed; any other bad input is counted in ``stats`` and skipped.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return _Reader(paths, stats if stats is not None else ReaderStats()).run()
