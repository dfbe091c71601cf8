"""The maker's rules against adverse selection, one at a time and combined, on the USD-M recordings.

Issue 12 asks for a maker whose gross PnL on the USD-M recordings at maker fee 0 is at least zero.
This runs every variant below as the strategy table does (one ``python -m bot backtest ... --json``
process per variant and recording, overrides in ``BOT__`` environment variables, via
:func:`strategy_table.run`) and prints a markdown table per recording: maker fills, round trips,
gross, fees, net, and the fills' markouts (spread captured, adverse selection at 1 s and 10 s).
Every variant runs at maker fee 0; the ones in ``REBATE`` also with the -0.5 bps rebate.

The variants are the whole grid reported in the README, chosen on these same recordings: every
figure is in-sample except where the README says which recording picked the variant.

    .venv/bin/python benchmarks/maker_variants.py [--jobs 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strategy_table import DATA, MAKER_PULLS, RECORDINGS, fmt, markouts_cell, run  # noqa: E402

PULLS = dict(MAKER_PULLS)  # pull_flow 0.3, pull_depletion 0.2, trade_window_s 1
MICRO = {"BOT__STRATEGY__PULL_MICROPRICE": "0.2"}
PROPORTIONAL = {"BOT__EXECUTION__QUEUE_MODEL": "proportional"}  # the fill model's optimistic queue, not a strategy rule


def _offset(ticks: int, requote: int) -> dict[str, str]:
    """Quotes ``ticks`` behind the fair price, re-placed only once the target moved ``requote`` ticks."""
    return {"BOT__STRATEGY__QUOTE_OFFSET_TICKS": str(ticks), "BOT__STRATEGY__REQUOTE_TICKS": str(requote)}


VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "pulls": PULLS,
    "microprice 0.2": MICRO,
    "fill cooldown 10 s": {"BOT__STRATEGY__FILL_COOLDOWN_S": "10"},
    "fill cooldown 30 s": {"BOT__STRATEGY__FILL_COOLDOWN_S": "30"},
    "microprice 0.2 + cooldown 30 s": {**MICRO, "BOT__STRATEGY__FILL_COOLDOWN_S": "30"},
    "pulls + microprice 0.2": {**PULLS, **MICRO},
    "pulls + cooldown 10 s": {**PULLS, "BOT__STRATEGY__FILL_COOLDOWN_S": "10"},
    "pulls + microprice 0.2 + cooldown 30 s": {**PULLS, **MICRO, "BOT__STRATEGY__FILL_COOLDOWN_S": "30"},
    "proportional queue": PROPORTIONAL,
    "pulls, proportional queue": {**PULLS, **PROPORTIONAL},
    "offset 20 ticks (requote 5)": _offset(20, 5),
    "offset 40 ticks (requote 10)": _offset(40, 10),
    "offset 80 ticks (requote 20)": _offset(80, 20),
    "offset 40 + pulls": {**_offset(40, 10), **PULLS},
    "offset 40 + cooldown 30 s": {**_offset(40, 10), "BOT__STRATEGY__FILL_COOLDOWN_S": "30"},
}
REBATE = ["pulls + cooldown 10 s", "pulls + microprice 0.2 + cooldown 30 s"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if not DATA.is_dir():
        print(f"skipped: {DATA} is absent (the shared recordings)")
        return 0
    jobs = []
    for label, config, files in RECORDINGS:
        if not label.startswith("USD-M"):
            continue
        for name, extra in VARIANTS.items():
            for fee in (0.0, -0.5) if name in REBATE else (0.0,):
                jobs.append((name, (label, config, files, "maker", fee, extra)))
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda j: {**run(*j[1]), "variant": j[0]}, jobs))
    print("| recording | variant | maker fee (bps) | fills | round trips | gross PnL | fees | net PnL "
          "| captured / adverse 1 s / 10 s (bps) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['label']} | {r['variant']} | {r['maker_fee']:g} | error: {r['error']} |||||")
            continue
        marks = markouts_cell(r)
        print(f"| {r['label']} | {r['variant']} | {r['maker_fee']:g} | {r['maker_fills']} | {r['trades']} | {fmt(r['pnl_gross'])} "
              f"| {fmt(r['fees'])} | {fmt(r['pnl_net'])} | {marks} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
