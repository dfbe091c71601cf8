"""Tests for the L2 order book (:mod:`bot.book.book`).

Most tests are hypothesis properties that drive :class:`OrderBook` and a deliberately naive
reference book (two plain dicts, best levels found by sorting every time) with the same event
sequence and compare every read after every event.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.book import BookStatus, OrderBook
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Trade

NAN = float("nan")
NEVER = 1 << 62  # age_ns before the first update

# Budgets keep the whole file well under ~20 s on 2 busy cores; most of the time is hypothesis
# generating event sequences. Raise max_examples locally when hunting bugs.
PROP = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

N_VALUES = (0, 1, 2, 3, 5, 10, 100)


# ---------------------------------------------------------------------------------------------
# Naive reference book
# ---------------------------------------------------------------------------------------------
class RefBook:
    """Obviously-correct model of the documented behaviour; slow on purpose."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.resync = True
        self.crossed = False
        self.depth_sequence = 0
        self.last_bbo: BestBidAsk | None = None
        self.last_update_ts = 0
        self.crossed_events = 0
        self.resyncs = 0
        self.updates = 0

    # -- reads
    def sorted_bids(self) -> list[tuple[float, float]]:
        return sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)

    def sorted_asks(self) -> list[tuple[float, float]]:
        return sorted(self.asks.items(), key=lambda kv: kv[0])

    @property
    def best_bid(self) -> float:
        b = self.sorted_bids()
        return b[0][0] if b else NAN

    @property
    def best_ask(self) -> float:
        a = self.sorted_asks()
        return a[0][0] if a else NAN

    @property
    def best_bid_size(self) -> float:
        b = self.sorted_bids()
        return b[0][1] if b else 0.0

    @property
    def best_ask_size(self) -> float:
        a = self.sorted_asks()
        return a[0][1] if a else 0.0

    def is_crossed_now(self) -> bool:
        return bool(self.bids) and bool(self.asks) and self.best_bid >= self.best_ask

    @property
    def status(self) -> BookStatus:
        if self.resync:
            return BookStatus.RESYNC
        return BookStatus.CROSSED if self.crossed else BookStatus.SOUND

    @property
    def is_sound(self) -> bool:
        return self.status is BookStatus.SOUND and bool(self.bids) and bool(self.asks)

    @property
    def overlay_in_force(self) -> bool:
        return (
            not self.resync
            and self.last_bbo is not None
            and self.last_bbo.sequence > self.depth_sequence
        )

    # -- updates
    @staticmethod
    def _set(side: dict[float, float], levels) -> None:
        for price, size in levels:
            if size > 0:
                side[price] = size
            else:
                side.pop(price, None)

    def _overlay(self, bbo: BestBidAsk) -> None:
        self.bids = {p: s for p, s in self.bids.items() if p <= bbo.bid_price}
        self.asks = {p: s for p, s in self.asks.items() if p >= bbo.ask_price}
        self._set(self.bids, [(bbo.bid_price, bbo.bid_size)])
        self._set(self.asks, [(bbo.ask_price, bbo.ask_size)])

    def _touch(self, ts: int) -> None:
        self.last_update_ts = ts
        self.updates += 1
        self.resync = False
        crossed = self.is_crossed_now()
        if crossed and not self.crossed:
            self.crossed_events += 1
        self.crossed = crossed

    def apply(self, ev) -> bool:
        if isinstance(ev, BookSnapshot):
            self.bids, self.asks = {}, {}
            self._set(self.bids, ev.bids)
            self._set(self.asks, ev.asks)
            self.depth_sequence = ev.sequence
            self.last_bbo = None
            # a snapshot starts afresh: a crossed snapshot is a new crossed event even if the
            # book it replaces was crossed too (book.py sets SOUND before re-checking)
            self.crossed = False
            self._touch(ev.ts_local)
            return True
        if isinstance(ev, BookDelta):
            if self.resync:
                return False
            self._set(self.bids, ev.bids)
            self._set(self.asks, ev.asks)
            if ev.last_seq:
                self.depth_sequence = ev.last_seq
            if self.last_bbo is not None and self.last_bbo.sequence > self.depth_sequence:
                self._overlay(self.last_bbo)
            self._touch(ev.ts_local)
            return True
        if isinstance(ev, BestBidAsk):
            if self.resync:
                return False
            if ev.sequence and ev.sequence <= self.depth_sequence:
                return False
            self.last_bbo = ev
            self._overlay(ev)
            self._touch(ev.ts_local)
            return True
        if isinstance(ev, BookInvalidated):
            if not self.resync:
                self.resyncs += 1
            self.resync = True
            return True
        if isinstance(ev, Trade):
            return False
        raise TypeError(ev)


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------
def same(a: float, b: float) -> bool:
    """Float equality where nan == nan."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def assert_invariants(book: OrderBook) -> None:
    bids = book.bids(1 << 30)
    asks = book.asks(1 << 30)
    bid_prices = [p for p, _ in bids]
    ask_prices = [p for p, _ in asks]
    assert all(a > b for a, b in zip(bid_prices, bid_prices[1:])), bid_prices
    assert all(a < b for a, b in zip(ask_prices, ask_prices[1:])), ask_prices
    assert all(s > 0 for _, s in bids), bids
    assert all(s > 0 for _, s in asks), asks
    assert book.level_count() == (len(bids), len(asks))
    # the public reads agree with each other
    assert same(book.best_bid, bid_prices[0] if bids else NAN)
    assert same(book.best_ask, ask_prices[0] if asks else NAN)
    assert book.best_bid_size == (bids[0][1] if bids else 0.0)
    assert book.best_ask_size == (asks[0][1] if asks else 0.0)
    if book.status is not BookStatus.RESYNC:
        crossed = bool(bids) and bool(asks) and bid_prices[0] >= ask_prices[0]
        assert (book.status is BookStatus.CROSSED) == crossed
    assert book.is_sound == (book.status is BookStatus.SOUND and bool(bids) and bool(asks))


def assert_matches(book: OrderBook, ref: RefBook) -> None:
    rb, ra = ref.sorted_bids(), ref.sorted_asks()
    for n in N_VALUES:
        assert book.bids(n) == rb[:n], n
        assert book.asks(n) == ra[:n], n
        assert book.depth("bid", n) == pytest.approx(math.fsum(s for _, s in rb[:n]))
        assert book.depth("ask", n) == pytest.approx(math.fsum(s for _, s in ra[:n]))
    assert book.bids(len(rb)) == rb
    assert book.asks(len(ra)) == ra
    assert book.level_count() == (len(rb), len(ra))
    assert same(book.best_bid, ref.best_bid)
    assert same(book.best_ask, ref.best_ask)
    assert book.best_bid_size == ref.best_bid_size
    assert book.best_ask_size == ref.best_ask_size
    assert close(book.mid, (ref.best_bid + ref.best_ask) / 2)
    assert close(book.spread, ref.best_ask - ref.best_bid)
    assert book.status is ref.status
    if ref.status is not BookStatus.RESYNC:
        assert (book.status is BookStatus.CROSSED) == (
            bool(rb) and bool(ra) and ref.best_bid >= ref.best_ask
        )
    assert book.is_sound == ref.is_sound
    assert book.depth_sequence == ref.depth_sequence
    assert book.crossed_events == ref.crossed_events
    assert book.resyncs == ref.resyncs
    assert book.updates == ref.updates
    assert book.last_update_ts == ref.last_update_ts
    assert_invariants(book)


# ---------------------------------------------------------------------------------------------
# Strategies: a small price grid (ticks 1..40 of 0.5) so levels collide, sizes including 0
# ---------------------------------------------------------------------------------------------
TICK = 0.5
ticks = st.integers(1, 40)
BID_TICKS = (1, 21)  # bids mostly below asks; the one shared tick produces crosses
ASK_TICKS = (21, 40)
ALL_TICKS = (1, 40)
# Sizes come from a fixed table: far cheaper to generate than float strategies, and it still
# covers deletes (0), tiny and huge sizes and values that are inexact in binary.
SIZE_TABLE = (0.0, 0.0, 0.0, 0.001, 0.1, 0.25, 0.3, 1.0, 1.0, 2.5, 3.3, 7.0, 42.0, 1e6)
N_SIZES = len(SIZE_TABLE)
positive_sizes = st.integers(3, N_SIZES - 1).map(SIZE_TABLE.__getitem__)


def levels(tick_range, max_size=10):
    """Lists of (price, size); each level is drawn as ONE integer encoding tick and size, which
    halves hypothesis' per-draw cost compared with tuples (generation dominates the run time)."""
    lo, hi = tick_range

    def decode(codes):
        return tuple(((lo + c // N_SIZES) * TICK, SIZE_TABLE[c % N_SIZES]) for c in codes)

    return st.lists(st.integers(0, (hi - lo + 1) * N_SIZES - 1), max_size=max_size).map(decode)


def anywhere_levels(max_size=10):
    """Levels anywhere on the grid (for deltas that try to cross the book)."""
    return levels(ALL_TICKS, max_size)


@st.composite
def snapshot_st(draw, ts: int, seq: int = 0):
    if draw(st.integers(0, 3)):
        bids, asks = draw(levels(BID_TICKS, 10)), draw(levels(ASK_TICKS, 10))
    else:
        bids, asks = draw(anywhere_levels(10)), draw(anywhere_levels(10))
    return BookSnapshot(ts, ts - 7, bids, asks, seq)


@st.composite
def delta_st(draw, ts: int, first_seq: int = 0, last_seq: int = 0):
    if draw(st.integers(0, 7)) == 0:
        bids, asks = draw(anywhere_levels(4)), draw(anywhere_levels(4))
    else:
        bids, asks = draw(levels(BID_TICKS, 4)), draw(levels(ASK_TICKS, 4))
    return BookDelta(ts, ts - 7, bids, asks, first_seq, last_seq)


@st.composite
def bbo_st(draw, ts: int, seq: int):
    bid_t = draw(st.integers(1, 36))
    ask_t = bid_t + draw(st.integers(1, 4))
    return BestBidAsk(
        ts, ts - 7, bid_t * TICK, draw(positive_sizes), ask_t * TICK, draw(positive_sizes), seq
    )


@st.composite
def snapshot_delta_events(draw):
    """A snapshot followed by deltas and the occasional new snapshot."""
    ts = 1_000
    events = [draw(snapshot_st(ts))]
    for _ in range(draw(st.integers(0, 25))):
        ts += draw(st.integers(1, 1_000))
        if draw(st.integers(0, 9)) == 0:
            events.append(draw(snapshot_st(ts)))
        else:
            events.append(draw(delta_st(ts)))
    return events


@st.composite
def overlay_events(draw):
    """Snapshot, then deltas (last_seq strictly increasing) and BBOs interleaved.

    BBO sequences run ahead of the depth (so overlays are in force across several later,
    older deltas) and sometimes fall behind it (so they must be ignored).
    """
    ts = 1_000
    depth = draw(st.integers(0, 50))
    bbo_seq = depth
    events = [draw(snapshot_st(ts, depth))]
    for _ in range(draw(st.integers(1, 25))):
        ts += draw(st.integers(1, 1_000))
        kind = draw(st.sampled_from(["delta", "delta", "bbo", "bbo", "stale_bbo", "snapshot"]))
        if kind == "delta":
            first = depth + 1
            depth += draw(st.integers(1, 4))
            events.append(draw(delta_st(ts, first, depth)))
        elif kind == "bbo":
            bbo_seq = max(bbo_seq, depth) + draw(st.integers(1, 8))
            events.append(draw(bbo_st(ts, bbo_seq)))
        elif kind == "stale_bbo":
            events.append(draw(bbo_st(ts, draw(st.integers(1, max(depth, 1))))))
        else:
            depth = max(depth, bbo_seq) + draw(st.integers(0, 3))
            events.append(draw(snapshot_st(ts, depth)))
    return events


@st.composite
def any_events(draw):
    """Anything at all, including events before the first snapshot, invalidations and trades."""
    ts = 1_000
    seq = 0
    events = []
    for _ in range(draw(st.integers(0, 25))):
        ts += draw(st.integers(1, 1_000))
        kind = draw(
            st.sampled_from(["snapshot", "delta", "delta", "delta", "bbo", "bbo", "invalid", "trade"])
        )
        seq += draw(st.integers(0, 3))
        if kind == "snapshot":
            events.append(draw(snapshot_st(ts, seq)))
        elif kind == "delta":
            events.append(draw(delta_st(ts, seq, seq if draw(st.booleans()) else 0)))
        elif kind == "bbo":
            events.append(draw(bbo_st(ts, draw(st.sampled_from([0, seq, seq + 1, seq + 5])))))
        elif kind == "invalid":
            events.append(BookInvalidated(ts, 0, "gap"))
        else:
            side = draw(st.sampled_from(["buy", "sell"]))
            events.append(Trade(ts, ts, draw(ticks) * TICK, draw(positive_sizes), side, seq))
    return events


# ---------------------------------------------------------------------------------------------
# 1. Snapshots and deltas against the reference
# ---------------------------------------------------------------------------------------------
@PROP
@given(snapshot_delta_events())
def test_snapshots_and_deltas_match_reference(events):
    book, ref = OrderBook(), RefBook()
    for ev in events:
        assert book.apply(ev) is ref.apply(ev) is True
        assert_matches(book, ref)
        assert book.status is not BookStatus.RESYNC


@FAST
@given(snapshot_delta_events())
def test_crossed_exactly_when_best_bid_ge_best_ask(events):
    book = OrderBook()
    transitions = 0
    was_crossed = False
    for ev in events:
        book.apply(ev)
        bb, ba = book.best_bid, book.best_ask
        crossed = not math.isnan(bb) and not math.isnan(ba) and bb >= ba
        assert (book.status is BookStatus.CROSSED) == crossed
        assert book.is_sound == (not crossed and not math.isnan(bb) and not math.isnan(ba))
        transitions += crossed and (isinstance(ev, BookSnapshot) or not was_crossed)
        was_crossed = crossed
    assert book.crossed_events == transitions


# ---------------------------------------------------------------------------------------------
# 2. Best-bid/ask overlays
# ---------------------------------------------------------------------------------------------
@PROP
@given(overlay_events())
def test_overlays_match_reference_and_stay_in_force(events):
    book, ref = OrderBook(), RefBook()
    last_bbo: BestBidAsk | None = None
    for ev in events:
        before = (book.bids(1 << 30), book.asks(1 << 30), book.updates, book.last_update_ts)
        applied = book.apply(ev)
        assert applied is ref.apply(ev)
        assert_matches(book, ref)

        if isinstance(ev, BookSnapshot):
            last_bbo = None
        elif isinstance(ev, BestBidAsk):
            if ev.sequence <= book.depth_sequence:
                # older than the depth already held: ignored, nothing changes
                assert applied is False
                assert (book.bids(1 << 30), book.asks(1 << 30), book.updates, book.last_update_ts) == before
            else:
                assert applied is True
                last_bbo = ev

        if last_bbo is not None and last_bbo.sequence > book.depth_sequence:
            # the overlay is newer than the depth (just applied, or re-applied after an older delta)
            assert book.best_bid == last_bbo.bid_price
            assert book.best_ask == last_bbo.ask_price
            assert book.best_bid_size == last_bbo.bid_size
            assert book.best_ask_size == last_bbo.ask_size
            assert all(p <= last_bbo.bid_price for p, _ in book.bids(1 << 30))
            assert all(p >= last_bbo.ask_price for p, _ in book.asks(1 << 30))
            assert book.status is BookStatus.SOUND  # overlay bid < overlay ask
            assert book.is_sound


def _bbo(ts, bid, bq, ask, aq, seq):
    return BestBidAsk(ts, 0, bid, bq, ask, aq, seq)


def test_overlay_removes_consumed_levels_and_sets_sizes():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 1.0), (9.5, 2.0), (9.0, 3.0)), ((10.5, 1.0), (11.0, 2.0), (11.5, 3.0)), 100))
    assert book.apply(_bbo(2, 9.5, 5.0, 11.0, 6.0, 101)) is True
    assert book.bids(10) == [(9.5, 5.0), (9.0, 3.0)]
    assert book.asks(10) == [(11.0, 6.0), (11.5, 3.0)]
    # an overlay at a price not in the book inserts it
    assert book.apply(_bbo(3, 9.25, 1.5, 12.0, 0.5, 102)) is True
    assert book.bids(10) == [(9.25, 1.5), (9.0, 3.0)]
    assert book.asks(10) == [(12.0, 0.5)]


