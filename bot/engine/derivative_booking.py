"""Perpetuals in the engine: funding, liquidation, and what the exchange did on the account
(part of :class:`~bot.engine.engine.Engine`).

Funding (:mod:`bot.engine.funding`) is booked on the position held at the funding time; a
modelled liquidation (backtest, paper) closes the position at its liquidation price with the
taker fee; live, :class:`~bot.engine.positions.PositionSync` books what the exchange did
(external fills, funding, liquidation clearance) through the public methods here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bot.core.events import MarketEvent, MarkPrice
from bot.core.orders import Fill, Side
from bot.execution.paper import fee_of


class DerivativeBooking:
    """Methods of the engine for funding, liquidations and the exchange's own changes to the account."""

    portfolio: Any
    market: Any
    store: Any
    stats: Any
    settings: Any
    funding: Any
    last_mid: float
    log: Any
    run_id: str
    symbol: str
    _info: bool

    def book_external(self, fills: list[Fill], now: int, kind: str, detail: str) -> None:
        """Fills of orders the bot did not send (a liquidation, a trade by hand): the exchange's
        position is the truth, so they are booked like any fill, with a risk event saying why."""
        pf = self.portfolio
        self._book_fills(fills)
        self._record_position(now)
        self.store.record_risk_event(self.run_id, now, kind, "exchange", detail, self.symbol)
        self.log.warning("fills of an order the bot did not send", kind=kind, detail=detail, position=str(pf.qty))

    def _liquidate(self, price: float, now: int) -> None:
        """Close the whole position at its liquidation price, with the taker fee (the exchange's
        liquidation, modelled): the round trip ends, a ``liquidation`` risk event says so."""
        pf = self.portfolio
        market = self.market
        amount = abs(pf.qty)
        dprice = market.price_to_precision(price)
        if dprice <= 0:
            return
        fee = fee_of(market, amount, dprice, Decimal(repr(self.settings.execution.taker_fee_bps)) / 10_000)  # a taker fill
        self._liquidations += 1
        side = Side.SELL if pf.qty > 0 else Side.BUY
        fill = Fill(now, f"liquidation-{self.run_id}-{self._liquidations}", side, dprice, amount, fee, "taker",
                    f"liquidation-{self._liquidations}", market.settle_currency, symbol=self.symbol)
        self.book_external([fill], now, "liquidation", f"mark passed the estimated liquidation price {dprice}: {side.value} {amount} at it")

    def book_adjustment(self, ts: int, amount: Decimal, ref: str, reason: str) -> None:
        pf = self.portfolio
        pf.apply_adjustment(amount)
        self.store.record_adjustment(self.run_id, ts, self.symbol, amount, self.market.settle_currency, ref, reason)
        self._record_position(ts)
        self.log.warning("wallet adjusted to the exchange's settlement", amount=str(amount), reason=reason)

    def book_funding(self, ts: int, amount: Decimal, currency: str, ref: str, rate: float | None = None, mark: float | None = None,
                     position: Decimal | None = None) -> None:
        """A funding payment the exchange made (live) or the model computed on ``position`` (default:
        the current one): wallet and store."""
        pf = self.portfolio
        pf.apply_funding(amount, ts)
        self.store.record_funding(self.run_id, ts, self.symbol, rate, mark, pf.qty if position is None else position, amount, currency, ref)
        self._record_position(ts)
        if self._info:
            self.log.info("funding", symbol=self.symbol, rate=rate, mark=mark, amount=str(amount), ref=ref)

    def _funding(self, event: MarketEvent, now: int) -> None:
        """Funding (:mod:`bot.engine.funding`): book the payment due on the position held across
        a funding time, at the mark."""
        clock = self.funding
        assert clock is not None
        due = clock.on_mark_price(event) if type(event) is MarkPrice else None
        if due is None and now >= clock.next_ts:
            due = clock.on_time(now)
        if due is None:
            return
        due_ts, rate = due
        mark = clock.mark if clock.mark > 0 else self.last_mid
        pf = self.portfolio
        held = clock.held_at(due_ts)
        if (pf.is_flat if held is None else held == 0) or not mark == mark:
            return
        amount = pf.funding_due(rate, mark, held)
        if amount == 0:
            return
        self.book_funding(due_ts, amount, self.market.settle_currency, "", rate, mark, held)
