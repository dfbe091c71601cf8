"""The account-wide entry rules: exposure, leverage and margin caps, and the liquidation buffer.

Sizes are in the instrument's amount units (base on spot, contracts on derivatives), money in
the account's settle currency (:meth:`bot.core.market.Market.value`):

``max_gross_notional``  every position's value together (None: no such cap);
``max_leverage``        gross value over equity;
``max_margin_usage``    initial margin (value / leverage) of the derivative positions over equity;
``liquidation_buffer``  a derivative entry whose estimated liquidation price
                        (:mod:`bot.risk.liquidation`) is closer than ``liquidation_buffer_stops``
                        stop distances, or already passed, is refused.

The caps are sizes like the per-instrument ones (the smallest binds); the buffer refuses.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bot.config.settings import RiskSection
from bot.core.market import Market
from bot.core.portfolio import Portfolio
from bot.risk.liquidation import isolated_wallet, liquidation_price

if TYPE_CHECKING:
    from bot.core.account import Account

ACCOUNT_CAPS = ("max_gross_notional", "max_leverage", "max_margin_usage")


class AccountRules:
    """The rules above for one instrument (``lane``) of ``account``."""

    def __init__(self, cfg: RiskSection, market: Market, account: "Account | None", lane: int):
        self.cfg = cfg
        self.market = market
        self.account = account
        self.lane = lane
        self._sl = cfg.stop_loss_bps / 1e4

    def caps(self, caps: dict[str, float], equity: float, price: float, adds: bool = False) -> None:
        """Add the account-wide caps (sizes in this instrument's units) to ``caps``; ``adds``: the
        order adds to an open position of this instrument (a maker quote), whose value counts too."""
        account = self.account
        assert account is not None
        cfg = self.cfg
        market = self.market
        skip = -1 if adds else self.lane
        others = account.gross_value(skip=skip)
        if cfg.max_gross_notional is not None:
            caps["max_gross_notional"] = market.amount_for_value(cfg.max_gross_notional - others, price)
        caps["max_leverage"] = market.amount_for_value(cfg.max_leverage * equity - others, price)
        if market.is_derivative:
            room = (cfg.max_margin_usage * equity - account.margin_used(skip=skip)) * market.leverage
            caps["max_margin_usage"] = market.amount_for_value(room, price)

    def liquidation_estimate(self, contracts: float, entry: float, equity: float, unrealized: float = 0.0) -> float | None:
        """Estimated liquidation price of a position of ``contracts`` opened at ``entry``
        (``unrealized``: its own unrealized PnL now, which a cross wallet does not include)."""
        market = self.market
        if not market.is_derivative:
            return None
        if market.margin_mode == "isolated":
            wallet = isolated_wallet(market, contracts, entry)
        else:  # cross: the whole account's equity backs it (other positions' margins aside)
            wallet = equity - unrealized - (self.account.margin_used(skip=self.lane) if self.account is not None else 0.0)
        return liquidation_price(market, contracts, entry, wallet)

    def liquidation_hit(self, portfolio: Portfolio, mark: float, equity: float) -> float | None:
        """Backtest and paper: the liquidation price when ``mark`` has passed it (None otherwise);
        live, the exchange liquidates and the bot reads the result."""
        if portfolio.is_flat or not self.market.is_derivative:
            return None
        qty = float(portfolio.qty)
        liq = self.liquidation_estimate(qty, float(portfolio.avg_price), equity, portfolio.unrealized(mark))
        if liq is None or (qty > 0 and mark > liq) or (qty < 0 and mark < liq):
            return None
        return liq

    def liquidation_band(self, portfolio: Portfolio) -> tuple[float, float]:
        """``(below, above)``: ``liquidation_hit`` can find a liquidation only at a mark at or below
        ``below`` (a long) or at or above ``above`` (a short); the risk wake publishes it
        (:mod:`bot.risk.wake`). Kept beside ``liquidation_hit`` so the two share one rule: same
        guards, and for isolated margin the same float, since there neither equity nor the
        unrealized PnL enters the estimate. A cross wallet moves with the mark: every mark."""
        if portfolio.is_flat or not self.market.is_derivative:
            return -math.inf, math.inf
        if self.market.margin_mode != "isolated":
            return math.inf, math.inf
        qty = float(portfolio.qty)
        liq = self.liquidation_estimate(qty, float(portfolio.avg_price), 0.0, 0.0)
        if liq is None:
            return -math.inf, math.inf
        return (liq, math.inf) if qty > 0 else (-math.inf, liq)

    def liquidation_problem(self, contracts: float, price: float, equity: float) -> str | None:
        """Why an entry of ``contracts`` at ``price`` is too close to liquidation (None: it is not)."""
        if not self.market.is_derivative or self.cfg.liquidation_buffer_stops <= 0:
            return None
        liq = self.liquidation_estimate(contracts, price, equity)
        if liq is None:
            return None
        need = self.cfg.liquidation_buffer_stops * price * self._sl
        if (liq >= price) == (contracts > 0):
            return f"estimated liquidation price {liq:.8g} is already passed at entry {price}: the margin is below maintenance; lower market.leverage"
        if abs(price - liq) < need:
            return (f"estimated liquidation price {liq:.8g} is {abs(price - liq):.8g} from entry {price}, closer than "
                    f"liquidation_buffer_stops {self.cfg.liquidation_buffer_stops:g} x the stop distance ({need:.8g}); "
                    f"lower market.leverage or the size")
        return None

