"""When perpetual funding is paid, and at what rate.

Binance perpetuals pay funding every ``funding_interval_h`` hours from 00:00 UTC (8 h: 00:00,
08:00, 16:00); the payment is ``-position value x rate`` at the mark price (longs pay a positive
rate). Two sources of the schedule:

* mark-price messages (``markPriceUpdate``: ``r`` the rate, ``T`` the next funding time): the
  exchange's own clock. A payment is due when ``T`` moves on (the funding at the old ``T`` has
  happened, at the rate the messages gave before it), so a local clock that lags the exchange's
  (the shared recordings' by 1.3-1.5 s) neither skips nor doubles a payment. Should the
  messages stop, the payment is still made ``FEED_GRACE_NS`` after ``T`` on the local clock.
* otherwise the config: ``funding_rate_bps`` per 8 h, scaled to the interval, at the scheduled
  times on the local clock.

Each funding time is paid once (``last_paid``), on the position held at that time: the message
that shows ``T`` has passed arrives a little after it, and a fill in between must not change what
the funding at ``T`` charged. So the engine notes the position at the first event whose exchange
time is at or past ``T`` (:meth:`FundingClock.hold`, before that event's own fills), and the
payment is computed on that position.
"""

from __future__ import annotations

from typing import Any

from bot.core.events import MarkPrice

HOUR_NS = 3_600 * 1_000_000_000
FEED_GRACE_NS = 10 * 1_000_000_000


class FundingClock:
    """The next funding time (ns) and the rate it settles at, for one instrument."""

    __slots__ = ("interval_ns", "next_ts", "rate", "mark", "feed_next", "last_paid", "held", "held_for")

    def __init__(self, market_cfg: Any):
        self.interval_ns = int(market_cfg.funding_interval_h) * HOUR_NS
        self.rate = float(market_cfg.funding_rate_bps) / 1e4 * market_cfg.funding_interval_h / 8.0
        self.mark = 0.0
        self.next_ts = 0  # local time at which to look again (0: at the first event, which starts the schedule)
        self.feed_next = 0  # the exchange's next funding time, once a mark-price message gave one
        self.last_paid = 0
        self.held: Any = None  # the position at the exchange's funding time ``held_for``
        self.held_for = 0

    def hold(self, qty: Any) -> None:
        """The first event at or after the exchange's funding time: the position it settles on."""
        self.held, self.held_for = qty, self.feed_next

    def held_at(self, due_ts: int) -> Any:
        """The position noted at ``due_ts`` (None: none noted, the current one is it)."""
        return self.held if self.held_for == due_ts else None

    def on_mark_price(self, event: MarkPrice) -> tuple[int, float] | None:
        """Take the message's mark, rate and schedule; ``(funding time, rate)`` when it shows a
        funding time has passed (the exchange moved to the next), else None."""
        if event.mark_price > 0:
            self.mark = event.mark_price
        due = None
        nxt = event.next_funding_ts
        if nxt > 0:
            if self.feed_next and nxt > self.feed_next and self.feed_next > self.last_paid:
                due = (self.feed_next, self.rate)
                self.last_paid = self.feed_next
            self.feed_next = max(self.feed_next, nxt)
            self.next_ts = self.feed_next + FEED_GRACE_NS
        self.rate = event.funding_rate
        return due

    def on_time(self, now: int) -> tuple[int, float] | None:
        """Called at the first event at or after ``next_ts``: the funding due then, if any, and the
        next time to look."""
        if self.next_ts == 0:  # the first event only starts the schedule
            self.next_ts = now - now % self.interval_ns + self.interval_ns
            return None
        due_ts = self.feed_next if self.feed_next else self.next_ts
        if self.feed_next:
            self.feed_next += self.interval_ns  # the messages stopped: keep the exchange's rhythm
            self.next_ts = self.feed_next + FEED_GRACE_NS
        else:
            self.next_ts = now - now % self.interval_ns + self.interval_ns
        if due_ts <= self.last_paid:
            return None
        self.last_paid = due_ts
        return due_ts, self.rate
