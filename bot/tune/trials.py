"""One trial = one candidate backtested on one time window; the ``trials`` table that remembers them.

A trial is a pure function of its :class:`TrialSpec` (picklable, so any executor can ship it):
:func:`run_trial` takes the candidate's settings, the window's events (with the warm-up
snapshot, see :mod:`bot.tune.folds`) and backtests them into a private temporary database:
by default on the fast path (:func:`bot.fast.backtest.run_backtest_fast` over the window's
columnar arrays, :mod:`bot.tune.columns`; a config the compiled scan refuses replays those
arrays on the readable engine), with ``DataSpec.engine == "readable"`` through
:func:`bot.engine.runner.run_backtest` over Python events (the reference; same figures and rows,
tested). It returns the figures plus the run's rows. The worker never touches the
sweep's database: the main process is its only writer, and :meth:`TrialTable.commit` moves the
run into the store's tables and adds the ``trials`` row in one transaction, as each trial finishes
(the store's deferred transactions are not made for concurrent writers, and a remote worker
needs no access to the database at all).

Trials are keyed by :func:`trial_key`: a SHA-256 over the candidate's params and resolved
settings (base config + params + environment, without ``[run]``), the fold, the role (in-sample /
out-of-sample), the fold count and window bounds, the data (absolute paths, sizes, mtimes, or the
simulator's settings) and the base config file's bytes. A re-run computes the same keys and
skips every trial already in the table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.tune.folds import SegmentSource
from bot.tune.runrows import export_run, row_sharpe, traded_notional

TRIAL_SCHEMA = 1
ROWS = "_rows"  # key of the run's exported rows in a trial result (moved into the store by the main process)
ROLES = ("is", "oos")
ROLE_NAMES = {"is": "in-sample", "oos": "out-of-sample"}


class TrialError(Exception):
    """A trial could not run (bad data, engine failure); the sweep stops and reports it."""


@dataclass(frozen=True)
class DataSpec:
    """Where the events come from: recordings (``files``) or the simulator (``sim``)."""

    kind: str  # "files" | "sim"
    files: tuple[str, ...] = ()
    sim: dict[str, Any] = field(default_factory=dict)  # sim + market sections (for "sim")
    fingerprint: str = ""
    format: str = ""  # the --format given for the files ("" = detected from their content)
    # how trials replay it: "fast" = columnar arrays + compiled scan (bot.tune.columns), "readable" =
    # a list of events through the readable engine (the reference); same results, so not in the keys
    engine: str = "fast"

    @staticmethod
    def for_files(paths: list[str], fmt: str | None = None, engine: str = "fast") -> "DataSpec":
        files = tuple(os.path.abspath(p) for p in paths)
        ident = []
        for p in files:
            st = os.stat(p)
            ident.append([p, st.st_size, st.st_mtime_ns])
        # sorted: the reader orders the files by time, so the order they are given in does not matter
        key = sorted(ident) if not fmt else [sorted(ident), fmt]  # unchanged without --format: old sweeps resume
        return DataSpec("files", files=files, fingerprint=_sha(key), format=fmt or "", engine=engine)

    @staticmethod
    def for_sim(sim_section: dict[str, Any], market_section: dict[str, Any], engine: str = "fast") -> "DataSpec":
        sim = {"sim": sim_section, "market": market_section}
        return DataSpec("sim", sim=sim, fingerprint=_sha(sim), engine=engine)

    def describe(self) -> list[str]:
        return list(self.files) if self.kind == "files" else [f"sim:{json.dumps(self.sim['sim'], sort_keys=True)}"]


@dataclass(frozen=True)
class TrialSpec:
    key: str
    candidate: int  # index in the sweep's candidate list
    params: dict[str, Any]
    fold: int
    role: str  # "is" | "oos"
    folds: int
    start_ns: int
    end_ns: int
    base_config: str
    data: DataSpec


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def params_hash(params: dict[str, Any]) -> str:
    return _sha({k: [type(v).__name__, v] for k, v in params.items()})[:10]


def trial_key(*, params: dict[str, Any], settings_snapshot: dict[str, Any], fold: int, role: str, folds: int,
              start_ns: int, end_ns: int, data: DataSpec, base_sha: str) -> str:
    """Stable identity of a trial (see the module docstring)."""
    resolved = {k: v for k, v in settings_snapshot.items() if k != "run"}  # run.name/db/log_* do not change results
    return _sha({
        "v": TRIAL_SCHEMA,
        "params": {k: [type(v).__name__, v] for k, v in params.items()},
        "settings": resolved,
        "fold": fold, "role": role, "folds": folds, "window": [start_ns, end_ns],
        "data": data.fingerprint, "base": base_sha,
    })


# --------------------------------------------------------------------------- per-process data cache
_CACHE: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}


def load_source(data: DataSpec) -> tuple[Any, dict[str, Any]]:
    """The data in memory (once per process) and the reader's stats.

    ``data.engine == "fast"``: an :class:`~bot.tune.columns.ArraySource` (a Binance recording
    through the compiled parser and its columnar cache file, other data encoded once); the
    readable engine's :class:`SegmentSource` of Python events otherwise, or when the prices
    cannot be encoded exactly. The main process loads it before starting a ``fork`` pool, so local
    workers inherit it without reading anything again; other workers (spawn, remote) load it on
    first use: for a Binance recording the cache file the main process wrote (its name derives
    from the files' paths, sizes and mtimes; remote workers need the same ``$BOT_FAST_CACHE``).
    """
    hit = _CACHE.get((data.fingerprint, data.engine))
    if hit is not None:
        return hit
    source: Any = None
    if data.kind == "files" and data.engine == "fast":
        from bot.data.readers import resolve

        if resolve(list(data.files), data.format or None).name == "binance-raw":
            from bot.fast.columnar import load_binance
            from bot.tune.columns import ArraySource

            arrays, _ = load_binance(list(data.files))
            source, info = ArraySource(arrays), dict(arrays.meta.get("reader") or {})
    if source is None:
        events, info = _read_events(data)
        if data.engine == "fast":
            from bot.fast.columnar import encode_events
            from bot.tune.columns import ArraySource

            with contextlib.suppress(ValueError):  # prices the encoding cannot hold exactly: readable
                source = ArraySource(encode_events(events))
        if source is None:
            source = SegmentSource(events)
        del events
    _CACHE[(data.fingerprint, data.engine)] = (source, info)
    return source, info


def _read_events(data: DataSpec) -> tuple[list[Any], dict[str, Any]]:
    if data.kind == "files":
        from bot.data.binance import ReaderStats
        from bot.data.readers import read_events

        stats = ReaderStats()
        events = list(read_events(list(data.files), data.format or None, stats))
        info = stats.as_dict()
    elif data.kind == "sim":
        from bot.config.settings import MarketSection, SimSection
        from bot.data.sim import simulate

        sim = SimSection(**data.sim["sim"])
        events = list(simulate(sim, MarketSection(**data.sim["market"])))
        info = {"source": "sim", "seed": sim.seed, "duration_s": sim.duration_s}
    else:  # pragma: no cover
        raise TrialError(f"unknown data kind {data.kind!r}")
    if not events:
        raise TrialError("the data holds no market events")
    return events, info


def _source_summary(info: dict[str, Any]) -> dict[str, Any]:
    keep = ("source", "seed", "duration_s", "symbol", "market_type", "files", "gaps", "malformed", "problems_total", "first_ts", "last_ts")
    return {k: info[k] for k in keep if k in info}


# --------------------------------------------------------------------------- the worker function
SCRATCH: set[str] = set()
"""Private databases of the trials running in this process (removed by a terminated worker)."""


def remove_scratch() -> None:
    for path in list(SCRATCH):
        shutil.rmtree(path, ignore_errors=True)
        SCRATCH.discard(path)


_SETTINGS: dict[tuple[str, str], Any] = {}


def candidate_settings(base_config: str, params: dict[str, Any]) -> Any:
    """``load_settings(base_config, **overrides(params))``, once per process and candidate.

    :func:`bot.tune.space.build_candidates` and :func:`bot.tune.sweep.plan_sweep` load every
    candidate in the main process (once for both), so forked workers inherit them (a load is
    tens of ms of TOML, environment and validation, per trial otherwise). Nothing writes to a
    Settings object once loaded, so trials can share one. The key holds what the load reads: the
    file and a ``.env`` in the working directory (path, size, mtime), the ``BOT__`` environment and
    the params.
    """
    from bot.config.settings import load_settings
    from bot.tune.space import to_overrides

    try:
        files = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in (Path(base_config).resolve(), Path(".env").resolve()) if f.exists()]
    except OSError:  # unreadable: load_settings says what is wrong
        return load_settings(base_config, **to_overrides(params))
    env = sorted((k, v) for k, v in os.environ.items() if k.upper().startswith("BOT__"))
    key = (str(Path(base_config).resolve()), json.dumps([files, env, params], sort_keys=True, default=str))
    hit = _SETTINGS.get(key)
    if hit is None:
        hit = _SETTINGS[key] = load_settings(base_config, **to_overrides(params))
    return hit


def _scratch_root() -> str | None:
    """Where trials put their private databases: memory (``/dev/shm``) where there is one, since
    they are deleted at the end of the trial and only their rows travel; else the temp dir."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Backtest one candidate on one window; return the figures (runs in a worker process)."""
    from bot.config.settings import ConfigError
    from bot.engine.runner import run_backtest

    started = time.time()
    try:
        settings = candidate_settings(spec.base_config, spec.params)
    except ConfigError as exc:
        raise TrialError(str(exc)) from None
    source, info = load_source(spec.data)
    seen: dict[str, Any] = {"events": 0, "first_ts": None, "last_ts": None, "prelude": 0}
    if isinstance(source, SegmentSource):
        prelude = source.prelude(spec.start_ns) if source.count(spec.start_ns, spec.end_ns) else ()
        seen["prelude"] = len(prelude)
    else:  # the fast path: the window's arrays (prelude + events), built once per process
        window, n_prelude = source.window(spec.start_ns, spec.end_ns)
        n = len(window)
        seen.update(events=n, prelude=n_prelude, first_ts=int(window.ts[0]) if n else None,
                    last_ts=int(window.ts[n - 1]) if n else None)

    def watched():
        n = 0
        first = last = None
        for event in source.segment(spec.start_ns, spec.end_ns):
            ts = event.ts_local
            if first is None:
                first = ts
            last = ts
            n += 1
            yield event
        seen.update(events=n, first_ts=first, last_ts=last)

    def source_stats() -> dict[str, Any]:
        return {
            **_source_summary(info),
            "tune": {
                "trial_key": spec.key, "candidate": spec.candidate, "params": spec.params,
                "fold": spec.fold, "role": spec.role, "folds": spec.folds,
                "window_start_ns": spec.start_ns, "window_end_ns": spec.end_ns,
                "events_passed": seen["events"], "first_event_ts": seen["first_ts"], "last_event_ts": seen["last_ts"],
                "warmup_prelude_events": seen["prelude"],
            },
        }

    scratch = tempfile.mkdtemp(prefix="bot-tune-", dir=_scratch_root())
    SCRATCH.add(scratch)
    try:
        db = os.path.join(scratch, "trial.db")
        if isinstance(source, SegmentSource):
            summary = run_backtest(settings, watched(), db_path=db, data_files=spec.data.describe(), source_stats=source_stats)
        else:  # a config the compiled scan refuses replays iter_events(window) on the readable engine
            from bot.fast.backtest import run_backtest_fast

            summary = run_backtest_fast(settings, window, db_path=db, data_files=spec.data.describe(), source_stats=source_stats)
        if summary.get("status") == "interrupted":
            # only possible in-process (pool workers ignore SIGINT): run_backtest swallowed the Ctrl-C
            raise KeyboardInterrupt
        if summary.get("status") != "completed":
            raise TrialError(f"trial run {summary.get('run_id')} ended with status {summary.get('status')!r}")
        notional = traded_notional(db, summary["run_id"])
        rows = export_run(db, summary["run_id"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        SCRATCH.discard(scratch)
    initial = float(summary["initial_equity"])
    return {
        "run_id": summary["run_id"],
        "pnl_net": summary["pnl_net"],
        "pnl_gross": summary["pnl_gross"],
        "fees": summary["fees"],
        # a ranking score, not the report's Sharpe (null on minutes of data): the per-row ratio the
        # sweep has always compared, the same rule as the stitched walk-forward curve's
        "sharpe": row_sharpe(rows, settings.store.equity_interval_s),
        "max_drawdown": summary["max_drawdown"],
        "trades": summary["trades"],
        "fills": summary["fills"],
        "win_rate": summary["win_rate"],
        "traded_notional": float(notional),
        "turnover": float(notional) / initial if initial > 0 else None,
        "initial_equity": initial,
        "events": seen["events"],
        "first_event_ts": seen["first_ts"],
        "last_event_ts": seen["last_ts"],
        "prelude_events": seen["prelude"],
        "wall_time_s": round(time.time() - started, 3),
        "pid": os.getpid(),
        ROWS: rows,
    }


# --------------------------------------------------------------------------- the trials table
_COLUMNS = (
    "key", "candidate_hash", "params_json", "fold", "role", "folds", "start_ns", "end_ns", "data_fingerprint",
    "run_id", "pnl_net", "sharpe", "max_drawdown", "trades", "turnover", "fees", "events",
    "first_event_ts", "last_event_ts", "wall_time_s", "finished_at", "result_json",
)


class TrialTable:
    """The ``trials`` table in the sweep's SQLite database (one row per finished trial).

    Every call opens and closes its own connection: the main process must not hold an SQLite
    connection while local workers are forked (SQLite's per-process lock bookkeeping would be
    inherited and corrupt the workers' own connections).
    """

    def __init__(self, db_path: str | Path):
        from bot.store.store import Store

        self.path = str(db_path)
        Store(db_path).close()  # the store's own tables (runs, fills, ...), created or checked by the store
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(
                """CREATE TABLE IF NOT EXISTS trials (
                    key TEXT PRIMARY KEY,
                    candidate_hash TEXT NOT NULL,
                    params_json TEXT NOT NULL,
                    fold INTEGER NOT NULL,
                    role TEXT NOT NULL,
                    folds INTEGER NOT NULL,
                    start_ns INTEGER NOT NULL,
                    end_ns INTEGER NOT NULL,
                    data_fingerprint TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    pnl_net REAL, sharpe REAL, max_drawdown REAL, trades INTEGER, turnover REAL, fees REAL,
                    events INTEGER, first_event_ts INTEGER, last_event_ts INTEGER, wall_time_s REAL,
                    finished_at REAL NOT NULL,
                    result_json TEXT NOT NULL
                )"""
            )
            conn.execute("CREATE INDEX IF NOT EXISTS idx_trials_run_id ON trials (run_id)")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            with conn:  # one transaction, committed on success
                yield conn
        finally:
            conn.close()

    def finished(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored results of those of ``keys`` that are finished."""
        out: dict[str, dict[str, Any]] = {}
        with self._connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, result in conn.execute(f"SELECT key, result_json FROM trials WHERE key IN ({marks})", chunk):
                    out[key] = json.loads(result)
        return out

    def commit(self, spec: TrialSpec, result: dict[str, Any]) -> None:
        """Store the trial's backtest run and its ``trials`` row in ONE transaction (all or nothing).

        ``result[ROWS]`` (the run exported from the worker's private database, :func:`export_run`) is
        removed from ``result`` and inserted into the store's tables; autoincrement ids are assigned afresh.
        """
        rows = result.pop(ROWS, None) or {}
        row = {
            "key": spec.key, "candidate_hash": params_hash(spec.params), "params_json": json.dumps(spec.params, sort_keys=True),
            "fold": spec.fold, "role": spec.role, "folds": spec.folds, "start_ns": spec.start_ns, "end_ns": spec.end_ns,
            "data_fingerprint": spec.data.fingerprint, "run_id": result["run_id"],
            "pnl_net": result["pnl_net"], "sharpe": result["sharpe"], "max_drawdown": result["max_drawdown"],
            "trades": result["trades"], "turnover": result["turnover"], "fees": result["fees"], "events": result["events"],
            "first_event_ts": result["first_event_ts"], "last_event_ts": result["last_event_ts"],
            "wall_time_s": result["wall_time_s"], "finished_at": time.time(),
            "result_json": json.dumps({**result, "spec": {k: v for k, v in asdict(spec).items() if k != "data"}}, sort_keys=True, default=str),
        }
        with self._connect() as conn:
            if conn.execute("SELECT 1 FROM trials WHERE key = ?", (spec.key,)).fetchone():
                return
            for table, (cols, table_rows) in rows.items():
                if table_rows:
                    conn.executemany(
                        f"INSERT INTO [{table}] ({', '.join(f'[{c}]' for c in cols)}) VALUES ({', '.join('?' * len(cols))})",
                        table_rows,
                    )
            conn.execute(
                f"INSERT INTO trials ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [row[c] for c in _COLUMNS],
            )

    def close(self) -> None:
        """Nothing to release (kept for symmetry)."""
