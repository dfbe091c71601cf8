"""Run the engine over a finite event stream (recordings or the simulator) and store the run."""

from __future__ import annotations

import functools
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.config.settings import Settings
from bot.core.events import MarketEvent
from bot.engine.account_engine import AccountEngine
from bot.engine.engine import Engine, market_from_settings
from bot.execution.paper import PaperVenue
from bot.log import bind_run, get_logger
from bot.store.report import summarize
from bot.store.store import Store


def new_run_id() -> str:
    """Sortable and unique: UTC start time plus 6 random hex digits (fits Binance's 36-char client ids)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@functools.lru_cache(maxsize=1)
def git_revision() -> str | None:
    """The code revision the run used, so a result can be traced to the code that made it.

    Asked once per process: the code a process runs is the code it imported, and the two git
    calls (10-15 ms) were a tenth of a short backtest, paid again by every run of a tuning job.
    """
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    rev = out.stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
    return rev + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")


def run_backtest(
    settings: Settings,
    events: Iterable[MarketEvent],
    *,
    db_path: str | Path,
    data_files: list[str],
    source_stats: Callable[[], dict[str, Any]] = dict,
    progress: Callable[[int], None] | None = None,
    on_store: Callable[[Store], None] | None = None,
    extra_stats: Callable[[], dict[str, Any]] = dict,
) -> dict[str, Any]:
    """Replay ``events`` through the engine with the paper fill model; return the stored summary.

    With several instruments (``[[markets]]``) ``events`` are ``(instrument index, event)`` pairs
    merged by receive time (:func:`bot.data.merge.merge_by_time`), replayed by one
    :class:`~bot.engine.account_engine.AccountEngine`.

    The summary is read back from the database, so what is printed is exactly what ``bot report``
    will print later. Ctrl-C stops the replay, marks the run ``interrupted`` and still returns the
    summary of what was processed.
    """
    if len(settings.instruments) > 1:

        def replay_many(engine: AccountEngine) -> None:
            on_event = engine.on_event
            for n, (lane, event) in enumerate(events, 1):  # type: ignore[misc]
                on_event(lane, event)
                if progress is not None and n % 100_000 == 0:
                    progress(n)

        return run_engine_backtest(settings, replay_many, db_path=db_path, data_files=data_files, source_stats=source_stats,  # type: ignore[arg-type]
                                   on_store=on_store, extra_stats=extra_stats)

    def replay(engine: Engine) -> None:
        on_event = engine.on_event
        if progress is None:
            for event in events:
                on_event(event)
        else:
            for n, event in enumerate(events, 1):
                on_event(event)
                if n % 100_000 == 0:
                    progress(n)

    return run_engine_backtest(settings, replay, db_path=db_path, data_files=data_files, source_stats=source_stats, on_store=on_store,
                               extra_stats=extra_stats)


def run_engine_backtest(
    settings: Settings,
    replay: Callable[[Engine], None],
    *,
    db_path: str | Path,
    data_files: list[str],
    source_stats: Callable[[], dict[str, Any]] = dict,
    extra_stats: Callable[[], dict[str, Any]] = dict,
    on_store: Callable[[Store], None] | None = None,
) -> dict[str, Any]:
    """The life of one backtest run around ``replay(engine)``: store the run, build the engine with
    the paper venue, replay, flatten, close the run with its stats, read the summary back.

    Every replay (the readable loop, the compiled fast path) goes through here, so runs differ only
    in how events reach ``Engine.on_event``. ``extra_stats`` adds entries to the run's stats;
    ``on_store`` sees the store before the run starts (benchmarks instrument it).
    """
    run_id = new_run_id()
    bind_run(run_id, "backtest")
    log = get_logger("bot.backtest")
    many = len(settings.instruments) > 1
    symbol = ",".join(m.symbol for m in settings.instruments)
    store = Store(db_path, batch_size=settings.store.batch_size, synchronous=settings.store.synchronous)
    if on_store is not None:
        on_store(store)
    status = "failed"
    started = time.perf_counter()
    engine: Engine | AccountEngine | None = None
    try:
        store.start_run(
            run_id,
            mode="backtest",
            config=settings.snapshot(),
            git_rev=git_revision(),
            data_files=[os.fspath(f) for f in data_files],
            initial_equity=settings.risk.initial_equity,
            symbol=symbol,
        )
        log.info("backtest started", db=str(db_path), data=[str(f) for f in data_files])
        if many:
            engine = AccountEngine(settings, lambda _, market: PaperVenue(settings.execution, market), store, run_id)
        else:
            market = market_from_settings(settings)
            engine = Engine(settings, market, PaperVenue(settings.execution, market), store, run_id)
        replay(engine)
        engine.finish()
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        log.warning("backtest interrupted")
        if engine is not None:
            engine.finish("interrupted")
    finally:
        wall = time.perf_counter() - started
        stats: dict[str, Any] = {"wall_time_s": round(wall, 6)}
        if engine is not None:
            stats.update(engine.run_stats())
        stats.update(extra_stats())
        stats["source"] = source_stats()
        store.finish_run(run_id, status=status, stats=stats)
        store.close()
        log.info("backtest finished", status=status, wall_time_s=round(wall, 3), events=stats.get("events", 0))
    return summarize(db_path, run_id)
