"""Walk-forward folds and time segments of an event stream.

Segments
--------
The data's time span ``[first ts_local, last ts_local]`` is cut into ``K + 1`` consecutive
segments of equal duration (``[b_j, b_{j+1})`` with integer-nanosecond bounds; the last one ends
one nanosecond after the last event so every event belongs to exactly one segment).

Folds (expanding window)
------------------------
Fold ``i`` (``i = 1..K``) fits on segments ``0..i-1`` (in-sample ``[b_0, b_i)``) and is scored on
segment ``i`` (out-of-sample ``[b_i, b_{i+1})``). In-sample always ends where its out-of-sample
starts, so no trial is scored on data it was fitted on.

Warm-up: starting mid-recording
-------------------------------
A segment that starts mid-recording has no book snapshot of its own: a Binance recording holds
one REST snapshot at its start and only diffs after it. :func:`segment_events` therefore replays
every event before ``start_ns`` through an :class:`~bot.book.book.OrderBook` (the same book the
engine uses) without trading, and at ``start_ns`` emits

1. a synthetic :class:`~bot.core.events.BookSnapshot` of that reconstructed book (every level of
   both sides, ``sequence`` = the book's depth update id, ``ts_local = start_ns``), then
2. the last accepted best-bid/ask update re-stamped ``start_ns``, if it is newer than the last
   diff (so the engine's book keeps overlaying it on older diffs exactly as the full replay would),

followed by the segment's own events, stopping before ``end_ns``. The engine's book is then
level-for-level the book a full replay would hold at every event of the segment (tested), while
the engine starts flat at the segment start and its PnL covers only the segment. Two things are
not carried over: the signal engine's rolling windows (``signal.ofi_window_s``, one second by
default) start empty, and the book's staleness clock starts at ``start_ns``. If the source had
lost the book at ``start_ns`` (a gap awaiting a new snapshot), a
:class:`~bot.core.events.BookInvalidated` is emitted instead and the engine waits for the next
real snapshot. A segment that starts at the first event has nothing to reconstruct and passes
the recording through unchanged (including its own snapshot).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from bot.book.book import OrderBook
from bot.core.events import BestBidAsk, BookInvalidated, BookSnapshot, MarketEvent

ALL_LEVELS = 1 << 30


@dataclass(frozen=True)
class Segment:
    index: int
    start_ns: int
    end_ns: int  # exclusive

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9


@dataclass(frozen=True)
class Fold:
    """Fold ``index`` (1-based): fit on ``[is_start_ns, oos_start_ns)``, score on ``[oos_start_ns, oos_end_ns)``."""

    index: int
    is_start_ns: int
    oos_start_ns: int
    oos_end_ns: int
    is_segments: tuple[int, ...]
    oos_segment: int

    def window(self, role: str) -> tuple[int, int]:
        return (self.is_start_ns, self.oos_start_ns) if role == "is" else (self.oos_start_ns, self.oos_end_ns)


def make_segments(first_ts: int, last_ts: int, folds: int) -> list[Segment]:
    """``folds + 1`` consecutive equal-duration segments covering ``[first_ts, last_ts]``."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if last_ts < first_ts:
        raise ValueError("last_ts is before first_ts")
    n = folds + 1
    span = last_ts + 1 - first_ts
    if span < n:
        raise ValueError(f"the data spans {span} ns, too short for {n} segments")
    bounds = [first_ts + span * j // n for j in range(n)] + [last_ts + 1]
    return [Segment(j, bounds[j], bounds[j + 1]) for j in range(n)]


def make_folds(segments: Sequence[Segment]) -> list[Fold]:
    """Expanding-window folds: fold i fits on segments 0..i-1 and is scored on segment i."""
    return [
        Fold(i, segments[0].start_ns, segments[i].start_ns, segments[i].end_ns, tuple(range(i)), i)
        for i in range(1, len(segments))
    ]


class _Warmup:
    """The book state built from the events before a segment (see the module docstring)."""

    __slots__ = ("book", "last_bbo", "seen")

    def __init__(self) -> None:
        self.book = OrderBook()
        self.last_bbo: BestBidAsk | None = None
        self.seen = 0

    def apply(self, event: MarketEvent) -> None:
        self.seen += 1
        accepted = self.book.apply(event)
        if isinstance(event, BookSnapshot) or isinstance(event, BookInvalidated):
            self.last_bbo = None
        elif isinstance(event, BestBidAsk) and accepted:
            self.last_bbo = event

    def prelude(self, start_ns: int) -> tuple[MarketEvent, ...]:
        if self.seen == 0:
            return ()
        book = self.book
        if book.awaiting_snapshot:
            return (BookInvalidated(start_ns, 0, "segment start: the source was awaiting a book snapshot"),)
        snap = BookSnapshot(start_ns, 0, tuple(book.bids(ALL_LEVELS)), tuple(book.asks(ALL_LEVELS)), book.depth_sequence)
        bbo = self.last_bbo
        if bbo is not None and bbo.sequence > book.depth_sequence:
            rebased = BestBidAsk(start_ns, bbo.ts_exchange, bbo.bid_price, bbo.bid_size, bbo.ask_price, bbo.ask_size, bbo.sequence)
            return (snap, rebased)
        return (snap,)


def warmup_prelude(prefix: Iterable[MarketEvent], start_ns: int) -> tuple[MarketEvent, ...]:
    """The synthetic events that stand for ``prefix`` (every event before ``start_ns``)."""
    w = _Warmup()
    for event in prefix:
        w.apply(event)
    return w.prelude(start_ns)


def segment_events(events: Iterable[MarketEvent], start_ns: int, end_ns: int) -> Iterator[MarketEvent]:
    """The events of ``[start_ns, end_ns)``, preceded by the warm-up snapshot (module docstring).

    ``events`` must be in non-decreasing ``ts_local`` order (as every reader yields them). Nothing
    outside ``[start_ns, end_ns)`` is yielded; the synthetic events carry ``ts_local = start_ns``.
    The prelude is emitted only when the segment has at least one event.
    """
    w = _Warmup()
    it = iter(events)
    for event in it:
        ts = event.ts_local
        if ts < start_ns:
            w.apply(event)
            continue
        if ts >= end_ns:
            return
        yield from w.prelude(start_ns)
        yield event
        break
    else:
        return
    for event in it:
        if event.ts_local >= end_ns:
            return
        yield event


class WindowedSource:
    """What every source of a sweep's data shares: receive timestamps ``ts`` in stream order and
    the index range of a window ``[start_ns, end_ns)`` (left insertion points, as ``bisect_left``).
    :class:`SegmentSource` (Python events) and :class:`bot.tune.columns.ArraySource` (columnar
    arrays) differ only in how they hold the events and build a window's warm-up prelude."""

    ts: Sequence[int]

    @property
    def first_ts(self) -> int:
        return int(self.ts[0])

    @property
    def last_ts(self) -> int:
        return int(self.ts[-1])

    def bounds(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        return bisect_left(self.ts, start_ns), bisect_left(self.ts, end_ns)

    def count(self, start_ns: int, end_ns: int) -> int:
        i0, i1 = self.bounds(start_ns, end_ns)
        return max(i1 - i0, 0)


class SegmentSource(WindowedSource):
    """Fast :func:`segment_events` over an in-memory event list (bisect + cached warm-ups).

    The warm-up for a given ``start_ns`` is computed once per process and reused by every trial
    that starts there. The output is identical to ``segment_events(events, start, end)``.
    """

    def __init__(self, events: Sequence[MarketEvent]):
        self.events = events
        self.ts = [e.ts_local for e in events]
        self._preludes: dict[int, tuple[MarketEvent, ...]] = {}

    def prelude(self, start_ns: int) -> tuple[MarketEvent, ...]:
        if start_ns not in self._preludes:
            i0 = bisect_left(self.ts, start_ns)
            self._preludes[start_ns] = warmup_prelude(self.events[:i0], start_ns)
        return self._preludes[start_ns]

    def warm(self, windows: Iterable[tuple[int, int]]) -> None:
        """Compute the windows' preludes now (the main process, so that forked workers inherit them)."""
        for start, end in sorted(set(windows)):
            if self.count(start, end):
                self.prelude(start)

    def segment(self, start_ns: int, end_ns: int) -> Iterator[MarketEvent]:
        i0, i1 = self.bounds(start_ns, end_ns)
        if i1 <= i0:
            return
        yield from self.prelude(start_ns)
        events = self.events
        for i in range(i0, i1):
            yield events[i]
