"""Replay a paper run from its own recording through the same engine: ``bot compare``.

A paper daemon's decisions and simulated fills are a function of its event stream: the engine
and the paper venue keep event time (``ts_local``), never the wall clock
(:attr:`bot.execution.paper.PaperVenue.event_clock`); mark prices and funding arrive as events;
the watchdog's invalidations are events. So the run is rebuilt here exactly as the daemon built
it (its config from ``runs.config_json``; from ``runs.replay_json`` the exchange's markets and the
earlier runs its account was restored from, at the time it was restored,
:func:`bot.engine.restore.restore_marks` as at the daemon's start), the recording is fed through
:class:`~bot.engine.account_engine.AccountEngine` with the paper venue, into a scratch database
under the same run id, and the two runs' orders and fills are compared
(:mod:`bot.store.divergence`).

What does not come through the event stream cannot be replayed; :func:`known_sources` names it
from the run's own rows, so a divergence it explains is reported as such, never hidden: an
operator's pause, kill or flatten (ops API), a kill-switch *file* (looked at on the filesystem
at decision time: the replay does not look at it), a recording that failed or was cut off, a
run that did not close cleanly, other code.
"""

from __future__ import annotations

import heapq
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
from pydantic import ValidationError

from bot.config.settings import ConfigError, Settings, load_settings
from bot.core.events import MarketEvent
from bot.core.market import Market
from bot.data.binance import ReaderStats, RecordingError
from bot.data.readers import read_events, resolve
from bot.data.readers.io import head_lines
from bot.engine.account_engine import AccountEngine
from bot.engine.restore import RestoredAccount, market_from_json, restore_account, restore_marks
from bot.engine.runner import git_revision
from bot.execution.paper import PaperVenue
from bot.store.divergence import FILL_FIELDS, ORDER_FIELDS, compare_rows, diverged, first_of, rows_of
from bot.store.schema import check_bot_database
from bot.store.store import Store, StoreError


class ReplayError(Exception):
    """The run cannot be replayed (unknown run, no database, wrong files): one line saying why."""


@dataclass
class RunToReplay:
    run_id: str
    row: dict[str, Any]  # status, git_rev, stats
    settings: Settings
    markets: list[Market]
    restored: RestoredAccount
    recording_dir: str | None


def _connect(db_path: Path) -> sqlite3.Connection:
    if not db_path.is_file():
        raise ReplayError(f"database not found: {db_path}")
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        check_bot_database(conn, db_path)
    except (sqlite3.Error, StoreError) as exc:
        raise ReplayError(str(exc)) from None
    return conn


def settings_of(config: dict[str, Any]) -> Settings:
    """The settings a run stored (``Settings.snapshot``), every key from the snapshot, none from
    the environment; the kill-switch file is not looked at (its state then is not known now)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    data.get("exchange", {}).pop("api_key_set", None)
    data.get("http", {}).pop("token_set", None)
    if isinstance(data.get("risk"), dict):
        data["risk"]["kill_switch_file"] = None
    try:
        return load_settings(None, **data)
    except (ConfigError, ValidationError) as exc:
        raise ReplayError(f"the run's stored config does not load in this version of the bot: {exc}") from None


def load_run(db_path: str | Path, run_id: str) -> RunToReplay:
    """Everything needed to rebuild paper run ``run_id`` of ``db_path`` (read only)."""
    conn = _connect(Path(db_path))
    try:
        cols = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        found = conn.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if found is None:
            known = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 3")]
            raise ReplayError(f"run {run_id!r} is not in {db_path}" + (f" (latest runs: {', '.join(known)})" if known else " (it holds no runs)"))
        names = [d[0] for d in conn.execute("SELECT * FROM runs LIMIT 0").description]
        row = dict(zip(names, found))
        if row["mode"] != "paper":
            raise ReplayError(f"run {run_id} is a {row['mode']} run: bot compare replays paper runs (a paper run's fills are simulated from its events)")
        replay = orjson.loads(row["replay_json"]) if "replay_json" in cols and row.get("replay_json") else None
        if not replay:
            raise ReplayError(f"run {run_id} stored no replay information (a run of a bot older than bot compare): it cannot be rebuilt")
        settings = settings_of(orjson.loads(row["config_json"]))
        markets = [market_from_json(m) for m in replay["markets"]]
        restored = restore_account(SimpleNamespace(db=conn), "paper", markets, settings.risk.initial_equity,  # type: ignore[arg-type]
                                   now_ns=int(replay.get("restored_at_ns") or 0), runs=list(replay.get("previous_runs") or []))
        row["stats"] = orjson.loads(row["stats_json"]) if row.get("stats_json") else {}
        recording = replay.get("recording") or {}
        return RunToReplay(run_id, row, settings, markets, restored, recording.get("dir"))
    finally:
        conn.close()


def recording_files(directory: str | Path) -> list[Path]:
    """Every file of a run's recording directory (``run.record_dir``/<run id>/, one folder per instrument)."""
    return sorted(Path(directory).rglob("*.jsonl.gz"))


