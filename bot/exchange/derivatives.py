"""Perpetual-futures calls through ccxt: leverage and margin mode, positions, funding, trades.

Binance USD-M (``binanceusdm``) and COIN-M (``binancecoinm``) in one-way mode. What each call
answers is checked before the bot books anything from it (one line naming the call and field on
garbage, :class:`~bot.exchange.validate.ExchangeResponseError`):

* ``set_leverage`` / ``set_margin_mode`` at start; Binance answers "No need to change margin
  type" (code -4046) when the mode is already set, which is success.
* :func:`fetch_position`: the signed position in contracts and the entry price the exchange
  holds (``fetch_positions``; ccxt's ``contracts`` is unsigned, ``side`` gives the sign).
* :func:`fetch_funding`: funding payments (``fetch_funding_history``, Binance income
  ``FUNDING_FEE``) since a time, each with the exchange's id so a restart never books one twice.
* :func:`fetch_trades_since`: the account's trades on the symbol since a time, for trades that
  are not the bot's orders (a liquidation: Binance's ``autoclose-`` client ids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import ccxt

from bot.core.events import MarkPrice
from bot.core.market import Market
from bot.exchange.validate import ExchangeResponseError, number

ALREADY_SET = ("-4046", "No need to change", "-4059")  # margin type / position side already as asked


@dataclass(frozen=True, slots=True)
class ExchangePosition:
    contracts: Decimal  # signed: > 0 long
    entry_price: Decimal
    liquidation_price: Decimal | None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    ref: str
    ts_ns: int
    amount: Decimal  # > 0 received, in the settle currency
    currency: str


async def setup_market(client: Any, market: Market) -> None:
    """Set the configured margin mode and leverage of ``market`` on the exchange."""
    symbol = market.symbol
    try:
        await client.call("set_margin_mode", lambda: client.ccxt.set_margin_mode(market.margin_mode, symbol))
    except ccxt.ExchangeError as exc:
        if not any(code in str(exc) for code in ALREADY_SET):
            raise
    await client.call("set_leverage", lambda: client.ccxt.set_leverage(market.leverage, symbol))


async def fetch_position(client: Any, market: Market) -> ExchangePosition:
    """The exchange's position on ``market`` (zero contracts when it lists none)."""
    answer = await client.call("fetch_positions", lambda: client.ccxt.fetch_positions([market.symbol]))
    if not isinstance(answer, list):
        raise ExchangeResponseError("fetch_positions", "<answer>", f"a list, got {type(answer).__name__}")
    total = Decimal(0)
    entry = Decimal(0)
    liq: Decimal | None = None
    for p in answer:
        if not isinstance(p, dict) or p.get("symbol") != market.symbol:
            continue
        contracts = number(p.get("contracts") or 0, "fetch_positions", "contracts")
        if contracts == 0:
            continue
        side = p.get("side")
        if side not in ("long", "short"):
            raise ExchangeResponseError("fetch_positions", "side", f"'long' or 'short', got {side!r}")
        total += contracts if side == "long" else -contracts
        entry = number(p.get("entryPrice") or 0, "fetch_positions", "entryPrice")
        if p.get("liquidationPrice"):
            liq = number(p["liquidationPrice"], "fetch_positions", "liquidationPrice")
    return ExchangePosition(total, entry, liq)


async def fetch_funding(client: Any, market: Market, since_ms: int, income_type: str = "FUNDING_FEE") -> list[FundingPayment]:
    """Funding payments on ``market`` from ``since_ms`` on, oldest first (``income_type``: another
    kind of Binance income entry, e.g. ``INSURANCE_CLEAR`` after a liquidation)."""
    answer = await client.call(
        "fetch_funding_history", lambda: client.ccxt.fetch_funding_history(market.symbol, since_ms, None, {"incomeType": income_type})
    )
    if not isinstance(answer, list):
        raise ExchangeResponseError("fetch_funding_history", "<answer>", f"a list, got {type(answer).__name__}")
    out = []
    for item in answer:
        if not isinstance(item, dict):
            raise ExchangeResponseError("fetch_funding_history", "<entry>", "an object")
        ts = item.get("timestamp")
        if not isinstance(ts, int) or ts <= 0:
            raise ExchangeResponseError("fetch_funding_history", "timestamp", f"a positive ms time, got {ts!r}")
        ref = str(item.get("id") or (item.get("info") or {}).get("tranId") or f"{market.symbol}:{ts}")
        amount = number(item.get("amount"), "fetch_funding_history", "amount", allow_negative=True)
        out.append(FundingPayment(ref, ts * 1_000_000, amount, str(item.get("code") or market.settle_currency)))
    out.sort(key=lambda f: (f.ts_ns, f.ref))
    return out


async def fetch_trades_since(client: Any, market: Market, since_ms: int) -> list[dict[str, Any]]:
    """The account's trades on ``market`` from ``since_ms`` on (ccxt trade structures)."""
    answer = await client.call("fetch_my_trades", lambda: client.ccxt.fetch_my_trades(market.symbol, since_ms))
    if not isinstance(answer, list):
        raise ExchangeResponseError("fetch_my_trades", "<answer>", f"a list, got {type(answer).__name__}")
    return answer


def mark_price_event(info: Any, now_ns: int) -> MarkPrice | None:
    """ccxt's funding-rate structure (``fetch_funding_rate``: Binance premiumIndex) as a
    :class:`MarkPrice` stamped ``now_ns``; None when it carries no usable mark price."""
    if not isinstance(info, dict):
        return None
    try:
        mark = float(info.get("markPrice") or 0)
        index = float(info.get("indexPrice") or 0)
        rate = float(info.get("fundingRate") or 0)
        nxt = int(info.get("fundingTimestamp") or 0)
    except (TypeError, ValueError):
        return None
    if not (mark > 0 and math.isfinite(mark) and math.isfinite(rate)) or abs(rate) > 0.05:
        return None  # Binance caps funding far below 5 % per interval: anything beyond is garbage
    return MarkPrice(now_ns, int(info.get("timestamp") or 0) * 1_000_000, mark, index if math.isfinite(index) else 0.0, rate, nxt * 1_000_000)
