"""What a user gets from the command line: ``bot backtest`` and ``bot tune`` as new processes.

    .venv/bin/python benchmarks/bench_command.py [--rounds 3] [--no-tune] [--json FILE]

Every figure is a whole process, start-up included, on the shared spot BTCUSDT recording (two
gzip files, 99,572 events), with ``config/backtest.toml``:

* ``first run``: ``bot backtest --json`` with an empty columnar cache directory (a fresh
  ``$BOT_FAST_CACHE``): start-up, parsing the gzip files, replay and store. numba's own cache is
  the one ``make install`` filled (``python -m bot.fast.warm``), as a user has it.
* ``second run``: the same command again with the cache filled.
* ``maker``: the second run with ``strategy.mode = "maker"`` (``BOT__STRATEGY__MODE``).
* ``sweep``: ``bot tune --workers 2 --json`` with ``config/space.example.toml`` (324 trials),
  its own ``trials_per_s`` and the wall time around the process.

For the backtests two figures are given: ``events_per_s`` as the command reports it in its JSON
(events over the run's stored wall time, which spans the whole command) and events over the wall
time measured around the process here (adds interpreter start and exit). Best and median of
``--rounds`` rounds; the machine may be shared with other work.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BTC_FILES, ROOT, fmt_rate, print_machine, real_data_present, run_bot, write_json  # noqa: E402

TARGETS = {"first_run": 300_000, "second_run": 1_000_000, "maker": 500_000, "sweep": 10.0}
"""Issue 13: events/s end to end for the backtests, trials/s for the sweep."""


def run_command(args: list[str], cache: Path, env_extra: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    """``python -m bot <args>`` in a new process with ``$BOT_FAST_CACHE=cache``: (wall s, its JSON)."""
    run = run_bot(args, cache=cache, env_extra=env_extra)
    return run.wall_s, run.json()


def backtest(cache: Path, db: Path, env_extra: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    return run_command(["backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", *map(str, BTC_FILES),
                        "--json", "--db", str(db)], cache, env_extra)


def figures(samples: list[tuple[float, dict[str, Any]]]) -> dict[str, Any]:
    """Best and median of the reported and the measured events/s, and the last run's phases."""
    reported = [s["events_per_s"] for _, s in samples]
    measured = [s["events"] / wall for wall, s in samples]
    last = samples[-1][1]
    return {
        "runs": len(samples), "events": last["events"],
        "reported_best_events_per_s": round(max(reported)), "reported_median_events_per_s": round(statistics.median(reported)),
        "measured_best_events_per_s": round(max(measured)), "measured_median_events_per_s": round(statistics.median(measured)),
        "best_wall_s": round(min(w for w, _ in samples), 3),
        "phases": (last.get("stats") or {}).get("command"),
    }


def sweep(cache: Path, tmp: Path) -> dict[str, Any]:
    wall, out = run_command(["tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(ROOT / "config" / "space.example.toml"),
                             "--data", *map(str, BTC_FILES), "--workers", "2", "--db", str(tmp / "tune.db"), "--out", str(tmp / "best.toml"),
                             "--json", "--quiet"], cache)
    sw = out.get("sweep") or {}  # tune --json reports its counts under "sweep"
    return {"trials": sw.get("trials"), "wall_time_s": sw.get("wall_time_s"), "trials_per_s": sw.get("trials_per_s"), "process_wall_s": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="rounds of first run + second run + maker (default 3)")
    p.add_argument("--no-tune", action="store_true", help="skip the sweep (it takes minutes)")
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    info = print_machine("bench_command: bot backtest / bot tune as a user runs them")
    if not real_data_present():
        print("   the shared recording is not present (../shared/data): nothing to measure")
        write_json(args.json, {"machine": info, "skipped": "no shared data"})
        return 0
    runs: dict[str, list[tuple[float, dict[str, Any]]]] = {"first_run": [], "second_run": [], "maker": []}
    for _ in range(max(1, args.rounds)):
        with tempfile.TemporaryDirectory() as tmp:
            cache = Path(tmp) / "cache"
            runs["first_run"].append(backtest(cache, Path(tmp) / "first.db"))
            runs["second_run"].append(backtest(cache, Path(tmp) / "second.db"))
            runs["maker"].append(backtest(cache, Path(tmp) / "maker.db", {"BOT__STRATEGY__MODE": "maker"}))
    res: dict[str, Any] = {"machine": info, "targets": TARGETS, **{k: figures(v) for k, v in runs.items()}}
    for key, label in (("first_run", "first run (empty cache)"), ("second_run", "second run (cache filled)"), ("maker", "maker, second run")):
        x = res[key]
        ph = x["phases"] or {}
        print(f"   bot backtest, {label}: {fmt_rate(x['reported_best_events_per_s'])} reported best, {fmt_rate(x['reported_median_events_per_s'])} median; "
              f"measured around the process {fmt_rate(x['measured_best_events_per_s'])} best (wall {x['best_wall_s']:.2f} s); "
              f"engine {ph.get('engine')}, setup {ph.get('setup_s')} s, parse {ph.get('parse_s')} s, replay {ph.get('replay_s')} s, store {ph.get('store_s')} s"
              f" (target >= {fmt_rate(TARGETS[key])})")
    if not args.no_tune:
        with tempfile.TemporaryDirectory() as tmp:
            res["sweep"] = sweep(Path(tmp) / "cache", Path(tmp))
        s = res["sweep"]
        print(f"   bot tune, example sweep, 2 workers: {s['trials']} trials in {s['wall_time_s']} s = {s['trials_per_s']} trials/s "
              f"(process {s['process_wall_s']} s; target >= {TARGETS['sweep']:g} trials/s)")
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