def test_older_delta_reapplies_overlay_newer_delta_wins():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 1.0), (9.5, 2.0)), ((10.5, 1.0), (11.0, 2.0)), 100))
    book.apply(_bbo(2, 9.5, 4.0, 11.0, 4.0, 110))
    # a delta older than the overlay re-adds consumed levels: the overlay must stay in force
    assert book.apply(BookDelta(3, 0, ((10.0, 7.0), (9.5, 1.0), (9.0, 1.0)), ((10.5, 7.0),), 101, 105)) is True
    assert book.depth_sequence == 105
    assert book.bids(10) == [(9.5, 4.0), (9.0, 1.0)]
    assert book.asks(10) == [(11.0, 4.0)]
    # even one deleting the overlay's own level
    book.apply(BookDelta(4, 0, ((9.5, 0.0),), ((11.0, 0.0),), 106, 109))
    assert (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size) == (9.5, 4.0, 11.0, 4.0)
    # a delta newer than the overlay is the truth
    book.apply(BookDelta(5, 0, ((10.0, 2.0),), ((10.5, 3.0),), 110, 111))
    assert book.bids(1) == [(10.0, 2.0)]
    assert book.asks(1) == [(10.5, 3.0)]
    # and the old overlay is not re-applied by later deltas
    book.apply(BookDelta(6, 0, ((8.0, 1.0),), (), 112, 112))
    assert book.bids(1) == [(10.0, 2.0)]
    # a BBO not newer than the depth is ignored
    assert book.apply(_bbo(7, 9.0, 1.0, 12.0, 1.0, 112)) is False
    assert book.bids(1) == [(10.0, 2.0)]
    assert book.last_update_ts == 6


