"""Every strategy mode on every shared recording, as a user runs it: the README's strategy table.

Each row is one ``python -m bot backtest --config CONFIG --data FILES --json`` process with
``BOT__STRATEGY__MODE`` (and, for the maker rows at zero fee or with a rebate,
``BOT__EXECUTION__MAKER_FEE_BPS``) set in its environment, so the figures are what the command
delivers, whole-process wall time included. Prints a markdown table: orders, round trips,
gross PnL, fees, funding (perpetuals: net = gross − fees + funding), net PnL, the cost hurdle (taker round trip and mean spread in bps), the maker
fills' markouts (spread captured and adverse selection at 1 s, bps) and the command's events/s.

    .venv/bin/python benchmarks/strategy_table.py [--modes momentum maker] [--jobs 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, run_bot

DATA = ROOT.parent / "shared" / "data" / "hftbacktest-binance"

RECORDINGS = [
    ("spot BTCUSDT 08-08/09 (650 s)", "backtest.toml", ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"]),
    ("spot ETHUSDT 08-08/09 (650 s)", "backtest-ethusdt.toml", ["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"]),
    ("USD-M BTCUSDT 08-08 (345 s)", "backtest-usdm-btcusdt.toml", ["usdm/btcusdt_20240808.gz"]),
    ("USD-M BTCUSDT 07-18/19 (480 s)", "backtest-usdm-btcusdt.toml", ["usdm/btcusdt_20240718.gz", "usdm/btcusdt_20240719.gz"]),
    ("USD-M ETHUSDT 08-08 (345 s)", "backtest-usdm-ethusdt.toml", ["usdm/ethusdt_20240808.gz"]),
]
MODES = ["momentum", "taker", "maker", "mean_reversion"]
# the maker on perpetuals also at zero maker fee and with a rebate (Binance VIP/market-maker tiers pay one)
MAKER_FEES = {"USD-M": [0.0, -0.5]}
# the maker with the feature pulls, on perpetuals at zero fee and with the rebate: the settings
# picked from a small grid on these same USD-M recordings (in-sample: a lower bound on what it
# would lose out of sample, not evidence of an edge)
MAKER_PULLS = {"BOT__STRATEGY__PULL_FLOW": "0.3", "BOT__STRATEGY__PULL_DEPLETION": "0.2", "BOT__SIGNAL__TRADE_WINDOW_S": "1"}


def run(label: str, config: str, files: list[str], mode: str, maker_fee: float | None, extra: dict[str, str] | None = None) -> dict[str, Any]:
    env = dict(extra or {})
    env["BOT__STRATEGY__MODE"] = mode
    env["BOT__STORE__SYNCHRONOUS"] = "off"
    env["BOT__RUN__CONSOLE_LOG_LEVEL"] = "error"
    if maker_fee is not None:
        env["BOT__EXECUTION__MAKER_FEE_BPS"] = str(maker_fee)
    db = Path(os.environ.get("TMPDIR", "/tmp")) / f"strategy-table-{os.getpid()}-{abs(hash((label, mode, maker_fee, str(extra))))}.db"
    db.unlink(missing_ok=True)
    out = run_bot(["backtest", "--config", str(ROOT / "config" / config), "--data", *(str(DATA / f) for f in files), "--db", str(db), "--json"],
                  env_extra=env, check=False)
    wall = out.wall_s
    db.unlink(missing_ok=True)
    if out.returncode != 0:
        return {"label": label, "mode": mode, "maker_fee": maker_fee, "variant": bool(extra), "error": out.last_error_line() or "?"}
    s = out.json()
    stats = s.get("stats") or {}
    hurdle = stats.get("cost_hurdle") or {}
    marks = stats.get("markouts") or {}
    return {
        "label": label, "mode": mode, "maker_fee": maker_fee, "variant": bool(extra), "orders": s["orders"], "trades": s["trades"],
        "pnl_gross": s["pnl_gross"], "fees": s["fees"], "funding": s.get("funding"), "pnl_net": s["pnl_net"],
        "taker_round_trip_bps": hurdle.get("taker_round_trip_bps"), "mean_spread_bps": hurdle.get("mean_spread_bps"),
        "maker_fills": marks.get("maker_fills"), "spread_captured_bps": marks.get("spread_captured_bps"), "adverse_selection_1s_bps": marks.get("adverse_selection_1s_bps"),
        "adverse_selection_10s_bps": marks.get("adverse_selection_10s_bps"), "events": s["events"], "wall_s": round(wall, 2),
        "events_per_s_command": round(s["events"] / wall) if wall > 0 else None,
    }


def fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def markouts_cell(r: dict[str, Any]) -> str:
    """The maker fills' markouts of a row: spread captured / adverse selection at 1 s / 10 s (bps), "-" without maker fills."""
    if r["spread_captured_bps"] is None:
        return "-"
    return f"{fmt(r['spread_captured_bps'], 3)} / {fmt(r['adverse_selection_1s_bps'], 3)} / {fmt(r['adverse_selection_10s_bps'], 3)}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", nargs="+", default=MODES)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the shared recordings)")
        return 0
    jobs = []
    for label, config, files in RECORDINGS:
        for mode in args.modes:
            jobs.append((label, config, files, mode, None, None))
            if mode == "maker":  # on perpetuals also at the other fees, plain and with the pulls
                fees = [f for prefix, extra in MAKER_FEES.items() if label.startswith(prefix) for f in extra]
                jobs += [(label, config, files, mode, fee, variant) for variant in (None, MAKER_PULLS) for fee in fees]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda j: run(*j), jobs))
    print("| recording | mode | orders | round trips | gross PnL | fees | funding | net PnL | taker round trip (bps) | mean spread (bps) "
          "| maker: captured / adverse 1 s / 10 s (bps) | events/s (command) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mode = r["mode"] + (" + pulls" if r.get("variant") else "") + (f" (maker fee {r['maker_fee']:g} bps)" if r["maker_fee"] is not None else "")
        if "error" in r:
            print(f"| {r['label']} | {mode} | error: {r['error']} ||||||||||")
            continue
        marks = markouts_cell(r)
        print(f"| {r['label']} | {mode} | {r['orders']} | {r['trades']} | {fmt(r['pnl_gross'])} | {fmt(r['fees'])} | {fmt(r['funding'])} | {fmt(r['pnl_net'])} "
              f"| {fmt(r['taker_round_trip_bps'])} | {fmt(r['mean_spread_bps'], 4)} | {marks} | {r['events_per_s_command']:,} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
