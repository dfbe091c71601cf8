"""Benchmark 5: reading a run back: :func:`bot.store.summarize` on a run of a million equity rows.

The run is written as ``tests/test_store.py::test_summary_is_right_on_a_million_equity_rows``
writes it (a seeded random walk bulk-loaded into the ``equity`` table of a real SQLite store),
so the figure here is the one that test used to assert (< 5 s) before wall-clock assertions left
the test suite: ``bot report`` and every ``bot tune`` leaderboard call ``summarize``. Seconds at
the best and the median of ``--repeat`` calls; the machine may be shared.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

from common import print_machine, write_json

import numpy as np

from bot.store import Store, summarize

TARGET_S = 5.0


def write_big_run(db: Path, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 1e-4, rows))
    with Store(db) as store:
        store.start_run("big", mode="backtest", config={"store": {"batch_size": store.batch_size, "equity_interval_s": 1.0}},
                        git_rev="bench", data_files=[], initial_equity=10_000.0, symbol="BTC/USDT")
        with store.db.atomic():
            store.db.conn.executemany(
                "INSERT INTO equity (run_id, ts, equity, mid, position_qty, cash) VALUES ('big', ?, ?, 1, 0, 1)",
                zip(range(rows), equity.tolist()),
            )
        store.finish_run("big", status="completed", stats={"events": rows, "wall_time_s": 10.0})
    return equity


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats")
    p.add_argument("--rows", type=int, default=1_000_000, help="equity rows of the run (default 1M)")
    p.add_argument("--repeat", type=int, default=None, help="timed calls (default 5, quick 3)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 5)
    result: dict = {"benchmark": "summary", "machine": print_machine("benchmark 5: summarize a big run"), "rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as tmp:
        db = Path(tmp) / "big.db"
        t = time.perf_counter()
        equity = write_big_run(db, args.rows, args.seed)
        result["write_s"] = round(time.perf_counter() - t, 3)
        print(f"   run of {args.rows:,} equity rows written in {result['write_s']:.2f} s ({db.stat().st_size / 2**20:.0f} MiB)")
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            s = summarize(db, "big")
            times.append(time.perf_counter() - t)
    # the figure is only worth printing if the summary is the right one
    peak = np.maximum.accumulate(equity)
    assert math.isclose(s["max_drawdown"], float(((peak - equity) / peak).max()), abs_tol=1e-6), s
    assert s["sharpe"] is None and s["ratios"]["returns"] == 0, s  # rows 1 ns apart: no daily return to estimate it from
    result.update(runs=repeat, best_s=round(min(times), 4), median_s=round(statistics.median(times), 4), target_s=TARGET_S)
    print(f"   summarize: best {result['best_s']:.3f} s, median {result['median_s']:.3f} s over {repeat} calls "
          f"({args.rows / result['best_s'] / 1e6:.2f} M rows/s at best; target < {TARGET_S:g} s)")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