def test_snapshot_drops_overlay():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 1.0),), ((11.0, 1.0),), 100))
    book.apply(_bbo(2, 9.0, 1.0, 12.0, 1.0, 200))
    book.apply(BookSnapshot(3, 0, ((10.0, 1.0),), ((11.0, 1.0),), 150))
    book.apply(BookDelta(4, 0, ((10.5, 1.0),), (), 151, 151))
    assert book.best_bid == 10.5  # the seq-200 overlay from before the snapshot is gone


# ---------------------------------------------------------------------------------------------
# 3. RESYNC
# ---------------------------------------------------------------------------------------------
def test_fresh_book_is_resync_and_ignores_deltas_and_bbos():
    book = OrderBook()
    assert book.status is BookStatus.RESYNC
    assert not book.is_sound
    assert book.apply(BookDelta(1, 0, ((10.0, 1.0),), ((11.0, 1.0),), 1, 1)) is False
    assert book.apply(_bbo(2, 10.0, 1.0, 11.0, 1.0, 5)) is False
    assert book.apply(Trade(3, 0, 10.0, 1.0, "buy")) is False
    assert book.level_count() == (0, 0)
    assert book.updates == 0 and book.last_update_ts == 0
    assert not book.is_sound
    # invalidating an already-resyncing book is not a new resync
    assert book.apply(BookInvalidated(4, 0, "gap")) is True
    assert book.resyncs == 0
    assert book.apply(BookSnapshot(5, 0, ((10.0, 1.0),), ((11.0, 1.0),), 10)) is True
    assert book.status is BookStatus.SOUND and book.is_sound


