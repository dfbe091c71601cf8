"""``bot tune``: search space, walk-forward folds with warm-up snapshots, resumable parallel sweeps,
the leaderboard and the written best config."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import shared_data_dir
from waiting import HANG_GUARD_S, wait_until

from bot.book.book import OrderBook
from bot.config.settings import load_settings, validate_file
from bot.core.events import BookSnapshot
from bot.data.binance import ReaderStats, read_binance
from bot.data.sim import simulate
from bot.cli.main import main as bot_main
from bot.tune.command import register
from bot.tune.folds import SegmentSource, make_folds, make_segments, segment_events
from bot.tune.output import settings_to_toml
from bot.tune.space import SpaceError, build_candidates, load_space

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
BTC_0808 = SPOT / "btcusdt_20240808.gz"
needs_data = pytest.mark.skipif(
    not BTC_0808.exists(),
    reason="../shared/data not present: the real Binance recordings are only available where the shared folder is mounted",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.upper().startswith("BOT__"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def clean_subprocess_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}


def run_module(module: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=clean_subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sim_config(tmp_path: Path, duration_s: float = 240.0) -> Path:
    text = (ROOT / "config" / "demo.toml").read_text()
    head, sep, sim = text.partition("\n[sim]\n")
    assert sep and "duration_s = 600.0" in sim
    return write(tmp_path / "sim.toml", head + sep + sim.replace("duration_s = 600.0", f"duration_s = {duration_s}", 1))


def db_rows(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def book_state(book: OrderBook, n: int = 1 << 30) -> tuple:
    return (tuple(book.bids(n)), tuple(book.asks(n)), book.is_sound)


# --------------------------------------------------------------------------- the space file
def test_space_grid_random_and_fixed_values(tmp_path):
    space = load_space(write(tmp_path / "s.toml", """
[search]
method = "grid"
folds = 2
[params]
"signal.depth_levels" = [3, 5]
"strategy.enter_threshold" = { min = 0.4, max = 0.8, step = 0.1 }
"risk.stop_loss_bps" = { min = 5.0, max = 20.0, num = 3, log = true }
[params.strategy]
allow_short = false
"""))
    assert space.folds == 2
    by_key = {p.key: p for p in space.params}
    assert by_key["strategy.enter_threshold"].grid() == [0.4, 0.5, 0.6, 0.7, 0.8]  # exact decimal steps, both ends
    assert by_key["risk.stop_loss_bps"].grid() == [5.0, 10.0, 20.0]
    assert by_key["strategy.allow_short"].grid() == [False]
    cands, warnings = build_candidates(space, ROOT / "config" / "backtest.toml")
    assert len(cands) == 2 * 5 * 3 and not warnings
    assert all(c["strategy.allow_short"] is False for c in cands)

    rnd = load_space(write(tmp_path / "r.toml", """
