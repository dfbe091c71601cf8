"""End to end: the real CLI replays real recordings (or the simulator) into SQLite, and the
database alone reproduces the printed summary."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
BTC_FILES = [SPOT / "btcusdt_20240808.gz", SPOT / "btcusdt_20240809.gz"]
needs_data = pytest.mark.skipif(
    not all(f.exists() for f in BTC_FILES),
    reason="../shared/data not present: the real Binance recordings are only available where the shared folder is mounted",
)


def run_cli(*args: str, cwd: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def db_rows(db: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def assert_db_matches_summary(db: Path, summary: dict) -> None:
    run_id = summary["run_id"]
    [(status, mode)] = db_rows(db, "select status, mode from runs where run_id = ?", run_id)
    assert status == "completed" and mode == "backtest"
    [(fills,)] = db_rows(db, "select count(*) from fills where run_id = ?", run_id)
    [(orders,)] = db_rows(db, "select count(*) from orders where run_id = ?", run_id)
    [(trips,)] = db_rows(db, "select count(*) from round_trips where run_id = ?", run_id)
    assert (fills, orders, trips) == (summary["fills"], summary["orders"], summary["trades"])
    fees = sum(Decimal(f) for (f,) in db_rows(db, "select fee from fills where run_id = ?", run_id))
    assert float(fees) == pytest.approx(summary["fees"], abs=1e-8)
    last_equity = db_rows(db, "select equity from equity where run_id = ? order by ts desc limit 1", run_id)
    assert last_equity and last_equity[0][0] == pytest.approx(summary["final_equity"], abs=1e-6)
    assert summary["pnl_net"] == pytest.approx(summary["final_equity"] - summary["initial_equity"], abs=1e-6)
    # every order reached a final state, every fill belongs to an order of the run
    open_orders = db_rows(db, "select client_order_id, status from orders where run_id = ? and status in ('new','partially_filled')", run_id)
    assert open_orders == []
    orphans = db_rows(db, "select count(*) from fills f left join orders o on o.run_id = f.run_id and o.client_order_id = f.client_order_id where f.run_id = ? and o.client_order_id is null", run_id)
    assert orphans == [(0,)]
    # flat at the end: the position history ends at zero, and the cash equals the final equity
    last_pos = db_rows(db, "select qty, cash from positions where run_id = ? order by rowid desc limit 1", run_id)
    if last_pos:
        assert Decimal(last_pos[0][0]) == 0
        assert float(Decimal(last_pos[0][1])) == pytest.approx(summary["final_equity"], abs=1e-6)


@needs_data
def test_backtest_spot_btcusdt_both_files(tmp_path):
    db = tmp_path / "bt.db"
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", *map(str, BTC_FILES), "--db", str(db), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout must hold exactly one JSON object"
    summary = json.loads(lines[0])
    for key in ("events", "trades", "pnl_net", "fees", "max_drawdown", "events_per_s", "run_id", "db"):
        assert key in summary
    source = summary["stats"]["source"]
    assert source["gaps"] == 0 and source["malformed"] == 0
    assert summary["events"] == sum(source["events"].values())
    assert summary["stats"]["crossed_book_events"] == 0
    assert summary["trades"] > 0 and summary["fees"] > 0, "the default config must trade on this recording"
    assert Path(summary["db"]).resolve() == db.resolve()
    assert_db_matches_summary(db, summary)

    report = run_cli("report", "--db", str(db), "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout) == summary

    text = run_cli("report", "--db", str(db), "--run", summary["run_id"], cwd=tmp_path)
    assert text.returncode == 0 and summary["run_id"] in text.stdout and "pnl_net" in text.stdout

    log = (tmp_path / "logs" / "bot.log").read_text().splitlines()
    assert log and all(json.loads(line)["run_id"] == summary["run_id"] for line in log)


@needs_data
def test_replay_is_deterministic(tmp_path):
    """Same data, same config: the same decisions, fill for fill."""
    fills = []
    for name in ("a.db", "b.db"):
        db = tmp_path / name
        proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(BTC_FILES[0]), "--db", str(db), "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        fills.append(db_rows(db, "select ts, side, price, amount, fee from fills order by rowid"))
    assert fills[0] and fills[0] == fills[1]


@needs_data
def test_corrupted_line_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "btcusdt_corrupt.gz"
    with gzip.open(BTC_FILES[0], "rt") as src, gzip.open(bad, "wt") as dst:
        for n, line in enumerate(src, 1):
            dst.write(line.split(" ", 1)[0] + " {not json\n" if n == 500 else line)
            if n >= 3000:
                break
    db = tmp_path / "c.db"
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(bad), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "btcusdt_corrupt.gz:500" in proc.stderr
    summary = json.loads(run_cli("report", "--db", str(db), "--json", cwd=tmp_path).stdout)
    assert summary["stats"]["source"]["malformed"] == 1


@needs_data
def test_recording_of_another_symbol_is_refused(tmp_path):
    eth = SPOT / "ethusdt_20240808.gz"
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(eth), "--db", str(tmp_path / "e.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "ETHUSDT" in proc.stderr and "market.symbol" in proc.stderr


def test_simulated_market_backtest(tmp_path):
    """The embedded default (make demo) works with no data and no network."""
    db = tmp_path / "sim.db"
    proc = run_cli(
        "backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--sim", "--db", str(db), "--json",
        cwd=tmp_path, env_extra={"BOT__SIM__DURATION_S": "120"},
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "completed" and summary["events"] > 1000
    assert summary["stats"]["source"]["source"] == "sim"
    assert_db_matches_summary(db, summary)


def test_missing_inputs_give_clear_errors(tmp_path):
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(tmp_path / "nope.gz"), cwd=tmp_path)
    assert proc.returncode == 1 and "nope.gz" in proc.stderr
    proc = run_cli("backtest", "--config", str(tmp_path / "missing.toml"), "--sim", cwd=tmp_path)
    assert proc.returncode == 1 and "missing.toml" in proc.stderr
    proc = run_cli("report", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert proc.returncode == 1 and "none.db" in proc.stderr


@needs_data
def test_maker_mode_rests_post_only_quotes_and_fills_at_its_own_prices(tmp_path):
    db = tmp_path / "maker.db"
    proc = run_cli(
        "backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(BTC_FILES[0]), "--db", str(db), "--json",
        cwd=tmp_path, env_extra={"BOT__STRATEGY__MODE": "maker"},
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert_db_matches_summary(db, summary)
    quotes = db_rows(db, "select client_order_id, order_type, price, status from orders where reason like 'quote%'")
    assert quotes and all(t == "limit_maker" for _, t, _, _ in quotes)
    assert {s for *_, s in quotes} <= {"filled", "canceled", "rejected", "partially_filled"} - {"partially_filled"}
    prices = {cid: Decimal(p) for cid, _, p, _ in quotes}
    maker_fills = db_rows(db, "select client_order_id, price, liquidity from fills where client_order_id in (%s)" % ",".join("?" * len(prices)), *prices)
    assert maker_fills, "the maker must get filled on this recording"
    assert all(liq == "maker" and Decimal(p) == prices[cid] for cid, p, liq in maker_fills)


@needs_data
def test_taker_mode_trades_only_when_the_move_clears_costs(tmp_path):
    base = ["backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(BTC_FILES[0]), "--json"]
    honest = run_cli(*base, "--db", str(tmp_path / "t1.db"), cwd=tmp_path, env_extra={"BOT__STRATEGY__MODE": "taker"})
    assert honest.returncode == 0, honest.stderr
    assert json.loads(honest.stdout)["orders"] == 0, "a 1 bps expected move can never clear 20 bps of fees"
    optimistic = run_cli(
        *base, "--db", str(tmp_path / "t2.db"), cwd=tmp_path,
        env_extra={"BOT__STRATEGY__MODE": "taker", "BOT__STRATEGY__EXPECTED_MOVE_BPS": "40"},
    )
    summary = json.loads(optimistic.stdout)
    assert summary["orders"] > 0 and summary["trades"] > 0


@needs_data
def test_fast_cli_backtest_stores_the_same_fills(tmp_path):
    fills = {}
    for flag in ("", "--fast"):
        db = tmp_path / f"x{flag}.db"
        args = ["backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", *map(str, BTC_FILES), "--db", str(db), "--json"]
        proc = run_cli(*args, *(["--fast", "--cache", str(tmp_path / "cache")] if flag else []), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert_db_matches_summary(db, summary)
        fills[flag] = (summary["trades"], summary["pnl_net"], db_rows(db, "select ts, side, price, amount, fee from fills order by id"))
    assert fills[""] == fills["--fast"] and fills[""][2]


# --------------------------------------------------------------------------- bad inputs: one error line, exit 1
def write_foreign(path: Path, kind: str) -> Path:
    """Files a user may give to --data by mistake."""
    if kind == "plain-text":  # not gzip at all
        path.write_text("1723161253937085768 {}\n")
        return path
    text = {
        "gzipped-csv": "timestamp,side,price,qty\n" + "".join(f"{1723161253 + i},buy,{61000 + i},0.01\n" for i in range(30)),
        "gzipped-json": "".join(json.dumps({"id": i, "price": 61000.5 + i, "tags": ["x"]}) + "\n" for i in range(30)),
        "gzipped-empty": "",
    }[kind]
    with gzip.open(path, "wt") as fh:
        fh.write(text)
    return path


FOREIGN = ("gzipped-csv", "gzipped-json", "gzipped-empty", "plain-text")


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line of a refused command (no traceback, nothing else on stderr's last line)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
def test_foreign_data_files_are_refused_naming_the_file(tmp_path, fast):
    for kind in FOREIGN:
        path = write_foreign(tmp_path / f"{kind}.gz", kind)
        db = tmp_path / f"{kind}.db"
        proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(path), "--db", str(db), "--json",
                       *(["--fast", "--cache", str(tmp_path / "cache")] if fast else []), cwd=tmp_path)
        line = error_line(proc)
        assert str(path) in line, (kind, line)
        assert proc.stdout == "", "no summary of a run that did not happen"
        # the reader registry tried every format (the raw-stream reader among them) and names them
        assert "not a recognized data file" in line and "formats tried: binance-raw" in line and "--format" in line, line
        assert not db.exists() or not db_rows(db, "select count(*) from runs where status = 'completed'")[0][0]
    if not fast:  # the readable path refuses before storing a run
        assert not any((tmp_path / f"{kind}.db").exists() for kind in FOREIGN)


def test_recording_without_market_events_is_refused(tmp_path):
    path = tmp_path / "btcusdt_aggtrades.gz"
    with gzip.open(path, "wt") as fh:
        for i in range(5):
            fh.write(f"{1723161253000000000 + i} " + json.dumps({"stream": "btcusdt@aggTrade", "data": {"a": i}}) + "\n")
    for fast in ([], ["--fast", "--cache", str(tmp_path / "cache")]):
        proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(path), "--db", str(tmp_path / "x.db"), *fast, cwd=tmp_path)
        line = error_line(proc)
        assert str(path) in line and "no market events" in line


def test_a_few_malformed_lines_still_replay(tmp_path):
    """Bad lines among good ones are counted and reported, not a reason to refuse the file."""
    from emulator_helpers import write_recording

    path = tmp_path / "btcusdt_synthetic.gz"
    write_recording(path, seconds=1.0)
    lines = gzip.open(path, "rt").read().splitlines()
    lines[5] = lines[5][:-10]  # truncated JSON
    lines.insert(8, "garbage without a timestamp")
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(path), "--db", str(tmp_path / "m.db"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "btcusdt_synthetic.gz:6: invalid JSON" in proc.stderr and "btcusdt_synthetic.gz:9:" in proc.stderr


def _raise_on_constant(name: str):
    raise AssertionError(f"not strict JSON: {name}")


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
def test_zero_trade_backtest_json_is_strict(tmp_path, fast):
    """A recording whose book never syncs (no snapshot): no spread, no trades. The summary says null, not NaN."""
    from emulator_helpers import write_recording

    full = tmp_path / "full.gz"
    write_recording(full, seconds=1.0)
    path = tmp_path / "btcusdt_nosnapshot.gz"
    with gzip.open(full, "rt") as src, gzip.open(path, "wt") as dst:
        dst.writelines(line for line in src if '"lastUpdateId"' not in line)
    db = tmp_path / "z.db"
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(path), "--db", str(db), "--json",
                   *(["--fast", "--cache", str(tmp_path / "cache")] if fast else []), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout, parse_constant=_raise_on_constant)
    assert summary["trades"] == 0 and summary["events"] > 0
    hurdle = summary["stats"]["cost_hurdle"]
    assert hurdle["mean_spread_bps"] is None and hurdle["taker_round_trip_bps"] is None and "no sound book" in hurdle["note"]
    assert hurdle["maker_round_trip_bps"] == 20.0
    report = run_cli("report", "--db", str(db), "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    summary.pop("fast_path", None)  # said by the --fast run only, not stored
    assert json.loads(report.stdout, parse_constant=_raise_on_constant) == summary


def test_sim_zero_trade_backtest_and_report_json_are_strict(tmp_path):
    db = tmp_path / "sim0.db"
    proc = run_cli("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--sim", "--db", str(db), "--json", cwd=tmp_path,
                   env_extra={"BOT__SIM__DURATION_S": "30", "BOT__STRATEGY__ENTER_THRESHOLD": "1.0"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout, parse_constant=_raise_on_constant)
    assert summary["trades"] == 0 and summary["win_rate"] is None and summary["sharpe"] is None
    report = run_cli("report", "--db", str(db), "--json", cwd=tmp_path)
    assert json.loads(report.stdout, parse_constant=_raise_on_constant) == summary


USDM_0808 = shared_data_dir() / "hftbacktest-binance" / "usdm" / "btcusdt_20240808.gz"
needs_usdm = pytest.mark.skipif(
    not (USDM_0808.exists() and BTC_FILES[0].exists()),
    reason="../shared/data not present: the real Binance recordings are only available where the shared folder is mounted",
)


@needs_usdm
@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
def test_market_type_mismatch_is_refused(tmp_path, fast):
    """USD-M data with a spot config (and the reverse) would replay with the wrong fees and sizes."""
    extra = ["--fast", "--cache", str(tmp_path / "cache")] if fast else []
    usdm_cfg = ROOT / "config" / "backtest-usdm-btcusdt.toml"
    spot_cfg = ROOT / "config" / "backtest.toml"
    proc = run_cli("backtest", "--config", str(usdm_cfg), "--data", str(BTC_FILES[0]), "--db", str(tmp_path / "a.db"), *extra, cwd=tmp_path)
    line = error_line(proc)
    assert 'recording is spot (market type "spot")' in line and 'market.type is "linear"' in line and str(usdm_cfg) in line
    assert line.endswith("use " + str(spot_cfg))
    proc = run_cli("backtest", "--config", str(spot_cfg), "--data", str(USDM_0808), "--db", str(tmp_path / "b.db"), *extra, cwd=tmp_path)
    line = error_line(proc)
    assert 'recording is USD-M linear perpetual (market type "linear")' in line and 'market.type is "spot"' in line and str(spot_cfg) in line
    assert line.endswith("use " + str(usdm_cfg))
    if not fast:  # refused before the run is stored
        assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


@pytest.mark.parametrize("fast", [False, True], ids=["readable", "fast"])
def test_market_type_mismatch_is_refused_on_a_synthetic_recording(tmp_path, fast):
    """The same check without the shared data: a small USD-M recording, spot and USD-M configs."""
    from emulator_helpers import write_usdm_recording

    path = tmp_path / "btcusdt_usdm.gz"
    write_usdm_recording(path, seconds=1.0)
    extra = ["--fast", "--cache", str(tmp_path / "cache")] if fast else []
    spot_cfg = ROOT / "config" / "backtest.toml"
    proc = run_cli("backtest", "--config", str(spot_cfg), "--data", str(path), "--db", str(tmp_path / "a.db"), *extra, cwd=tmp_path)
    line = error_line(proc)
    assert 'recording is USD-M linear perpetual (market type "linear") but market.type is "spot" in ' + str(spot_cfg) in line
    assert line.endswith("use " + str(ROOT / "config" / "backtest-usdm-btcusdt.toml"))
    usdm_cfg = ROOT / "config" / "backtest-usdm-btcusdt.toml"
    proc = run_cli("backtest", "--config", str(usdm_cfg), "--data", str(path), "--db", str(tmp_path / "b.db"), "--json", *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads(proc.stdout)["stats"]
    assert stats["source"]["market_type"] == "linear"
    assert stats["command"]["engine"] == "fast", "a linear perpetual replays on the compiled scan (the default engine)"


def test_a_perpetual_recording_with_mark_price_messages_replays_readable_from_its_files(tmp_path):
    """The columnar arrays leave markPrice/forceOrder out: the fast engine hands such a recording
    to the readable one, which reads the files again (so mark-price funding is not lost), and
    says why."""
    from emulator_helpers import write_coinm_recording

    path = tmp_path / "btcusd_perp.gz"
    write_coinm_recording(path, seconds=2.0)
    cfg = ROOT / "config" / "backtest-coinm-btcusd.toml"
    out, notes = {}, {}
    for engine in ("fast", "readable"):
        proc = run_cli("backtest", "--config", str(cfg), "--data", str(path), "--db", str(tmp_path / f"{engine}.db"), "--json",
                       "--engine", engine, "--cache", str(tmp_path / "cache"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        out[engine], notes[engine] = json.loads(proc.stdout), proc.stderr
    command = out["fast"]["stats"]["command"]
    assert command["engine"] == "readable" and "mark-price" in command["engine_reason"] and "liquidation" in command["engine_reason"]
    assert "note: the readable engine runs this backtest (the recording has perpetual messages" in notes["fast"]
    assert out["fast"]["stats"]["source"]["mark_prices"] == out["readable"]["stats"]["source"]["mark_prices"] > 0
    for key in ("events", "orders", "fills", "funding", "pnl_net"):
        assert out["fast"][key] == out["readable"][key], key


def test_strict_json_writes_null_for_non_finite_numbers():
    from decimal import Decimal

    import numpy as np

    from bot.store.jsonout import strict_json

    text = strict_json({"a": float("nan"), "b": [1.5, float("inf"), (-float("inf"), np.float64("nan"))], "c": np.int64(3),
                        "d": np.array([1.0, np.nan]), "e": Decimal("0.1"), "f": np.bool_(True), 7: None})
    assert json.loads(text, parse_constant=_raise_on_constant) == {
        "a": None, "b": [1.5, None, [None, None]], "c": 3, "d": [1.0, None], "e": "0.1", "f": True, "7": None}
