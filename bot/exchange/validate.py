"""Checks of what the exchange answers, before any of it can touch the books.

An answer about an order is compared with what we sent: the symbol, the client order id, the
side, the amount; a fill never makes the order's executed amount exceed the order, the executed
amount never goes down, and every price is a positive finite number. A market answer (precision,
limits) and a book (levels) must be made of positive finite numbers. Anything else raises
:class:`ExchangeResponseError`, which names the call and the field: the caller treats it as an
exchange fault (log it, look the order up again later, never book it), never as a fill.

Why so strict: a response for another order, or one saying ``filled 1000000``, booked as a fill
of ours makes the bot size its exits to a position it does not have; each exit then "fills" more
and the next exit is larger (the runaway seen against a hostile test server).
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.core.orders import Order

ORDER_STATUSES = {"open", "closed", "canceled", "expired", "rejected"}
MAX_FEE_FRACTION = Decimal("0.01")
"""No exchange charges (or rebates) more than 1 % of a trade's value: a fee beyond it is garbage
(Binance spot: 0.1 % at most; the largest maker rebates are a few basis points)."""


class ExchangeResponseError(Exception):
    """The exchange answered something that contradicts what we sent, or is not a sane number."""

    def __init__(self, call: str, field: str, detail: str):
        self.call = call
        self.field = field
        super().__init__(f"{call}: {field}: {detail}")


def number(value: Any, call: str, field: str, *, positive: bool = False, allow_negative: bool = False) -> Decimal:
    """``value`` as a Decimal that is finite (and > 0 with ``positive``, >= 0 unless ``allow_negative``)."""
    if isinstance(value, bool) or value is None:
        raise ExchangeResponseError(call, field, f"expected a number, got {value!r}")
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ExchangeResponseError(call, field, f"expected a number, got {str(value)[:40]!r}") from None
    if not d.is_finite():
        raise ExchangeResponseError(call, field, f"expected a finite number, got {value!r}")
    if positive and d <= 0:
        raise ExchangeResponseError(call, field, f"expected a positive number, got {value!r}")
    if not positive and not allow_negative and d < 0:
        raise ExchangeResponseError(call, field, f"expected a number >= 0, got {value!r}")
    return d


def _raw_symbol(obj: dict[str, Any], exchange_symbol: str, call: str, field: str) -> None:
    """ccxt fills the unified ``symbol`` from the market it was called with, whatever the exchange
    said: the exchange's own answer (``info``) is what must name our symbol."""
    raw = obj.get("info")
    if exchange_symbol and isinstance(raw, dict) and "symbol" in raw and raw["symbol"] != exchange_symbol:
        raise ExchangeResponseError(call, field, f"the exchange's answer is for {raw['symbol']!r}, we sent {exchange_symbol!r}")


def check_order_info(info: Any, order: Order, symbol: str, seen_filled: Decimal, call: str, exchange_symbol: str = "") -> Decimal:
    """Check an order structure (ccxt unified) against ``order``; return its executed amount.

    ``seen_filled`` is the executed amount an earlier answer reported (it must not go down);
    ``exchange_symbol`` the exchange's id of ``symbol``, checked against the raw answer.
    """
    if not isinstance(info, dict):
        raise ExchangeResponseError(call, "order", f"expected an order object, got {type(info).__name__}")
    got_symbol = info.get("symbol")
    if got_symbol != symbol:
        raise ExchangeResponseError(call, "symbol", f"answer is for {got_symbol!r}, we sent {symbol!r}")
    _raw_symbol(info, exchange_symbol, call, "symbol")
    cid = info.get("clientOrderId")
    if cid is not None and cid != order.client_order_id:
        raise ExchangeResponseError(call, "clientOrderId", f"answer is for {cid!r}, we sent {order.client_order_id!r}")
    if cid is None:
        raise ExchangeResponseError(call, "clientOrderId", f"missing (we sent {order.client_order_id!r})")
    side = info.get("side")
    if side != order.side.value:
        raise ExchangeResponseError(call, "side", f"answer says {side!r}, we sent {order.side.value!r}")
    status = info.get("status")
    if status not in ORDER_STATUSES:
        raise ExchangeResponseError(call, "status", f"unknown order status {status!r}")
    amount = info.get("amount")
    if amount is not None:
        amount_d = number(amount, call, "amount")
        if amount_d != order.amount and not (amount_d == 0 and order.order_type == "market"):
            raise ExchangeResponseError(call, "amount", f"answer says {amount}, we sent {order.amount}")
    filled = number(info.get("filled") or 0, call, "filled")
    if filled > order.amount:
        raise ExchangeResponseError(call, "filled", f"{filled} exceeds the order's amount {order.amount}")
    if filled < seen_filled:
        raise ExchangeResponseError(call, "filled", f"went down from {seen_filled} to {filled}")
    for key in ("average", "price"):
        value = info.get(key)
        if value is not None and (filled > 0 or key == "price") and not (isinstance(value, (int, float)) and value == 0):
            number(value, call, key, positive=True)
    return filled


