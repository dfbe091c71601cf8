"""One perpetual contract of the emulator: its exchange id, rules and the linear / inverse arithmetic.

Binance USD-M (``--market usdm``, linear): one contract is ``contract_size`` base (1 on USD-M, so
amounts read as base units), margin, PnL and fees are in the quote (USDT); notional = ``qty *
contract_size * price``. Binance COIN-M (``--market coinm``, inverse): one contract is
``contract_size`` USD (100 for BTCUSD_PERP), margin, PnL and fees are in the base (BTC); notional
= ``qty * contract_size / price`` BTC. Both formulas, and the PnL ones below, are Binance's
(https://www.binance.com/en/support/faq/how-to-calculate-profit-and-loss-for-futures-contracts-3a55a23768cb416fb404f06ffedde4b2).

Every amount here is a :class:`~decimal.Decimal`, so tests can check the account to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.config.settings import MarketSection
from bot.data.symbols import exchange_id
from bot.emulator.matching import SymbolRules

__all__ = ["MARKETS", "Contract", "default_market", "market_of_type"]

MARKETS = ("spot", "usdm", "coinm")
"""``--market`` values; ``usdm`` is the config's ``linear`` type, ``coinm`` its ``inverse``."""

_TYPE_OF = {"spot": "spot", "usdm": "linear", "coinm": "inverse"}
E8 = Decimal("0.00000001")


def market_of_type(market_type: str) -> str:
    """The ``--market`` value that serves a config ``market.type``."""
    return {v: k for k, v in _TYPE_OF.items()}[market_type]


def default_market(market: str) -> MarketSection:
    """The emulated instrument when no config names one: BTCUSDT on USD-M, BTCUSD_PERP on COIN-M
    (Binance's rules for them, except the price bands and leverage brackets, which are simplified)."""
    if market == "usdm":
        return MarketSection(symbol="BTC/USDT:USDT", type="linear", tick_size=Decimal("0.1"), lot_size=Decimal("0.001"),
                             min_qty=Decimal("0.001"), min_notional=Decimal("100"), contract_size=Decimal(1))
    if market == "coinm":
        return MarketSection(symbol="BTC/USD:BTC", type="inverse", tick_size=Decimal("0.1"), lot_size=Decimal(1),
                             min_qty=Decimal(1), min_notional=Decimal(0), contract_size=Decimal(100))
    return MarketSection()


@dataclass(frozen=True)
class Contract:
    symbol: str  # exchange id: BTCUSDT, BTCUSD_PERP
    unified: str  # BTC/USDT:USDT, BTC/USD:BTC
    base: str
    quote: str
    settle: str
    inverse: bool
    contract_size: Decimal
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maintenance_margin_rate: Decimal
    maintenance_amount: Decimal
    max_leverage: int = 125

    @classmethod
    def from_market(cls, m: MarketSection) -> "Contract":
        if m.type == "spot":
            raise ValueError(f"market.type is spot, not a perpetual (symbol {m.symbol!r})")
        base, _, rest = m.symbol.upper().partition("/")
        quote, _, settle = rest.partition(":")
        return cls(symbol=exchange_id(m.symbol, m.type), unified=m.symbol.upper(), base=base, quote=quote, settle=settle,
                   inverse=m.type == "inverse", contract_size=m.contract_size, tick_size=m.tick_size, step_size=m.lot_size,
                   min_qty=m.min_qty, min_notional=m.min_notional, maintenance_margin_rate=m.maintenance_margin_rate,
                   maintenance_amount=m.maintenance_amount)

    @property
    def pair(self) -> str:
        return self.base + self.quote

    def rules(self) -> SymbolRules:
        """The matching engine's view (amounts in contracts, prices in quote)."""
        return SymbolRules(symbol=self.symbol, base=self.base, quote=self.quote, tick_size=self.tick_size,
                           step_size=self.step_size, min_qty=self.min_qty, max_qty=Decimal(100_000_000),
                           min_price=self.tick_size, min_notional=self.min_notional, max_notional=Decimal(10) ** 12,
                           market_max_qty=Decimal(100_000_000))

    # ------------------------------------------------------------------ arithmetic (settle currency)
    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        """Unsigned value of ``qty`` contracts at ``price``: quote on linear, base on inverse."""
        qty = abs(qty)
        if price <= 0:
            return Decimal(0)
        return qty * self.contract_size / price if self.inverse else qty * self.contract_size * price

    def pnl(self, signed_qty: Decimal, entry: Decimal, exit: Decimal) -> Decimal:
        """PnL of a position of ``signed_qty`` contracts (long > 0) from ``entry`` to ``exit``:
        linear ``(exit - entry) * qty * cs``; inverse ``qty * cs * (1/entry - 1/exit)``."""
        if signed_qty == 0 or entry <= 0 or exit <= 0:
            return Decimal(0)
        if self.inverse:
            return signed_qty * self.contract_size * (1 / entry - 1 / exit)
        return (exit - entry) * signed_qty * self.contract_size

    def maintenance(self, qty: Decimal, mark: Decimal) -> Decimal:
        """Maintenance margin: ``notional * rate - maintenance amount`` (Binance's one-bracket formula,
        https://www.binance.com/en/support/faq/how-to-calculate-liquidation-price-of-usd%E2%93%A2-m-futures-contracts-b3c689c1f50a44cabb3a84e663b81d93)."""
        if qty == 0:
            return Decimal(0)
        return max(Decimal(0), self.notional(qty, mark) * self.maintenance_margin_rate - self.maintenance_amount)

    def entry_after(self, old_qty: Decimal, old_entry: Decimal, add_qty: Decimal, price: Decimal) -> Decimal:
        """Entry price after adding ``add_qty`` (same sign) at ``price``: the quantity-weighted mean on
        linear, the harmonic (value-weighted) mean on inverse, as Binance averages them."""
        total = abs(old_qty) + abs(add_qty)
        if old_qty == 0 or old_entry <= 0:
            return price
        if self.inverse:
            return total / (abs(old_qty) / old_entry + abs(add_qty) / price)
        return (abs(old_qty) * old_entry + abs(add_qty) * price) / total

    def liquidation_price(self, signed_qty: Decimal, entry: Decimal, margin: Decimal) -> Decimal:
        """The mark price at which ``margin`` (isolated wallet, or the cross wallet) plus the unrealized
        PnL equals the maintenance margin; 0 when there is none (no position, or it cannot be reached).

        linear: ``margin + s*q*cs*(P - entry) = q*cs*P*mmr - cum`` ->
        ``P = (s*q*cs*entry - margin - cum) / (q*cs*(s - mmr))``;
        inverse: ``margin + s*q*cs*(1/entry - 1/P) = q*cs*mmr/P - cum`` ->
        ``P = q*cs*(s + mmr) / (margin + cum + s*q*cs/entry)``.
        """
        if signed_qty == 0 or entry <= 0:
            return Decimal(0)
        s = Decimal(1) if signed_qty > 0 else Decimal(-1)
        q, cs, mmr, cum = abs(signed_qty), self.contract_size, self.maintenance_margin_rate, self.maintenance_amount
        if self.inverse:
            den = margin + cum + s * q * cs / entry
            price = q * cs * (s + mmr) / den if den != 0 else Decimal(0)  # a short backed by its full value: never
        else:
            den = q * cs * (s - mmr)
            price = (s * q * cs * entry - margin - cum) / den if den != 0 else Decimal(0)
        return price if price > 0 else Decimal(0)