def _header_symbol(path: Path) -> str:
    try:
        head = orjson.loads(head_lines(path, 1)[0])
        return str(head["symbol"])
    except (IndexError, KeyError, TypeError, orjson.JSONDecodeError, OSError):
        raise ReplayError(f"{path}: not a bot recording (no header line)") from None


def read_recording(files: list[Path], markets: list[Market]) -> tuple[Iterator[tuple[int, MarketEvent]], list[ReaderStats]]:
    """Every instrument's recorded events, merged by receive time: ``(lane, event)``. The daemon's
    receive times are distinct and in delivery order (:func:`bot.exchange.feed.receive_ns`), so the
    merge is the order the engines saw."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ReplayError("data file not found: " + ", ".join(missing))
    try:
        fmt = resolve([str(f) for f in files], None).name
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None
    if fmt != "bot-recording":
        raise ReplayError(f"{', '.join(map(str, files))}: {fmt} data, not a bot recording: bot compare replays the recording the run made (run.record_dir)")
    symbols = [m.symbol for m in markets]
    groups: list[list[Path]] = [[] for _ in markets]
    for f in files:
        symbol = _header_symbol(f)
        if symbol not in symbols:
            raise ReplayError(f"{f}: a recording of {symbol}, which the run did not trade (it traded {', '.join(symbols)})")
        groups[symbols.index(symbol)].append(f)
    for symbol, group in zip(symbols, groups):
        if not group:
            raise ReplayError(f"no recording of {symbol} among the files given: the run traded {', '.join(symbols)}")
    stats = [ReaderStats() for _ in markets]
    streams = [_tagged(lane, read_events([str(p) for p in group], fmt, stats[lane])) for lane, group in enumerate(groups)]
    return heapq.merge(*streams, key=lambda pair: pair[1].ts_local), stats


def _tagged(lane: int, events: Iterator[MarketEvent]) -> Iterator[tuple[int, MarketEvent]]:
    for event in events:
        yield lane, event


def replay(spec: RunToReplay, events: Iterator[tuple[int, MarketEvent]], db_path: Path) -> int:
    """Run the paper run's engine over ``events`` into a fresh database at ``db_path``, under the
    paper run's id; return the number of events. Like the daemon at a stop: nothing is flattened."""
    settings = spec.settings
    store = Store(db_path, batch_size=settings.store.batch_size, synchronous="off")
    n = 0
    try:
        store.start_run(spec.run_id, mode="paper", config=settings.snapshot(), git_rev=git_revision(), data_files=[],
                        initial_equity=float(spec.row["initial_equity"]), symbol=str(spec.row["symbol"]))
        engine = AccountEngine(settings, lambda _, market: PaperVenue(settings.execution, market), store, spec.run_id,
                               markets=spec.markets, portfolios=[r.portfolio for r in spec.restored.lanes])
        restore_marks(engine, spec.restored.lanes)
        on_event = engine.on_event
        try:
            for lane, event in events:
                on_event(lane, event)
                n += 1
        except RecordingError as exc:
            raise ReplayError(str(exc)) from None
        for lane_engine in engine.lanes:
            lane_engine.abandon_orders()  # as the daemon does at its stop: orders in flight end with the run
        engine.checkpoint()
        store.finish_run(spec.run_id, status="completed", stats=engine.run_stats())
    finally:
        store.close()
    return n


