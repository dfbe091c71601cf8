"""The engine's small parts: what it needs from a venue, its counters, its order ids, its equity schedule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Protocol

from bot.book.book import OrderBook
from bot.config.settings import Settings
from bot.core.events import MarketEvent
from bot.core.market import Market, market_from_section
from bot.core.orders import Fill, Order, Side


class Venue(Protocol):
    """What the engine needs from a venue (paper, backtest or live)."""

    @property
    def has_pending(self) -> bool:
        """Sent work whose outcome is not known yet (new orders, cancels): no new decision meanwhile."""

    @property
    def active(self) -> bool:
        """Anything a market event could change (pending work or resting orders)."""

    def submit(self, order: Order, now: int) -> None: ...

    def cancel(self, client_order_id: str, now: int) -> None: ...

    def resting(self, side: Side) -> Order | None: ...

    def on_book(self, book: OrderBook, now: int, event: MarketEvent | None = None) -> list[tuple[Order, list[Fill]]]: ...

    def available(self, asset: str) -> Decimal | None:
        """What the exchange reports free of ``asset`` (None: unknown or unlimited, as in paper)."""

    @property
    def balance_generation(self) -> int:
        """Changes with every balance answer taken: tells the risk manager a re-read happened."""

    def recheck_balance(self) -> None:
        """Read the exchange's balances again (the risk manager doubts them)."""

    def abandon(self) -> list[Order]:
        """The orders that end with this process, now CANCELED (a simulated venue's in-flight and
        resting orders); a real exchange's orders outlive it and are settled with it instead."""

    def bind_position(self, position: Callable[[], Decimal]) -> None:
        """Where the venue reads the instrument's position (signed, in order amounts) when an
        order fills: a simulated venue enforces reduce-only with it, a real exchange itself."""


def market_from_settings(settings: Settings) -> Market:
    """The single instrument of a one-market config (``[market]``, or a one-entry ``[[markets]]``)."""
    return market_from_section(settings.instruments[0])


@dataclass(slots=True)
class EngineStats:
    events: int = 0
    book_updates: int = 0
    decisions: int = 0
    orders: int = 0
    rejects: int = 0
    venue_rejects: int = 0
    fills: int = 0
    halts: int = 0
    unsound_periods: int = 0
    dust_set_aside: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class OrderIds:
    """Client order ids ``<prefix>-1``, ``<prefix>-2``, ...: contiguous (a refused intent gives its
    number back), so a venue's :class:`~bot.core.orders.SentIds` stays flat. The first instrument's
    prefix is the run id, the others' ``<run_id>.<index>``: unique across instruments."""

    __slots__ = ("prefix", "seq")

    def __init__(self, run_id: str):
        self.prefix = run_id
        self.seq = 0

    def take(self) -> str:
        self.seq += 1
        return f"{self.prefix}-{self.seq}"

    def give_back(self) -> None:
        self.seq -= 1


@dataclass(slots=True)
class EquitySchedule:
    """When the next equity point is due: one schedule for the account, whichever instrument updates."""

    interval_ns: int
    next_ts: int = 0
