"""The walk-forward result and the leaderboard, built from the ``trials`` table and the store.

Per fold ``i`` the candidate with the best IN-SAMPLE objective (ties: the earlier candidate; an
undefined Sharpe, e.g. a run without trades, ranks last) is chosen; its OUT-OF-SAMPLE run on segment ``i`` is its score. The walk-forward result is the
chosen candidates' out-of-sample runs concatenated: PnL, fees, trades and turnover are summed;
Sharpe and max drawdown are computed on the stitched equity curve (each out-of-sample run's
equity rows shifted so it starts where the previous one ended), with the store's definitions
(:mod:`bot.store.report`).

Every candidate is also run on every out-of-sample segment (never used to choose anything) so
the leaderboard can show how its out-of-sample figures and rank hold up fold by fold. The
leaderboard is sorted by the in-sample objective of the last fold, i.e. by the same rule that
picks the written best config (the candidate chosen on the last fold's in-sample window,
segments ``0..K-1``); sorting by an out-of-sample column would turn it into a selection criterion.
"""

from __future__ import annotations

import math
import sqlite3
from datetime import datetime, timezone
from typing import Any

import numpy as np

from bot.store.report import equity_rows, max_drawdown, sharpe_ratio
from bot.tune.folds import Fold, Segment

METRICS = ("pnl_net", "sharpe", "max_drawdown", "trades", "turnover", "fees", "events", "run_id")


def objective_value(result: dict[str, Any], objective: str) -> float:
    value = result.get(objective)
    return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _metrics(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result.get(k) for k in METRICS}


