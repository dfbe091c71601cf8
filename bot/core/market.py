"""Instruments: the exchange's rules for amounts and prices, and what an amount is worth.

An instrument is spot, a linear perpetual or an inverse perpetual (ccxt's ``type``/``linear``/
``inverse``/``contractSize``/``settle``). Amounts are what the exchange counts: base units on
spot, contracts on derivatives (a USD-M contract is ``contract_size`` base, 1 on Binance; a
COIN-M BTCUSD contract is ``contract_size`` = 100 USD). Every notional, size and PnL conversion
goes through the methods here, so no other module multiplies by a contract size:

* value of ``amount`` at ``price`` in the settle currency (:meth:`Market.value`): spot and
  linear ``amount * contract_size * price`` (quote); inverse ``amount * contract_size / price``
  (base, e.g. BTC);
* PnL of ``amount`` bought at ``entry`` and sold at ``exit`` (:meth:`Market.pnl`): linear
  ``amount * contract_size * (exit - entry)``; inverse ``amount * contract_size * (1/entry -
  1/exit)`` in the settle currency (Binance, "Realized PnL" of COIN-M contracts).

Money that reaches a venue is Decimal, rounded the way the exchange rounds it: amounts are
truncated down to the lot step (never buy more than was sized), prices are rounded to the
nearest tick. In live mode the values come from ccxt's ``markets`` (``precision`` and
``limits``); in backtest and paper they come from the ``[market]`` section of the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any


def market_from_section(m: Any) -> "Market":
    """The :class:`Market` of a config ``[market]`` section (``bot.config.settings.MarketSection``)."""
    base, _, rest = m.symbol.partition("/")
    quote = rest.partition(":")[0]
    return Market(
        m.symbol, m.tick_size, m.lot_size, m.min_qty, m.min_notional, base, quote,
        kind=m.type, contract_size=m.contract_size, settle=m.settle, leverage=m.leverage, margin_mode=m.margin_mode,
        maintenance_margin_rate=m.maintenance_margin_rate, maintenance_amount=m.maintenance_amount,
    )


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
    kind: str = "spot"
    """``spot``, ``linear`` or ``inverse``."""
    contract_size: Decimal = Decimal(1)
    settle: str = ""
    """The currency of margin, PnL and equity (the quote on spot and linear, the base on inverse)."""
    leverage: int = 1
    margin_mode: str = "isolated"
    maintenance_margin_rate: Decimal = Decimal(0)
    maintenance_amount: Decimal = Decimal(0)

    @property
    def is_derivative(self) -> bool:
        return self.kind != "spot"

    @property
    def inverse(self) -> bool:
        return self.kind == "inverse"

    @property
    def settle_currency(self) -> str:
        return self.settle or (self.base if self.kind == "inverse" else self.quote)

    def value(self, amount: float, price: float) -> float:
        """What ``amount`` (base or contracts) is worth at ``price``, in the settle currency."""
        if self.kind == "inverse":
            return amount * float(self.contract_size) / price if price > 0 else float("inf")
        return amount * float(self.contract_size) * price

    def exact_value(self, amount: Decimal, price: Decimal) -> Decimal:
        """:meth:`value` in Decimal, for what is booked (fees): ``amount x cs / price`` on inverse."""
        if self.kind == "inverse":
            return amount * self.contract_size / price
        return amount * self.contract_size * price

    def amount_for_value(self, value: float, price: float) -> float:
        """The amount worth ``value`` (settle currency) at ``price``: the inverse of :meth:`value`."""
        cs = float(self.contract_size)
        if self.kind == "inverse":
            return value * price / cs
        return value / (price * cs) if price > 0 else 0.0

    def pnl(self, amount: Decimal, entry: Decimal, exit_: Decimal) -> Decimal:
        """PnL in the settle currency of ``amount`` (signed: > 0 long) opened at ``entry``, closed at ``exit_``."""
        if self.kind == "inverse":
            return amount * self.contract_size * (1 / entry - 1 / exit_)
        return amount * self.contract_size * (exit_ - entry)

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
        notional = amount * self.contract_size * (1 if self.kind == "inverse" else price)  # in the quote
        if notional < self.min_notional:
            return f"notional {notional:.8f} below min_notional {self.min_notional}"
        return None