def test_invalidation_ignores_deltas_until_next_snapshot():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 1.0),), ((11.0, 1.0),), 10))
    assert book.apply(BookInvalidated(2, 0, "gap")) is True
    assert book.status is BookStatus.RESYNC and not book.is_sound
    assert book.resyncs == 1
    assert book.apply(BookDelta(3, 0, ((10.5, 1.0),), (), 11, 11)) is False
    assert book.apply(_bbo(4, 10.5, 1.0, 10.75, 1.0, 50)) is False
    assert book.bids(5) == [(10.0, 1.0)]
    assert book.depth_sequence == 10 and book.last_update_ts == 1
    assert book.apply(BookInvalidated(5, 0, "again")) is True
    assert book.resyncs == 1  # still the same resync
    book.apply(BookSnapshot(6, 0, ((9.0, 2.0),), ((9.5, 2.0),), 20))
    assert book.is_sound and book.bids(5) == [(9.0, 2.0)]
    assert book.apply(BookDelta(7, 0, ((9.25, 1.0),), (), 21, 21)) is True
    assert book.best_bid == 9.25
    # a crossed book can be invalidated too
    book.apply(BookDelta(8, 0, ((9.5, 1.0),), (), 22, 22))
    assert book.status is BookStatus.CROSSED
    book.apply(BookInvalidated(9, 0, "gap"))
    assert book.resyncs == 2 and book.status is BookStatus.RESYNC


