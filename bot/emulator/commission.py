"""Which asset pays a fill's commission, as Binance spot charges it (``--commission-asset``).

=========  ==========================================================================================
mode       commission of one fill (``rate`` = the maker or taker rate of that fill)
=========  ==========================================================================================
``quote``  ``quote_qty * rate`` in the quote asset, for buys and sells (the emulator's default)
``base``   a BUY pays ``qty * rate`` in the base asset it receives (it is credited ``qty -
           commission``); a SELL pays ``quote_qty * rate`` in quote (the asset it receives)
``bnb``    ``quote_qty * rate / bnb_price`` in BNB, debited from the free BNB balance; a fill whose
           commission the free BNB cannot pay falls back to the ``base`` rule (Binance then charges
           the asset received)
=========  ==========================================================================================

Every commission is rounded to 8 decimals: up for a fee, toward zero for a rebate (a negative
rate, e.g. ``--maker-fee -0.0001``: the negative commission is credited). No BNB discount is
applied. In ``bnb`` mode the account also holds a BNB balance and the exchange lists a reference
symbol ``BNB<QUOTE>`` (:func:`bnb_rules`) whose tickers answer at ``bnb_price``, so a client can
value BNB; that symbol cannot be traded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_UP, Decimal

from bot.emulator.market import now_ms

__all__ = ["BNB", "MODES", "Commission", "CommissionPolicy", "bnb_rules", "reference_row", "round_commission"]

BNB = "BNB"
MODES = ("quote", "base", "bnb")
E8 = Decimal("0.00000001")
ZERO = Decimal(0)


def round_commission(x: Decimal) -> Decimal:
    """8 decimals: a fee rounded up, a rebate (negative) toward zero."""
    return x.quantize(E8, rounding=ROUND_UP if x > 0 else ROUND_DOWN)


@dataclass(frozen=True)
class Commission:
    amount: Decimal  # negative: a rebate, credited
    asset: str


class CommissionPolicy:
    """The commission of each fill for one symbol (``base``/``quote``) under one mode."""

    def __init__(self, mode: str = "quote", base: str = "BTC", quote: str = "USDT",
                 bnb_price: Decimal | str | int = Decimal(500)) -> None:
        mode = (mode or "quote").lower()
        if mode not in MODES:
            raise ValueError(f"commission asset must be one of {', '.join(MODES)}, got {mode!r}")
        price = Decimal(str(bnb_price))
        if not price.is_finite() or price <= 0:
            raise ValueError(f"BNB price must be a number > 0, got {bnb_price!r}")
        if mode == "bnb" and BNB in (base.upper(), quote.upper()):
            raise ValueError(f"commission asset bnb needs a symbol without BNB, got {base}/{quote}")
        self.mode = mode
        self.base = base.upper()
        self.quote = quote.upper()
        self.bnb_price = price

    @property
    def quote_pays_buys(self) -> bool:
        """True when a buy's commission comes out of the quote asset (so a resting buy locks it too)."""
        return self.mode == "quote"

    @property
    def extra_assets(self) -> tuple[str, ...]:
        """Assets besides base and quote the account holds because of the mode."""
        return (BNB,) if self.mode == "bnb" else ()

    def charge(self, is_buy: bool, qty: Decimal, quote_qty: Decimal, rate: Decimal, bnb_free: Decimal = ZERO) -> Commission:
        """The commission of one fill; ``bnb_free`` is the account's free BNB (bnb mode only)."""
        if self.mode == "bnb":
            amount = round_commission(quote_qty * rate / self.bnb_price)
            if amount <= bnb_free:
                return Commission(amount, BNB)
        if self.mode != "quote" and is_buy:
            return Commission(round_commission(qty * rate), self.base)
        return Commission(round_commission(quote_qty * rate), self.quote)


def bnb_rules(quote: str, price: Decimal):
    """The reference symbol ``BNB<QUOTE>`` of bnb mode: Binance-like filters, a tick fine enough for ``price``."""
    from bot.emulator.matching import SymbolRules

    exponent = price.normalize().as_tuple().exponent
    tick = min(Decimal("0.01"), Decimal(1).scaleb(int(exponent)) if isinstance(exponent, int) else Decimal("0.01"))
    tick = max(tick, E8)
    return SymbolRules(symbol=BNB + quote.upper(), base=BNB, quote=quote.upper(), tick_size=tick,
                       step_size=Decimal("0.001"), min_qty=Decimal("0.001"), min_price=tick, min_notional=Decimal(5))


def reference_row(symbol: str, price: Decimal, kind: str) -> dict:
    """A ticker row of a reference symbol that always trades at ``price`` (bid = ask = last).

    ``kind``: ``"24hr"``, ``"price"`` or ``"book"`` (``ticker/24hr``, ``ticker/price``, ``ticker/bookTicker``).
    """
    p = format(price.quantize(E8), "f")
    zero = "0.00000000"
    if kind == "price":
        return {"symbol": symbol, "price": p}
    if kind == "book":
        return {"symbol": symbol, "bidPrice": p, "bidQty": "1000.00000000", "askPrice": p, "askQty": "1000.00000000"}
    now = now_ms()
    return {
        "symbol": symbol, "priceChange": zero, "priceChangePercent": "0.000", "weightedAvgPrice": p,
        "prevClosePrice": p, "lastPrice": p, "lastQty": zero, "bidPrice": p, "bidQty": "1000.00000000",
        "askPrice": p, "askQty": "1000.00000000", "openPrice": p, "highPrice": p, "lowPrice": p, "volume": zero,
        "quoteVolume": zero, "openTime": now - 86_400_000, "closeTime": now, "firstId": -1, "lastId": -1, "count": 0,
    }
