"""``bot tune`` on the fast path: trials replay shared columnar windows and give the readable trials' results.

* :class:`bot.tune.columns.ArraySource` windows are event for event :class:`SegmentSource`'s
  (warm-up prelude included), on the simulator (no data needed).
* A small grid sweep (2 folds, 4 candidates, one of them a config the compiled scan refuses) on the
  real spot BTCUSDT recording through ``--engine fast`` (2 forked workers) and ``--engine readable``
  gives the same trial figures and the same stored rows, trial by trial.
* A spawned worker (no inherited memory) loads the columnar cache file and gives the same result.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from conftest import shared_data_dir

from bot.cli.main import main as bot_main
from bot.config.settings import load_settings
from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, Trade
from bot.data.sim import simulate
from bot.fast.backtest import fast_path_refusal
from bot.fast.columnar import encode_events, iter_events
from bot.tune import trials as T
from bot.tune.columns import ArraySource
from bot.tune.folds import SegmentSource, make_folds, make_segments
from bot.tune.space import to_overrides

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
BTC_0808 = SPOT / "btcusdt_20240808.gz"
needs_data = pytest.mark.skipif(
    not BTC_0808.exists(),
    reason=f"../shared/data not present: {BTC_0808} (real Binance BTCUSDT recording)",
)
FIGURES = ("pnl_net", "pnl_gross", "fees", "trades", "fills", "events", "first_event_ts", "last_event_ts", "prelude_events",
           "sharpe", "max_drawdown", "win_rate", "traded_notional", "turnover", "initial_equity")
ROW_TABLES = ("orders", "fills", "positions", "round_trips", "equity", "risk_events", "funding", "adjustments", "marks")
RUN_COLUMNS = "mode, symbol, status, config_json, data_files_json, initial_equity, carried_json"


def comparable(event) -> tuple:
    """What the engine reads of an event (the columnar encoding drops ts_exchange, first_seq, reason)."""
    t = type(event)
    if t is BestBidAsk:
        return (t.__name__, event.ts_local, event.bid_price, event.bid_size, event.ask_price, event.ask_size, event.sequence)
    if t is Trade:
        return (t.__name__, event.ts_local, event.price, event.size, event.side, event.trade_id)
    if t is BookSnapshot:
        return (t.__name__, event.ts_local, tuple(event.bids), tuple(event.asks), event.sequence)
    if t is BookDelta:
        return (t.__name__, event.ts_local, tuple(event.bids), tuple(event.asks), event.last_seq)
    return (t.__name__, event.ts_local)


def test_array_windows_are_the_segment_source_windows():
    settings = load_settings(ROOT / "config" / "demo.toml")
    events = list(simulate(settings.sim.model_copy(update={"duration_s": 120.0}), settings.instruments[0]))
    ref, fast = SegmentSource(events), ArraySource(encode_events(events))
    assert (fast.first_ts, fast.last_ts) == (ref.first_ts, ref.last_ts)
    segments = make_segments(ref.first_ts, ref.last_ts, 3)
    windows = {f.window(role) for f in make_folds(segments) for role in ("is", "oos")}
    windows |= {(segments[1].start_ns + 1, segments[2].end_ns - 1), (ref.last_ts + 5, ref.last_ts + 10)}  # odd bounds, empty
    fast.warm(windows)
    for start, end in sorted(windows):
        assert fast.count(start, end) == ref.count(start, end)
        arrays, n_prelude = fast.window(start, end)
        expected = list(ref.segment(start, end))
        assert n_prelude == (len(ref.prelude(start)) if expected else 0)
        assert [comparable(e) for e in iter_events(arrays)] == [comparable(e) for e in expected], (start, end)
    assert any(fast.window(s, e)[1] for s, e in windows), "no window started mid-stream: the prelude went untested"


def _rows(db: Path) -> dict[str, dict]:
    """Per trial key: its figures, its run's comparable columns and stats, and its stored rows."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for key, run_id, result in conn.execute("SELECT key, run_id, result_json FROM trials"):
            res = json.loads(result)
            run = conn.execute(f"SELECT {RUN_COLUMNS}, stats_json FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            stats = json.loads(run[-1])
            stats.pop("fast", None)  # the fast replay's own counters
            stats.pop("wall_time_s", None)
            tables = {}
            for table in ROW_TABLES:
                cur = conn.execute(f"SELECT * FROM [{table}] WHERE run_id = ? ORDER BY rowid", (run_id,))
                names = [d[0] for d in cur.description]
                # client order ids embed the run id
                tables[table] = [tuple(v.replace(run_id, "RUN") if isinstance(v, str) else v for n, v in zip(names, r)
                                       if n not in ("id", "run_id")) for r in cur]
            out[key] = {"figures": {k: res[k] for k in FIGURES}, "run": run[:-1], "stats": stats, "rows": tables}
        return out
    finally:
        conn.close()


@needs_data
def test_fast_trials_equal_readable_trials_on_the_real_recording(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text('[search]\nmethod = "grid"\nfolds = 2\n[params]\n'
                     '"signal.depth_levels" = [3, 10]\n"signal.weight_mlofi" = [0.0, 0.3]\n')
    assert fast_path_refusal(load_settings(ROOT / "config" / "backtest.toml", **to_overrides({"signal.weight_mlofi": 0.3})))
    common = ["tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(space), "--data", str(BTC_0808), "--quiet", "--json"]
    assert bot_main([*common, "--engine", "fast", "--workers", "2", "--db", str(tmp_path / "fast.db")]) == 0
    fast_report = json.loads(capsys.readouterr().out)
    assert bot_main([*common, "--engine", "readable", "--workers", "0", "--db", str(tmp_path / "readable.db")]) == 0
    readable_report = json.loads(capsys.readouterr().out)
    assert fast_report["sweep"]["trials"] == readable_report["sweep"]["trials"] == 16
    fast, readable = _rows(tmp_path / "fast.db"), _rows(tmp_path / "readable.db")
    assert set(fast) == set(readable) and len(fast) == 16
    traded = 0
    for key in readable:
        assert fast[key]["figures"] == readable[key]["figures"], key
        assert fast[key]["run"] == readable[key]["run"], key
        assert fast[key]["stats"] == readable[key]["stats"], key
        for table, rows in readable[key]["rows"].items():
            assert fast[key]["rows"][table] == rows, (key, table)
        traded += readable[key]["figures"]["trades"]
    assert traded > 0, "no trial traded: the comparison would be vacuous"
    walk = [{k: v for k, v in r["leaderboard"]["walk_forward"].items() if k != "run_ids"} for r in (fast_report, readable_report)]
    assert walk[0] == walk[1]


@needs_data
def test_a_spawned_worker_loads_the_columnar_cache(tmp_path):
    space_params = {"signal.depth_levels": 5}
    data = T.DataSpec.for_files([str(BTC_0808)])
    source, _ = T.load_source(data)  # the main process: parses (or loads) and writes the cache file
    segments = make_segments(source.first_ts, source.last_ts, 2)
    start, end = make_folds(segments)[1].window("oos")
    spec = T.TrialSpec("k", 0, space_params, 2, "oos", 2, start, end, str(ROOT / "config" / "backtest.toml"), data)
    here = T.run_trial(spec)
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        there = pool.submit(T.run_trial, spec).result(timeout=600)
    assert there["pid"] != here["pid"]
    assert {k: there[k] for k in FIGURES} == {k: here[k] for k in FIGURES}
    assert here["prelude_events"] >= 1 and here["trades"] > 0
    for table in ROW_TABLES:
        assert _strip(there[T.ROWS][table], there["run_id"]) == _strip(here[T.ROWS][table], here["run_id"]), table


def _strip(rows: tuple[list[str], list[tuple]], run_id: str) -> list[tuple]:
    names, values = rows
    return [tuple(v.replace(run_id, "RUN") if isinstance(v, str) else v for n, v in zip(names, r) if n != "run_id") for r in values]
