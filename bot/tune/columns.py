"""The sweep's data as columnar arrays, shared read-only by every trial (the fast replay's input).

:class:`ArraySource` is :class:`~bot.tune.folds.SegmentSource` over
:class:`~bot.fast.columnar.EventArrays` instead of a list of Python events: the same windows
(``np.searchsorted`` on the receive timestamps, left side, as ``bisect_left`` on the list), the
same warm-up prelude (:func:`kernel_preludes`: the compiled book's state where the readable
warm-up replays an ``OrderBook``), so a trial's event stream is event for event the one the
readable trial replays (tested on the real recording: same figures, same stored rows).

Why windows are cached arrays. A trial's input is the window's prelude (a synthetic snapshot of
the whole book, maybe a best-bid/ask update) followed by the window's events. Those arrays are
built once per process for each distinct window (``2 x folds`` of them) and reused by every
candidate; :meth:`ArraySource.warm` builds them all in the main process before the pool forks,
so local workers inherit them (copy-on-write pages that are only read) and neither parse, encode
nor copy anything per trial. The prelude's prices are ranks into the recording's own price
table (a rebuilt book only holds prices of earlier events), so every window shares that table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from bot.book.book import BookStatus
from bot.core.events import BestBidAsk, BookInvalidated, BookSnapshot, MarketEvent
from bot.fast.columnar import BBO, INVALIDATED, SNAPSHOT, EventArrays, encode_events, event_at
from bot.tune.folds import ALL_LEVELS, WindowedSource


class ArraySource(WindowedSource):
    """Windows of one columnar event stream with their warm-up preludes (see the module docstring)."""

    def __init__(self, arrays: EventArrays):
        if len(arrays) == 0:
            raise ValueError("no events")
        self.arrays = arrays
        self.ts = arrays.ts
        self._preludes: dict[int, tuple[MarketEvent, ...]] = {}
        self._windows: dict[tuple[int, int], tuple[EventArrays, int]] = {}

    def bounds(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """The same index range as :meth:`WindowedSource.bounds`, by ``np.searchsorted`` (left side)
        on the timestamp column (bisect on a numpy array would box every element it reads)."""
        i0, i1 = np.searchsorted(self.ts, [start_ns, end_ns], side="left")
        return int(i0), int(i1)

    def warm(self, windows: Iterable[tuple[int, int]]) -> None:
        """Build the windows' arrays now (the main process, before a pool forks its workers)."""
        windows = sorted(set(windows))
        self._build_preludes([s for s, e in windows if self.count(s, e)])
        for start, end in windows:
            self.window(start, end)

    def _build_preludes(self, starts: Sequence[int]) -> None:
        """The preludes of ``starts``: one kernel pass over the events before the last of them."""
        todo = sorted({s for s in starts if s not in self._preludes})
        if todo:
            self._preludes.update(kernel_preludes(self.arrays, [(s, self.bounds(s, s)[0]) for s in todo]))

    def prelude(self, start_ns: int) -> tuple[MarketEvent, ...]:
        """The synthetic events standing for everything before ``start_ns`` (as SegmentSource's)."""
        if start_ns not in self._preludes:
            self._build_preludes([start_ns])
        return self._preludes[start_ns]

    def window(self, start_ns: int, end_ns: int) -> tuple[EventArrays, int]:
        """The trial's input for ``[start_ns, end_ns)``: prelude + events as arrays, and the prelude's length.

        Empty when the window holds no event (no prelude then, as :meth:`SegmentSource.segment`).
        """
        key = (start_ns, end_ns)
        hit = self._windows.get(key)
        if hit is not None:
            return hit
        i0, i1 = self.bounds(start_ns, end_ns)
        if i1 <= i0:
            out = (self.arrays.slice(i0, i0), 0)
        else:
            prelude = self.prelude(start_ns)
            out = (with_prelude(self.arrays, prelude, i0, i1), len(prelude))
        self._windows[key] = out
        return out


