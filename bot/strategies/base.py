"""What a strategy is: it reads a context, answers with an intent or quotes, and says when it could act next.

A strategy never sees money beyond its position and never sizes an order: it states *what* it
wants (enter long, exit, quote a bid at a price), and the risk manager decides whether and how
much. The engine knows no strategy by name: it builds the one ``strategy.mode`` names from the
registry (:mod:`bot.strategies.registry`) and handles the two kinds of answer:

* an :class:`~bot.core.orders.Intent` (enter long/short, exit) becomes a sized order or a
  rejection via :meth:`bot.risk.manager.RiskManager.check`;
* :class:`Quotes` (a target price per side) keep one post-only order per side resting at the
  target: a resting quote whose target moved ``requote_distance`` or more away, or that has no
  target any more, is cancelled; each new quote goes through :meth:`bot.risk.manager.RiskManager.check_quote`.

:meth:`Strategy.wake` publishes the conditions under which the strategy could act next (score
bands, a time it waits for, a deadline, hold bands of named values, or "every event"). Whatever the
strategy returns for a state that meets none of them must be None, or for a quoting strategy
quotes the engine would leave as they are (:func:`quote_stands`): an accelerated replay may skip
such states (property tests hold every built-in strategy to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from collections.abc import Callable
from typing import Any

from bot.core.market import Market
from bot.core.orders import Intent
from bot.signals.features import SignalState

INF = math.inf


@dataclass(frozen=True, slots=True)
class Quotes:
    """Target prices per side (None: no quote on that side), each of ``notional`` in the settle currency."""

    buy: float | None
    sell: float | None
    notional: float
    requote_distance: float  # price units: a resting quote whose target moved this far or more is re-placed


def quote_stands(resting: float | None, target: float | None, requote_distance: float) -> bool:
    """Whether the engine leaves a side's quote as it is: nothing resting and no target, or a
    resting quote at ``resting`` within ``requote_distance`` of the target (else it is
    placed, moved or cancelled: :meth:`bot.engine.quoting.Quoting._quote`)."""
    if resting is None or target is None:
        return resting is None and target is None
    return not abs(resting - target) >= requote_distance  # (a NaN distance stands, as it always did)


@dataclass(frozen=True, slots=True)
class Wake:
    """When the strategy could act next; a state outside all of these gets None from it.

    It acts only at or after ``not_before`` (ns), and then only when the score is at or above
    ``score_above`` or at or below ``score_below``, or the :class:`SignalState` field ``feature``
    (if named) is at or above ``feature_above`` or at or below ``feature_below``, or once
    ``deadline`` (ns) is reached; with ``every_event`` it may act on any update.

    ``bands`` are hold conditions, each ``(field, below, above)``: the strategy's answer (a quoting
    strategy's quotes, as the engine would act on them) stays the same while every named value
    stays strictly inside its band, and it may act on the first state where one leaves it (NaN
    counts as outside). ``field`` is a :class:`SignalState` field or the book's ``best_bid`` /
    ``best_ask``. A quoting strategy publishes them around its resting quotes
    (:meth:`Context.resting_quote`) so that an accelerated replay skips the updates that could
    not move a quote.
    """

    score_above: float = INF
    score_below: float = -INF
    not_before: int = 0
    deadline: int | None = None
    every_event: bool = False
    feature: str = ""
    feature_above: float = INF
    feature_below: float = -INF
    bands: tuple[tuple[str, float, float], ...] = ()

    def admits(self, score: float, now: int, feature_value: float = math.nan) -> bool:
        """Could the strategy act on a state with this score (and this value of ``feature``) at this time?"""
        if self.every_event:
            return True
        if self.deadline is not None and now >= self.deadline:
            return True
        if now < self.not_before:
            return False
        return score >= self.score_above or score <= self.score_below or feature_value >= self.feature_above or feature_value <= self.feature_below


class Position:
    """The strategy's read-only view of its instrument's position (the portfolio stays the account's)."""

    __slots__ = ("_pf",)

    def __init__(self, portfolio: Any):
        self._pf = portfolio

    @property
    def qty(self) -> Decimal:
        return self._pf.qty

    @property
    def sign(self) -> int:
        q = self._pf.qty
        return 0 if self._pf.is_flat else (1 if q > 0 else -1)

    @property
    def opened_ts(self) -> int:
        return self._pf.open_ts

    @property
    def avg_price(self) -> Decimal:
        return self._pf.avg_price


class Context:
    """What a strategy receives, refreshed by the engine before every call (one object, no allocation per event).

    ``book`` is read-only by contract (best_bid/best_ask/sizes, ``bids(n)``/``asks(n)``);
    ``position_cap`` is the risk manager's per-instrument cap in the instrument's amount at the mid
    (``cap_at`` at any price: the cap's value over the price, or times it for an inverse contract,
    so it is monotone in the price); ``resting_quote`` the price of our quote resting on a side,
    ``quote_wait`` until when the engine places no quote on a side (the venue refused one).
    """

    __slots__ = ("market", "book", "state", "position", "now", "_cap", "_resting", "_wait")

    def __init__(self, market: Market, book: Any, position: Position, cap: Any, resting: Callable[[str], float | None] | None = None,
                 wait: Callable[[str], int] | None = None):
        self.market = market
        self.book = book
        self.state = SignalState()
        self.position = position
        self.now = 0
        self._cap = cap
        self._resting = resting
        self._wait = wait

    def position_cap(self) -> float:
        return self.cap_at(self.state.mid)

    def cap_at(self, mid: float) -> float:
        """The position cap (amount) if the mid were ``mid`` (0.0 for a mid that is not > 0)."""
        return float(self._cap(mid)) if mid > 0 else 0.0

    def resting_quote(self, side: str) -> float | None:
        """The price of our post-only order resting on ``side`` (``"buy"``/``"sell"``), or None."""
        return None if self._resting is None else self._resting(side)

    def quote_wait(self, side: str) -> int:
        """Until when (ns) the engine places no new quote on ``side``: the risk manager's cooldown
        after the venue refused an order there (0: none). Before then a target for that side
        with nothing resting changes nothing."""
        return 0 if self._wait is None else self._wait(side)


class Strategy:
    """Base of every strategy: override :meth:`on_state` and :meth:`wake`; the hooks default to nothing."""

    name = "strategy"
    reads_features: tuple[str, ...] = ("score", "mid", "spread", "ofi")
    """The :class:`SignalState` fields it reads (the compiled replay computes only some of them)."""

    def on_state(self, ctx: Context) -> Intent | Quotes | None:
        raise NotImplementedError

    def wake(self, ctx: Context) -> Wake:
        """Conditions for the next action (default: every event, which is always safe)."""
        return Wake(every_event=True)

    def on_entry(self, now: int) -> None:
        """A position was opened (an entry filled)."""

    def on_reject(self, what: str, now: int) -> None:
        """The risk manager refused an entry (``what`` = the intent kind) or a quote (``buy``/``sell``)."""

    def fast_path_params(self) -> dict[str, float] | None:
        """Parameters the compiled replay mirrors for this strategy, or None when it cannot (readable engine)."""
        return None
