"""Market precision and limits: the exchange's rules for amounts and prices.

Money that reaches a venue is Decimal, rounded the way the exchange rounds it: amounts are
truncated down to the lot step (never buy more than was sized), prices are rounded to the
nearest tick. In live mode the values come from ccxt's ``markets`` (``precision`` and
``limits``); in backtest and paper they come from the ``[market]`` section of the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal


def to_decimal(value: float | str | Decimal) -> Decimal:
    """Exact decimal of a float's shortest repr (``0.1`` -> ``Decimal('0.1')``, not binary noise)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


@dataclass(frozen=True, slots=True)
class Market:
    """One tradable symbol's precision and limits.

    ``tick_size`` and ``lot_size`` are the price and amount steps (Binance PRICE_FILTER tickSize
    and LOT_SIZE stepSize); ``min_qty`` and ``min_notional`` are the smallest accepted order.
    """

    symbol: str
    tick_size: Decimal
    lot_size: Decimal
    min_qty: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    base: str = ""
    quote: str = ""
    exchange_symbol: str = ""
    """The exchange's own id of the symbol (``BTCUSDT``), from ccxt's market ``id``; empty in backtests."""

    def amount_to_precision(self, amount: float | Decimal) -> Decimal:
        """Truncate ``amount`` down to a whole number of lots (as ccxt's TRUNCATE mode does)."""
        amount = to_decimal(amount)
        if amount <= 0:
            return Decimal(0)
        lots = (amount / self.lot_size).to_integral_value(rounding=ROUND_DOWN)
        return (lots * self.lot_size).normalize() if lots else Decimal(0)

    def price_to_precision(self, price: float | Decimal) -> Decimal:
        """Round ``price`` to the nearest tick."""
        price = to_decimal(price)
        ticks = (price / self.tick_size).to_integral_value(rounding=ROUND_HALF_EVEN)
        return ticks * self.tick_size

    def check_order(self, amount: Decimal, price: Decimal) -> str | None:
        """Return why an order of ``amount`` at ``price`` would be refused, or None if it passes."""
        if amount <= 0:
            return "amount rounds to zero lots"
        if amount < self.min_qty:
            return f"amount {amount} below min_qty {self.min_qty}"
        if amount * price < self.min_notional:
            return f"notional {amount * price:.8f} below min_notional {self.min_notional}"
        return None
