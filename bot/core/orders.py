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


@dataclass(frozen=True, slots=True)
class Reject:
    """Risk refused an intent. ``rule`` names the rule (e.g. ``max_position_notional``)."""

    ts: int
    intent: Intent
    rule: str
    detail: str


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution against the book. ``fee`` is in the quote currency and always >= 0."""

    ts: int
    client_order_id: str
    side: Side
    price: Decimal
    amount: Decimal
    fee: Decimal
    liquidity: str = "taker"
    trade_id: str = ""