[search]
method = "random"
trials = 7
seed = 3
[params]
"signal.depth_levels" = { min = 2, max = 20 }
"risk.stop_loss_bps" = { min = 5.0, max = 20.0, log = true }
"""))
    a, _ = build_candidates(rnd, ROOT / "config" / "backtest.toml")
    b, _ = build_candidates(rnd, ROOT / "config" / "backtest.toml")
    assert a == b and len(a) == 7, "random candidates must be reproducible (resume relies on it)"
    assert all(isinstance(c["signal.depth_levels"], int) and 2 <= c["signal.depth_levels"] <= 20 for c in a)
    assert all(5.0 <= c["risk.stop_loss_bps"] <= 20.0 for c in a)
    with pytest.raises(SpaceError, match="random"):
        build_candidates(rnd, ROOT / "config" / "backtest.toml", method="grid")  # continuous range in a grid


@pytest.mark.parametrize(
    "params, expected",
    [
        ('"signal.depth_level" = [3, 5]', ["params.signal.depth_level", "did you mean"]),
        ('"signals.depth_levels" = [3, 5]', ["params.signals.depth_levels", "unknown config key"]),
        ('"execution.taker_fee_bps" = [1.0, 2.0]', ["params.execution.taker_fee_bps", "not tunable"]),
        ('"signal.depth_levels" = { min = 5, max = 1, step = 1 }', ["params.signal.depth_levels", "above max"]),
    ],
)
def test_space_key_and_grammar_errors_name_the_key_and_file(tmp_path, params, expected):
    path = write(tmp_path / "bad_space.toml", f"[params]\n{params}\n")
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_space_values_are_validated_against_the_config(tmp_path):
    base = ROOT / "config" / "backtest.toml"
    bad_value = load_space(write(tmp_path / "v.toml", '[params]\n"signal.depth_levels" = [3, 0]\n'))
    with pytest.raises(SpaceError) as info:
        build_candidates(bad_value, base)
    assert "params.signal.depth_levels" in str(info.value) and "value 0 is invalid" in str(info.value)

    # exit_threshold must stay below enter_threshold: some combinations are invalid
    combos = load_space(write(tmp_path / "c.toml", '[params]\n"strategy.enter_threshold" = [0.3, 0.6]\n"strategy.exit_threshold" = [0.1, 0.4]\n'))
    with pytest.raises(SpaceError) as info:
        build_candidates(combos, base)
    assert "exit_threshold must be below enter_threshold" in str(info.value) and "skip_invalid" in str(info.value)
    cands, warnings = build_candidates(combos, base, skip_invalid=True)
    assert len(cands) == 3 and "dropped 1 of 4" in warnings[0]


def test_invalid_space_key_exits_1_naming_key_and_file(tmp_path, capsys):
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\n[params]\n"signal.depth_levls" = [3, 5]\n"risk.stop_loss_bps" = [5.0]\n')
    code = bot_main(["tune", "--config", str(ROOT / "config" / "demo.toml"), "--space", str(space), "--sim", "--db", str(tmp_path / "t.db")])
    err = capsys.readouterr().err
    assert code == 1
    assert "signal.depth_levls" in err and str(space) in err and "did you mean" in err
    assert not (tmp_path / "t.db").exists(), "nothing runs before the space is valid"


@pytest.mark.skipif(not (SPOT / "ethusdt_20240808.gz").exists(), reason="../shared/data not present: the real Binance recordings are only available where the shared folder is mounted")
def test_recording_of_another_symbol_is_refused(tmp_path, capsys):
    space = write(tmp_path / "space.toml", '[params]\n"signal.depth_levels" = [3, 5]\n')
    code = bot_main(["tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(space),
                      "--data", str(SPOT / "ethusdt_20240808.gz"), "--db", str(tmp_path / "t.db"), "--quiet"])
    assert code == 1
    assert "recording is ETHUSDT (ETH/USDT) but market.symbol is BTC/USDT" in capsys.readouterr().err


def test_foreign_data_file_is_refused_naming_it(tmp_path, capsys):
    import gzip

    space = write(tmp_path / "space.toml", '[params]\n"signal.depth_levels" = [3, 5]\n')
    csv = tmp_path / "trades.csv.gz"
    with gzip.open(csv, "wt") as fh:
        fh.write("ts,price,qty\n1723161253,61000.1,0.5\n")
    code = bot_main(["tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(space),
                     "--data", str(csv), "--db", str(tmp_path / "t.db"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    [line] = [x for x in err.splitlines() if x.startswith("error: ")]
    assert str(csv) in line and "not a recognized data file" in line and "formats tried: binance-raw" in line
    assert not (tmp_path / "t.db").exists()


USDM_0808 = shared_data_dir() / "hftbacktest-binance" / "usdm" / "btcusdt_20240808.gz"


@pytest.mark.skipif(not USDM_0808.exists(), reason="../shared/data not present: the real Binance recordings are only available where the shared folder is mounted")
def test_recording_of_the_other_market_is_refused(tmp_path, capsys):
    space = write(tmp_path / "space.toml", '[params]\n"signal.depth_levels" = [3, 5]\n')
    code = bot_main(["tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(space),
                     "--data", str(USDM_0808), "--db", str(tmp_path / "t.db"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert 'recording is USD-M linear perpetual (market type "linear") but market.type is "spot"' in err
    assert "backtest-usdm-btcusdt.toml" in err and str(ROOT / "config" / "backtest.toml") in err


def test_json_of_a_zero_trade_sweep_is_strict(tmp_path, capsys):
    """No trades anywhere: undefined figures are null in the JSON, never NaN or Infinity."""
    config = sim_config(tmp_path, duration_s=60.0)
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\n[params]\n"strategy.enter_threshold" = [1.0]\n')
    code = bot_main(["tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(tmp_path / "t.db"),
                     "--workers", "0", "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err

    def strict(name):
        raise AssertionError(f"not strict JSON: {name}")

    report = json.loads(out.strip().splitlines()[-1], parse_constant=strict)
    assert report["complete"] and report["leaderboard"]["best"]["out_of_sample_last_fold"]["pnl_net"] == 0


def test_register_adds_the_tune_subcommand():
    parser = argparse.ArgumentParser(prog="bot")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["tune", "--config", "a.toml", "--space", "s.toml", "--sim", "--workers", "1"])
    assert args.func.__name__ == "cmd_tune" and args.workers == 1 and args.sim


# --------------------------------------------------------------------------- segments and warm-up
def test_segments_are_consecutive_and_cover_the_span():
    segs = make_segments(1_000, 10_000, folds=3)
    assert len(segs) == 4 and segs[0].start_ns == 1_000 and segs[-1].end_ns == 10_001
    assert all(a.end_ns == b.start_ns for a, b in zip(segs, segs[1:]))
    assert max(s.end_ns - s.start_ns for s in segs) - min(s.end_ns - s.start_ns for s in segs) <= 1
    folds = make_folds(segs)
    assert [(f.is_segments, f.oos_segment) for f in folds] == [((0,), 1), ((0, 1), 2), ((0, 1, 2), 3)]
    for f in folds:  # expanding window; in-sample ends exactly where out-of-sample starts
        assert f.is_start_ns == segs[0].start_ns and f.window("is")[1] == f.window("oos")[0] == segs[f.index].start_ns


def _check_segment_replay(events, start: int, end: int) -> int:
    """segment_events: snapshot first, nothing outside [start, end), and the book a full replay would hold."""
    seg = list(segment_events(events, start, end))
    assert seg, "segment is empty"
    assert isinstance(seg[0], BookSnapshot) and seg[0].ts_local == start
    assert all(start <= e.ts_local < end for e in seg)
    assert seg == list(SegmentSource(events).segment(start, end)), "the list fast path must match the streaming one"
    full, part = OrderBook(), OrderBook()
    own = sum(1 for e in events if start <= e.ts_local < end)
    prelude = len(seg) - own
    assert 1 <= prelude <= 2  # the snapshot, and the last best bid/ask when it is newer than the last diff
    it = iter(seg)
    for _ in range(prelude):
        part.apply(next(it))
    compared = 0
    for e in events:
        if e.ts_local >= end:
            break
        full.apply(e)
        if e.ts_local < start:
            continue
        got = next(it)
        assert got is e
        part.apply(got)
        assert book_state(part, 20) == book_state(full, 20), f"book differs at ts {e.ts_local}"
        compared += 1
    assert book_state(part) == book_state(full)
    return compared


def test_segment_events_on_the_simulator():
    settings = load_settings(ROOT / "config" / "demo.toml", sim={"duration_s": 60.0})
    events = list(simulate(settings.sim, settings.market))
    segs = make_segments(events[0].ts_local, events[-1].ts_local, folds=2)
    assert _check_segment_replay(events, segs[1].start_ns, segs[1].end_ns) > 100
    # the first segment starts at the first event: nothing to reconstruct, the source's own snapshot passes through
    first = list(segment_events(events, segs[0].start_ns, segs[0].end_ns))
    assert first[0] is events[0]


@needs_data
def test_segment_events_on_a_real_recording():
    events = list(read_binance([BTC_0808], ReaderStats()))
    segs = make_segments(events[0].ts_local, events[-1].ts_local, folds=2)
    for seg in segs[1:]:
        assert _check_segment_replay(events, seg.start_ns, seg.end_ns) > 1000


def test_best_config_writer_is_complete_and_never_writes_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT__EXCHANGE__API_KEY", "k" * 16)
    monkeypatch.setenv("BOT__EXCHANGE__API_SECRET", "s" * 16)
    monkeypatch.setenv("BOT__HTTP__TOKEN", "t" * 16)
    settings = load_settings(ROOT / "config" / "backtest.toml", signal={"depth_levels": 7})
    text = settings_to_toml(settings, ["header"], {"signal.depth_levels": 7})
    assert "k" * 16 not in text and "s" * 16 not in text and "t" * 16 not in text and "api_key" not in text and "token" not in text
    path = write(tmp_path / "full.toml", text)
    assert validate_file(path) == []
    import tomllib

    data = tomllib.loads(text)
    assert data["signal"]["depth_levels"] == 7
    snap = settings.snapshot()
    for section, body in snap.items():  # every section and every set key is written
        for key, value in body.items():
            if value is not None and key not in ("api_key_set", "token_set"):  # markers of secrets, not keys
                assert key in data[section], f"{section}.{key} missing"


# --------------------------------------------------------------------------- the process pool
def _quick_or_stuck(item):
    """Trial 0 returns at once; any other marks that it is running (its pid in ``running-N``) and
    then works for minutes, marking ``finished-N`` only if nobody stopped it."""
    n, marks = item
    if n == 0:
        return {"pid": os.getpid()}
    Path(marks, f"running-{n}").write_text(str(os.getpid()))
    time.sleep(120)  # a trial that would run for minutes (the workload, not a wait)
    Path(marks, f"finished-{n}").write_text(str(os.getpid()))
    return {}


def test_process_pool_stop_terminates_running_workers(tmp_path):
    import threading
    from multiprocessing.connection import wait

    from bot.tune.executor import ProcessPoolTrialExecutor

    marks = str(tmp_path)
    ex = ProcessPoolTrialExecutor(2)
    runs = ex.run(_quick_or_stuck, [(1, marks), (0, marks), (2, marks), (3, marks)])
    item, result = next(runs)
    assert item == (0, marks) and isinstance(result, dict) and "pid" in result, result
    pool = ex._pool
    procs = list(pool._processes.values())
    manager = pool._executor_manager_thread
    assert len(procs) == 2 and all(p.is_alive() for p in procs), procs
    # stop only once both workers are inside a long trial (1 and 2; 3 waits for a free worker)
    def both_running():
        marks = sorted(tmp_path.glob("running-*"))
        # a mark exists before its pid is written: wait for both pids, not just both files
        return marks if len(marks) == 2 and all(m.read_text().strip() for m in marks) else None

    running = wait_until(both_running, "both workers to be running a long trial (their pids written)")
    assert [m.name for m in running] == ["running-1", "running-2"]
    assert {int(m.read_text()) for m in running} == {p.pid for p in procs}

    # the only time bound: a stop() that hangs fails here, with a message, instead of hanging the run
    stopper = threading.Thread(target=ex.stop, name="stop", daemon=True)
    stopper.start()
    stopper.join(HANG_GUARD_S)
    assert not stopper.is_alive(), f"stop() did not return within {HANG_GUARD_S:g} s"
    runs.close()

    exited = wait([p.sentinel for p in procs], timeout=0)
    assert len(exited) == len(procs), f"stop() must end the running trials, not wait for them: {procs}"
    assert not any(p.is_alive() for p in procs), f"stop() returned before the workers were reaped: {procs}"
    # ended, not finished: the worker's SIGTERM handler exits 128 + 15 (SIGKILL if stuck in C code)
    assert all(p.exitcode in (128 + signal.SIGTERM, -signal.SIGKILL) for p in procs), [p.exitcode for p in procs]
    assert not list(tmp_path.glob("finished-*")), "a trial ran to its end: stop() waited for it"
    assert not (tmp_path / "running-3").exists(), "a trial that had not started was started after stop()"
    assert not manager.is_alive(), "stop() returned before the pool's manager thread was joined"


# --------------------------------------------------------------------------- full sweeps
@needs_data
def test_real_data_sweep_folds_never_score_on_fitted_data_and_best_config_runs(tmp_path):
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3, 10]\n')
    db = tmp_path / "out" / "tune.db"
    proc = run_module("bot", "tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(space),
                      "--data", str(BTC_0808), "--db", str(db), "--workers", "2", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["complete"] and report["sweep"]["trials_total"] == 2 * 2 * 2 and report["sweep"]["trials_run"] == 8
    lb = report["leaderboard"]

    # segments: consecutive, non-overlapping, covering every event of the recording
    events = list(read_binance([BTC_0808], ReaderStats()))
    segs = lb["segments"]
    assert segs[0]["start_ns"] == events[0].ts_local and segs[-1]["end_ns"] == events[-1].ts_local + 1
    assert all(a["end_ns"] == b["start_ns"] for a, b in zip(segs, segs[1:]))
    assert sum(s["events"] for s in segs) == len(events)

    # what the engine actually processed, per trial, from the runs stored in the database
    trials = db_rows(db, "select run_id, fold, role, start_ns, end_ns from trials")
    assert len(trials) == 8 and len({t[0] for t in trials}) == 8
    latency_ns = int(load_settings(ROOT / "config" / "backtest.toml").execution.latency_ms * 1e6)
    for run_id, fold, role, start, end in trials:
        [(stats_json, status)] = db_rows(db, "select stats_json, status from runs where run_id = ?", run_id)
        assert status == "completed"
        tune = json.loads(stats_json)["source"]["tune"]
        oos_start = segs[fold]["start_ns"]
        assert tune["fold"] == fold and tune["role"] == role
        if role == "is":
            assert start == segs[0]["start_ns"] and end == oos_start
            assert tune["last_event_ts"] < oos_start, "an in-sample run saw out-of-sample data"
            assert tune["warmup_prelude_events"] == 0
        else:
            assert (start, end) == (oos_start, segs[fold]["end_ns"])
            assert tune["first_event_ts"] == oos_start and tune["warmup_prelude_events"] >= 1, "OOS must start with the synthetic snapshot"
            assert tune["last_event_ts"] < end
        [(lo, hi)] = db_rows(db, "select min(ts), max(ts) from equity where run_id = ?", run_id)
        assert start <= lo and hi <= end + latency_ns  # the final flatten may fill one latency after the last event
        [(flo, fhi)] = db_rows(db, "select min(ts), max(ts) from fills where run_id = ?", run_id)
        assert flo is None or (start <= flo and fhi <= end + latency_ns)

    # selection uses in-sample only; the walk-forward result is the chosen candidates' OOS runs
    by_cand = {c["candidate"]: c for c in lb["candidates"]}
    for f in lb["folds"]:
        is_scores = [by_cand[c]["in_sample"][f["fold"] - 1]["pnl_net"] for c in sorted(by_cand)]
        assert is_scores[f["chosen"]] == max(is_scores)
        assert f["chosen_out_of_sample"]["run_id"] == by_cand[f["chosen"]]["out_of_sample"][f["fold"] - 1]["run_id"]
    wf = lb["walk_forward"]
    assert wf["pnl_net"] == pytest.approx(sum(f["chosen_out_of_sample"]["pnl_net"] for f in lb["folds"]), abs=1e-6)
    assert wf["run_ids"] == [f["chosen_out_of_sample"]["run_id"] for f in lb["folds"]]
    assert "OUT-OF-SAMPLE" in wf["note"]
    for c in lb["candidates"]:
        assert len(c["out_of_sample"]) == 2 and c["out_of_sample_all_folds"]["pnl_net"] == pytest.approx(
            sum(x["pnl_net"] for x in c["out_of_sample"]), abs=1e-6)
        assert all(x["turnover"] is not None and x["turnover"] >= 0 for x in c["out_of_sample"] + c["in_sample"])

    # the best config: complete, valid, and `bot backtest` runs it
    best = Path(report["best_config"])
    assert best == db.parent / "best.toml"
    assert validate_file(best) == []
    import tomllib

    written = tomllib.loads(best.read_text())
    assert set(written) >= {"run", "market", "signal", "strategy", "risk", "execution", "store", "sim"}
    assert written["signal"]["depth_levels"] == lb["best"]["params"]["signal.depth_levels"]
    assert lb["best"]["candidate"] == lb["folds"][-1]["chosen"]
    bt = run_module("bot", "backtest", "--config", str(best), "--data", str(BTC_0808), "--db", str(tmp_path / "bt.db"), "--json", cwd=tmp_path)
    assert bt.returncode == 0, bt.stderr
    assert json.loads(bt.stdout)["status"] == "completed"

    # any trial can be inspected with bot report
    rp = run_module("bot", "report", "--db", str(db), "--run", wf["run_ids"][0], "--json", cwd=tmp_path)
    assert rp.returncode == 0, rp.stderr
    assert json.loads(rp.stdout)["pnl_net"] == pytest.approx(lb["folds"][0]["chosen_out_of_sample"]["pnl_net"])


def trials_committed_or_exited(proc: subprocess.Popen, db: Path, n: int) -> bool:
    """At least ``n`` trials are in the sweep's database, or the tune process ended (its checks say how)."""
    if proc.poll() is not None:
        return True
    try:
        return db.exists() and db_rows(db, "select count(*) from trials")[0][0] >= n
    except sqlite3.Error:  # not created yet, or busy
        return False