@PROP
@given(any_events())
def test_any_event_sequence_matches_reference(events):
    book, ref = OrderBook(), RefBook()
    invalidations_from_live = 0
    seen_snapshot = False
    for ev in events:
        was_resync = book.status is BookStatus.RESYNC
        applied = book.apply(ev)
        assert applied is ref.apply(ev)
        if isinstance(ev, BookSnapshot):
            seen_snapshot = True
        if isinstance(ev, (BookDelta, BestBidAsk)) and was_resync:
            assert applied is False
        if isinstance(ev, BookInvalidated):
            invalidations_from_live += not was_resync
            assert book.status is BookStatus.RESYNC and not book.is_sound
        if isinstance(ev, Trade):
            assert applied is False
        if not seen_snapshot:
            assert book.status is BookStatus.RESYNC and not book.is_sound
            assert book.level_count() == (0, 0)
        assert book.resyncs == invalidations_from_live
        assert_matches(book, ref)


# ---------------------------------------------------------------------------------------------
# 4. microprice and age_ns
# ---------------------------------------------------------------------------------------------
@FAST
@given(snapshot_delta_events())
def test_microprice_within_touch_and_size_weighted(events):
    book = OrderBook()
    for ev in events:
        book.apply(ev)
        bb, ba = book.best_bid, book.best_ask
        micro = book.microprice
        if math.isnan(bb) or math.isnan(ba):
            assert math.isnan(micro)
            continue
        bq, aq = book.best_bid_size, book.best_ask_size
        expected = (bb * aq + ba * bq) / (bq + aq)
        assert math.isclose(micro, expected, rel_tol=1e-12)
        lo, hi = min(bb, ba), max(bb, ba)
        eps = 1e-9 * max(1.0, abs(hi))
        assert lo - eps <= micro <= hi + eps
        if book.status is BookStatus.SOUND:
            assert bb - eps <= micro <= ba + eps
            # leans toward the side with less size
            if bq > aq:
                assert micro >= book.mid - eps
            elif bq < aq:
                assert micro <= book.mid + eps


