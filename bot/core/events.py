"""Normalized market events.

Every source of market data (recorded files, the built-in simulator, ccxt.pro websockets) is
turned into these small immutable records so that the engine downstream never knows which world
it runs in. Prices and sizes are floats here: the hot path reads them millions of times, and
they are only ever compared or multiplied, never sent to an exchange. Order amounts and prices
that reach a venue go through :mod:`bot.core.market`, which works in Decimal.

Timestamps are integer nanoseconds. ``ts_local`` is when our process (or the recorder) received
the message and is what the engine's clock follows; ``ts_exchange`` is the exchange's own stamp
(0 when the message has none) and is only informational, since the two clocks disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

Level = tuple[float, float]
"""One price level: (price, size). A size of 0 in a delta deletes the level."""


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """A full replacement of the book (REST snapshot or simulator start).

    ``bids`` are sorted best (highest) first, ``asks`` best (lowest) first.
    ``sequence`` is the exchange update id the snapshot is valid at.
    """

    ts_local: int
    ts_exchange: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Absolute new sizes for the levels that changed (size 0 removes the level).

    ``first_seq``/``last_seq`` are the exchange update ids covered (Binance ``U``/``u``).
    The reader has already checked the sequence rules before emitting a delta.
    """

    ts_local: int
    ts_exchange: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    first_seq: int = 0
    last_seq: int = 0


@dataclass(frozen=True, slots=True)
class BestBidAsk:
    """Top of book (Binance ``bookTicker``). ``sequence`` is the book update id it reflects."""

    ts_local: int
    ts_exchange: int
    bid_price: float
    bid_size: float
    ask_price: float
    ask_size: float
    sequence: int = 0


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade. ``side`` is the aggressor: ``"buy"`` lifted the ask, ``"sell"`` hit the bid."""

    ts_local: int
    ts_exchange: int
    price: float
    size: float
    side: str
    trade_id: int = 0


@dataclass(frozen=True, slots=True)
class BookInvalidated:
    """The source lost the book (sequence gap, reconnect): the book must resync before use.

    Emitted by readers and feeds; the book enters its resync state on it, and no trading happens
    until the next :class:`BookSnapshot`.
    """

    ts_local: int
    ts_exchange: int
    reason: str


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """Mark price and funding of a perpetual (Binance ``markPriceUpdate``, ``premiumIndex``).

    ``funding_rate`` is a fraction per funding interval (``r``; 0.0001 = 1 bp), the rate the next
    funding payment at ``next_funding_ts`` (ns, ``T``) settles at; 0 when the venue sent none.
    ``index_price`` is 0 when absent. The book ignores it; the account marks and funds with it.
    """

    ts_local: int
    ts_exchange: int
    mark_price: float
    index_price: float = 0.0
    funding_rate: float = 0.0
    next_funding_ts: int = 0


@dataclass(frozen=True, slots=True)
class Liquidation:
    """A forced order of the exchange (Binance ``forceOrder``): someone's position liquidated.

    ``side`` is the forced order's side: ``"sell"`` liquidates a long (selling pressure).
    """

    ts_local: int
    ts_exchange: int
    price: float
    size: float
    side: str


MarketEvent = Union[BookSnapshot, BookDelta, BestBidAsk, Trade, BookInvalidated, MarkPrice, Liquidation]
