"""One account: a settle currency, a portfolio per instrument, and the marks equity is valued at.

Every instrument of a run trades from the same account (one exchange account, one settle
currency: USDT for spot and USD-M, BTC for COIN-M BTC contracts). Each instrument keeps its own
:class:`~bot.core.portfolio.Portfolio` (position, lots, fees, funding, round trips); the first
one holds the deposit and the others start at zero cash, so the account's balance of the settle
currency is the sum of their ``cash`` and its equity the sum of their equities at their own
marks. With one instrument the account is exactly that instrument's portfolio.

Risk reads the account (gross notional, margin in use, equity); only fills and funding change it.
"""

from __future__ import annotations

from decimal import Decimal

from bot.core.market import Market
from bot.core.portfolio import Portfolio

ZERO = Decimal(0)


class Account:
    """Portfolios of ``markets`` (same order), marked at the last mid each instrument saw."""

    def __init__(self, markets: list[Market], portfolios: list[Portfolio]):
        if len(markets) != len(portfolios) or not markets:
            raise ValueError("an account needs one portfolio per market, at least one")
        self.markets = markets
        self.portfolios = portfolios
        self.marks = [float("nan")] * len(markets)
        self.settle = markets[0].settle_currency

    @classmethod
    def start(cls, markets: list[Market], initial: Decimal) -> "Account":
        portfolios = [Portfolio.start(initial if i == 0 else ZERO, market=m) for i, m in enumerate(markets)]
        return cls(markets, portfolios)

    # ------------------------------------------------------------------ valuation
    def contribution(self, i: int) -> float:
        """Instrument ``i``'s equity at its mark (its cash when it was never marked and is flat)."""
        p = self.portfolios[i]
        mark = self.marks[i]
        if mark != mark:
            return float(p.equity_cash)
        return p.equity(mark)

    def equity(self) -> float:
        if len(self.portfolios) == 1:
            return self.contribution(0)
        return sum(self.contribution(i) for i in range(len(self.portfolios)))

    @property
    def cash(self) -> Decimal:
        """The balance of the settle currency (spot: the quote cash; derivatives: the wallet)."""
        return sum((p.cash for p in self.portfolios), ZERO)

    @property
    def initial_cash(self) -> Decimal:
        return sum((p.initial_cash for p in self.portfolios), ZERO)

    def balances(self) -> dict[str, Decimal]:
        """Every currency the account holds: the settle balance, spot base assets, fee assets."""
        out: dict[str, Decimal] = {self.settle: self.cash}
        for market, p in zip(self.markets, self.portfolios):
            if market.kind == "spot" and (p.qty or p.dust):
                out[market.base] = out.get(market.base, ZERO) + p.qty + p.dust
            for asset, fee in p.other_fees.items():
                out[asset] = out.get(asset, ZERO) - fee
        return out

    def position_value(self, i: int, mark: float | None = None) -> float:
        """|position| of instrument ``i`` in the settle currency at ``mark`` (its last mark)."""
        p = self.portfolios[i]
        if p.qty == ZERO:
            return 0.0
        mark = self.marks[i] if mark is None else mark
        if not mark > 0:
            return 0.0
        return abs(self.markets[i].value(float(p.qty), mark))

    def gross_value(self, skip: int = -1) -> float:
        """Sum of every position's value (settle currency), without instrument ``skip``."""
        return sum(self.position_value(i) for i in range(len(self.portfolios)) if i != skip)

    def margin_used(self, skip: int = -1) -> float:
        """Initial margin of the derivative positions: value / leverage (spot holds no margin)."""
        total = 0.0
        for i, market in enumerate(self.markets):
            if i != skip and market.is_derivative:
                total += self.position_value(i) / market.leverage
        return total
