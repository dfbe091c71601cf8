"""Binance futures order book CSV (``symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu``).

One row per level; rows with the same ``timestamp`` (ms), ``last_update_id`` and ``update_type``
are one message: ``snap`` rows a :class:`BookSnapshot` (``sequence`` = ``last_update_id``), ``set``
rows a :class:`BookDelta` with absolute sizes (0 removes). Side ``b`` bid, ``a`` ask. The USD-M
sync rules apply: after a snapshot at id L the first update needs ``first <= L <= last``, every
later one ``pu`` = the previous ``last``; a break is a gap (:class:`BookInvalidated`, updates
dropped until the next snapshot); updates before any snapshot are counted in ``dropped_deltas``.
The file has one clock: ``ts_local`` and ``ts_exchange`` are both ``timestamp``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

from bot.core.events import BookDelta, BookInvalidated, BookSnapshot, MarketEvent
from bot.data.binance import ReaderStats
from bot.data.readers.io import head_lines, iter_lines
from bot.data.readers.registry import Format, register
from bot.data.recording import RecordingError

HEADER = "symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu"
_MS = 1_000_000


def sniff(path: Path) -> bool:
    lines = head_lines(path, 1)
    return bool(lines) and lines[0].strip() == HEADER


def _messages(path: Path, stats: ReaderStats) -> Iterator[tuple]:
    """(ts, kind, first, last, pu, bids, asks) per message, rows grouped."""
    lines = iter_lines(path)
    header = next(lines, "").strip()
    if header != HEADER:
        raise RecordingError(f"{path}: not a Binance order book CSV (expected the header {HEADER!r}, got {header[:60]!r})")
    cur = None
    for lineno, line in enumerate(lines, start=2):
        if not line:
            continue
        stats.lines += 1
        f = line.split(",")
        try:
            if len(f) != 9 or f[4] not in ("a", "b") or f[5] not in ("snap", "set"):
                raise ValueError("expected 9 fields with side a|b and update_type snap|set")
            sym, ts, first, last, pu = f[0], int(f[1]) * _MS, int(f[2]), int(f[3]), int(f[8])
            price, qty = float(f[6]), float(f[7])
            if not (0 < price < math.inf) or not (0 <= qty < math.inf):
                if qty < 0:
                    stats.negative_sizes += 1
                raise ValueError(f"price must be positive and qty non-negative, got {f[6]}, {f[7]}")
        except ValueError as exc:
            stats.malformed += 1
            stats.problem(f"{path.name}:{lineno}: {exc}")
            continue
        if not stats.symbol:
            stats.symbol = sym
        elif sym != stats.symbol:
            raise RecordingError(f"{path.name}:{lineno}: {sym} is not {stats.symbol}: mixed symbols in one recording")
        key = (ts, f[5], last)
        if cur is None or cur[0] != key:
            if cur is not None:
                yield cur[1]
            cur = (key, (ts, f[5], first, last, pu, {}, {}))
        cur[1][5 if f[4] == "b" else 6][price] = qty
    if cur is not None:
        yield cur[1]


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    stats.files = [str(p) for p in paths]
    stats.exchange, stats.market_type = "binance", "linear"
    counts = stats.events
    lid: int | None = None  # last applied update id; None: awaiting a snapshot
    fresh = False  # the next update is the first after a snapshot
    last_ts = 0
    for path in sorted(map(Path, paths), key=lambda p: (head_lines(p, 2) + ["", ""])[1].split(",")[1:2]):
        for ts, kind, first, last, pu, bids, asks in _messages(path, stats):
            if ts < last_ts:
                stats.out_of_order += 1
                continue
            last_ts = stats.last_ts = ts
            stats.first_ts = stats.first_ts or ts
            if kind == "snap":
                lid, fresh = last, True
                counts["snapshot"] += 1
                yield BookSnapshot(ts, ts, tuple(sorted(((p, q) for p, q in bids.items() if q > 0), reverse=True)),
                                   tuple(sorted((p, q) for p, q in asks.items() if q > 0)), last)
                continue
            if lid is None:
                stats.dropped_deltas += 1
                continue
            if fresh and last < lid:
                stats.dropped_deltas += 1
                continue
            ok = first <= lid <= last if fresh else pu == lid
            if not ok:
                stats.gaps += 1
                counts["invalidated"] += 1
                why = f"first update after snapshot {lid} must have U <= {lid} <= u" if fresh else f"expected pu={lid}"
                stats.problem(f"{path.name}: sequence gap: {why}, got U={first} u={last} pu={pu}; awaiting a snapshot")
                lid = None
                yield BookInvalidated(ts, ts, f"{path.name}: {why}")
                continue
            lid, fresh = last, False
            counts["delta"] += 1
            yield BookDelta(ts, ts, tuple(bids.items()), tuple(asks.items()), first, last)


FORMAT = register(Format(
    "binance-book-csv",
    "Binance futures order book CSV: symbol,timestamp,first_update_id,last_update_id,side,update_type,price,qty,pu rows",
    sniff, read,
))