def test_sigterm_keeps_finished_trials_and_rerun_resumes_without_recomputing(tmp_path):
    config = sim_config(tmp_path)
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3, 5, 10]\n"strategy.enter_threshold" = [0.4, 0.5]\n')
    db = tmp_path / "tune.db"
    args = ["-m", "bot", "tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(db), "--workers", "2", "--json"]
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=clean_subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    try:
        wait_until(lambda: trials_committed_or_exited(proc, db, 3), "the sweep to commit three trials", interval=0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=HANG_GUARD_S)  # a hang guard, not a speed bound
    assert proc.returncode == 143, f"expected an interrupted sweep (rc {proc.returncode}): {err}"
    assert "re-run the same command to resume" in err
    assert json.loads(out)["complete"] is False

    kept = dict(db_rows(db, "select key, run_id from trials"))
    assert 3 <= len(kept) < 24
    runs_before = {r for (r,) in db_rows(db, "select run_id from runs")}
    # killed workers leave nothing behind: every stored run is a committed trial's run
    assert runs_before == set(kept.values())
    assert db_rows(db, "select count(*) from runs where status != 'completed'") == [(0,)]

    again = subprocess.run([sys.executable, *args], cwd=tmp_path, env=clean_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["complete"] and report["sweep"]["trials_resumed"] == len(kept)
    assert report["sweep"]["trials_run"] == 24 - len(kept)
    after = dict(db_rows(db, "select key, run_id from trials"))
    assert len(after) == 24 and all(after[k] == v for k, v in kept.items()), "finished trials were recomputed"
    runs_after = {r for (r,) in db_rows(db, "select run_id from runs")}
    assert runs_before <= runs_after and len(runs_after - runs_before) == 24 - len(kept)
    assert len(report["leaderboard"]["candidates"]) == 6

    # a third run has nothing to do and prints the same leaderboard from the database
    third = subprocess.run([sys.executable, *args], cwd=tmp_path, env=clean_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert json.loads(third.stdout)["sweep"]["trials_run"] == 0
    assert json.loads(third.stdout)["leaderboard"] == report["leaderboard"]
    assert db_rows(db, "select count(*) from runs") == [(24,)]


def test_max_trials_budget_and_text_leaderboard_in_process(tmp_path, capsys):
    config = sim_config(tmp_path, duration_s=120.0)
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\nobjective = "sharpe"\n[params]\n"signal.depth_levels" = [3, 10]\n')
    args = ["--config", str(config), "--space", str(space), "--sim", "--db", str(tmp_path / "t.db"), "--workers", "0", "--quiet"]
    assert bot_main(["tune", *args, "--max-trials", "3"]) == 0
    captured = capsys.readouterr()
    assert "stopped after --max-trials 3" in captured.err and "3 of 8" in captured.err
    assert bot_main(["tune", *args]) == 0
    text = capsys.readouterr().out
    for part in ("WALK-FORWARD RESULT (out-of-sample only", "selection by IN-SAMPLE sharpe", "OOS pnl_net", "signal.depth_levels",
                 "5 run now, 3 taken from", "best config: candidate #"):
        assert part in text
    assert validate_file(tmp_path / "best.toml") == []
