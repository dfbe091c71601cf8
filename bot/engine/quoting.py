"""Quotes: keep one post-only order per side at the strategy's target (part of :class:`~bot.engine.engine.Engine`)."""

from __future__ import annotations

from typing import Any

from bot.core.orders import Reject, Side
from bot.strategies import Quotes, quote_stands


class Quoting:
    """Methods of the engine that manage resting quotes; they use the engine's venue, risk
    manager, store, counters and strategy."""

    venue: Any
    risk: Any
    store: Any
    stats: Any
    strategy: Any
    settings: Any
    book: Any
    portfolio: Any
    ids: Any
    log: Any
    run_id: str
    symbol: str
    _info: bool

    def _cancel_quotes(self, now: int) -> bool:
        """Ask the venue to cancel our resting quotes; True if any was resting."""
        any_resting = False
        for side in (Side.BUY, Side.SELL):
            order = self.venue.resting(side)
            if order is not None:
                any_resting = True
                self.venue.cancel(order.client_order_id, now)
        return any_resting

    def _quote(self, quotes: Quotes, score: float, equity: float, now: int) -> None:
        """Keep one post-only quote per side at the strategy's target price."""
        book = self.book
        allow_short = self.settings.strategy.allow_short
        for side in (Side.BUY, Side.SELL):
            target = quotes.buy if side is Side.BUY else quotes.sell
            resting = self.venue.resting(side)
            if resting is not None:
                if not quote_stands(float(resting.price), target, quotes.requote_distance):
                    self.venue.cancel(resting.client_order_id, now)
                continue
            if target is None:
                continue
            result = self.risk.check_quote(
                side, target, quotes.notional, allow_short, self.portfolio, equity, book, now, self._next_client_order_id(),
            )
            if isinstance(result, Reject):
                self.ids.give_back()
                if result.rule == "venue_cooldown":
                    continue  # nothing was decided: not yet (as in Engine._decide)
            self.stats.decisions += 1
            if isinstance(result, Reject):
                self.stats.rejects += 1
                self.strategy.on_reject(side.value, now)
                self.store.record_risk_event(self.run_id, now, "reject", result.rule, f"quote {side.value}: {result.detail}", self.symbol)
                if self._info:
                    self.log.info("quote rejected", side=side.value, rule=result.rule, detail=result.detail)
                continue
            self.stats.orders += 1
            self.venue.submit(result, now)
            self.store.record_order(self.run_id, result)
            if self._info:
                self.log.info("quote sent", client_order_id=result.client_order_id, side=side.value, price=str(result.price), amount=str(result.amount), score=round(score, 4))
