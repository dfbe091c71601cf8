"""The same ``bot tune`` sweep on the local pool and on a Dask cluster: what the cluster costs.

    .venv/bin/python benchmarks/bench_tune_executors.py [--workers 2] [--repeat 3] [--duration 240]

Runs one simulator sweep (6 candidates x 2 folds x in/out-of-sample = 24 trials) through the
CLI, each run into a fresh database, with ``--executor local --workers N`` and with
``--executor dask --workers N`` (the cluster bot tune starts on 127.0.0.1), and prints, best and
median, the sweep's own ``wall_time_s`` and trials per second (the cluster's start-up and its
workers reading the data themselves are inside it) and the whole command's time (with Python's
start-up and the cluster's shut-down after the report), with the load average. The point of
a cluster is more machines; on one machine this shows its fixed overhead, which a sweep of
hundreds of trials on real recordings spreads thin. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import print_machine, write_json  # noqa: E402

SPACE = '[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3, 5, 10]\n"strategy.enter_threshold" = [0.4, 0.5]\n'


def sim_config(home: Path, duration_s: float) -> Path:
    text = (ROOT / "config" / "demo.toml").read_text()
    head, sep, sim = text.partition("\n[sim]\n")
    path = home / "sim.toml"
    path.write_text(head + sep + sim.replace("duration_s = 600.0", f"duration_s = {duration_s}", 1))
    return path


def one_run(home: Path, config: Path, space: Path, executor: str, workers: int, i: int) -> dict:
    db = home / f"{executor}-{i}.db"
    cmd = [sys.executable, "-m", "bot", "tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(db),
           "--executor", executor, "--workers", str(workers), "--json", "--quiet"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True)
    command_s = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{executor} run failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    sweep = json.loads(proc.stdout)["sweep"]
    conn = sqlite3.connect(db)
    try:  # each trial's own time, in its worker: what the executor does not change
        trial_s = statistics.median(r for (r,) in conn.execute("SELECT wall_time_s FROM trials"))
    finally:
        conn.close()
    return {"command_s": round(command_s, 3), "wall_time_s": sweep["wall_time_s"], "trials": sweep["trials"], "trials_per_s": sweep["trials_per_s"],
            "median_trial_s": round(trial_s, 3), "loadavg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--duration", type=float, default=240.0, help="simulated seconds of market data")
    p.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = p.parse_args()
    machine = print_machine("bot tune: local pool vs Dask cluster, same sweep")
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise SystemExit("distributed is not installed: pip install -e '.[cluster]'") from None
    out: dict = {"machine": machine, "workers": args.workers, "duration_s": args.duration, "executors": {}}
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        home = Path(tmp)
        config = sim_config(home, args.duration)
        space = home / "space.toml"
        space.write_text(SPACE)
        for executor in ("local", "dask"):
            runs = [one_run(home, config, space, executor, args.workers, i) for i in range(args.repeat)]
            walls = [r["wall_time_s"] for r in runs]
            rates = [r["trials_per_s"] for r in runs]
            commands = [r["command_s"] for r in runs]
            trial_s = statistics.median(r["median_trial_s"] for r in runs)
            out["executors"][executor] = {"runs": runs, "best_wall_s": min(walls), "median_wall_s": statistics.median(walls),
                                          "best_trials_per_s": max(rates), "median_trials_per_s": statistics.median(rates),
                                          "best_command_s": min(commands), "median_command_s": statistics.median(commands),
                                          "median_trial_s": trial_s}
            print(f"   {executor:5s} --workers {args.workers}: {runs[0]['trials']} trials, wall best {min(walls):.2f} s / "
                  f"median {statistics.median(walls):.2f} s, trials/s best {max(rates):.2f} / median {statistics.median(rates):.2f}, "
                  f"command best {min(commands):.2f} s / median {statistics.median(commands):.2f} s, "
                  f"one trial (median) {trial_s:.3f} s, "
                  f"load average after each run {[r['loadavg_1m'] for r in runs]}", flush=True)
    local, dask = out["executors"]["local"], out["executors"]["dask"]
    print(f"   dask cluster overhead on this machine (medians, dask - local): sweep {dask['median_wall_s'] - local['median_wall_s']:+.2f} s, "
          f"command {dask['median_command_s'] - local['median_command_s']:+.2f} s")
    write_json(args.json, out)


if __name__ == "__main__":
    main()
