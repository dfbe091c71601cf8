"""The sweep's data as columnar arrays, shared read-only by every trial (the fast replay's input).

:class:`ArraySource` is :class:`~bot.tune.folds.SegmentSource` over
:class:`~bot.fast.columnar.EventArrays` instead of a list of Python events: the same windows
(``np.searchsorted`` on the receive timestamps, left side, as ``bisect_left`` on the list), the
same warm-up prelude (built by the same :class:`~bot.tune.folds._Warmup` from the events before
the window, rebuilt from the arrays), so a trial's event stream is event for event the one the
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

from bot.core.events import MarketEvent
from bot.fast.columnar import EventArrays, encode_events, iter_events
from bot.tune.folds import _Warmup


class ArraySource:
    """Windows of one columnar event stream with their warm-up preludes (see the module docstring)."""

    def __init__(self, arrays: EventArrays):
        if len(arrays) == 0:
            raise ValueError("no events")
        self.arrays = arrays
        self.ts = arrays.ts
        self._preludes: dict[int, tuple[MarketEvent, ...]] = {}
        self._windows: dict[tuple[int, int], tuple[EventArrays, int]] = {}

    @property
    def first_ts(self) -> int:
        return int(self.ts[0])

    @property
    def last_ts(self) -> int:
        return int(self.ts[-1])

    def bounds(self, start_ns: int, end_ns: int) -> tuple[int, int]:
        """Index range of ``[start_ns, end_ns)`` (left insertion points, as ``bisect_left``)."""
        i0, i1 = np.searchsorted(self.ts, [start_ns, end_ns], side="left")
        return int(i0), int(i1)

    def count(self, start_ns: int, end_ns: int) -> int:
        i0, i1 = self.bounds(start_ns, end_ns)
        return max(i1 - i0, 0)

    def warm(self, windows: Iterable[tuple[int, int]]) -> None:
        """Build the windows' arrays now (the main process, before a pool forks its workers)."""
        windows = sorted(set(windows))
        self._build_preludes([s for s, e in windows if self.count(s, e)])
        for start, end in windows:
            self.window(start, end)

    def _build_preludes(self, starts: Sequence[int]) -> None:
        """The preludes of ``starts`` in one pass over the events before the last of them."""
        todo = sorted({s for s in starts if s not in self._preludes})
        if not todo:
            return
        w = _Warmup()
        i = 0
        for start in todo:
            i0 = self.bounds(start, start)[0]
            for event in iter_events(self.arrays, i, i0):
                w.apply(event)
            i = max(i, i0)
            self._preludes[start] = w.prelude(start)

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
