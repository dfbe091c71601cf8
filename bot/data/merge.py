"""Several instruments in one run: group recording files by instrument, merge their events by time.

A run over BTCUSDT and ETHUSDT (or the spot and the USD-M book of one coin) is given as all the
files at once. :func:`group_recordings` sorts them into one :class:`Group` per instrument
(exchange id + market type), each group one continuous recording in replay order;
:func:`merge_by_time` interleaves the per-instrument event streams into one stream ordered by
the local clock, tagged with the stream's index, so the engine can route each event to the book
of its instrument. :func:`read_merged` does both with :func:`bot.data.binance.read_binance`.

Each group is read by its own ``read_binance(files, stats)``: the depth sync, the problems and
the counts stay per instrument (a gap in ETHUSDT invalidates only the ETHUSDT book), and every
reader check (mixed symbols, overlapping files) still applies within a group.

Grouping probes each file once, the way :func:`read_binance` does (:func:`probe_recording`):
symbol and market type come from the file's first lines. A file whose first lines name no
symbol (or no market type) joins the only group that can own it, and is refused by name when
several could. Errors are :class:`RecordingError` naming the files; nothing else is raised.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.core.events import MarketEvent
from bot.data.binance import ReaderStats, RecordingError, RecordingFile, chain_files, probe_recording, read_binance
from bot.data.symbols import unified_symbol

__all__ = ["Group", "group_recordings", "merge_by_time", "read_merged"]


@dataclass(frozen=True)
class Group:
    """The files of one instrument, in replay order (one continuous recording)."""

    symbol: str  # exchange id as in stats.symbol: "BTCUSDT", "BTCUSD_PERP"
    market_type: str  # "spot", "linear", "inverse"; "" when none of its files' first lines has a depth diff
    unified_symbol: str | None  # ccxt symbol ("BTC/USDT:USDT"); None when the type is unknown or the id does not split
    files: tuple[Path, ...]
    first_ts: int  # local ns span of the files (first line of the first, last line of the last)
    last_ts: int

    @property
    def key(self) -> tuple[str, str]:
        return self.symbol, self.market_type


def _owner(f: RecordingFile, keys: Iterable[tuple[str, str]], what: str) -> tuple[str, str]:
    """The one group key that can own a file whose first lines do not tell ``what``."""
    fits = sorted({k for k in keys if (not f.symbol or k[0] == f.symbol) and (not f.market_type or k[1] == f.market_type)})
    if len(fits) == 1:
        return fits[0]
    if not fits:
        return f.symbol, f.market_type
    listing = ", ".join(f"{s} {t}".strip() for s, t in fits)
    raise RecordingError(f"{f.path}: its first lines do not tell the {what}, and it could belong to any of {listing}; "
                         f"read it on its own or with the files of its recording only")


def group_recordings(paths: Sequence[str | Path]) -> list[Group]:
    """One :class:`Group` per instrument among ``paths`` (any order), sorted by (symbol, market type).

    Raises :class:`RecordingError`, naming the files: no files, a file given twice, a missing,
    unreadable or foreign file, a file that could belong to several instruments, or files of one
    instrument that overlap in time.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise RecordingError("no recording files given")
    seen: dict[Path, Path] = {}
    for p in map(Path, paths):
        key = p.resolve()
        if key in seen:
            raise RecordingError(f"recording file given twice: {seen[key]} and {p}")
        seen[key] = p
    probed = [probe_recording(p) for p in seen.values()]
    known = {(f.symbol, f.market_type) for f in probed if f.symbol and f.market_type}
    members: dict[tuple[str, str], list[RecordingFile]] = {}
    for f in probed:
        if f.symbol and f.market_type:
            key = (f.symbol, f.market_type)
        else:
            candidates = known or {(g.symbol, g.market_type) for g in probed if g.symbol}
            key = _owner(f, candidates, "symbol" if not f.symbol else "market type")
            if not key[0]:
                raise RecordingError(f"{f.path}: its first lines name no symbol (no stream message); "
                                     f"give it with the other files of its recording")
        members.setdefault(key, []).append(f)
    groups = []
    for (symbol, market_type), files in sorted(members.items()):
        ordered = chain_files(files)  # replay order; raises on overlap, naming both files
        groups.append(Group(
            symbol, market_type, unified_symbol(symbol, market_type) if market_type else None,
            tuple(f.path for f in ordered), ordered[0].first_ts, max(f.last_ts for f in ordered),
        ))
    return groups


_END = object()


def merge_by_time(streams: Sequence[Iterator[MarketEvent]]) -> Iterator[tuple[int, MarketEvent]]:
    """``(stream index, event)`` of all ``streams``, ordered by ``ts_local``.

    Lazy and of bounded memory: it holds one pending event per stream (a heap of
    ``len(streams)`` entries), so hours of several recordings never sit in memory. Events with
    equal ``ts_local`` come by stream index, and each stream's events keep their own order
    (stable), so the merge is deterministic. Each stream must itself be non-decreasing in
    ``ts_local`` (what :func:`read_binance` guarantees); one that goes back raises
    ``ValueError`` naming the stream, since the merged clock could not honour it. A stream's own
    errors (``RecordingError`` from a reader) surface on the first ``next()`` of the merge.
    """
    iters = [iter(s) for s in streams]
    heap: list[tuple[int, int, MarketEvent]] = []
    for i, it in enumerate(iters):
        ev = next(it, _END)
        if ev is not _END:
            heap.append((ev.ts_local, i, ev))  # type: ignore[union-attr]
    heapq.heapify(heap)
    while heap:
        ts, i, ev = heap[0]
        yield i, ev
        nxt = next(iters[i], _END)
        if nxt is _END:
            heapq.heappop(heap)
            continue
        t = nxt.ts_local  # type: ignore[union-attr]
        if t < ts:
            raise ValueError(f"stream {i} goes back in time: ts_local {t} after {ts}; merge_by_time needs each stream in time order")
        heapq.heapreplace(heap, (t, i, nxt))  # type: ignore[arg-type]


def read_merged(groups: Sequence[Group]) -> tuple[Iterator[tuple[int, MarketEvent]], list[ReaderStats]]:
    """Read every group with its own :func:`read_binance` and merge them by time.

    Returns the merged ``(group index, event)`` stream and one :class:`ReaderStats` per group,
    filled in while the stream is consumed. Reader errors surface on the first ``next()``.
    """
    stats = [ReaderStats() for _ in groups]
    return merge_by_time([read_binance(list(g.files), s) for g, s in zip(groups, stats)]), stats