def known_sources(spec: RunToReplay, conn: sqlite3.Connection, reader_problems: list[str]) -> list[dict[str, Any]]:
    """What the run did that its event stream does not carry, found in its own rows."""
    out: list[dict[str, Any]] = []
    run_id, row = spec.run_id, spec.row
    for kind, rule, ts, detail in conn.execute(
        "SELECT kind, rule, ts, detail FROM risk_events WHERE run_id = ? AND (kind = 'operator' OR (kind = 'halt' AND rule = 'kill_switch')) "
        "ORDER BY ts, id", [run_id]
    ).fetchall():
        if kind == "operator":
            out.append({"source": "operator_control", "ts": int(ts), "detail": f"operator {rule} (ops API): not in the event stream; {detail}"})
        elif not spec.settings.risk.kill_switch:
            out.append({"source": "kill_switch", "ts": int(ts), "detail": "kill switch engaged by the file or the operator, not the config: the replay does not see it"})
    recording = row["stats"].get("recording") or {}
    if recording.get("failed"):
        out.append({"source": "recording_failed", "ts": None, "detail": f"the recording stopped during the run: {recording['failed']}"})
    if row["status"] != "completed":
        out.append({"source": "run_not_closed", "ts": None, "detail": f"the run is {row['status']}: its last buffered rows may be missing and its recording ends at its last flush"})
    rev, now = row.get("git_rev"), git_revision()
    if rev and now and rev != now:
        out.append({"source": "code_revision", "ts": None, "detail": f"the run used code {rev}, this replay {now}"})
    for problem in reader_problems:
        out.append({"source": "recording_problem", "ts": None, "detail": problem})
    return out


def compare_run(db_path: str | Path, run_id: str, files: list[str | Path] | None = None) -> dict[str, Any]:
    """Replay paper run ``run_id`` from ``files`` (default: its own recording) and compare, per
    instrument, its orders and fills with the replay's. ``identical`` is the verdict."""
    spec = load_run(db_path, run_id)
    if not files:
        if not spec.recording_dir:
            raise ReplayError(f"run {run_id} was not recorded (run.record_dir unset): give the recording with --data")
        found = recording_files(spec.recording_dir)
        if not found:
            raise ReplayError(f"no recording files under {spec.recording_dir} (the run's run.record_dir/<run id>): give them with --data")
        paths = found
    else:
        paths = [Path(f) for f in files]
    events, stats = read_recording(paths, spec.markets)
    with tempfile.TemporaryDirectory(prefix="bot-compare-") as tmp:
        replay_db = Path(tmp) / "replay.db"
        n = replay(spec, events, replay_db)
        if n == 0:
            raise ReplayError(f"{', '.join(map(str, paths))}: the recording yields no market events")
        paper, again = _connect(Path(db_path)), sqlite3.connect(replay_db)
        try:
            default_symbol = spec.markets[0].symbol
            instruments = []
            for market in spec.markets:
                sym = market.symbol
                orders = compare_rows("order", rows_of(paper, "orders", run_id, sym, default_symbol),
                                      rows_of(again, "orders", run_id, sym, default_symbol), ORDER_FIELDS)
                fills = compare_rows("fill", rows_of(paper, "fills", run_id, sym, default_symbol),
                                     rows_of(again, "fills", run_id, sym, default_symbol), FILL_FIELDS)
                for part in (orders, fills):
                    if part["first_difference"] is not None:
                        part["first_difference"]["symbol"] = sym
                instruments.append({"symbol": sym, "orders": orders, "fills": fills, "identical": not (diverged(orders) or diverged(fills))})
            problems = [p for s in stats for p in s.problems]
            sources = known_sources(spec, paper, problems)
        finally:
            paper.close()
            again.close()
    parts = [i[k] for i in instruments for k in ("orders", "fills")]
    total = {k: {side: sum(i[k][side] for i in instruments) for side in ("paper", "replay", "differing")} for k in ("orders", "fills")}
    return {
        "run_id": run_id,
        "db": str(db_path),
        "data": [str(p) for p in paths],
        "events": n,
        "identical": all(i["identical"] for i in instruments),
        "orders": total["orders"],
        "fills": total["fills"],
        "first_difference": first_of(parts),
        "instruments": instruments,
        "known_divergence_sources": sources,
    }
