"""``report.json`` writing and the short text summary printed on stdout."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from bot.store.jsonout import strict_json


def iso(ts_ns: int | None) -> str | None:
    if not ts_ns:
        return None
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


def write_report(report: dict, out: Path) -> Path:
    path = out / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(strict_json(report, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def _n(x: float | None, fmt: str = ".3f") -> str:
    if x is None:
        return "n/a".rjust(len(format(0.0, fmt)))
    return format(x, fmt)


def format_summary(report: dict) -> str:
    d = report["data"]
    cks = report["cks"]
    pred = report["predictive"]
    costs = report["costs"]
    lines = [
        f"bot research: {d.get('symbol') or '?'} {d.get('market_type') or ''}, {len(d['files'])} file(s), "
        f"{d['duration_s']:.1f} s, {d['counts']['samples']:,} book samples in {d['counts']['segments']} segment(s), "
        f"tick {report['parameters']['tick_size']:g}",
        "",
        f"CKS contemporaneous regression Δmid(ticks) = a + b·X, {cks['interval_s']:g} s intervals, "
        f"{cks['window_s']:g} s windows ({len(cks['windows'])} window(s), {cks['intervals_valid']} valid intervals); "
        "t Newey-West",
        f"  {'X':<16} {'beta':>10} {'t':>7} {'R2':>6} {'|t|>1.96':>9}",
    ]
    for name, r in cks["regressions"].items():
        if not r.get("n_windows"):
            lines.append(f"  {name:<16} (no window with enough intervals)")
            continue
        sig = f"{round(r['share_significant'] * r['n_windows'])}/{r['n_windows']}"
        lines.append(f"  {name:<16} {_n(r['beta_mean'], '10.4g')} {_n(r['t_mean'], '7.2f')} {_n(r['r2_mean'], '6.3f')} {sig:>9}")
    ml = cks.get("multilevel") or []
    if ml and ml[0]["r2_mean"] is not None:
        lines.append("  multi-level OFI R2 (adj) by levels: " + "  ".join(
            f"{r['levels']}:{_n(r['r2_mean'], '.3f')}({_n(r['adj_r2_mean'], '.3f')})" for r in ml))
    grid = cks.get("by_interval") or []
    if grid:
        lines.append("  OFI(quotes) R2 by interval: " + "  ".join(
            f"{g['interval_s']:g}s:{_n((g.get('ofi_quotes') or g.get('ofi_book') or {}).get('r2_mean'), '.3f')}" for g in grid))
    lines.append("")
    hs = pred["horizons"]
    lines.append(f"Predictive skill of features at t for mid(t+h) - mid(t): IC = Spearman (all), "
                 f"R2 = out-of-sample (last {1 - pred['train_frac']:.0%} of time, test-mean SST), hit = direction excl. zeros")
    lines.append("  " + f"{'horizon':<18}" + "".join(f"{h['horizon_s']:>8g}s {'':>12}" for h in hs))
    lines.append("  " + f"{'zero moves':<18}" + "".join(f"{_n(h.get('zero_move_share'), '9.1%')} {'':>12}" for h in hs))
    lines.append("  " + f"{'':<18}" + "".join(f"{'IC':>6} {'R2':>6} {'hit':>5}  " for _ in hs))
    names = list(pred["decay"].keys())
    for name in names:
        cells = []
        for h in hs:
            f = h["features"].get(name) or {}
            cells.append(f"{_n(f.get('ic'), '6.3f')} {_n(f.get('r2_oos'), '6.3f')} {_n(f.get('hit_rate'), '5.2f')}  ")
        lines.append("  " + f"{name:<18}" + "".join(cells))
    lines.append("")
    sp = costs["spread"]
    lines.append(
        f"Costs: spread median {_n(sp['median_ticks'], '.2f')} ticks, mean {_n(sp['mean_ticks'], '.2f')} (per update) / "
        f"{_n(sp['time_weighted_mean_ticks'], '.2f')} (time-weighted) ticks = {_n(sp['time_weighted_mean_bps'], '.4f')} bps; "
        f"taker fee {costs['fees']['taker_fee_bps']:g} bps -> round trip {_n(costs['round_trip_taker_bps'], '.2f')} bps")
    for sig, rows in costs["buckets"].items():
        if not rows:
            continue
        cells = "  ".join(f"{r['horizon_s']:g}s: max|move| {_n(r['max_abs_move_bps'], '.2f')}, best net {_n(r['best_net_bps'], '.2f')}"
                          for r in rows)
        lines.append(f"  {sig:<14} {cells}")
    er = costs.get("entry_rule", {})
    if er.get("by_horizon"):
        lines.append(f"  entry rule |score| >= {er['enter_threshold']:g}: " + "  ".join(
            f"{r['horizon_s']:g}s: {_n(r['signed_move_mean_bps'], '+.2f')} bps gross, {_n(r['net_bps'], '+.2f')} net"
            for r in er["by_horizon"]))
    verdict = ("SOME bucket clears the taker round trip (see report.json costs.buckets; in-sample bucket edges)"
               if costs["any_bucket_clears_taker_cost"] else "no signal bucket clears the taker round-trip cost at any horizon")
    lines.append(f"  verdict: {verdict}; without fees (spread only): "
                 f"{'some bucket clears' if costs['any_bucket_clears_spread_only'] else 'none clears'}")
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    plots = report.get("plots") or []
    lines.append(f"wrote {report['out_dir']}/report.json" + (" and " + ", ".join(plots) if plots else ""))
    return "\n".join(lines)
