"""An L2 order book built from snapshots, deltas and best-bid/ask updates.

Why this shape: each side is a dict (price -> size) for O(1) updates plus a sorted list of
prices for the best levels. Real books change mostly near the touch, so ``bisect`` inserts into
a list of a few thousand floats cost less than a tree in pure Python.

Best-bid/ask updates (Binance ``bookTicker``) arrive about ten times as often as depth diffs.
When one is newer than the last diff (by exchange update id) it is overlaid on the book: levels
better than the new best are removed (they were consumed) and the best level's size is set.
A later diff that is older than the last overlay is applied and the overlay re-applied, so the
book never goes back in time.

The book refuses to be used while it is unsound: before its first snapshot or after a
:class:`~bot.core.events.BookInvalidated` (``RESYNC``), while best bid >= best ask
(``CROSSED``, counted in ``crossed_events``), after an update carried a price that is not a
positive finite number (``INVALID``: the level is not applied, and the book waits for the next
snapshot like after a gap), and while the mid is more than ``price_band`` (a fraction) away
from the last sound mid (``IMPLAUSIBLE``, counted in ``implausible_events``: a price of 0.01 or
9e15 in a BTC book is a broken message, not a market; the book is sound again once prices are
back inside the band around that last sound mid). A real move beyond the band while the book was
being rebuilt is accepted only from fresh snapshots: ``REANCHOR_SNAPSHOTS`` snapshots in a row,
each taken after a resync and each within the band of the one before, move the reference to the
new level (counted in ``reanchors``); deltas and best-bid/ask updates never move it. Staleness is a question of time and is
answered by :meth:`OrderBook.age_ns` against the caller's clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from enum import Enum

from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Level, Liquidation, MarketEvent, MarkPrice, Trade

NAN = float("nan")
INF = float("inf")
REANCHOR_SNAPSHOTS = 3
"""Fresh snapshots in a row, after resyncs and agreeing with each other, that move the reference mid."""


class BookStatus(str, Enum):
    SOUND = "sound"
    RESYNC = "resync"
    CROSSED = "crossed"
    IMPLAUSIBLE = "price_band"
    INVALID = "bad_price"


class OrderBook:
    """Price-level book for one symbol."""

    __slots__ = (
        "_bids", "_asks", "_bid_prices", "_ask_prices", "status", "depth_sequence",
        "_last_bbo", "last_update_ts", "crossed_events", "resyncs", "updates",
        "price_band", "ref_mid", "implausible_events", "bad_prices", "_synced",
        "_pending_ref", "_pending_count", "reanchors",
    )

    def __init__(self, price_band: float | None = None) -> None:
        """``price_band``: the fraction of the last sound mid a new mid may be away (None: no band)."""
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._bid_prices: list[float] = []  # ascending; best bid is the last
        self._ask_prices: list[float] = []  # ascending; best ask is the first
        self.status = BookStatus.RESYNC
        self.depth_sequence = 0
        self._last_bbo: BestBidAsk | None = None
        self.last_update_ts = 0
        self.crossed_events = 0
        self.resyncs = 0
        self.updates = 0
        self.price_band = INF if price_band is None else float(price_band)
        self.ref_mid = NAN  # the last sound mid
        self.implausible_events = 0
        self.bad_prices = 0  # levels refused for a price that is not a positive finite number
        self._synced = False  # False: deltas and best-bid/ask updates wait for a snapshot
        self._pending_ref = NAN  # an out-of-band level seen in fresh snapshots, and how many in a row
        self._pending_count = 0
        self.reanchors = 0

    # ------------------------------------------------------------------ updates
    def apply(self, event: MarketEvent) -> bool:
        """Apply one event; return True when the book's levels may have changed."""
        if isinstance(event, BestBidAsk):
            return self._apply_bbo(event)
        if isinstance(event, BookDelta):
            if not self._synced:
                return False
            bad = self._set_levels(event.bids, self._bids, self._bid_prices)
            bad += self._set_levels(event.asks, self._asks, self._ask_prices)
            self.depth_sequence = event.last_seq or self.depth_sequence
            bbo = self._last_bbo
            if bbo is not None and bbo.sequence > self.depth_sequence:
                self._overlay(bbo)
            self._touched(event.ts_local, bad)
            return True
        if isinstance(event, BookSnapshot):
            bad = self._load_side(event.bids, self._bids, self._bid_prices, descending=True)
            bad += self._load_side(event.asks, self._asks, self._ask_prices, descending=False)
            self.depth_sequence = event.sequence
            self._last_bbo = None
            fresh = not self._synced
            self._synced = True
            self.status = BookStatus.SOUND
            self._touched(event.ts_local, bad, fresh)
            return True
        if isinstance(event, BookInvalidated):
            if self.status is not BookStatus.RESYNC:
                self.resyncs += 1
            self.status = BookStatus.RESYNC
            self._synced = False
            return True
        if isinstance(event, (Trade, MarkPrice, Liquidation)):
            return False  # not book levels: the engine routes them to signals and the account
        raise TypeError(f"not a market event: {type(event).__name__}")

    def _apply_bbo(self, bbo: BestBidAsk) -> bool:
        if not self._synced:
            return False
        if bbo.sequence and bbo.sequence <= self.depth_sequence:
            return False  # older than the depth we already hold
        if not (0.0 < bbo.bid_price < INF and 0.0 < bbo.ask_price < INF):
            self.bad_prices += 1
            self._touched(bbo.ts_local, 1)
            return True
        self._last_bbo = bbo
        self._overlay(bbo)
        self._touched(bbo.ts_local, 0)
        return True

    def _overlay(self, bbo: BestBidAsk) -> None:
        bids, bid_prices = self._bids, self._bid_prices
        while bid_prices and bid_prices[-1] > bbo.bid_price:
            del bids[bid_prices.pop()]
        asks, ask_prices = self._asks, self._ask_prices
        while ask_prices and ask_prices[0] < bbo.ask_price:
            del asks[ask_prices.pop(0)]
        self._set_levels(((bbo.bid_price, bbo.bid_size),), bids, bid_prices)
        self._set_levels(((bbo.ask_price, bbo.ask_size),), asks, ask_prices)

    def _load_side(self, levels: tuple[Level, ...], sizes: dict[float, float], prices: list[float], descending: bool) -> int:
        """Replace one side from a snapshot; return how many levels had a bad price. Snapshots
        normally arrive sorted best-first, which lets the price list be built in one pass
        (strictly increasing prices are all finite and only the first can be <= 0); anything else
        goes level by level."""
        sizes.clear()
        prices.clear()
        ordered = [p for p, _ in levels]
        if descending:
            ordered.reverse()
        if all(a < b for a, b in zip(ordered, ordered[1:])) and (not ordered or 0.0 < ordered[0] and ordered[-1] < INF):
            kept = [(p, q) for p, q in levels if q > 0.0]
            prices.extend(p for p, _ in (reversed(kept) if descending else kept))
            sizes.update(kept)
            return 0
        return self._set_levels(levels, sizes, prices)

    def _set_levels(self, levels: tuple[Level, ...], sizes: dict[float, float], prices: list[float]) -> int:
        """Set absolute sizes; return how many levels were refused for a bad price."""
        bad = 0
        for price, size in levels:
            if not 0.0 < price < INF:  # NaN fails too: it would break the sorted price list
                bad += 1
                continue
            if size > 0.0:
                if price not in sizes:
                    insort(prices, price)
                sizes[price] = size
            elif price in sizes:
                del sizes[price]
                del prices[bisect_left(prices, price)]
        if bad:
            self.bad_prices += bad
        return bad

    def _touched(self, ts: int, bad: int, fresh: bool = False) -> None:
        self.last_update_ts = ts
        self.updates += 1
        if bad:  # part of the update could not be applied: the book is not the exchange's any more
            self.status = BookStatus.INVALID
            self._synced = False
            return
        bid_prices, ask_prices = self._bid_prices, self._ask_prices
        if bid_prices and ask_prices:
            best_bid, best_ask = bid_prices[-1], ask_prices[0]
            if best_bid >= best_ask:
                if self.status is not BookStatus.CROSSED:
                    self.crossed_events += 1
                self.status = BookStatus.CROSSED
                return
            mid = (best_bid + best_ask) * 0.5
            ref = self.ref_mid
            band = self.price_band
            if abs(mid - ref) > band * ref:  # False while ref is NaN (no sound mid yet)
                if fresh:  # a snapshot after a resync: maybe the market really moved meanwhile
                    pending = self._pending_ref
                    if abs(mid - pending) <= band * pending:
                        self._pending_count += 1
                    else:
                        self._pending_count = 1
                    self._pending_ref = mid
                    if self._pending_count >= REANCHOR_SNAPSHOTS:
                        self.reanchors += 1
                        self._pending_count = 0
                        self._pending_ref = NAN
                        self.ref_mid = mid
                        self.status = BookStatus.SOUND
                        return
                if self.status is not BookStatus.IMPLAUSIBLE:
                    self.implausible_events += 1
                self.status = BookStatus.IMPLAUSIBLE
                return
            if fresh:
                self._pending_count = 0
                self._pending_ref = NAN
            self.ref_mid = mid
        self.status = BookStatus.SOUND

    # ------------------------------------------------------------------ reads
    @property
    def awaiting_snapshot(self) -> bool:
        """True before the first snapshot and after a gap or a bad price, until the next snapshot."""
        return not self._synced

    @property
    def is_sound(self) -> bool:
        """Synced and not crossed, with both sides present."""
        return self.status is BookStatus.SOUND and bool(self._bid_prices) and bool(self._ask_prices)

    def age_ns(self, now: int) -> int:
        """Time since the last update, by the caller's clock (replay or wall time)."""
        return now - self.last_update_ts if self.last_update_ts else 1 << 62

    @property
    def best_bid(self) -> float:
        return self._bid_prices[-1] if self._bid_prices else NAN

    @property
    def best_ask(self) -> float:
        return self._ask_prices[0] if self._ask_prices else NAN

    @property
    def best_bid_size(self) -> float:
        return self._bids[self._bid_prices[-1]] if self._bid_prices else 0.0

    @property
    def best_ask_size(self) -> float:
        return self._asks[self._ask_prices[0]] if self._ask_prices else 0.0

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) * 0.5

    @property
    def spread(self) -> float:
        return self.best_ask - self.best_bid

    @property
    def microprice(self) -> float:
        """Size-weighted mid: leans toward the side with less size (the one likely to move)."""
        bq, aq = self.best_bid_size, self.best_ask_size
        if bq + aq <= 0.0:
            return self.mid
        return (self.best_bid * aq + self.best_ask * bq) / (bq + aq)

    def bids(self, n: int) -> list[Level]:
        """Top ``n`` bid levels, best first."""
        prices, sizes = self._bid_prices, self._bids
        return [(p, sizes[p]) for p in prices[: -n - 1 if n < len(prices) else None : -1]] if n > 0 else []

    def asks(self, n: int) -> list[Level]:
        """Top ``n`` ask levels, best first."""
        sizes = self._asks
        return [(p, sizes[p]) for p in self._ask_prices[:n]] if n > 0 else []

    def size_at(self, side: str, price: float) -> float:
        """Visible size at exactly ``price`` on ``side`` (``"bid"`` or ``"ask"``); 0 if no level."""
        return (self._bids if side == "bid" else self._asks).get(price, 0.0)

    def depth(self, side: str, n: int) -> float:
        """Total size of the top ``n`` levels of ``side`` (``"bid"`` or ``"ask"``)."""
        levels = self.bids(n) if side == "bid" else self.asks(n)
        return math.fsum(size for _, size in levels)

    def level_count(self) -> tuple[int, int]:
        return len(self._bid_prices), len(self._ask_prices)