def test_microprice_example():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((100.0, 3.0),), ((101.0, 1.0),)))
    assert book.microprice == pytest.approx(100.75)  # (100*1 + 101*3) / 4: near the thin ask
    book.apply(BookDelta(2, 0, ((100.0, 1.0),), ((101.0, 1.0),)))
    assert book.microprice == pytest.approx(book.mid) == pytest.approx(100.5)


def test_age_ns():
    book = OrderBook()
    assert book.age_ns(5_000) >= NEVER  # never updated: effectively infinitely stale
    book.apply(BookSnapshot(1_000, 900, ((10.0, 1.0),), ((11.0, 1.0),), 10))
    assert book.age_ns(1_000) == 0
    assert book.age_ns(1_500) == 500
    book.apply(BookDelta(2_000, 1_900, ((10.0, 2.0),), (), 11, 11))
    assert book.age_ns(2_250) == 250
    book.apply(_bbo(3_000, 10.0, 1.0, 11.0, 1.0, 12))
    assert book.age_ns(3_100) == 100
    # neither a trade, an ignored BBO, an invalidation nor an ignored delta is an update
    book.apply(Trade(4_000, 0, 10.0, 1.0, "sell"))
    book.apply(_bbo(4_500, 10.0, 1.0, 11.0, 1.0, 5))
    assert book.age_ns(5_000) == 2_000
    book.apply(BookInvalidated(6_000, 0, "gap"))
    book.apply(BookDelta(7_000, 0, ((10.0, 3.0),), (), 13, 13))
    assert book.age_ns(8_000) == 5_000
    book.apply(BookSnapshot(9_000, 0, ((10.0, 1.0),), ((11.0, 1.0),), 20))
    assert book.age_ns(9_001) == 1


@FAST
@given(any_events(), st.integers(0, 10_000))
def test_age_ns_property(events, extra):
    book, ref = OrderBook(), RefBook()
    for ev in events:
        book.apply(ev)
        ref.apply(ev)
        if ref.updates == 0:
            assert book.age_ns(ev.ts_local + extra) >= NEVER
        else:
            assert book.age_ns(ev.ts_local + extra) == ev.ts_local + extra - ref.last_update_ts


