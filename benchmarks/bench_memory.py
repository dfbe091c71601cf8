"""Benchmark 7: memory of a long fast-path replay (issue 13, "Bounded memory").

For each size (``--sizes``, default 1M 5M 20M 50M synthetic events) the synthetic stream
(:mod:`bot.fast.synth`, seed ``--seed``) is written once, chunk by chunk, to the memory-mapped
columnar layout (:func:`bot.fast.synth.write_synthetic`, :mod:`bot.fast.colstore`); its
generation time is printed apart. Then a fresh process opens it (:func:`bot.fast.colstore.open_columns`)
and replays it with :func:`bot.fast.backtest.run_backtest_fast` (``config/backtest.toml``, its own
SQLite store, logs at ``warning``). The figure is that process's peak resident set size
(``ru_maxrss`` from ``os.wait4``, the kernel's accounting of the child: imports, numba's compiled
code, the mapped pages it held at once, the store), with the events, the replay's wall time and
events/s. Target: peak RSS <= 1 GiB at 50M events, and flat across sizes.

``--in-memory`` adds, per size, the same replay over arrays generated in the process
(:func:`bot.fast.synth.synthetic_arrays`), for sizes up to 5M: the memory the layout saves. ``bot backtest`` (the
user's command, a separate process) is also measured on the real spot recording when
``../shared/data`` holds it: cold (empty ``--cache``: the compiled parser builds the arrays of
the whole recording in memory, then writes the cache) and warm (the cache is mapped).

Files go under ``--dir`` (default ``<tmp>/imbalance-bot-bench-memory``); a recording already
there is reused; everything this run wrote is removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import BTC_FILES, ROOT, print_machine, real_data_present, run_bot, run_measured, write_json

SIZES = {"1M": 1_000_000, "5M": 5_000_000, "20M": 20_000_000, "50M": 50_000_000}
TARGET_MIB = 1024
IN_MEMORY_MAX = 5_000_000  # --in-memory rows up to this size (about 190 bytes an event: 50M would need 9 GiB)


def parse_size(text: str) -> int:
    if text.upper() in SIZES:
        return SIZES[text.upper()]
    try:
        value = int(float(text.upper().rstrip("M")) * 1_000_000) if text.upper().endswith("M") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected event counts like 1M, 5M or 2000000, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive event count, got {text!r}")
    return value


def child(args: argparse.Namespace) -> int:
    """The replay, in its own process: print one JSON line of figures."""
    sys.path.insert(0, str(ROOT))
    from bot.config.settings import load_settings
    from bot.fast.backtest import run_backtest_fast
    from bot.log import configure

    work = Path(args.child_db).parent
    configure(work / "logs", "warning", "error")
    settings = load_settings(ROOT / "config" / "backtest.toml")
    if args.child_in_memory:
        from bot.fast.synth import synthetic_arrays

        arrays = synthetic_arrays(args.child_in_memory, seed=args.seed)
    else:
        from bot.fast.colstore import open_columns

        arrays = open_columns(args.child)
    timings: dict = {}
    t = time.perf_counter()
    summary = run_backtest_fast(settings, arrays, db_path=args.child_db, data_files=[], timings=timings)
    wall = time.perf_counter() - t
    print(json.dumps({"events": len(arrays), "replay_s": wall, "orders": summary["orders"], "fills": summary["fills"],
                      "scan_s": timings.get("scan_s"), "engine_s": timings.get("engine_s")}))
    return 0


def generate(path: Path, n: int, seed: int) -> float | None:
    """Write the synthetic recording unless a usable one is there (None: reused); seconds taken."""
    sys.path.insert(0, str(ROOT))
    from bot.fast.colstore import ColumnsError, open_columns
    from bot.fast.synth import write_synthetic

    try:
        if len(open_columns(path)) == n:
            return None
    except ColumnsError:  # absent, damaged or of another encoding version: written again
        pass

    t = time.perf_counter()
    write_synthetic(path, n, seed=seed)
    return time.perf_counter() - t


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.iterdir()) / 2**20


def replay_row(label: str, cmd: list[str], n: int, extra: str = "") -> dict:
    run = run_measured(cmd)
    wall, peak = run.wall_s, run.peak_rss_mib
    if run.returncode != 0:
        print(f"   {label}: the replay failed (exit {run.returncode}): {run.last_error_line()}")
        return {"label": label, "events": n, "error": run.stderr.strip()[-400:]}
    fig = json.loads(run.stdout.strip().splitlines()[-1])
    row = {"label": label, "events": fig["events"], "replay_s": round(fig["replay_s"], 2), "process_s": round(wall, 2),
           "events_per_s": round(fig["events"] / fig["replay_s"]), "peak_rss_mib": round(peak, 1),
           "bytes_per_event": round(peak * 2**20 / fig["events"], 1), "orders": fig["orders"], "load": round(os.getloadavg()[0], 2)}
    print(f"   | {label} | {row['events']:,} | {row['replay_s']:.1f} s | {row['events_per_s'] / 1e6:.2f} M/s | {row['peak_rss_mib']:,.0f} MiB | "
          f"{row['orders']:,} | {row['load']:.2f} |{extra}", flush=True)
    return row


def command_rows(work: Path) -> list[dict]:
    """``bot backtest`` on the real recording, cold and warm cache, each its own process."""
    rows = []
    cache = work / "cli-cache"
    for label in ("bot backtest, cold cache", "bot backtest, warm cache"):
        run = run_bot(["backtest", "--config", "config/backtest.toml", "--data", *map(str, BTC_FILES),
                       "--db", str(work / "cli.db"), "--cache", str(cache), "--json", "--no-progress"], check=False)
        wall, peak = run.wall_s, run.peak_rss_mib
        if run.returncode not in (0, 1):
            print(f"   {label}: failed (exit {run.returncode}): {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ''}")
            continue
        summary = run.json()
        n = summary["events"]
        rows.append({"label": label, "events": n, "process_s": round(wall, 2), "events_per_s": round(n / wall), "peak_rss_mib": round(peak, 1),
                     "load": round(os.getloadavg()[0], 2)})
        print(f"   | {label} | {n:,} | {wall:.1f} s (whole command) | {n / wall / 1e6:.2f} M/s | {peak:,.0f} MiB | {summary['orders']:,} | "
              f"{os.getloadavg()[0]:.2f} |", flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=parse_size, default=list(SIZES.values()), metavar="N",
                   help="synthetic event counts to replay (default 1M 5M 20M 50M)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--dir", default=None, help="where the recordings and stores go (default <tmp>/imbalance-bot-bench-memory)")
    p.add_argument("--keep", action="store_true", help="keep the generated recordings (reused by the next run)")
    p.add_argument("--in-memory", action="store_true", help="also replay arrays generated in the process (the old way)")
    p.add_argument("--no-command", action="store_true", help="skip bot backtest on the real recording")
    p.add_argument("--json", default=None, help="write the figures to this file")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-db", help=argparse.SUPPRESS)
    p.add_argument("--child-in-memory", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child or args.child_in_memory:
        return child(args)

    m = print_machine("bench_memory: peak RSS of a fast-path replay by recording length")
    work = Path(args.dir) if args.dir else Path(tempfile.gettempdir()) / "imbalance-bot-bench-memory"
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free / 2**30
    need = sum(args.sizes) * 60 / 2**30  # about 55 bytes an event on disk
    print(f"   files in {work} ({free:.1f} GiB free, the recordings need about {need:.1f} GiB); target: peak RSS <= {TARGET_MIB} MiB at 50M events")
    if need > free * 0.9:
        print(f"bench_memory: --sizes need about {need:.1f} GiB in {work}, {free:.1f} GiB free: give smaller sizes or another --dir", file=sys.stderr)
        return 2
    made: list[Path] = []
    rows: list[dict] = []
    try:
        print("   -- generation (write_synthetic, chunks of 1M events)")
        for n in args.sizes:
            path = work / f"synthetic-{n}-seed{args.seed}.cols"
            secs = generate(path, n, args.seed)
            if secs is not None:
                made.append(path)
            print(f"   {n:,} events: " + ("reused" if secs is None else f"{secs:.1f} s ({n / secs / 1e6:.2f} M events/s)") + f", {du_mib(path):,.0f} MiB on disk")
        t = time.perf_counter()
        os.sync()  # the recordings reach the disk now, not while a measured replay runs
        print(f"   written back to disk in {time.perf_counter() - t:.1f} s")
        warm = work / "warmup.cols"  # compiled code loaded from numba's cache (or compiled) once, not in a measured row
        made += [warm, work / "warmup.db"]
        generate(warm, 20_000, args.seed)
        run_measured([sys.executable, __file__, "--child", str(warm), "--child-db", str(work / "warmup.db"), "--seed", str(args.seed)])
        print("   -- replay, a fresh process each (peak RSS = the child's ru_maxrss)")
        print("   | replay | events | replay wall | events/s | peak RSS | orders | load 1m |")
        print("   |---|---:|---:|---:|---:|---:|---:|")
        for n in args.sizes:
            db = work / f"replay-{n}.db"
            made.append(db)
            rows.append(replay_row("fast, memory-mapped", [sys.executable, __file__, "--child", str(work / f"synthetic-{n}-seed{args.seed}.cols"),
                                                          "--child-db", str(db), "--seed", str(args.seed)], n))
            if args.in_memory and n <= IN_MEMORY_MAX:
                rows.append(replay_row("fast, arrays in memory", [sys.executable, __file__, "--child-in-memory", str(n), "--child-db", str(db),
                                                                 "--seed", str(args.seed)], n))
        if not args.no_command and real_data_present():
            made += [work / "cli-cache", work / "cli.db"]
            rows += command_rows(work)
        elif not args.no_command:
            print("   bot backtest: skipped (../shared/data/hftbacktest-binance/spot not present)")
        mapped = [r for r in rows if r.get("label") == "fast, memory-mapped" and "peak_rss_mib" in r]
        if mapped:
            big = max(mapped, key=lambda r: r["events"])
            met = "met" if big["peak_rss_mib"] <= TARGET_MIB else "NOT met"
            print(f"   target (peak RSS <= {TARGET_MIB} MiB at 50M events): {big['events']:,} events peaked at {big['peak_rss_mib']:,.0f} MiB: {met}"
                  + ("" if big["events"] >= 50_000_000 else " (50M not in --sizes)"))
    finally:
        for path in ([] if args.keep else made) + [work / "logs"]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
            for side in (Path(str(path) + "-wal"), Path(str(path) + "-shm")):
                if side.exists():
                    side.unlink()
        if not args.keep and not any(work.iterdir()):
            work.rmdir()
    write_json(args.json, {"machine": m, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
