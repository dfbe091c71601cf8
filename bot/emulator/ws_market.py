"""The market streams of one symbol: diff and partial depth, trades, bookTicker and tickers.

The :class:`~bot.emulator.ws.Hub` holds the connections and their subscriptions and runs the
100 ms clock; it keeps one :class:`SymbolStreams` per emulated symbol, which listens to that
symbol's :class:`~bot.emulator.market.MarketState` and publishes the streams whose names start
with the lowercase symbol (``btcusdt@depth@100ms``, ``ethusdt@trade``, ...). The stream names of
each diff clock and the hook that adds market-specific fields (futures: ``pu`` and ``T``) are the
hub's, so every symbol publishes the same kinds of streams.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bot.emulator.market import MarketState, PublicTrade, now_ms
from bot.emulator.ws_inject import poison_levels

if TYPE_CHECKING:
    from bot.emulator.ws import Hub

__all__ = ["SymbolStreams"]


def _f(x: float) -> str:
    return f"{x:.8f}"


class _DiffAcc:
    __slots__ = ("first", "last", "bids", "asks", "drop_after", "poison")

    def __init__(self) -> None:
        self.first = 0
        self.last = 0
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.drop_after: int | None = None  # gap fault: drop the next message with u > this
        self.poison: tuple[str, str] | None = None  # (side, price): bot.emulator.ws_inject depth_price

    def add(self, bids, asks, update_id: int) -> None:
        if not self.first:
            self.first = update_id
        self.last = update_id
        for p, s in bids:
            self.bids[p] = s
        for p, s in asks:
            self.asks[p] = s

    def take(self) -> tuple[int, int, dict, dict] | None:
        if not self.first:
            return None
        out = (self.first, self.last, self.bids, self.asks)
        self.first = 0
        self.bids = {}
        self.asks = {}
        return out


class SymbolStreams:
    """Publishes one symbol's market streams through the hub."""

    def __init__(self, hub: "Hub", market: MarketState, symbol: str) -> None:
        self.hub = hub
        self.market = market
        self.symbol = symbol.upper()
        self.s = symbol.lower()
        self.acc100 = _DiffAcc()
        self.acc1000 = _DiffAcc()
        self._last_top: tuple[float, float, float, float] | None = None
        market.depth_listeners.append(self._on_depth)
        market.trade_listeners.append(self._on_trade)

    def accumulators(self) -> tuple[tuple[_DiffAcc, tuple[str, ...]], ...]:
        """Each diff clock's accumulator and stream suffixes."""
        return (self.acc100, self.hub.diff100), (self.acc1000, self.hub.diff1000)

    def _on_depth(self, bids, asks, update_id: int) -> None:
        self.acc100.add(bids, asks, update_id)
        self.acc1000.add(bids, asks, update_id)
        book = self.market.book
        top = (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size)
        if top != self._last_top:
            self._last_top = top
            stream = self.s + "@bookTicker"
            if self.hub.subs.get(stream):
                self.hub.publish(stream, {"u": update_id, "s": self.symbol, "b": _f(top[0]), "B": _f(top[1]),
                                          "a": _f(top[2]), "A": _f(top[3])})

    def _on_trade(self, trade: PublicTrade) -> None:
        s, hub = self.s, self.hub
        now = now_ms()
        if hub.subs.get(s + "@trade"):
            hub.publish(s + "@trade", {"e": "trade", "E": now, "s": self.symbol, "t": trade.id, "p": _f(trade.price),
                                       "q": _f(trade.qty), "T": trade.time, "m": trade.buyer_is_maker, "M": True})
        if hub.subs.get(s + "@aggTrade"):
            hub.publish(s + "@aggTrade", {"e": "aggTrade", "E": now, "s": self.symbol, "a": trade.id, "p": _f(trade.price),
                                          "q": _f(trade.qty), "f": trade.id, "l": trade.id, "T": trade.time,
                                          "m": trade.buyer_is_maker, "M": True})

    def flush(self, acc: _DiffAcc, streams: tuple[str, ...]) -> None:
        hub = self.hub
        batch = acc.take()
        if batch is None:
            return
        if acc.drop_after is not None and batch[1] > acc.drop_after:
            acc.drop_after = None
            hub.gaps_injected += 1
            return
        names = [self.s + suffix for suffix in streams if hub.subs.get(self.s + suffix)]
        if not names:
            return
        first, last, bids, asks = batch
        message = {
            "e": "depthUpdate", "E": now_ms(), "s": self.symbol, "U": first, "u": last,
            "b": [[_f(p), _f(q)] for p, q in bids.items()], "a": [[_f(p), _f(q)] for p, q in asks.items()],
        }
        if hub.diff_hook is not None:
            hub.diff_hook(message)
        if acc.poison is not None:
            poison_levels(message, *acc.poison)
            acc.poison = None
        data = json.dumps(message, separators=(",", ":"))
        for name in names:
            hub.publish(name, data)

    def partial(self, fast: bool) -> None:
        hub = self.hub
        for n in (5, 10, 20):
            suffixes = (f"@depth{n}@100ms",) if fast else (f"@depth{n}", f"@depth{n}@1000ms")
            names = [self.s + x for x in suffixes if hub.subs.get(self.s + x)]
            if not names:
                continue
            bids, asks, uid = self.market.depth(n)
            data = json.dumps({"lastUpdateId": uid, "bids": [[_f(p), _f(q)] for p, q in bids],
                               "asks": [[_f(p), _f(q)] for p, q in asks]}, separators=(",", ":"))
            for name in names:
                hub.publish(name, data)

    def tickers(self) -> None:
        s, hub = self.s, self.hub
        if not (hub.subs.get(s + "@ticker") or hub.subs.get(s + "@miniTicker")):
            return
        st = self.market.day_stats()
        now = now_ms()
        book = self.market.book
        if hub.subs.get(s + "@ticker"):
            change = st["last"] - st["open"]
            hub.publish(s + "@ticker", {
                "e": "24hrTicker", "E": now, "s": self.symbol, "p": _f(change),
                "P": f"{(change / st['open'] * 100 if st['open'] else 0.0):.3f}", "w": _f(st["vwap"]),
                "x": _f(st["open"]), "c": _f(st["last"]), "Q": _f(st["last_qty"]),
                "b": _f(book.best_bid), "B": _f(book.best_bid_size), "a": _f(book.best_ask), "A": _f(book.best_ask_size),
                "o": _f(st["open"]), "h": _f(st["high"]), "l": _f(st["low"]), "v": _f(st["volume"]),
                "q": _f(st["quote_volume"]), "O": st["open_time"], "C": st["close_time"], "F": st["first_id"],
                "L": st["last_id"], "n": st["count"],
            })
        if hub.subs.get(s + "@miniTicker"):
            hub.publish(s + "@miniTicker", {
                "e": "24hrMiniTicker", "E": now, "s": self.symbol, "c": _f(st["last"]), "o": _f(st["open"]),
                "h": _f(st["high"]), "l": _f(st["low"]), "v": _f(st["volume"]), "q": _f(st["quote_volume"]),
            })

    def tick(self, n: int) -> None:
        """One 100 ms tick of the hub's clock (``n`` counts them): fast streams, and every 10th the slow ones."""
        self.flush(self.acc100, self.hub.diff100)
        self.partial(fast=True)
        if n % 10 == 0:
            self.flush(self.acc1000, self.hub.diff1000)
            self.partial(fast=False)
            self.tickers()

    def inject_gap(self) -> None:
        self.acc100.drop_after = self.market.update_id
        self.acc1000.drop_after = self.market.update_id
