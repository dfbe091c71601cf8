"""``bot backtest`` over several instruments: which recording feeds which ``[[markets]]`` entry.

The files given with ``--data`` are grouped by instrument (:func:`bot.data.merge.group_recordings`);
each group must be one of the config's markets (same unified symbol and market type) and every
market needs a group, else one line names the files, the symbols and the config. The groups are
read by their own readers and merged by receive time into ``(market index, event)`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from bot.config.settings import Settings
from bot.core.events import MarketEvent
from bot.data.binance import RecordingError, ReaderStats, read_binance
from bot.data.market_check import MarketMismatch, market_mismatch
from bot.data.merge import group_recordings, merge_by_time


def merged_events(
    settings: Settings, paths: list[str], config: str | Path | None
) -> tuple[Iterator[tuple[int, MarketEvent]], Callable[[], dict[str, Any]]]:
    """The merged stream and its source stats, or :class:`RecordingError` naming what does not fit."""
    markets = settings.instruments
    where = f" in {config}" if config else ""
    groups = group_recordings(paths)
    by_symbol = {}
    for group in groups:
        shown = ", ".join(str(f) for f in group.files)
        owner = next((i for i, m in enumerate(markets) if m.symbol == group.unified_symbol), None)
        if owner is None:
            listed = ", ".join(m.symbol for m in markets)
            raise MarketMismatch(
                f"{shown}: a recording of {group.unified_symbol or group.symbol} ({group.market_type or 'unknown market'}), "
                f"which is not among the [[markets]]{where} ({listed}); add it or leave its files out"
            )
        problem = market_mismatch(group.symbol, group.market_type, markets[owner], config, check_symbol=False)
        if problem:
            raise MarketMismatch(f"{shown}: {problem}")
        by_symbol[owner] = group
    missing = [m.symbol for i, m in enumerate(markets) if i not in by_symbol]
    if missing:
        raise RecordingError(f"no recording for {', '.join(missing)} among the --data files (the [[markets]]{where} lists it)")
    stats = [ReaderStats() for _ in markets]
    streams = [read_binance(list(by_symbol[i].files), stats[i]) for i in range(len(markets))]

    def source_stats() -> dict[str, Any]:
        return {"source": "recordings", "instruments": {m.symbol: s.as_dict() for m, s in zip(markets, stats)}}

    return merge_by_time(streams), source_stats
