"""Exchange symbol ids <-> ccxt unified symbols, for recordings that only carry the id.

A Binance recording names its symbol by the exchange's id (``btcusdt@depth``); the same id means
spot ``BTC/USDT`` or the USD-M perpetual ``BTC/USDT:USDT`` depending on the market, and COIN-M
ids carry the contract (``BTCUSD_PERP`` is ``BTC/USD:BTC``). The rules follow ccxt's Binance
markets: spot and USD-M ids are base + quote; COIN-M ids are base + ``USD`` + ``_PERP`` (or
``_YYMMDD`` for a delivery contract, not traded here).

Without the exchange's market list, an id is split at the longest known quote currency suffix.
"""

from __future__ import annotations

QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "JPY", "DAI")
"""Quote currencies a Binance id may end with, longest first where one is a suffix of another."""

def market_type_of(exchange_id: str, has_futures_sequence: bool) -> str:
    """The market of a recorded stream: ``spot`` without futures' ``pu`` field, else COIN-M
    (``inverse``) when the id names a contract (``BTCUSD_PERP``), else USD-M (``linear``)."""
    if not has_futures_sequence:
        return "spot"
    return "inverse" if "_" in exchange_id else "linear"


def split_id(exchange_id: str) -> tuple[str, str] | None:
    """``BTCUSDT`` -> ``("BTC", "USDT")``; None when no known quote ends the id."""
    core = exchange_id.upper().partition("_")[0]
    for quote in sorted(QUOTES, key=len, reverse=True):
        if core.endswith(quote) and len(core) > len(quote):
            return core[: -len(quote)], quote
    return None


def unified_symbol(exchange_id: str, market_type: str) -> str | None:
    """The ccxt unified symbol of a recording's id on ``market_type``; None when it cannot be split."""
    parts = split_id(exchange_id)
    if parts is None:
        return None
    base, quote = parts
    if market_type == "linear":
        return f"{base}/{quote}:{quote}"
    if market_type == "inverse":
        return f"{base}/{quote}:{base}"
    return f"{base}/{quote}"


def exchange_id(symbol: str, market_type: str) -> str:
    """The Binance id of a unified symbol: ``BTC/USDT`` and ``BTC/USDT:USDT`` -> ``BTCUSDT``,
    ``BTC/USD:BTC`` -> ``BTCUSD_PERP``."""
    base, _, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    core = (base + quote).upper()
    return core + "_PERP" if market_type == "inverse" else core
