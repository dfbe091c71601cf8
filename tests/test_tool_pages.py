"""The HTML pages of `bot research --html` and `bot tune --html`: their charts equal report.json /
the sweep's JSON and database."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from report_helpers import ROOT, SPOT_BTC, bot, drawn_line_is_data, needs_spot, one_error_line, read_charts, self_contained, series


@needs_spot
def test_research_page_equals_its_report_json(tmp_path: Path) -> None:
    out = tmp_path / "research"
    page = tmp_path / "pages" / "research.html"
    proc = bot(tmp_path, "research", "--config", ROOT / "config" / "backtest.toml", "--data", *SPOT_BTC, "--out", out,
               "--html", page, "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    html = page.read_text()
    self_contained(html)
    charts = read_charts(html)
    pred, costs = report["predictive"], report["costs"]
    horizons = [h["horizon_s"] for h in pred["horizons"]]
    for key in ("ic", "r2_oos"):
        chart = charts[f"decay-{key}"]
        for name, d in pred["decay"].items():
            s = series(chart, name)
            assert s["y"] == [v for v in d[key] if v is not None]
            assert s["x"] == pytest.approx([math.log10(h) for h, v in zip(horizons, d[key]) if v is not None])
            drawn_line_is_data(chart, name)
    rt = costs["round_trip_taker_bps"]
    for signal, by_h in costs["buckets"].items():
        chart = charts[f"buckets-{signal}"]
        assert [h["y"] for h in chart["data"]["hlines"]] == [rt, -rt]
        for h in by_h:
            s = series(chart, f"h={h['horizon_s']:g}s")
            assert s["y"] == [b["move_mean_bps"] for b in h["buckets"]] and s["x"] == [b["bucket"] + 1 for b in h["buckets"]]
    ml = series(charts["multilevel"], "R² (levels as regressors)")
    assert ml["y"] == [r["r2_mean"] for r in report["cks"]["multilevel"]]
    assert "no signal bucket clears the taker round-trip cost" in html and all(f in html for f in pred["decay"])
    line = one_error_line(bot(tmp_path, "research", "--data", *SPOT_BTC, "--out", out, "--html", tmp_path))
    assert "--html" in line and "is a directory" in line


def test_tune_page_draws_the_walk_forward_curve_of_its_database(tmp_path: Path) -> None:
    head, sep, sim = (ROOT / "config" / "demo.toml").read_text().partition("\n[sim]\n")
    assert sep and "duration_s = 600.0" in sim
    config = tmp_path / "sim.toml"
    config.write_text(head + sep + sim.replace("duration_s = 600.0", "duration_s = 120.0", 1))
    space = tmp_path / "space.toml"
    space.write_text('[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3, 10]\n')
    page, db = tmp_path / "tune.html", tmp_path / "t.db"
    proc = bot(tmp_path, "tune", "--config", config, "--space", space, "--sim", "--db", db, "--workers", "0", "--quiet",
               "--json", "--html", page)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lb = json.loads(proc.stdout)["leaderboard"]
    html = page.read_text()
    self_contained(html)
    charts = read_charts(html)
    # the stitched curve, independently: each chosen OOS run's equity shifted to start where the last ended
    con = sqlite3.connect(db)
    initial = None
    offset, ts, values = 0.0, [], []
    for f in lb["folds"]:
        run = f["chosen_out_of_sample"]["run_id"]
        (start,) = con.execute("SELECT initial_equity FROM runs WHERE run_id = ?", (run,)).fetchone()
        initial = start if initial is None else initial
        rows = con.execute("SELECT ts, equity FROM equity WHERE run_id = ? ORDER BY ts, id", (run,)).fetchall()
        ts += [r[0] for r in rows]
        values += [r[1] - start + initial + offset for r in rows]
        offset += f["chosen_out_of_sample"]["pnl_net"]
    eq = series(charts["walk-forward-equity"], "equity")
    assert eq["x"] == ts and eq["y"] == pytest.approx(values, abs=1e-9)
    drawn_line_is_data(charts["walk-forward-equity"], "equity")
    assert [v["x"] for v in charts["walk-forward-equity"]["data"]["vlines"]] == [f["out_of_sample"]["start_ns"] for f in lb["folds"]]
    v = np.array(values)
    dd = series(charts["walk-forward-drawdown"], "drawdown")
    assert -min(dd["y"]) / 100 == pytest.approx(lb["walk_forward"]["max_drawdown"], abs=1e-6)
    assert -min(dd["y"]) / 100 == pytest.approx(((np.maximum.accumulate(v) - v) / np.maximum.accumulate(v)).max(), abs=1e-9)
    bars = charts["candidates-oos-pnl"]["data"]["series"]
    plotted = sorted((x, y) for s in bars for x, y in zip(s["x"], s["y"]))
    assert plotted == sorted((c["candidate"], c["out_of_sample_all_folds"]["pnl_net"]) for c in lb["candidates"])
    assert html.count("<tr>") >= len(lb["candidates"]) + len(lb["folds"]) and "Best config" in html
