"""`bot report --html`: the page of a real backtest of the shared recording, parsed back. Every
chart's data must equal the database rows, and what is drawn must map back to that data."""

from __future__ import annotations

import re
import shutil
import sqlite3
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest

from bot.store import summarize
from bot.store.svg import MAX_POINTS
from report_helpers import SPOT_ALL, backtest, bot, drawn_line_is_data, needs_spot, pixel, read_charts, self_contained, series, to_data, write_equity_run


@pytest.fixture(scope="module")
def spot_db(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("html")
    return backtest(tmp, tmp / "bt.db")


def _page(db: Path, out: Path, *extra: str) -> str:
    proc = bot(db.parent, "report", "--db", db, "--html", out, *extra)  # parent folders of OUT are created
    assert proc.returncode == 0, proc.stderr
    assert f"to {out}" in proc.stderr
    return out.read_text(encoding="utf-8")


@needs_spot
def test_report_page_charts_equal_the_database(spot_db: Path, tmp_path: Path) -> None:
    html = _page(spot_db, tmp_path / "page" / "run.html")
    self_contained(html)
    charts = read_charts(html)
    assert {"equity", "drawdown", "price-BTC-USDT", "pnl-per-trade", "pnl-distribution", "pnl-cumulative"} <= set(charts)
    con = sqlite3.connect(spot_db)
    eq = con.execute("SELECT ts, equity, mid FROM equity ORDER BY ts, id").fetchall()
    assert len(eq) < MAX_POINTS, "this run is drawn point for point"
    ts = [r[0] for r in eq]
    values = np.array([r[1] for r in eq])

    equity = series(charts["equity"], "equity")
    assert equity["x"] == ts and equity["y"] == [r[1] for r in eq]
    drawn_line_is_data(charts["equity"], "equity")
    peak = np.maximum.accumulate(values)
    drawdown = series(charts["drawdown"], "drawdown")
    assert drawdown["x"] == ts and drawdown["y"] == pytest.approx(list(-100 * (peak - values) / peak), abs=1e-12)
    s = summarize(spot_db)
    assert -min(drawdown["y"]) / 100 == pytest.approx(s["max_drawdown"], abs=1e-6)
    drawn_line_is_data(charts["drawdown"], "drawdown")
    halts = [t for (t,) in con.execute("SELECT ts FROM risk_events WHERE kind = 'halt' ORDER BY ts")]
    assert halts and [v["x"] for v in charts["equity"]["data"]["vlines"]] == halts, "the daily-loss halt is on the chart"
    assert [h["y"] for h in charts["equity"]["data"]["hlines"]] == [s["initial_equity"]]

    price = charts["price-BTC-USDT"]
    mid = series(price, "mid")
    assert mid["x"] == ts and mid["y"] == [r[2] for r in eq]
    drawn_line_is_data(price, "mid")
    ex, ey = pixel(price)
    for side in ("buy", "sell"):
        fills = con.execute("SELECT ts, price FROM fills WHERE side = ? ORDER BY ts, id", (side,)).fetchall()
        data = series(price, side)
        assert data["x"] == [f[0] for f in fills] and data["y"] == [float(D(f[1])) for f in fills]
        drawn = price["markers"][side]
        assert len(drawn) == len(fills)
        for (px, py), (t, p) in zip(drawn, fills):
            x, y = to_data(price, px, py)
            assert abs(x - t) <= ex and abs(y - float(p)) <= ey

    trips = con.execute("SELECT pnl_net, pnl_gross, fees FROM round_trips ORDER BY close_ts, id").fetchall()
    net = [float(D(r[0])) for r in trips]
    bars = charts["pnl-per-trade"]
    plotted = sorted(zip(series(bars, "win")["x"] + series(bars, "loss")["x"], series(bars, "win")["y"] + series(bars, "loss")["y"]))
    assert plotted == list(zip(range(1, len(trips) + 1), net))
    _, ey = pixel(bars)  # the bars stand on the zero line: the end away from it is the value
    for name in ("win", "loss"):
        for (x, y, w, h), value in zip(bars["bars"].get(name, []), series(bars, name)["y"]):
            top, bottom = to_data(bars, x, y)[1], to_data(bars, x, y + h)[1]
            end = top if value > 0 else bottom
            assert abs(end - value) <= 2 * ey, (value, end)
    hist = charts["pnl-distribution"]
    h = series(hist, "trades")
    counts, _ = np.histogram(net, bins=np.array(h["edges"]))
    assert h["y"] == counts.tolist() and sum(h["y"]) == len(trips)
    cumulative = charts["pnl-cumulative"]
    assert series(cumulative, "cumulative net")["y"][-1] == pytest.approx(float(sum(D(r[0]) for r in trips)), abs=1e-6)
    assert series(cumulative, "cumulative fees")["y"][-1] == pytest.approx(-float(sum(D(r[2]) for r in trips)), abs=1e-6)

    # the tables and cards are the summary's figures
    assert html.count("<tr>") > len(trips), "the trade list is on the page"
    assert re.search(r'<table id="trades">.*?</table>', html, re.S).group(0).count("<tr>") == len(trips) + 1
    money = [f"{D(str(s[k])):.8f}".rstrip("0").rstrip(".") for k in ("pnl_net", "pnl_gross", "fees")]
    for text in (*money, "daily_loss_limit", "too short to estimate", "taker_round_trip_bps", "exit reason"):
        assert text in html, text


@needs_spot
def test_text_from_the_database_is_escaped(spot_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copy(spot_db, db)
    with sqlite3.connect(db) as con:
        run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
        con.execute("INSERT INTO risk_events (run_id, ts, kind, rule, detail, symbol) VALUES (?, ?, 'halt', 'kill_switch', ?, 'BTC/USDT')",
                    (run_id, 1723161900000000000, '<script>alert("x")</script> & <img src=x onerror=alert(1)>'))
    html = _page(db, tmp_path / "run.html")
    assert "<script>alert" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in html
    assert len(read_charts(html)["equity"]["data"]["vlines"]) == 2


def test_a_long_equity_curve_is_downsampled_keeping_its_extremes(tmp_path: Path) -> None:
    db = tmp_path / "long.db"
    n = 60_000
    rng = np.random.default_rng(5)
    values = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 2e-4, n))
    ts = 1_700_000_000 * 10**9 + np.arange(n, dtype=np.int64) * 10**9
    write_equity_run(db, ts.tolist(), values.tolist())
    html = _page(db, tmp_path / "long.html")
    charts = read_charts(html)
    eq = series(charts["equity"], "equity")
    assert len(eq["x"]) <= MAX_POINTS and eq["x"] == sorted(eq["x"])
    rows = dict(zip(ts.tolist(), values.tolist()))
    assert all(rows[x] == y for x, y in zip(eq["x"], eq["y"])), "every drawn point is a stored row"
    assert (eq["x"][0], eq["x"][-1]) == (int(ts[0]), int(ts[-1]))
    assert max(eq["y"]) == values.max() and min(eq["y"]) == values.min()
    dd = series(charts["drawdown"], "drawdown")
    assert -min(dd["y"]) / 100 == pytest.approx(summarize(db)["max_drawdown"], abs=1e-6), "the deepest drawdown is drawn"
    drawn_line_is_data(charts["equity"], "equity")
    assert "no trades" in html and "60,000 equity rows" in html


