"""The emulator's public market: one L2 book with Binance update ids, public trades and 24h stats.

Every change of the book goes through :meth:`MarketState.apply_levels`, which applies the
changed levels and advances the update id by one. The websocket diff streams publish exactly
these changes (merged per 100 ms / 1000 ms), and the REST depth snapshot's ``lastUpdateId`` is
the id of the last change applied, so ``lastUpdateId``/``U``/``u`` obey Binance's sync rules by
construction.

Sources (simulator, recording replay) feed :class:`~bot.core.events.MarketEvent` s in through
:meth:`MarketState.apply_event`. A :class:`BookSnapshot` after the first one is turned into the
diff against the current book (so a resync in a recording looks like an ordinary large update
to clients). :class:`BestBidAsk` events are ignored for the book (the depth stream is the book's
authority; the emulator's bookTicker stream is derived from the book itself) and
:class:`BookInvalidated` is ignored (the book stays as it is until the source's next snapshot).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

from bot.book.book import OrderBook
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Level, MarketEvent, Trade


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class PublicTrade:
    id: int
    price: float
    qty: float
    time: int  # ms
    buyer_is_maker: bool  # True: the aggressor sold
    ours: bool = False  # one of the emulator account's own fills (sim mode)


DepthListener = Callable[[tuple[Level, ...], tuple[Level, ...], int], None]
TradeListener = Callable[[PublicTrade], None]


class MarketState:
    """Book, update ids, trades and rolling stats of the one emulated symbol."""

    def __init__(self, first_update_id: int = 1_000_000, first_trade_id: int = 1, trade_history: int = 5000) -> None:
        self.book = OrderBook()
        self.update_id = first_update_id
        self.next_trade_id = first_trade_id
        self.trades: deque[PublicTrade] = deque(maxlen=trade_history)
        self._day: deque[PublicTrade] = deque()  # trades in the last 24 h, for ticker/24hr
        self.depth_listeners: list[DepthListener] = []
        self.trade_listeners: list[TradeListener] = []
        self.started_ms = now_ms()
        self.last_event_ms = 0
        self.events = 0

    # ------------------------------------------------------------------ reads
    @property
    def ready(self) -> bool:
        bids, asks = self.book.level_count()
        return bids > 0 and asks > 0

    def best_bid(self) -> tuple[float, float]:
        return self.book.best_bid, self.book.best_bid_size

    def best_ask(self) -> tuple[float, float]:
        return self.book.best_ask, self.book.best_ask_size

    def depth(self, limit: int) -> tuple[list[Level], list[Level], int]:
        return self.book.bids(limit), self.book.asks(limit), self.update_id

    def levels(self, side: str, max_levels: int = 100_000) -> list[Level]:
        """All levels of ``side`` ("bid"/"ask"), best first."""
        return self.book.bids(max_levels) if side == "bid" else self.book.asks(max_levels)

    def last_price(self) -> float | None:
        return self.trades[-1].price if self.trades else None

    # ------------------------------------------------------------------ writes
    def apply_levels(self, bids: Iterable[Level], asks: Iterable[Level], ts_ms: int | None = None) -> int:
        """Set the given levels (size 0 deletes) as one update; return its update id (0 if nothing changed)."""
        bids = tuple(bids)
        asks = tuple(asks)
        if not bids and not asks:
            return 0
        ts = ts_ms if ts_ms is not None else now_ms()
        book = self.book
        if not book.is_sound and book.status.value == "resync":
            # first data: install as a snapshot so the OrderBook accepts later deltas
            book.apply(BookSnapshot(ts * 1_000_000, ts * 1_000_000, tuple(b for b in bids if b[1] > 0),
                                    tuple(a for a in asks if a[1] > 0), self.update_id + 1))
        else:
            book.apply(BookDelta(ts * 1_000_000, ts * 1_000_000, bids, asks, self.update_id + 1, self.update_id + 1))
        self.update_id += 1
        self.last_event_ms = ts
        for listener in self.depth_listeners:
            listener(bids, asks, self.update_id)
        return self.update_id

    def replace_book(self, bids: Iterable[Level], asks: Iterable[Level], ts_ms: int | None = None) -> int:
        """Make the book equal to the given levels, published as a diff against the current book."""
        new_bids = {p: s for p, s in bids if s > 0}
        new_asks = {p: s for p, s in asks if s > 0}
        old_bids = dict(self.book.bids(1_000_000))
        old_asks = dict(self.book.asks(1_000_000))
        d_bids = [(p, 0.0) for p in old_bids if p not in new_bids]
        d_bids += [(p, s) for p, s in new_bids.items() if old_bids.get(p) != s]
        d_asks = [(p, 0.0) for p in old_asks if p not in new_asks]
        d_asks += [(p, s) for p, s in new_asks.items() if old_asks.get(p) != s]
        return self.apply_levels(d_bids, d_asks, ts_ms)

    def add_trade(self, price: float, qty: float, buyer_is_maker: bool, ts_ms: int | None = None, ours: bool = False) -> PublicTrade:
        trade = PublicTrade(self.next_trade_id, price, qty, ts_ms if ts_ms is not None else now_ms(), buyer_is_maker, ours)
        self.next_trade_id += 1
        self.trades.append(trade)
        self._day.append(trade)
        cutoff = trade.time - 86_400_000
        while self._day and self._day[0].time < cutoff:
            self._day.popleft()
        if len(self._day) > 200_000:
            self._day.popleft()
        for listener in self.trade_listeners:
            listener(trade)
        return trade

    def apply_event(self, event: MarketEvent, ts_ms: int | None = None, ours: bool = False) -> PublicTrade | None:
        """Apply one source event at wall time ``ts_ms``; return the public trade it made, if any."""
        self.events += 1
        if isinstance(event, BookDelta):
            if not self.ready and self.book.status.value == "resync":
                return None  # a delta before any snapshot cannot be applied
            self.apply_levels(event.bids, event.asks, ts_ms)
        elif isinstance(event, BookSnapshot):
            if self.book.status.value == "resync" and self.book.level_count() == (0, 0):
                self.apply_levels(event.bids, event.asks, ts_ms)
            else:
                self.replace_book(event.bids, event.asks, ts_ms)
        elif isinstance(event, Trade):
            if event.size > 0:
                return self.add_trade(event.price, event.size, event.side == "sell", ts_ms, ours)
        elif isinstance(event, (BestBidAsk, BookInvalidated)):
            pass
        return None

    def reduce_levels(self, side: str, fills: Iterable[tuple[float, float]], ts_ms: int | None = None) -> int:
        """Remove ``fills`` ((price, qty) consumed) from ``side`` ("bid"/"ask") as one update."""
        sizes = dict(self.levels(side))
        changed: dict[float, float] = {}
        for price, qty in fills:
            if price in sizes:
                left = sizes[price] - qty
                sizes[price] = left if left > 1e-12 else 0.0
                changed[price] = sizes[price]
        levels = tuple(changed.items())
        if side == "bid":
            return self.apply_levels(levels, (), ts_ms)
        return self.apply_levels((), levels, ts_ms)

    # ------------------------------------------------------------------ stats
    def day_stats(self) -> dict:
        """Rolling 24 h stats from the trades seen since the emulator started."""
        now = now_ms()
        cutoff = now - 86_400_000
        while self._day and self._day[0].time < cutoff:
            self._day.popleft()
        trades = self._day
        if trades:
            first, last = trades[0], trades[-1]
            prices = [t.price for t in trades]
            volume = sum(t.qty for t in trades)
            quote = sum(t.qty * t.price for t in trades)
            return {
                "open": first.price, "last": last.price, "last_qty": last.qty, "high": max(prices), "low": min(prices),
                "volume": volume, "quote_volume": quote, "vwap": quote / volume if volume else 0.0,
                "first_id": first.id, "last_id": last.id, "count": len(trades), "open_time": max(cutoff, self.started_ms),
                "close_time": now,
            }
        return {
            "open": 0.0, "last": 0.0, "last_qty": 0.0, "high": 0.0, "low": 0.0, "volume": 0.0, "quote_volume": 0.0,
            "vwap": 0.0, "first_id": -1, "last_id": -1, "count": 0, "open_time": max(cutoff, self.started_ms), "close_time": now,
        }