# ---------------------------------------------------------------------------------------------
# 5. Edge cases
# ---------------------------------------------------------------------------------------------
def test_empty_book_reads():
    book = OrderBook()
    assert book.bids(0) == [] and book.asks(0) == []
    assert book.bids(5) == [] and book.asks(5) == []
    assert math.isnan(book.best_bid) and math.isnan(book.best_ask)
    assert book.best_bid_size == 0.0 and book.best_ask_size == 0.0
    assert math.isnan(book.mid) and math.isnan(book.spread) and math.isnan(book.microprice)
    assert book.depth("bid", 5) == 0.0 and book.depth("ask", 5) == 0.0
    assert book.level_count() == (0, 0)


def test_n_zero_negative_and_larger_than_book():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((9.0, 3.0), (10.0, 1.0), (9.5, 2.0)), ((11.0, 1.0), (12.0, 2.0))))
    assert book.bids(0) == [] and book.asks(0) == []
    assert book.bids(-1) == [] and book.asks(-1) == []
    assert book.depth("bid", 0) == 0.0 and book.depth("ask", -3) == 0.0
    assert book.bids(2) == [(10.0, 1.0), (9.5, 2.0)]
    assert book.bids(3) == book.bids(4) == book.bids(1 << 30) == [(10.0, 1.0), (9.5, 2.0), (9.0, 3.0)]
    assert book.asks(2) == book.asks(50) == [(11.0, 1.0), (12.0, 2.0)]
    assert book.depth("bid", 2) == 3.0 and book.depth("ask", 10) == 3.0


@pytest.mark.parametrize("empty_side", ["bid", "ask"])
def test_empty_side_is_not_sound(empty_side):
    levels_ = ((10.0, 1.0),)
    snap = (
        BookSnapshot(1, 0, (), ((11.0, 1.0),)) if empty_side == "bid" else BookSnapshot(1, 0, levels_, ())
    )
    book = OrderBook()
    book.apply(snap)
    assert book.status is BookStatus.SOUND  # synced and not crossed ...
    assert not book.is_sound  # ... but a one-sided book is unusable
    best = book.best_bid if empty_side == "bid" else book.best_ask
    assert math.isnan(best)
    assert math.isnan(book.mid) and math.isnan(book.spread) and math.isnan(book.microprice)
    # deleting the last level of a side via a delta has the same effect
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, levels_, ((11.0, 1.0),)))
    assert book.is_sound
    if empty_side == "bid":
        book.apply(BookDelta(2, 0, ((10.0, 0.0),), ()))
        assert math.isnan(book.best_bid)
    else:
        book.apply(BookDelta(2, 0, (), ((11.0, 0.0),)))
        assert math.isnan(book.best_ask)
    assert not book.is_sound


def test_zero_and_missing_deletes_are_harmless():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 0.0), (9.0, 1.0)), ((11.0, 1.0), (12.0, 0.0))))
    assert book.level_count() == (1, 1)
    book.apply(BookDelta(2, 0, ((8.0, 0.0), (9.0, 0.0), (9.0, 0.0)), ((13.0, 0.0),)))
    assert book.level_count() == (0, 1)
    book.apply(BookDelta(3, 0, ((9.0, 2.0), (9.0, 4.0)), ()))  # later entry for a price wins
    assert book.bids(5) == [(9.0, 4.0)]


def test_crossed_counting():
    book = OrderBook()
    book.apply(BookSnapshot(1, 0, ((10.0, 1.0),), ((11.0, 1.0),)))
    book.apply(BookDelta(2, 0, ((11.0, 1.0),), ()))  # bid == ask counts as crossed
    assert book.status is BookStatus.CROSSED and not book.is_sound and book.crossed_events == 1
    book.apply(BookDelta(3, 0, ((11.5, 1.0),), ()))  # still crossed: same event
    assert book.crossed_events == 1
    book.apply(BookDelta(4, 0, ((11.0, 0.0), (11.5, 0.0)), ()))
    assert book.status is BookStatus.SOUND and book.is_sound
    book.apply(BookDelta(5, 0, (), ((9.0, 1.0),)))
    assert book.crossed_events == 2
    # a snapshot starts afresh (status reset to SOUND before the check): a crossed snapshot
    # replacing a crossed book is counted as a new crossed event
    book.apply(BookSnapshot(6, 0, ((12.0, 1.0),), ((11.0, 1.0),)))
    assert book.status is BookStatus.CROSSED and book.crossed_events == 3


def test_rejects_non_events():
    with pytest.raises(TypeError):
        OrderBook().apply(object())  # type: ignore[arg-type]