@needs_spot
def test_several_instruments_each_get_their_section(tmp_path: Path) -> None:
    db = backtest(tmp_path, tmp_path / "multi.db", config="backtest-spot-btc-eth.toml", files=SPOT_ALL)
    html = _page(db, tmp_path / "multi.html")
    charts = read_charts(html)
    con = sqlite3.connect(db)
    s = summarize(db)
    for symbol, chart_id in (("BTC/USDT", "price-BTC-USDT"), ("ETH/USDT", "price-ETH-USDT")):
        assert f'id="instrument-{chart_id[6:]}"' in html
        price = charts[chart_id]
        fills = con.execute("SELECT ts, price, side FROM fills WHERE symbol = ? ORDER BY ts, id", (symbol,)).fetchall()
        line = series(price, "fill price")
        assert line["x"] == [f[0] for f in fills] and line["y"] == [float(f[1]) for f in fills]
        buys = [f for f in fills if f[2] == "buy"]
        assert series(price, "buy")["x"] == [f[0] for f in buys] and len(price["markers"]["buy"]) == len(buys)
        row = next(i for i in s["instruments"] if i["symbol"] == symbol)
        assert f"<td class=t>{symbol}</td><td>{row['trades']}</td><td>{row['orders']}</td><td>{row['fills']}</td>" in html
    assert "carry no instrument" in html
