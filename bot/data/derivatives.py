"""Parsers for the perpetual-futures streams of a Binance recording (USD-M and COIN-M).

:mod:`bot.data.binance` hands the ``data`` object of these streams here; they are kept apart
from the depth/quote/trade parsing so that the reader stays one readable loop:

* ``<sym>@markPrice`` / ``<sym>@markPrice@1s`` (``markPriceUpdate``): ``p`` mark price,
  ``i`` index price, ``r`` funding rate, ``T`` next funding time (ms), ``E`` event time (ms)
  -> :class:`MarkPrice`. COIN-M delivery contracts send ``"r": ""`` and ``"T": 0`` (no funding);
  both read as 0. Only the mark price is required: it is what the account marks positions with.
* ``<sym>@forceOrder`` (``forceOrder``): ``o`` = ``{s, S, q, p, ap, z, T, ...}`` -> :class:`Liquidation`.
  The price is the average fill price ``ap`` when it is positive (what the liquidation actually
  traded at), else the order price ``p``; the size is the accumulated filled quantity ``z`` when
  present and not 0, else the order quantity ``q`` (an order not filled yet forces all of ``q``;
  COIN-M: contracts, not coins). The side is ``S``
  lower-cased; ``ts_exchange`` is the order's trade time ``o.T``, else ``E``.

Both raise :class:`Reject` for a message that cannot be used (the reader counts it as
malformed, or under ``negative_sizes`` when ``negative`` is set, and names the line); they
never raise anything else on any JSON input.
"""

from __future__ import annotations

from math import isfinite
from typing import Any

from bot.core.events import Liquidation, MarkPrice

__all__ = ["Reject", "liquidation", "mark_price"]

_MS = 1_000_000


class Reject(Exception):
    """A message that cannot be used; ``negative`` tells a negative size from other faults."""

    def __init__(self, message: str, negative: bool = False) -> None:
        super().__init__(message)
        self.negative = negative


def _number(obj: dict[str, Any], key: str, what: str, required: bool = True) -> float | None:
    """``obj[key]`` as a finite float (Binance sends numbers as strings); None when absent/empty
    and not ``required``."""
    raw = obj.get(key)
    if raw is None or raw == "":
        if required:
            raise Reject(f"{what}: missing field {key!r}")
        return None
    if type(raw) is bool or not isinstance(raw, (str, int, float)):
        raise Reject(f"{what}: expected a number in {key!r}, got {str(raw)[:40]!r}")
    try:
        value = float(raw)
    except ValueError:
        raise Reject(f"{what}: expected a number in {key!r}, got {str(raw)[:40]!r}") from None
    if not isfinite(value):
        raise Reject(f"{what}: {key!r} must be finite, got {raw!r}")
    return value


def _ms_ns(obj: dict[str, Any], key: str, what: str) -> int:
    """A millisecond timestamp field as ns; 0 when absent. A non-integer or negative value is a fault."""
    value = obj.get(key)
    if value is None:
        return 0
    if type(value) is not int or value < 0:
        raise Reject(f"{what}: expected a non-negative integer of ms in {key!r}, got {str(value)[:40]!r}")
    return value * _MS


def mark_price(data: dict[str, Any], ts_local: int) -> MarkPrice:
    """One ``markPriceUpdate`` as a :class:`MarkPrice` (see the module docstring)."""
    what = "markPrice"
    mark = _number(data, "p", what)
    assert mark is not None
    if mark <= 0.0:
        raise Reject(f"{what}: mark price 'p' must be positive, got {data.get('p')!r}")
    index = _number(data, "i", what, required=False)
    if index is not None and index < 0.0:
        raise Reject(f"{what}: index price 'i' must not be negative, got {data.get('i')!r}")
    rate = _number(data, "r", what, required=False)
    return MarkPrice(ts_local, _ms_ns(data, "E", what), mark, index or 0.0, rate or 0.0, _ms_ns(data, "T", what))


def liquidation(data: dict[str, Any], ts_local: int, symbol: str) -> Liquidation:
    """One ``forceOrder`` as a :class:`Liquidation`; ``symbol`` (upper case, e.g. ``BTCUSD_PERP``)
    is the recording's, and an order of another symbol is rejected rather than replayed."""
    what = "forceOrder"
    order = data.get("o")
    if type(order) is not dict:
        raise Reject(f"{what}: expected the order object in 'o', got {str(order)[:40]!r}")
    sym = order.get("s")
    if symbol and isinstance(sym, str) and sym.upper() != symbol:
        raise Reject(f"{what}: order of {sym!r} in the stream of {symbol}")
    side = order.get("S")
    if side not in ("BUY", "SELL"):
        raise Reject(f"{what}: side 'S' must be BUY or SELL, got {str(side)[:20]!r}")
    avg = _number(order, "ap", what, required=False)
    price = avg if avg is not None and avg > 0.0 else _number(order, "p", what)
    assert price is not None
    if price <= 0.0:
        raise Reject(f"{what}: price must be positive, got p={order.get('p')!r} ap={order.get('ap')!r}")
    filled = _number(order, "z", what, required=False)
    key = "z" if filled is not None and filled != 0.0 else "q"  # z = 0: nothing filled yet, the order's q is what is forced
    size = filled if key == "z" else _number(order, "q", what)
    assert size is not None
    if size < 0.0:
        raise Reject(f"{what}: negative size {key}={order.get(key)!r}; message rejected", negative=True)
    ts_exchange = _ms_ns(order, "T", what) or _ms_ns(data, "E", what)
    return Liquidation(ts_local, ts_exchange, price, size, side.lower())
