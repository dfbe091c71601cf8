"""Bitstamp's legacy Pusher feed as logged by obAnalytics (``2015-05-01.log.xz``; xz, gzip or plain).

One line per message: ``<local_ts_ms> <event> <json>`` with event

* ``order_book``: ``{"bids": [[price, amount] x20], "asks": [...]}``, the top 20 levels: a
  :class:`BookSnapshot` (the book is reset to it).
* ``order_created`` / ``order_changed`` / ``order_deleted``: one order (L3):
  ``{"price", "amount", "datetime" (exchange, s), "id", "order_type" (0 bid, 1 ask)}``; ``amount``
  is the order's remaining size (0 for a fully filled order). The reader keeps each order's size
  and the level totals and emits a :class:`BookDelta` with the level's new absolute size:
  created adds the amount, deleted removes the order's remaining size, changed the difference to
  its previous size. The feed has no full book at the start, so an order resting before the log
  began is only known through the snapshots: changing such an order is counted in ``ignored``
  (its old size is unknown); deleting one removes the amount the message gives. Level totals never
  go below 0. Events before the first snapshot only update the order table.
* ``trade``: ``{"price", "amount", "id"}`` without the aggressor; the side is the opposite of
  the last order changed or deleted at that price (the maker), else the side of the book the
  price is on (at or above the mid is a buy). A :class:`Trade`.

``ts_local`` is the log's timestamp (ms), ``ts_exchange`` the message's ``datetime`` (0 for
snapshots and trades, which have none).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from bot.core.events import BookDelta, BookSnapshot, MarketEvent, Trade
from bot.data.binance import ReaderStats
from bot.data.readers.io import head_lines, iter_lines
from bot.data.readers.registry import Format, register

_LINE = re.compile(r"^\d{10,16} (order_book|order_created|order_changed|order_deleted|trade) \{")
_MS = 1_000_000
_EPS = 1e-12


def sniff(path: Path) -> bool:
    lines = head_lines(path, 20)
    return bool(lines) and sum(1 for line in lines if _LINE.match(line)) >= max(1, len(lines) // 2)


class _Bad(ValueError):
    pass


def _num(value: Any, what: str, positive: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{what} must be a number, got {str(value)[:30]!r}") from None
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise _Bad(f"{what} must be a {'positive' if positive else 'non-negative'} finite number, got {value!r}")
    return x


def _book_side(raw: Any, what: str) -> dict[float, float]:
    if type(raw) is not list:
        raise _Bad(f"order_book {what}: expected a list of [price, amount]")
    out: dict[float, float] = {}
    for level in raw:
        if type(level) is not list or len(level) < 2:
            raise _Bad(f"order_book {what}: expected [price, amount], got {str(level)[:40]}")
        q = _num(level[1], f"order_book {what} amount")
        if q > 0:
            out[_num(level[0], f"order_book {what} price", positive=True)] = q
    return out


def _read_file(path: Path, stats: ReaderStats) -> Iterator[MarketEvent]:
    counts = stats.events
    sides: tuple[dict[float, float], dict[float, float]] = ({}, {})  # bids, asks: level totals
    orders: dict[int, tuple[int, float, float]] = {}  # id -> (side, price, remaining)
    synced = False
    last_maker: tuple[float, int] | None = None  # (price, side) of the last order reduced
    last_ts = 0
    for lineno, line in enumerate(iter_lines(path), start=1):
        if not line.strip():
            continue
        stats.lines += 1
        try:
            ts_raw, event, body = line.split(" ", 2)
            ts = int(ts_raw) * _MS
            if ts <= 0:
                raise ValueError
        except ValueError:
            stats.malformed += 1
            stats.problem(f"{path.name}:{lineno}: expected '<ms> <event> <json>'")
            continue
        if ts < last_ts:
            stats.out_of_order += 1
            stats.problem(f"{path.name}:{lineno}: timestamp goes back; line skipped")
            continue
        last_ts = ts
        if not stats.first_ts:
            stats.first_ts = ts
        stats.last_ts = ts
        try:
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                raise _Bad(f"invalid JSON: {exc}") from None
            if type(obj) is not dict:
                raise _Bad("expected a JSON object")
            if event == "order_book":
                bids = _book_side(obj.get("bids"), "bids")
                asks = _book_side(obj.get("asks"), "asks")
                sides = (bids, asks)
                synced = True
                counts["snapshot"] += 1
                yield BookSnapshot(ts, 0, tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())))
            elif event == "trade":
                price = _num(obj.get("price"), "trade price", positive=True)
                amount = _num(obj.get("amount"), "trade amount")
                if last_maker is not None and abs(last_maker[0] - price) < 1e-9:
                    side = "sell" if last_maker[1] == 0 else "buy"
                else:
                    bb = max(sides[0], default=0.0)
                    ba = min(sides[1], default=math.inf)
                    side = "buy" if bb and ba < math.inf and price >= (bb + ba) / 2 else "sell"
                tid = obj.get("id")
                counts["trade"] += 1
                yield Trade(ts, 0, price, amount, side, tid if type(tid) is int else 0)
            elif event in ("order_created", "order_changed", "order_deleted"):
                oid = obj.get("id")
                kind = obj.get("order_type")
                if type(oid) is not int or kind not in (0, 1):
                    raise _Bad(f"{event}: expected an integer id and order_type 0 or 1")
                price = _num(obj.get("price"), f"{event} price", positive=True)
                amount = _num(obj.get("amount"), f"{event} amount")
                try:
                    ts_ex = int(obj.get("datetime")) * 1_000_000_000
                except (TypeError, ValueError):
                    ts_ex = 0
                known = orders.get(oid)
                if event == "order_created":
                    change = amount
                    orders[oid] = (kind, price, amount)
                elif event == "order_changed":
                    if known is None:
                        stats.ignored += 1  # resting since before the log: its old size is unknown
                        orders[oid] = (kind, price, amount)
                        continue
                    change = amount - known[2]
                    orders[oid] = (kind, price, amount)
                    last_maker = (price, kind)
                else:
                    change = -(known[2] if known is not None else amount)
                    orders.pop(oid, None)
                    last_maker = (price, kind)
                if not synced or change == 0:
                    continue
                level = sides[kind]
                size = level.get(price, 0.0) + change
                if size <= _EPS:
                    size = 0.0
                    level.pop(price, None)
                else:
                    level[price] = size
                counts["delta"] += 1
                yield BookDelta(ts, ts_ex, ((price, size),) if kind == 0 else (), ((price, size),) if kind == 1 else ())
            else:
                stats.ignored += 1
        except _Bad as exc:
            stats.malformed += 1
            stats.problem(f"{path.name}:{lineno}: {exc}")


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    stats.files = [str(p) for p in paths]
    stats.exchange, stats.symbol, stats.market_type = "bitstamp", "BTCUSD", "spot"
    for path in sorted(paths, key=lambda p: (head_lines(p, 1) or [""])[0].split(" ", 1)[0].zfill(20)):
        yield from _read_file(Path(path), stats)


FORMAT = register(Format(
    "bitstamp",
    "Bitstamp Pusher log of obAnalytics: '<ms> <event> <json>' lines (top-20 order_book + order events + trades)",
    sniff, read,
))
