"""What flows from the strategy to a venue and back: intents, orders, rejections and fills.

An :class:`Intent` is the strategy's wish (direction and why). Only the risk manager turns an
intent into an :class:`Order` (sized, rounded, with stop and target) or a :class:`Reject`
naming the rule that refused it. Venues accept orders and report :class:`Fill` records; the
portfolio changes only on fills, never on assumptions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class IntentKind(str, Enum):
    ENTER_LONG = "enter_long"
    ENTER_SHORT = "enter_short"
    EXIT = "exit"


@dataclass(frozen=True, slots=True)
class Intent:
    """A strategy or risk-exit decision before sizing.

    ``reason`` is a short machine-readable tag (``signal``, ``stop_loss``, ``take_profit``,
    ``daily_loss_limit``, ``max_drawdown``, ``kill_switch``, ``end_of_data``) stored with the order.
    """

    kind: IntentKind
    ts: int
    reason: str
    score: float = 0.0


class OrderStatus(str, Enum):
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(slots=True)
class Order:
    """A sized order that passed risk. Market orders have ``price=None``.

    ``client_order_id`` is unique per run and sequence so a venue can never fill it twice.
    ``stop_price``/``take_profit_price`` belong to the position it opens (None for exits).
    """

    client_order_id: str
    ts: int
    side: Side
    amount: Decimal
    order_type: str = "market"
    price: Decimal | None = None
    reason: str = ""
    reduce_only: bool = False
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    status: OrderStatus = OrderStatus.NEW
    filled: Decimal = field(default=Decimal(0))
    exchange_order_id: str | None = None
    sent_ns: int = 0
    """Wall-clock ns by which every create request for this order had been signed (0: none was)."""
    reject_reason: str = ""
    """Why the venue refused it (the exchange's own message), when ``status`` is REJECTED."""
    symbol: str = ""
    """The instrument (ccxt unified symbol)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Risk refused an intent. ``rule`` names the rule (e.g. ``max_position_notional``)."""

    ts: int
    intent: Intent
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against the book, with its fee as the venue charged it.

    ``fee`` is in ``fee_currency`` (the asset the exchange took it in: the quote, the base asset
    a Binance spot buy pays in without BNB, or BNB); empty means the quote currency. It is
    negative for a rebate. ``fee_value`` is the same fee in the quote currency (the fee times the
    fill price for a base-asset fee, times the asset's market price for any other asset; see
    :class:`bot.core.portfolio.Portfolio`); None means "equal to ``fee``" (a quote fee).
    """

    ts: int
    client_order_id: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    liquidity: str = "taker"
    trade_id: str = ""
    fee_currency: str = ""
    fee_value: Decimal | None = None
    symbol: str = ""
    realized: Decimal | None = None
    """Derivatives, live: the realized PnL the exchange settled this fill at (Binance ``realizedPnl``,
    from its average entry, to 8 decimals); the portfolio books that instead of its own FIFO figure."""

    @property
    def fee_in_quote(self) -> Decimal:
        return self.fee if self.fee_value is None else self.fee_value


class SentIds:
    """Every client order id a venue has accepted, to refuse sending one twice.

    The engine numbers its orders ``<run_id>-1``, ``<run_id>-2``, ...: for each prefix only the
    highest ``n`` up to which every id was seen is kept, so memory stays flat however long a
    daemon runs. Ids of any other shape (or ahead of a gap) are kept as they are.
    """

    __slots__ = ("_contiguous", "_other")

    def __init__(self) -> None:
        self._contiguous: dict[str, int] = {}  # prefix -> w: prefix-1 .. prefix-w all seen
        self._other: set[str] = set()

    @staticmethod
    def _split(cid: str) -> tuple[str, int] | None:
        prefix, sep, tail = cid.rpartition("-")
        if sep and prefix and tail.isdigit() and tail.isascii() and tail[0] != "0":
            return prefix, int(tail)
        return None

    def __contains__(self, cid: str) -> bool:
        parts = self._split(cid)
        if parts is not None and parts[1] <= self._contiguous.get(parts[0], 0):
            return True
        return cid in self._other

    def add(self, cid: str) -> None:
        parts = self._split(cid)
        if parts is None:
            self._other.add(cid)
            return
        prefix, n = parts
        w = self._contiguous.get(prefix, 0)
        if n <= w:
            return
        if n != w + 1:
            self._other.add(cid)
            return
        w = n
        while self._other and f"{prefix}-{w + 1}" in self._other:  # a gap just closed
            w += 1
            self._other.discard(f"{prefix}-{w}")
        self._contiguous[prefix] = w

    def __len__(self) -> int:
        return sum(self._contiguous.values()) + len(self._other)