def kernel_preludes(a: EventArrays, starts: Sequence[tuple[int, int]]) -> dict[int, tuple[MarketEvent, ...]]:
    """:func:`bot.tune.folds.warmup_prelude` of ``a[:i0]`` at each ``(start_ns, i0)`` (ascending),
    from the compiled book instead of an ``OrderBook`` fed with rebuilt events (seconds of Python
    for a recording of 100k events, per start).

    The kernel's book is the ``OrderBook``'s level for level (:mod:`tests.test_fast_equivalence`),
    its per-event ``changed`` flag is ``OrderBook.apply``'s answer, and "awaiting a snapshot" is a
    RESYNC or INVALID status (the two that clear the book's sync); the last accepted best-bid/ask
    after the last snapshot or invalidation is found from those flags. Tested equal to the
    readable warm-up (:mod:`tests.test_tune_fast`).
    """
    from bot.config.settings import SignalSection
    from bot.fast import kernel as K
    from bot.fast.book import BookView, FastBook

    fb = FastBook(a, SignalSection())  # the signal values are not read, only the book and the flags
    view = BookView(fb)
    out: dict[int, tuple[MarketEvent, ...]] = {}
    last_bbo = -1  # index of the last accepted best-bid/ask since the last snapshot / invalidation
    for start, i0 in starts:
        i = fb.pos
        if i0 > i:
            flags = np.zeros(i0 - i, dtype=np.uint8)
            K.run_signals(*fb._args(), i, i0, *fb._state(), flags, np.zeros((len(K.OUT_ROWS), i0 - i), dtype=np.float64))
            fb.pos = i0
            kinds = a.kind[i:i0]
            resets = np.flatnonzero((kinds == SNAPSHOT) | (kinds == INVALIDATED))
            accepted = np.flatnonzero((kinds == BBO) & ((flags & K.OUT_CHANGED) != 0))
            if accepted.size and (not resets.size or accepted[-1] > resets[-1]):
                last_bbo = i + int(accepted[-1])
            elif resets.size:
                last_bbo = -1
        if i0 == 0:
            out[start] = ()
        elif view.status in (BookStatus.RESYNC, BookStatus.INVALID):
            out[start] = (BookInvalidated(start, 0, "segment start: the source was awaiting a book snapshot"),)
        else:
            seq = view.depth_sequence
            snap = BookSnapshot(start, 0, tuple(view.bids(ALL_LEVELS)), tuple(view.asks(ALL_LEVELS)), seq)
            if last_bbo >= 0 and a.seq.item(last_bbo) > seq:
                b = event_at(a, last_bbo)
                out[start] = (snap, BestBidAsk(start, 0, b.bid_price, b.bid_size, b.ask_price, b.ask_size, b.sequence))
            else:
                out[start] = (snap,)
    return out


def with_prelude(a: EventArrays, prelude: Sequence[MarketEvent], start: int, stop: int) -> EventArrays:
    """``prelude`` followed by events ``start:stop`` of ``a``, one stream over ``a``'s price table.

    Raises ValueError when a prelude price is not in the table (it cannot happen for a book
    rebuilt from ``a``'s own earlier events; checked rather than assumed).
    """
    window = a.slice(start, stop)
    if not prelude:
        return window
    head = encode_events(prelude, start_decimals=a.price_decimals)
    lvl = _ranks_in(a, head)
    n_levels = int(head.off[-1])
    return EventArrays(
        np.concatenate([head.kind, window.kind]),
        np.concatenate([head.ts, window.ts]),
        np.concatenate([head.seq, window.seq]),
        np.concatenate([head.off[:-1], window.off + n_levels]),
        np.concatenate([head.nbid, window.nbid]),
        np.concatenate([lvl, window.lvl]),
        np.concatenate([head.sz, window.sz]),
        a.prices, a.price_decimals, meta=dict(a.meta),
    )


def _ranks_in(a: EventArrays, head: EventArrays) -> np.ndarray:
    """``head``'s level prices as ranks into ``a.prices`` (ValueError if one is missing)."""
    if head.lvl.size == 0:
        return head.lvl.astype(np.int32)
    if head.price_decimals != a.price_decimals:
        raise ValueError(f"prelude prices need {head.price_decimals} decimals, the stream {a.price_decimals}")
    units = head.prices[head.lvl]
    ranks = np.searchsorted(a.prices, units)
    ok = (ranks < a.prices.size) & (a.prices[np.minimum(ranks, a.prices.size - 1)] == units)
    if not ok.all():
        raise ValueError("a prelude price is not in the stream's price table")
    return ranks.astype(np.int32)
