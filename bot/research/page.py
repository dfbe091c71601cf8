"""``bot research --html OUT.html``: the research report as one self-contained page.

Why: ``report.json`` is for programs and the PNGs need the folder beside them; the page is one
file to keep or send, drawn with the same inline SVG charts as ``bot report --html``
(:mod:`bot.store.svg`). Every number on it is read from the report dict that ``report.json``
holds, so the page and the JSON cannot disagree: information coefficient and out-of-sample R² by
horizon (x on a log scale, drawn as log10 of the horizon), the mean move per signal bucket
against the taker round trip (the cost hurdle), multi-level OFI R², and the tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from bot.store.page import page, paragraph, section, table, write_text
from bot.store.svg import Series, chart

COLORS = ("#1f5fbf", "#b42318", "#067647", "#d97706", "#7a5af8", "#0e9384", "#c11574", "#5b6475")


def _f(x: Any, digits: int = 3) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _horizon_ticks(horizons: list[float]) -> list[tuple[float, str]]:
    return [(math.log10(h), f"{h:g} s") for h in horizons]


def decay_charts(pred: dict[str, Any]) -> str:
    """IC and out-of-sample R² of every feature by horizon."""
    horizons = [h["horizon_s"] for h in pred["horizons"]]
    out = []
    for key, title in (("ic", "Information coefficient (Spearman) by horizon"), ("r2_oos", "Out-of-sample R² by horizon")):
        lines = []
        for i, (name, d) in enumerate(pred["decay"].items()):
            points = [(math.log10(h), v) for h, v in zip(horizons, d[key]) if v is not None]
            lines.append(Series(name, [p[0] for p in points], [p[1] for p in points], color=COLORS[i % len(COLORS)],
                                extra={"horizon_s": [h for h, v in zip(horizons, d[key]) if v is not None]}))
        out.append(chart(f"decay-{key}", title, lines, time_x=False, x_ticks=_horizon_ticks(horizons),
                         hlines=[(0.0, "#5b6475", "zero")], note="x: horizon (log scale)"))
    return "".join(out)


def bucket_charts(costs: dict[str, Any]) -> str:
    """Mean mid move per signal bucket, one line per horizon, against ± the taker round trip."""
    rt = costs.get("round_trip_taker_bps")
    out = []
    for signal, by_h in costs["buckets"].items():
        if not by_h:
            continue
        lines = [Series(f"h={h['horizon_s']:g}s", [b["bucket"] + 1 for b in h["buckets"]], [b["move_mean_bps"] for b in h["buckets"]],
                        color=COLORS[i % len(COLORS)]) for i, h in enumerate(by_h)]
        refs = [] if rt is None else [(rt, "#1d2330", f"taker round trip +{rt:.2f} bps"), (-rt, "#1d2330", f"taker round trip -{rt:.2f} bps")]
        out.append(chart(f"buckets-{signal}", f"{signal}: mean move by quantile bucket vs the taker round trip (bps)", lines,
                         time_x=False, integer_x=True, hlines=refs, note="x: bucket (1 = lowest signal); dashed: the cost hurdle"))
        out.append(chart(f"buckets-{signal}-zoom", f"{signal}: the same, zoomed on the moves (bps)", lines, time_x=False, integer_x=True,
                         hlines=[(0.0, "#5b6475", "zero")], height=200))
    return "".join(out)


def _multilevel(cks: dict[str, Any]) -> str:
    ml = cks.get("multilevel") or []
    if not ml:
        return ""
    lines = [Series(label, [r["levels"] for r in ml if r[key] is not None], [r[key] for r in ml if r[key] is not None], color=c)
             for key, label, c in (("r2_mean", "R² (levels as regressors)", COLORS[0]), ("adj_r2_mean", "adjusted R²", COLORS[1]),
                                   ("r2_summed_mean", "R² (OFI summed over levels)", COLORS[2]))]
    return chart("multilevel", f"Multi-level OFI: mean R² by levels used ({cks['interval_s']:g} s intervals)", lines, time_x=False, integer_x=True, height=220)


def _tables(report: dict[str, Any]) -> list[str]:
    cks, pred, costs = report["cks"], report["predictive"], report["costs"]
    regs = table(("X", "beta", "t (NW)", "R²", "share |t|>1.96", "windows"),
                 [(n, _f(r.get("beta_mean"), 4), _f(r.get("t_mean"), 2), _f(r.get("r2_mean")), _f(r.get("share_significant"), 2), r.get("n_windows"))
                  for n, r in cks["regressions"].items()], ident="cks")
    horizons = pred["horizons"]
    features = list(horizons[0]["features"]) if horizons else []
    head = ["feature"] + [f"{h['horizon_s']:g}s {k}" for h in horizons for k in ("IC", "R² oos", "hit")]
    rows = [[f] + [_f((h["features"][f] or {}).get(k)) for h in horizons for k in ("ic", "r2_oos", "hit_rate")] for f in features]
    predictive = table(head, rows, ident="predictive")
    spread = costs["spread"]
    cost_rows = [("taker fee (bps)", costs["fees"]["taker_fee_bps"]), ("maker fee (bps)", costs["fees"]["maker_fee_bps"]),
                 ("mean spread (bps)", _f(spread.get("mean_bps"), 4)), ("median spread (ticks)", _f(spread.get("median_ticks"), 2)),
                 ("taker round trip (bps)", _f(costs.get("round_trip_taker_bps"), 4)),
                 ("any bucket clears the taker cost", costs.get("any_bucket_clears_taker_cost")),
                 ("any bucket clears the spread alone", costs.get("any_bucket_clears_spread_only"))]
    entry = costs.get("entry_rule") or {}
    entry_rows = [(f"{r['horizon_s']:g} s", r["n"], _f(r["signed_move_mean_bps"], 3), _f(r["cost_bps"], 3), _f(r["net_bps"], 3))
                  for r in entry.get("by_horizon", [])]
    return [
        section("CKS contemporaneous regressions", paragraph(f"Δmid (ticks) = a + b·X over {cks['interval_s']:g} s intervals, "
                                                             f"{cks['window_s']:g} s windows; t Newey-West"), regs, ident="cks-section"),
        section("Predictive skill by horizon", paragraph(pred.get("r2_oos_definition", "")), predictive, ident="predictive-section"),
        section("Costs", table(("cost", "value"), cost_rows, ident="costs"),
                table(("entry rule horizon", "samples", "signed move (bps)", "cost (bps)", "net (bps)"), entry_rows, ident="entry-rule")
                + paragraph(f"entry rule: |score| >= {entry.get('enter_threshold')}"), ident="costs-section"),
    ]


def build_page(report: dict[str, Any]) -> str:
    """The research page of a report dict (what ``report.json`` holds)."""
    data = report["data"]
    warnings = "".join(paragraph(w, "warn") for w in report.get("warnings") or [])
    verdict = ("some signal bucket clears the taker round trip" if report["costs"].get("any_bucket_clears_taker_cost")
               else "no signal bucket clears the taker round-trip cost at any horizon")
    body = [warnings, paragraph(f"Verdict: {verdict}."),
            section("What the features predict", decay_charts(report["predictive"]), ident="decay"),
            section("Signal buckets against the cost hurdle", bucket_charts(report["costs"]), ident="buckets"),
            section("Order flow imbalance over more levels", _multilevel(report["cks"]), ident="multilevel-section"),
            *_tables(report),
            paragraph(f"Built by bot research at {report.get('generated_at')} from {', '.join(f['path'] for f in data['files'])}.", "sub")]
    subtitle = f"{data.get('start')} to {data.get('end')} ({data.get('duration_s', 0):.0f} s), {data['counts'].get('events', 0):,} events"
    return page(f"Research: {data.get('symbol') or 'recording'} {data.get('market_type') or ''}", subtitle, body)


def write_page(report: dict[str, Any], out: str | Path) -> Path:
    """Write the page of ``report`` as ``report.json`` holds it (non-finite numbers as null);
    OSError for an unwritable ``out``."""
    from bot.store.jsonout import strict_json

    return write_text(out, build_page(json.loads(strict_json(report))))
