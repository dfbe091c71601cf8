"""``bot tune --html OUT.html``: the walk-forward result and the leaderboard as one self-contained page.

Why: a sweep's answer is a picture (does the out-of-sample equity go anywhere?) plus two tables;
the page draws them with the inline SVG charts of ``bot report --html`` (:mod:`bot.store.svg`)
from the same leaderboard dict ``--json`` prints and the sweep database's equity rows: the
walk-forward equity is :func:`bot.tune.leaderboard.stitched_curve` of the chosen candidates'
out-of-sample runs (the curve the walk-forward Sharpe and drawdown are computed on), with a line
where each fold's out-of-sample segment starts.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.page import cards, page, paragraph, section, table, write_text
from bot.store.report import drawdown_series
from bot.store.svg import Series, chart, downsample
from bot.tune.leaderboard import stitched_curve


def _n(x: Any, digits: int = 4) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def walk_forward_curve(db_path: str | Path, leaderboard: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The stitched out-of-sample equity of the chosen candidates, fold by fold."""
    conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True, timeout=60)
    try:
        results = []
        for f in leaderboard["folds"]:
            oos = f["chosen_out_of_sample"]
            (initial,) = conn.execute("SELECT initial_equity FROM runs WHERE run_id = ?", (oos["run_id"],)).fetchone()
            results.append({"run_id": oos["run_id"], "pnl_net": oos["pnl_net"], "initial_equity": initial})
        return stitched_curve(conn, results)
    finally:
        conn.close()


def _charts(ts: np.ndarray, curve: np.ndarray, lb: dict[str, Any]) -> str:
    folds = [(f["out_of_sample"]["start_ns"], "#5b6475", f"fold {f['fold']}: out-of-sample segment {f['out_of_sample']['segment']} starts")
             for f in lb["folds"]]
    idx = downsample(curve)
    eq = chart("walk-forward-equity", "Walk-forward equity: the chosen candidates' out-of-sample runs, end to end",
               [Series("equity", [int(v) for v in ts[idx]], [float(v) for v in curve[idx]])], vlines=folds,
               note="dashed: where each fold's out-of-sample segment starts")
    dd = drawdown_series(curve)
    idx = downsample(-dd)
    drawdown = chart("walk-forward-drawdown", "Walk-forward drawdown (% below the running peak)",
                     [Series("drawdown", [int(v) for v in ts[idx]], [float(-100 * v) for v in dd[idx]], color="#b42318")],
                     vlines=folds, height=180)
    cands = lb["candidates"]
    chosen = {c["candidate"] for c in cands if c["chosen_in_folds"]}
    bars = [Series(name, [c["candidate"] for c in cands if (c["candidate"] in chosen) == pick],
                   [c["out_of_sample_all_folds"]["pnl_net"] for c in cands if (c["candidate"] in chosen) == pick], kind="bars", color=color,
                   width=0.8)
            for name, color, pick in (("chosen in a fold", "#067647", True), ("never chosen", "#1f5fbf", False))]
    pnl = chart("candidates-oos-pnl", "Every candidate's out-of-sample net PnL, all folds together (never used to choose)",
                [b for b in bars if b.x], time_x=False, integer_x=True, note="x: candidate number")
    return eq + drawdown + pnl


def build_page(report: dict[str, Any], ts: np.ndarray, curve: np.ndarray) -> str:
    """The page of a finished sweep (``report`` as ``bot tune --json`` prints it)."""
    lb, sweep = report["leaderboard"], report["sweep"]
    objective = lb["objective"]
    wf, best = lb["walk_forward"], lb["best"]
    headline = cards([("walk-forward pnl_net", _n(wf["pnl_net"])), ("walk-forward fees", _n(wf["fees"])), ("trades", wf["trades"]),
                      ("max drawdown", _pct(wf["max_drawdown"])), ("best candidate", f"#{best['candidate']}")])
    folds = table(("fold", "in-sample segments", "OOS segment", "chosen", f"IS {objective}", "OOS pnl_net", "OOS max DD", "OOS trades", "OOS run"),
                  [(f["fold"], ", ".join(map(str, f["in_sample"]["segments"])), f["out_of_sample"]["segment"], f"#{f['chosen']}",
                    _n(f["chosen_in_sample"][objective]), _n(f["chosen_out_of_sample"]["pnl_net"]), _pct(f["chosen_out_of_sample"]["max_drawdown"]),
                    f["chosen_out_of_sample"]["trades"], f["chosen_out_of_sample"]["run_id"]) for f in lb["folds"]], ident="folds")
    keys = list(lb["candidates"][0]["params"]) if lb["candidates"] else []
    board = table(("rank", "candidate", *keys, f"IS {objective} by fold", "OOS pnl_net (all folds)", "OOS max DD", "OOS trades", "chosen in folds"),
                  [(c["in_sample_rank_last_fold"], f"#{c['candidate']}", *(c["params"][k] for k in keys),
                    " / ".join(_n(x[objective], 2) for x in c["in_sample"]), _n(c["out_of_sample_all_folds"]["pnl_net"]),
                    _pct(c["out_of_sample_all_folds"]["max_drawdown"]), c["out_of_sample_all_folds"]["trades"],
                    ", ".join(map(str, c["chosen_in_folds"])) or "-") for c in lb["candidates"]], ident="leaderboard")
    body = [
        headline, paragraph(wf.get("note", "")),
        section("Walk-forward result", _charts(ts, curve, lb), folds, ident="walk-forward"),
        section("Leaderboard", paragraph(f"sorted by the in-sample {objective} of the last fold (the rule that picks the best config); "
                                         "out-of-sample columns are never used to choose"), board, ident="leaderboard-section"),
        section("Best config", table(("key", "value"), list(best["params"].items()), ident="best"), paragraph(best["rule"]),
                paragraph(f"written to {report.get('best_config')}") if report.get("best_config") else "", ident="best-section"),
        paragraph(f"Built by bot tune from {sweep['db']}; every run can be shown with bot report --db {sweep['db']} --run RUN_ID "
                  "(or --html for its page).", "sub"),
    ]
    subtitle = (f"{sweep['candidates']} candidates ({sweep['method']}), {sweep['folds']} folds, {sweep['trials_total']} trials, "
                f"base {sweep['base_config']}, space {sweep['space']}")
    return page("Walk-forward tuning", subtitle, body)


def write_page(report: dict[str, Any], out: str | Path) -> Path:
    """Write the page of a finished sweep (OSError for an unwritable ``out``)."""
    ts, curve = walk_forward_curve(report["sweep"]["db"], report["leaderboard"])
    return write_text(out, build_page(report, ts, curve))
