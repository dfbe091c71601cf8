"""``bot tune`` throughput: the example sweep as a user runs it, figures from its own ``--json``.

    .venv/bin/python benchmarks/bench_tune.py [--workers 2] [--engine fast|readable] [--json FILE]

Runs ``bot tune --config config/backtest.toml --space config/space.example.toml --data <both spot
BTCUSDT files> --workers N --engine E --json`` in a new process with a fresh sweep database (so
no trial is resumed) and prints what the command reports under ``sweep``: ``trials``,
``wall_time_s`` (the whole command: loading the data, planning, the trials, the leaderboard and
the best config) and ``trials_per_s``; beside them the CPU seconds of the command and its
workers (user + system, from ``getrusage`` of the children) and the load average before and
after, since on a shared machine the wall time mostly says how much CPU the others left.
``--engine readable`` is the reference path (about 1.4 CPU-s per trial: 20 minutes on a busy
machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BTC_FILES, ROOT, print_machine, real_data_present, write_json  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", choices=("fast", "readable"), default="fast")
    p.add_argument("--space", default=str(ROOT / "config" / "space.example.toml"))
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args()
    m = print_machine("bot tune: the example sweep on the spot BTCUSDT recording")
    if not real_data_present():
        print(f"   skipped: the recording is not present ({BTC_FILES[0].parent})")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        cmd = [sys.executable, "-m", "bot", "tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", args.space,
               "--data", *map(str, BTC_FILES), "--workers", str(args.workers), "--engine", args.engine, "--json", "--quiet",
               "--db", str(Path(tmp) / "tune.db")]
        load_before = os.getloadavg()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()
    if proc.returncode != 0:
        print(f"   bot tune failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return 1
    sweep = json.loads(proc.stdout)["sweep"]
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out = {
        "engine": args.engine, "workers": args.workers, "trials": sweep["trials"], "wall_time_s": sweep["wall_time_s"],
        "trials_per_s": sweep["trials_per_s"], "process_wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
        "cpu_s_per_trial": round(cpu / max(sweep["trials"], 1), 4),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
    }
    print(f"   --engine {args.engine}, --workers {args.workers}: trials {out['trials']}, wall_time_s {out['wall_time_s']}, "
          f"trials_per_s {out['trials_per_s']}")
    print(f"   CPU {out['cpu_s']} s in all processes ({out['cpu_s_per_trial']} s per trial); load average before "
          f"{out['loadavg_before']}, after {out['loadavg_after']} ({m['cores']} cores)")
    if args.json:
        write_json(args.json, {"machine": m, "tune": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
