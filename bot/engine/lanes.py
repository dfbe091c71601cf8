"""One instrument inside the daemon: its exchange client, restored books, engine, venue, feed and watchdog.

A daemon trades every instrument of its config (``[market]`` or ``[[markets]]``) from one
account. Each instrument is a :class:`Lane`: the instruments share the ccxt instance (one rate
limiter for the account's request weight, one set of websocket connections), the account (cash,
equity, margin) and the account's limits, and each has its own book, feed, venue, position sync
and staleness watchdog. A websocket teardown for one instrument's resync closes the connection
the others' streams share: their books are invalidated and rebuilt too, so no instrument trades
on a stream that was cut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.core.market import Market
from bot.engine.engine import Engine
from bot.engine.positions import PositionSync
from bot.engine.restore import Restored
from bot.exchange.client import ExchangeClient
from bot.exchange.feed import LiveFeed, snapshot_from_ccxt


@dataclass
class BookWatch:
    """The staleness and soundness watchdog's memory for one instrument."""

    delivered: int = 0  # events the feed handed over (a change means the feed is alive)
    seen: int = 0
    stale_flagged: bool = False
    was_sound: bool = False
    unsound_since: int = 0


@dataclass
class Lane:
    client: ExchangeClient
    market: Market
    restored: Restored
    engine: Engine | None = None
    venue: Any = None
    feed: LiveFeed | None = None
    sync: PositionSync | None = None
    watch: BookWatch = field(default_factory=BookWatch)

    @property
    def symbol(self) -> str:
        return self.market.symbol

    def check_book(self, now: int, max_age_ns: int, max_age_s: float) -> bool:
        """Invalidate a stale or persistently unsound book (the feed rebuilds it); True when the
        book just stopped being sound, so open orders may have to be cancelled."""
        engine, feed, watch = self.engine, self.feed, self.watch
        assert engine is not None and feed is not None
        if watch.delivered != watch.seen:
            watch.seen = watch.delivered
            watch.stale_flagged = False
        book = engine.book
        if book.is_sound and book.age_ns(now) > max_age_ns and not watch.stale_flagged:
            watch.stale_flagged = True
            feed.invalidate(f"stale book: no update for {book.age_ns(now) / 1e9:.1f}s")
        # crossed or implausible prices that keep coming: the exchange copy ccxt maintains is
        # broken (a bad level is never deleted by a diff); subscribe afresh for a new snapshot
        if book.is_sound or book.awaiting_snapshot:
            watch.unsound_since = 0
        elif not watch.unsound_since:
            watch.unsound_since = now
        elif now - watch.unsound_since > max_age_ns:
            watch.unsound_since = 0
            feed.invalidate(f"book {book.status.value} for {max_age_s:g}s: subscribing afresh")
        turned_unsound = watch.was_sound and not book.is_sound
        watch.was_sound = book.is_sound
        return turned_unsound

    def state(self, now: int) -> dict[str, Any]:
        """This instrument's part of the heartbeat (``bot status`` reads it while the daemon lives)."""
        engine = self.engine
        assert engine is not None
        pf = engine.portfolio
        mid = engine.last_mid
        return {
            "symbol": self.symbol,
            "position": str(pf.qty),
            "avg_price": str(pf.avg_price),
            "dust": str(pf.dust),
            "mid": mid if mid == mid else None,
            "book_status": engine.book.status.value,
            "book_age_s": round(engine.book.age_ns(now) / 1e9, 3) if engine.book.last_update_ts else None,
            "feed_mode": self.feed.mode if self.feed is not None else None,
            "open_orders": [o.client_order_id for o in getattr(self.venue, "_inflight", {}).values()],
            "orders": engine.stats.orders,
            "fills": engine.stats.fills,
        }

    async def carried(self) -> tuple[float, dict[str, Any] | None]:
        """The restored position valued at the exchange's mid now: (equity contribution, what was carried)."""
        pf = self.restored.portfolio
        if pf.is_flat and not pf.dust:
            return float(pf.equity_cash), None
        snap = snapshot_from_ccxt(await self.client.fetch_order_book(), self.client.cfg.book_levels, time.time_ns())
        if not snap.bids or not snap.asks:
            raise LaneError(f"fetch_order_book: the exchange's {self.symbol} book has an empty side; cannot value the carried position")
        mark = (snap.bids[0][0] + snap.asks[0][0]) * 0.5
        equity = pf.equity(mark)
        return equity, {
            "symbol": self.symbol, "qty": str(pf.qty), "avg_price": str(pf.avg_price), "dust": str(pf.dust), "mark": mark,
            "value": round(equity - float(pf.equity_cash), 8), "from_runs": len(self.restored.previous_runs),
        }


class LaneError(Exception):
    """A lane cannot start; the message says why (the daemon turns it into a DaemonError)."""


def account_state(lanes: list[Lane], now: int) -> dict[str, Any]:
    """The account's part of the heartbeat: one instrument's fields at the top (as with a single
    ``[market]``), or for several the worst book (a status reader sees at once that one
    instrument cannot trade), and every instrument under ``instruments``."""
    per = [lane.state(now) for lane in lanes]
    if len(per) == 1:
        top = {k: v for k, v in per[0].items() if k != "symbol"}
    else:
        unsound = [p for p in per if p["book_status"] != "sound"]
        ages = [p["book_age_s"] for p in per if p["book_age_s"] is not None]
        top = {
            "position": None, "avg_price": None, "dust": None, "mid": None,
            "book_status": unsound[0]["book_status"] if unsound else "sound",
            "book_age_s": max(ages) if ages else None,
            "feed_mode": ",".join(sorted({str(p["feed_mode"]) for p in per})),
            "open_orders": [cid for p in per for cid in p["open_orders"]],
            "orders": sum(p["orders"] for p in per),
            "fills": sum(p["fills"] for p in per),
        }
    top["instruments"] = per
    return top


def sum_faults(lanes: list[Lane]) -> int:
    return sum(int(getattr(lane.venue, "faults", 0)) for lane in lanes)

