"""Bybit public history dumps of the order book (``*_ob500.data``, plain, gzip or zipped).

NDJSON, one message per line: ``{"topic": "orderbook.<depth>.<SYMBOL>", "type": "snapshot" |
"delta", "ts": ms, "cts": ms, "data": {"s", "b": [[p, q]], "a": [[p, q]], "u", "seq"}}``; sizes
are absolute, 0 removes the level. A snapshot is a :class:`BookSnapshot` (``sequence`` = ``u``);
a delta a :class:`BookDelta` whose ``u`` must be the previous one + 1, else it is a gap
(:class:`BookInvalidated`, deltas skipped until the next snapshot). A snapshot with ``u`` = 1
(Bybit's service restart) is a reset like any other. The dump has no receive clock: ``ts_local``
is ``ts`` (Bybit's send time), ``ts_exchange`` ``cts`` (the matching engine's).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bot.core.events import BookDelta, BookInvalidated, BookSnapshot, MarketEvent
from bot.data.binance import ReaderStats
from bot.data.readers.io import head_lines, iter_lines
from bot.data.readers.registry import Format, register
from bot.data.recording import RecordingError

_MS = 1_000_000


class _Bad(ValueError):
    pass


def sniff(path: Path) -> bool:
    lines = head_lines(path, 1)
    if not lines or not lines[0].startswith("{"):
        return False
    try:
        obj = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return False
    return (type(obj) is dict and str(obj.get("topic", "")).startswith("orderbook.")
            and obj.get("type") in ("snapshot", "delta") and type(obj.get("data")) is dict)


def _levels(raw: Any, what: str, stats: ReaderStats) -> tuple[tuple[float, float], ...]:
    if type(raw) is not list:
        raise _Bad(f"{what}: expected a list of [price, size]")
    out = []
    for level in raw:
        try:
            p, q = float(level[0]), float(level[1])
        except (TypeError, ValueError, IndexError):
            raise _Bad(f"{what}: expected [price, size] numbers, got {str(level)[:40]}") from None
        if not (0 < p < math.inf) or not math.isfinite(q):
            raise _Bad(f"{what}: price must be positive and size finite, got {level}")
        if q < 0:
            stats.negative_sizes += 1
            raise _Bad(f"{what}: negative size {q}")
        out.append((p, q))
    return tuple(out)


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    stats.files = [str(p) for p in paths]
    stats.exchange = "bybit"
    counts = stats.events
    prev_u: int | None = None
    last_ts = 0
    for path in paths:
        for lineno, line in enumerate(iter_lines(Path(path)), start=1):
            if not line.strip():
                continue
            stats.lines += 1
            where = f"{Path(path).name}:{lineno}"
            try:
                try:
                    obj = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise _Bad(f"invalid JSON: {exc}") from None
                data = obj.get("data") if type(obj) is dict else None
                kind = obj.get("type") if type(obj) is dict else None
                if type(data) is not dict or kind not in ("snapshot", "delta"):
                    raise _Bad("expected {'topic', 'type': snapshot|delta, 'ts', 'data'}")
                ts_ms, u = obj.get("ts"), data.get("u")
                if type(ts_ms) is not int or type(u) is not int:
                    raise _Bad("expected integer 'ts' and 'data.u'")
                sym = str(data.get("s") or str(obj.get("topic", "")).rsplit(".", 1)[-1])
                if not stats.symbol:
                    stats.symbol = sym
                    stats.market_type = "linear" if sym.endswith(("USDT", "USDC")) else "inverse"
                elif sym != stats.symbol:
                    raise RecordingError(f"{where}: {sym} is not {stats.symbol}: mixed symbols in one recording")
                bids = _levels(data.get("b"), "b", stats)
                asks = _levels(data.get("a"), "a", stats)
            except _Bad as exc:
                stats.malformed += 1
                stats.problem(f"{where}: {exc}")
                continue
            ts = ts_ms * _MS
            if ts < last_ts:
                stats.out_of_order += 1
                stats.problem(f"{where}: ts goes back; message skipped")
                continue
            last_ts = stats.last_ts = ts
            stats.first_ts = stats.first_ts or ts
            cts = obj.get("cts")
            ts_ex = cts * _MS if type(cts) is int else 0
            if kind == "snapshot":
                prev_u = u
                counts["snapshot"] += 1
                yield BookSnapshot(ts, ts_ex, tuple(sorted(((p, q) for p, q in bids if q > 0), reverse=True)),
                                   tuple(sorted((p, q) for p, q in asks if q > 0)), u)
            elif prev_u is None:
                stats.dropped_deltas += 1
            elif u != prev_u + 1:
                stats.gaps += 1
                counts["invalidated"] += 1
                why = f"expected u={prev_u + 1}, got u={u}"
                stats.problem(f"{where}: sequence gap: {why}; awaiting a snapshot")
                prev_u = None
                yield BookInvalidated(ts, ts_ex, f"{where}: {why}")
            else:
                prev_u = u
                counts["delta"] += 1
                yield BookDelta(ts, ts_ex, bids, asks, u, u)


FORMAT = register(Format(
    "bybit",
    "Bybit order book history dump: NDJSON orderbook.N snapshot/delta messages (plain, gzip or zip)",
    sniff, read,
))