def stitched_curve(conn: sqlite3.Connection, results: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The runs' equity rows concatenated (in order), each shifted to start where the previous
    one ended: (ts in ns, equity); one point at the initial equity (ts 0) if no run has rows."""
    initial = float(results[0]["initial_equity"])
    times, parts = [], []
    offset = 0.0
    for r in results:
        ts, eq = equity_rows(conn, r["run_id"])
        if eq.size:
            times.append(ts)
            parts.append(eq - float(r["initial_equity"]) + initial + offset)
        offset += float(r["pnl_net"] or 0.0)
    if not parts:
        return np.zeros(1, dtype=np.int64), np.array([initial])
    return np.concatenate(times), np.concatenate(parts)


def stitch(conn: sqlite3.Connection, results: list[dict[str, Any]], equity_interval_s: float) -> dict[str, Any]:
    """Concatenate runs (in order) into one result: sums, and Sharpe / drawdown of the stitched curve."""
    if not results:
        return {}
    _, curve = stitched_curve(conn, results)
    sharpe = sharpe_ratio(curve, equity_interval_s)
    turnovers = [r.get("turnover") for r in results]
    return {
        "pnl_net": round(sum(float(r["pnl_net"] or 0.0) for r in results), 8),
        "fees": round(sum(float(r["fees"] or 0.0) for r in results), 8),
        "trades": sum(int(r["trades"] or 0) for r in results),
        "turnover": None if any(t is None for t in turnovers) else round(sum(turnovers), 6),
        "sharpe": None if sharpe is None else round(sharpe, 4),
        "max_drawdown": round(max_drawdown(curve), 6),
        "events": sum(int(r.get("events") or 0) for r in results),
        "run_ids": [r["run_id"] for r in results],
    }


def _ranks(values: list[float]) -> list[int]:
    """1 = best (largest); ties share the better rank."""
    order = sorted(values, reverse=True)
    return [order.index(v) + 1 for v in values]


def build(
    *,
    candidates: list[dict[str, Any]],
    folds: list[Fold],
    segments: list[Segment],
    segment_events: list[int],
    results: dict[tuple[int, int, str], dict[str, Any]],
    objective: str,
    db_path: str,
    equity_interval_s: float,
) -> dict[str, Any]:
    """``results[(candidate, fold, role)]`` -> the leaderboard dict (the ``--json`` output's core)."""
    conn = sqlite3.connect(db_path, timeout=60)
    try:
        fold_rows = []
        chosen_by_fold: dict[int, int] = {}
        for f in folds:
            scores = [objective_value(results[(c, f.index, "is")], objective) for c in range(len(candidates))]
            best = max(range(len(candidates)), key=lambda c: (scores[c], -c))
            chosen_by_fold[f.index] = best
            fold_rows.append({
                "fold": f.index,
                "in_sample": {"segments": list(f.is_segments), "start_ns": f.is_start_ns, "end_ns": f.oos_start_ns},
                "out_of_sample": {"segment": f.oos_segment, "start_ns": f.oos_start_ns, "end_ns": f.oos_end_ns},
                "chosen": best,
                "chosen_params": candidates[best],
                "chosen_in_sample": _metrics(results[(best, f.index, "is")]),
                "chosen_out_of_sample": _metrics(results[(best, f.index, "oos")]),
            })
        walk_forward = stitch(conn, [results[(chosen_by_fold[f.index], f.index, "oos")] for f in folds], equity_interval_s)
        walk_forward["note"] = (
            "OUT-OF-SAMPLE ONLY: per fold the candidate with the best in-sample " + objective
            + " is scored on the next segment; these are those out-of-sample runs concatenated"
        )

        oos_ranks = {
            f.index: _ranks([objective_value(results[(c, f.index, "oos")], objective) for c in range(len(candidates))])
            for f in folds
        }
        last = folds[-1].index
        last_is_ranks = _ranks([objective_value(results[(c, last, "is")], objective) for c in range(len(candidates))])
        rows = []
        for c, params in enumerate(candidates):
            rows.append({
                "candidate": c,
                "params": params,
                "in_sample": [{"fold": f.index, **_metrics(results[(c, f.index, "is")])} for f in folds],
                "out_of_sample": [{"fold": f.index, **_metrics(results[(c, f.index, "oos")])} for f in folds],
                "out_of_sample_all_folds": stitch(conn, [results[(c, f.index, "oos")] for f in folds], equity_interval_s),
                "chosen_in_folds": [f.index for f in folds if chosen_by_fold[f.index] == c],
                "out_of_sample_rank_by_fold": [oos_ranks[f.index][c] for f in folds],
                "in_sample_rank_last_fold": last_is_ranks[c],
            })
        rows.sort(key=lambda r: (r["in_sample_rank_last_fold"], r["candidate"]))
        best = chosen_by_fold[last]
        return {
            "objective": objective,
            "segments": [
                {"segment": s.index, "start_ns": s.start_ns, "end_ns": s.end_ns, "duration_s": round(s.duration_s, 3), "events": n}
                for s, n in zip(segments, segment_events)
            ],
            "folds": fold_rows,
            "walk_forward": walk_forward,
            "candidates": rows,
            "best": {
                "candidate": best,
                "params": candidates[best],
                "rule": f"chosen on the last fold's in-sample window (segments 0..{len(segments) - 2}) by {objective}; "
                        f"its out-of-sample check is fold {last}",
                "in_sample_last_fold": _metrics(results[(best, last, "is")]),
                "out_of_sample_last_fold": _metrics(results[(best, last, "oos")]),
            },
        }
    finally:
        conn.close()


# --------------------------------------------------------------------------- text
def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _ts(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _segs(ids: list[int]) -> str:
    return f"seg {ids[0]}" if len(ids) == 1 else f"seg {ids[0]}-{ids[-1]}"


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """Aligned text table: text columns left-aligned, numeric-looking columns right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def numeric(i: int) -> bool:
        cells = [r[i] for r in rows if r[i] not in ("n/a", "")]
        return bool(cells) and all(_looks_numeric(c) for c in cells)

    right = [numeric(i) for i in range(len(headers))]
    out = []
    for cells in [headers, *rows]:
        out.append(indent + "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip())
    return "\n".join(out)


def _looks_numeric(text: str) -> bool:
    try:
        float(text.rstrip("%"))
        return True
    except ValueError:
        return False


def format_text(report: dict[str, Any]) -> str:
    lb = report["leaderboard"]
    sweep = report["sweep"]
    objective = lb["objective"]
    param_keys = list(lb["candidates"][0]["params"]) if lb["candidates"] else []
    k = len(lb["folds"])
    out = [
        f"walk-forward tuning: {k} fold(s), {k + 1} equal-duration segments, expanding in-sample window; "
        f"selection by IN-SAMPLE {objective}",
        f"{sweep['candidates']} candidates ({sweep['method']}), {sweep['trials_total']} trials: "
        f"{sweep['trials_run']} run now, {sweep['trials_resumed']} taken from {sweep['db']}",
        "",
        "segments:",
        table(
            ["seg", "start (UTC)", "end (UTC)", "seconds", "events"],
            [[str(s["segment"]), _ts(s["start_ns"]), _ts(s["end_ns"]), f"{s['duration_s']:.1f}", str(s["events"])] for s in lb["segments"]],
        ),
        "",
        "folds: the best in-sample candidate of each fold, then scored OUT-OF-SAMPLE (OOS) on the next segment:",
        table(
            ["fold", "in-sample", "OOS", "chosen", f"IS {objective}", "OOS pnl_net", "OOS sharpe", "OOS maxDD",
             "OOS trades", "OOS turnover", "IS run", "OOS run"],
            [
                [
                    str(f["fold"]), _segs(f["in_sample"]["segments"]), _segs([f["out_of_sample"]["segment"]]), f"#{f['chosen']}",
                    _num(f["chosen_in_sample"][objective]),
                    _num(f["chosen_out_of_sample"]["pnl_net"]), _num(f["chosen_out_of_sample"]["sharpe"]),
                    _pct(f["chosen_out_of_sample"]["max_drawdown"]), _num(f["chosen_out_of_sample"]["trades"]),
                    _num(f["chosen_out_of_sample"]["turnover"], 3),
                    f["chosen_in_sample"]["run_id"], f["chosen_out_of_sample"]["run_id"],
                ]
                for f in lb["folds"]
            ],
        ),
        "",
    ]
    wf = lb["walk_forward"]
    out.append("WALK-FORWARD RESULT (out-of-sample only: the chosen candidates' OOS runs concatenated):")
    out.append(
        f"  pnl_net {_num(wf['pnl_net'])}  sharpe {_num(wf['sharpe'])}  max_drawdown {_pct(wf['max_drawdown'])}  "
        f"trades {wf['trades']}  turnover {_num(wf['turnover'], 3)}  fees {_num(wf['fees'])}"
    )
    out.append("")
    out.append(
        f"leaderboard: sorted by IN-SAMPLE {objective} of the last fold (the rule that picks the best config); "
        "OOS columns are out-of-sample, summed/stitched over all folds, never used for selection:"
    )
    headers = ["rank", "cand", *param_keys, f"IS {objective} by fold", "OOS pnl_net by fold", "OOS pnl_net",
               "OOS sharpe", "OOS maxDD", "OOS trades", "OOS turnover", f"OOS {objective} rank by fold", "chosen"]
    rows = []
    digits = 2
    for r in lb["candidates"]:
        tot = r["out_of_sample_all_folds"]
        rows.append([
            str(r["in_sample_rank_last_fold"]), f"#{r['candidate']}", *(_fmt_param(r["params"][p]) for p in param_keys),
            " / ".join(_num(x[objective], digits) for x in r["in_sample"]),
            " / ".join(_num(x["pnl_net"]) for x in r["out_of_sample"]),
            _num(tot["pnl_net"]), _num(tot["sharpe"]), _pct(tot["max_drawdown"]), str(tot["trades"]), _num(tot["turnover"], 3),
            " / ".join(str(x) for x in r["out_of_sample_rank_by_fold"]),
            ",".join(f"f{i}" for i in r["chosen_in_folds"]) or "-",
        ])
    out.append(table(headers, rows))
    out.append("")
    best = lb["best"]
    out.append(f"best config: candidate #{best['candidate']} ({best['rule']})")
    out.append("  " + ", ".join(f"{k} = {_fmt_param(v)}" for k, v in best["params"].items()))
    if report.get("best_config"):
        out.append(f"  written to {report['best_config']} (checked with bot config check)")
    out.append(f"every trial's run id is in --json and in the trials table; inspect one with: bot report --db {sweep['db']} --run RUN_ID")
    return "\n".join(out)


def _fmt_param(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