def check_trades(
    trades: Any, order: Order, symbol: str, exchange_order_id: str, call: str, exchange_symbol: str = "", base: str = "", quote: str = ""
) -> list[dict[str, Any]]:
    """Check the trades of one order (ccxt unified ``fetch_my_trades`` for that order id).

    ``base``/``quote`` (the market's assets) let a fee in either be checked against the trade's
    size; a fee in another asset is checked once valued (:func:`check_fee_value`)."""
    if not isinstance(trades, list):
        raise ExchangeResponseError(call, "trades", f"expected a list, got {type(trades).__name__}")
    out = []
    for i, t in enumerate(trades):
        where = f"trades[{i}]"
        if not isinstance(t, dict):
            raise ExchangeResponseError(call, where, f"expected a trade object, got {type(t).__name__}")
        if t.get("symbol") != symbol:
            raise ExchangeResponseError(call, f"{where}.symbol", f"trade is for {t.get('symbol')!r}, the order for {symbol!r}")
        _raw_symbol(t, exchange_symbol, call, f"{where}.symbol")
        if str(t.get("order")) != str(exchange_order_id):
            raise ExchangeResponseError(call, f"{where}.order", f"trade of order {t.get('order')!r}, we asked for {exchange_order_id!r}")
        if t.get("side") != order.side.value:
            raise ExchangeResponseError(call, f"{where}.side", f"trade side {t.get('side')!r}, the order is a {order.side.value}")
        price = number(t.get("price"), call, f"{where}.price", positive=True)
        amount = number(t.get("amount"), call, f"{where}.amount", positive=True)
        if t.get("id") in (None, ""):
            raise ExchangeResponseError(call, f"{where}.id", "trade without an id (it could be booked twice)")
        stamp = t.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp <= 0:
            raise ExchangeResponseError(call, f"{where}.timestamp", f"expected the trade's time in ms, got {stamp!r}")
        fee = t.get("fee") or {}
        if not isinstance(fee, dict):
            raise ExchangeResponseError(call, f"{where}.fee", f"expected a fee object, got {fee!r}")
        if fee.get("cost") is not None:
            cost = number(fee.get("cost"), call, f"{where}.fee.cost", allow_negative=True)
            currency = fee.get("currency")
            if not isinstance(currency, str) or not currency:
                raise ExchangeResponseError(call, f"{where}.fee.currency", f"expected an asset code, got {currency!r}")
            if cost < 0 and t.get("takerOrMaker") != "maker":
                raise ExchangeResponseError(call, f"{where}.fee.cost", f"a rebate ({cost}) on a taker fill")
            # the fee's size against the trade, where its asset is one of the trade's own
            if currency == base and abs(cost) > MAX_FEE_FRACTION * amount:
                raise ExchangeResponseError(call, f"{where}.fee.cost", f"{cost} {currency} on a trade of {amount}: more than {MAX_FEE_FRACTION:%}")
            if currency == quote and abs(cost) > MAX_FEE_FRACTION * amount * price:
                raise ExchangeResponseError(call, f"{where}.fee.cost", f"{cost} {currency} on a trade worth {amount * price}: more than {MAX_FEE_FRACTION:%}")
        out.append(t)
    return out


def check_fee_value(value: Decimal, price: Decimal, amount: Decimal, call: str, field: str) -> None:
    """A fee valued in quote (e.g. one paid in BNB) against the trade it was charged on."""
    if abs(value) > MAX_FEE_FRACTION * price * amount:
        raise ExchangeResponseError(call, field, f"fee worth {value} on a trade worth {price * amount}: more than {MAX_FEE_FRACTION:%}")


def check_levels(levels: Any, call: str, side: str) -> None:
    """Every ``[price, size, ...]`` level positive (price) and non-negative (size), finite."""
    if not isinstance(levels, list):
        raise ExchangeResponseError(call, side, f"expected a list of levels, got {type(levels).__name__}")
    for i, level in enumerate(levels):
        if not isinstance(level, (list, tuple)) or len(level) < 2:
            raise ExchangeResponseError(call, f"{side}[{i}]", f"expected [price, size], got {str(level)[:60]}")
        price, size = level[0], level[1]
        if not (isinstance(price, (int, float)) and not isinstance(price, bool) and 0 < price < math.inf):
            raise ExchangeResponseError(call, f"{side}[{i}].price", f"expected a positive finite number, got {price!r}")
        if not (isinstance(size, (int, float)) and not isinstance(size, bool) and 0 <= size < math.inf):
            raise ExchangeResponseError(call, f"{side}[{i}].size", f"expected a finite number >= 0, got {size!r}")


def check_book(book: Any, call: str, levels: int) -> None:
    """A ccxt order book: both sides checked to the depth the bot uses."""
    if not isinstance(book, dict):
        raise ExchangeResponseError(call, "book", f"expected an order book object, got {type(book).__name__}")
    for side in ("bids", "asks"):
        raw = book.get(side)
        check_levels(raw[:levels] if isinstance(raw, list) else raw, call, side)
    nonce = book.get("nonce")
    if nonce is not None and (isinstance(nonce, bool) or not isinstance(nonce, int) or nonce < 0):
        raise ExchangeResponseError(call, "nonce", f"expected a non-negative integer update id, got {nonce!r}")


def check_balances(balance: Any, call: str, required: tuple[str, ...] = ()) -> dict[str, Decimal]:
    """ccxt's ``fetch_balance`` -> free amount per asset, each a finite number >= 0.

    Every asset in ``required`` (the market's base and quote) must be reported: Binance lists
    every asset, zero balances included, and ccxt turns an answer it cannot read into an empty
    balance, which must not be mistaken for "you hold nothing"."""
    if not isinstance(balance, dict):
        raise ExchangeResponseError(call, "balance", f"expected a balance object, got {type(balance).__name__}")
    free = balance.get("free")
    if not isinstance(free, dict):
        raise ExchangeResponseError(call, "free", f"expected free amounts per asset, got {type(free).__name__}")
    out = {}
    for asset, value in free.items():
        if value is None:
            continue
        out[str(asset)] = number(value, call, f"free.{asset}")
    for asset in required:
        if asset not in out:
            raise ExchangeResponseError(call, f"free.{asset}", "missing from the answer (an unreadable or partial balance)")
    return out
