"""`bot report`'s trader figures (trade_stats, ratios, --trades, --csv) against the database rows of
real backtests of the shared recording, and the ratio formulas on a long run written by the Store."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from collections import Counter
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest

from bot.store import summarize
from bot.store.ratios import MIN_RETURNS
from report_helpers import backtest, bot, needs_spot, one_error_line, write_equity_run

# the keys `bot report --json` had before the trader figures: none may go or change name
OLD_KEYS = {"run_id", "db", "mode", "symbol", "status", "started_at", "ended_at", "events", "wall_time_s", "events_per_s",
            "trades", "fills", "orders", "rejects", "pnl_gross", "fees", "pnl_net", "win_rate", "max_drawdown", "sharpe",
            "sharpe_annualization", "initial_equity", "final_equity", "settle", "funding", "carried", "instruments", "stats"}


@pytest.fixture(scope="module", params=["threshold", "maker"])
def run_db(request, tmp_path_factory) -> Path:
    """The default (threshold) and the maker strategy on spot BTCUSDT 2024-08-08/09 (650 s)."""
    tmp = tmp_path_factory.mktemp(request.param)
    return backtest(tmp, tmp / "bt.db", env={"BOT__STRATEGY__MODE": request.param})


def _trips(db: Path) -> list[dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM round_trips ORDER BY close_ts, id")]
    for r in rows:
        # the exit reason, independently: the order of the last fill at the closing time
        hit = con.execute("SELECT o.reason FROM fills f JOIN orders o ON o.run_id = f.run_id AND o.client_order_id = f.client_order_id "
                          "WHERE f.run_id = ? AND f.symbol = ? AND f.ts = ? ORDER BY f.id DESC LIMIT 1",
                          (r["run_id"], r["symbol"], r["close_ts"])).fetchone()
        r["reason"] = hit[0].split(":")[0] if hit else "dust"
    con.close()
    return rows


@needs_spot
def test_trade_figures_equal_the_rows(run_db: Path) -> None:
    proc = bot(run_db.parent, "report", "--db", run_db, "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert OLD_KEYS <= set(s) and {"sharpe_reason", "ratios", "trade_stats"} <= set(s)
    t = s["trade_stats"]
    trips = _trips(run_db)
    n = len(trips)
    assert n > 0 and t["trades"] == s["trades"] == n
    net = [D(r["pnl_net"]) for r in trips]
    gross = [D(r["pnl_gross"]) for r in trips]
    wins, losses = [v for v in net if v > 0], [v for v in net if v < 0]
    assert (t["wins"], t["losses"]) == (len(wins), len(losses))
    assert t["win_rate"] == s["win_rate"] == pytest.approx(len(wins) / n, abs=1e-6)
    assert t["win_rate_gross"] == pytest.approx(sum(1 for g in gross if g > 0) / n, abs=1e-6)
    assert t["avg_loss"] == pytest.approx(float(sum(losses) / len(losses)), abs=1e-8)
    assert t["avg_win"] == (None if not wins else pytest.approx(float(sum(wins) / len(wins)), abs=1e-8))
    lost_gross = -sum(g for g in gross if g < 0)
    assert t["profit_factor_gross"] == pytest.approx(float(sum(g for g in gross if g > 0) / lost_gross), rel=1e-7)
    assert t["profit_factor"] == pytest.approx(float(sum(wins) / -sum(losses)), abs=1e-8)
    # trips of one instrument never overlap: the exposure is the sum of their durations
    assert t["exposure_s"] == pytest.approx(sum(r["close_ts"] - r["open_ts"] for r in trips) / 1e9, abs=1e-3)
    con = sqlite3.connect(run_db)
    first, last = con.execute("SELECT min(ts), max(ts) FROM equity").fetchone()
    assert t["span_s"] == pytest.approx((last - first) / 1e9, abs=1e-3)
    assert t["exposure"] == pytest.approx(t["exposure_s"] / t["span_s"], abs=1e-5)  # both rounded to 1 ms
    # results per exit reason add up to the trips, reason by reason
    by = {r["exit_reason"]: r for r in t["by_exit_reason"]}
    assert {k: v["trades"] for k, v in by.items()} == dict(Counter(r["reason"] for r in trips))
    for reason, row in by.items():
        mine = [r for r in trips if r["reason"] == reason]
        assert row["pnl_net"] == pytest.approx(float(sum(D(r["pnl_net"]) for r in mine)), abs=1e-8)
        assert row["fees"] == pytest.approx(float(sum(D(r["fees"]) for r in mine)), abs=1e-8)
    assert t["pnl_net"] == pytest.approx(float(sum(net)), abs=1e-8)
    # 650 s of market: no Sharpe, and the page / text say why
    assert s["sharpe"] is None and all(s["ratios"][k] is None for k in ("sharpe", "sortino", "cagr", "calmar"))
    assert f"at least {MIN_RETURNS} daily returns" in s["sharpe_reason"] and "10.8 min" in s["sharpe_reason"]
    text = bot(run_db.parent, "report", "--db", run_db).stdout
    assert "sharpe:" in text and "n/a (too short to estimate" in text and "by exit reason:" in text
    assert "win rate" in text and "before" in text and "profit factor" in text and "exposure" in text


@needs_spot
def test_trade_list_as_table_json_and_csv_equals_the_rows(run_db: Path, tmp_path: Path) -> None:
    trips = _trips(run_db)
    con = sqlite3.connect(run_db)
    fills = con.execute("SELECT ts, symbol, price FROM fills ORDER BY id").fetchall()
    first_at = {}
    last_at = {}
    for ts, sym, price in fills:
        first_at.setdefault((sym, ts), price)
        last_at[(sym, ts)] = price

    table = bot(tmp_path, "report", "--db", run_db, "--trades")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert lines[0].startswith("trades (money in USDT)") and len(lines) == 2 + len(trips)
    as_json = json.loads(bot(tmp_path, "report", "--db", run_db, "--trades", "--json").stdout)
    out = tmp_path / "sub" / "trades.csv"
    written = bot(tmp_path, "report", "--db", run_db, "--csv", out)
    assert written.returncode == 0 and f"wrote {len(trips)} trades" in written.stderr
    assert written.stdout.startswith("run_id:"), "the summary is still printed"
    rows = list(csv.DictReader(out.open()))
    to_stdout = bot(tmp_path, "report", "--db", run_db, "--csv", "-")
    assert list(csv.DictReader(io.StringIO(to_stdout.stdout))) == rows
    assert len(rows) == len(as_json["trades"]) == len(trips)
    for row, js, trip in zip(rows, as_json["trades"], trips):
        for key in ("pnl_gross", "fees", "pnl_net", "max_qty"):  # exact, as stored
            assert D(row[key]) == D(js[key]) == D(trip[key])
        assert int(row["id"]) == js["id"] == trip["id"] and row["side"] == trip["side"] and row["symbol"] == trip["symbol"]
        assert row["exit_reason"] == js["exit_reason"] == trip["reason"]
        assert D(row["entry_price"]) == D(first_at[(trip["symbol"], trip["open_ts"])])
        assert D(row["exit_price"]) == D(last_at[(trip["symbol"], trip["close_ts"])])
        assert float(row["holding_s"]) == pytest.approx((trip["close_ts"] - trip["open_ts"]) / 1e9, abs=1e-3)


@needs_spot
def test_every_bad_report_input_is_one_line(run_db: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    cases = {
        ("--run", "no-such-run"): "run 'no-such-run' not found",
        ("--html", tmp_path): "is a directory",
        ("--html", tmp_path / "a-file" / "page.html"): "cannot write the page",
        ("--csv", tmp_path / "a-file" / "t.csv"): "cannot write the trade list",
        ("--html", run_db): "is the database itself",
        ("--csv", "-", "--json"): "--csv - writes the trade list to stdout",
        ("--html", tmp_path / "same", "--csv", tmp_path / "same"): "name the same file",
    }
    for args, message in cases.items():
        line = one_error_line(bot(tmp_path, "report", "--db", run_db, *args))
        assert message in line, (args, line)
    assert "database not found" in one_error_line(bot(tmp_path, "report", "--db", tmp_path / "none.db", "--html", tmp_path / "x.html"))
    assert not (tmp_path / "x.html").exists() and not (tmp_path / "same").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"], "a refused write leaves nothing behind"


# --------------------------------------------------------------------------- the ratio formulas
def _long_run(db: Path, days: float, seed: int = 3, drift: float = 2e-5, vol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """An hourly equity curve over ``days`` of market time, written through the Store."""
    hours = int(days * 24)
    rng = np.random.default_rng(seed)
    equity = 10_000.0 * np.cumprod(np.r_[1.0, 1.0 + rng.normal(drift, vol, hours)])
    ts = 1_700_000_000 * 10**9 + np.arange(hours + 1, dtype=np.int64) * 3600 * 10**9
    write_equity_run(db, ts.tolist(), equity.tolist())
    return ts, equity


def test_ratios_follow_their_definitions_on_a_long_run(tmp_path: Path) -> None:
    ts, equity = _long_run(tmp_path / "long.db", days=45)
    s = summarize(tmp_path / "long.db")
    daily = equity[::24]  # hourly rows: every 24th is on a whole day since the first
    r = daily[1:] / daily[:-1] - 1
    assert s["ratios"]["returns"] == len(r) == 45 and s["sharpe_reason"] is None
    assert s["sharpe"] == s["ratios"]["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365), abs=1e-4)
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2))
    assert s["ratios"]["sortino"] == pytest.approx(r.mean() / downside * math.sqrt(365), abs=1e-4)
    cagr = (equity[-1] / equity[0]) ** (365 / 45) - 1
    assert s["ratios"]["cagr"] == pytest.approx(cagr, abs=1e-4)
    peak = np.maximum.accumulate(equity)
    assert s["ratios"]["calmar"] == pytest.approx(cagr / ((peak - equity) / peak).max(), abs=1e-3)


def test_ratios_need_thirty_daily_returns(tmp_path: Path) -> None:
    _long_run(tmp_path / "short.db", days=MIN_RETURNS - 0.5)
    s = summarize(tmp_path / "short.db")
    assert s["sharpe"] is None and s["ratios"]["returns"] == MIN_RETURNS - 1
    assert "29.5 days" in s["sharpe_reason"] and f"at least {MIN_RETURNS} daily returns" in s["sharpe_reason"]
    _long_run(tmp_path / "enough.db", days=MIN_RETURNS)
    assert summarize(tmp_path / "enough.db")["sharpe"] is not None
    _long_run(tmp_path / "rising.db", days=40, drift=1e-3, vol=1e-5)  # never a losing day, never a drawdown
    s = summarize(tmp_path / "rising.db")
    assert s["sharpe"] is not None and s["ratios"]["sortino"] is None and s["ratios"]["calmar"] is None
    assert "no losing day" in s["ratios"]["reason"] and "no drawdown" in s["ratios"]["reason"]
