"""Run the benchmarks (``make bench``) and print a markdown table of the results.

    .venv/bin/python benchmarks/run_all.py            # full: about 7 minutes
    .venv/bin/python benchmarks/run_all.py --quick    # about 3 minutes
    .venv/bin/python benchmarks/run_all.py --only kernel pipeline

Each benchmark runs in its own process (so memory figures are its own) and prints its details;
the table at the end is the summary for the README. The machine may be shared with other work:
throughput is given at the best and the median of repeated runs.

1. ``bench_kernel.py``   book + signals: real BTCUSDT recording and a seeded 10M-event synthetic stream
2. ``bench_pipeline.py`` full backtest pipeline (book, signals, risk, paper fills, store writes)
3. ``bench_latency.py``  daemon tick-to-decision latency against the emulator (live and paper mode)
4. ``bench_soak.py``     daemon soak against the emulator at accelerated simulation (1 simulated hour)
5. ``bench_summary.py``  ``summarize`` (``bot report``, the tune leaderboard) on a run of a million equity rows
7. ``bench_parse.py``    the compiled parser against the reference reader (lines/s from gzip)
   ``bench_command.py``  ``bot backtest`` and ``bot tune`` as new processes: what the user gets
8. ``bench_peers.py``    ``bot backtest`` beside hftbacktest on the USD-M recording (only when the peer's
   venv exists: ``python benchmarks/bench_peers.py --setup`` creates it; otherwise a one-line skip)
9. ``bench_memory.py``   peak RSS of fast replays of 1M to 50M synthetic events (quick: 1M and 5M)

The last table, "Issue 13 targets", puts each speed and memory target beside its figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import fmt_rate, print_machine  # noqa: E402

TARGET_KERNEL = 5e6
TARGET_PIPELINE = 1e6
TARGET_P99_MS = 1.0
TARGET_SUMMARY_S = 5.0
ALL = ["kernel", "pipeline", "latency", "soak", "summary", "parse", "command", "peers", "memory"]


def run(script: str, args: list[str], out: Path) -> dict | None:
    cmd = [sys.executable, str(HERE / script), *args, "--json", str(out)]
    print(f"\n$ {' '.join(cmd[1:])}", flush=True)
    t = time.perf_counter()
    rc = subprocess.run(cmd, cwd=HERE).returncode
    print(f"   ({script} took {time.perf_counter() - t:.0f} s, exit code {rc})", flush=True)
    if rc != 0 or not out.exists():
        return None
    return json.loads(out.read_text())


def peers_skip_reason() -> str | None:
    """Why benchmark 8 cannot run here (one line), or None: it needs the recording and the peer's venv."""
    from bench_peers import DEFAULT_DATA, DEFAULT_PEER_PYTHON, setup_command

    if not DEFAULT_DATA.exists():
        return f"the USD-M recording {DEFAULT_DATA} is absent"
    if not DEFAULT_PEER_PYTHON.exists():
        return f"no peer venv at {DEFAULT_PEER_PYTHON} (create it: {setup_command(DEFAULT_PEER_PYTHON)}, or bench_peers.py --setup)"
    return None


def yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def table(res: dict) -> str:
    rows: list[tuple[str, str, str, str]] = []
    k = res.get("kernel")
    if k:
        for s in k["streams"]:
            r = s["kernel"]
            flow = s.get("kernel_flow")
            with_flow = f"; with the flow features {fmt_rate(flow['best_events_per_s'])} best" if flow else ""
            rows.append((f"1. book + signals, {s['stream']} ({s['events']:,} events)",
                         f"{fmt_rate(r['best_events_per_s'])} best, {fmt_rate(r['median_events_per_s'])} median{with_flow} (readable: {fmt_rate(s['readable']['best_events_per_s'])})",
                         ">= 5 M/s", yes(r["best_events_per_s"] >= TARGET_KERNEL)))
            m = s["memory"]
            rows.append((f"1. memory, {s['stream']}",
                         f"tracemalloc peak {m['tracemalloc_peak_during_run_mb']} MiB during the run; RSS {m['rss_before_run_mb']} -> {m['rss_after_run_mb']} MiB; "
                         f"event arrays {s['event_arrays_mb']} MiB; process max RSS {m['maxrss_process_mb']} MiB",
                         "flat", yes(m["rss_after_run_mb"] is not None and m["rss_after_run_mb"] - m["rss_before_run_mb"] < 5)))
    p = res.get("pipeline")
    if p:
        r = p.get("real")
        if r:
            rows.append((f"2. parse real recording ({r['events']:,} events)", f"{r['parse']['best_s']:.2f} s (read_binance); encode once {r['encode_s']:.2f} s; cached columns open {r['npz_load_s']:.3f} s", "", ""))
            rows.append(("2. readable engine, real (engine only / with parse)",
                         f"{fmt_rate(r['readable_engine']['best_events_per_s'])} / {fmt_rate(r['readable_parse_plus_engine']['best_events_per_s'])}", "", ""))
            for key, label in (("fast_info_logs", "info logs"), ("fast_warning_logs", "warning logs")):
                x = r[key]
                b = x["breakdown_of_best_run_s"]
                rows.append((f"2. fast pipeline, real, {label}",
                             f"{fmt_rate(x['total']['best_events_per_s'])} best, {fmt_rate(x['total']['median_events_per_s'])} median ({r['orders']} orders; kernel {b['scan_s']:.3f} s, "
                             f"engine on {x['engine_share']:.2%} of events {b['engine_s']:.3f} s, SQLite {b['store_write_s']:.3f} s)",
                             ">= 1 M/s", yes(x["total"]["best_events_per_s"] >= TARGET_PIPELINE)))
        s = p.get("synthetic")
        if s:
            for key, label in (("fast_info_logs", "info logs"), ("fast_warning_logs", "warning logs")):
                x = s[key]
                rows.append((f"2. fast pipeline, synthetic {s['events']:,} events, {label}",
                             f"{fmt_rate(x['total']['best_events_per_s'])} best, {fmt_rate(x['total']['median_events_per_s'])} median ({x['orders']} orders; readable on the first "
                             f"{s['readable_engine_prefix']['events']:,}: {fmt_rate(s['readable_engine_prefix']['best_events_per_s'])})",
                             ">= 1 M/s", yes(x["total"]["best_events_per_s"] >= TARGET_PIPELINE)))
    for key in ("latency_live", "latency_paper"):
        lat = res.get(key)
        if lat:
            for sub, label, target in (
                ("tick_to_decision_book", "tick-to-decision, all book updates", True),
                ("tick_to_decision_order_sent", "tick-to-decision, updates that sent an order", False),
                ("tick_to_order_sent", "tick-to-order-sent (after the write-ahead commit)", False),
                ("frame_to_decision_book", "websocket frame-to-decision (ccxt parsing included), all", False),
            ):
                x = lat.get(sub) or {}
                if x.get("n"):
                    rows.append((f"3. {label}, {lat['mode']} mode (n={x['n']})",
                                 f"p50 {x['p50_ms']:.3f} ms, p99 {x['p99_ms']:.3f} ms, p99.9 {x['p99_9_ms']:.3f} ms",
                                 "p99 < 1 ms" if target else "", yes(x["p99_ms"] < TARGET_P99_MS) if target else ""))
            x = lat["processing_book"]
            rows.append((f"3. on_event processing only, {lat['mode']} mode", f"p50 {x['p50_ms']:.3f} ms, p99 {x['p99_ms']:.3f} ms (feed hand-off p50 {lat['queue_wait_book']['p50_ms']:.3f} ms, p99 {lat['queue_wait_book']['p99_ms']:.3f} ms)", "", ""))
    so = res.get("soak")
    if so:
        rows.append((f"4. soak: {so['wall_measured_s']:.0f} s at --speed {so['speed']:g} = {so['simulated_s'] / 3600:.2f} simulated h (measured x{so['measured_speedup']})",
                     f"daemon RSS {so['daemon_rss_first_mb']} -> {so['daemon_rss_last_mb']} MiB (max sampled {so['daemon_rss_max_sampled_mb']}, peak {so.get('daemon_peak_rss_mb')}); "
                     f"{so['orders']} orders, {so['fills']} fills; run {so['run_status']}",
                     "flat memory", yes(so.get("daemon_rss_growth_second_half_mb") is not None and so["daemon_rss_growth_second_half_mb"] < 5)))
    su = res.get("summary")
    if su:
        rows.append((f"5. summarize a run of {su['rows']:,} equity rows", f"{su['best_s']:.3f} s best, {su['median_s']:.3f} s median",
                     f"< {TARGET_SUMMARY_S:g} s", yes(su["best_s"] < TARGET_SUMMARY_S)))
    pe = res.get("peers")
    if pe:
        for i, label in enumerate(("cold", "warm")):
            o, q = pe["ours"][i], pe["peer"][i]
            rows.append((f"8. bot backtest ({o['command']['engine']} engine) beside hftbacktest {q['hftbacktest']}, USD-M BTCUSDT ({pe['events']:,} events), {label}",
                         f"whole process {o['wall_s']:.2f} s vs {q['wall_s']:.2f} s (ratio x{pe['ratio_whole'][i]:.2f}); replay {o['replay_s']:.3f} s vs {q['replay_s']:.3f} s "
                         f"(x{pe['ratio_replay'][i] if pe['ratio_replay'][i] is not None else float('nan'):.2f})",
                         ">= x1 end to end", yes(pe["ratio_whole"][i] >= 1.0)))
    out = ["| benchmark | result | target | met |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def _lines(rate: float) -> str:
    return fmt_rate(rate).replace("/s", " lines/s")


def targets_table(res: dict) -> str:
    """Issue 13's targets, each with the figure that decides it (n/a: its benchmark did not run)."""
    rows: list[tuple[str, str, str, str]] = []
    pa = res.get("parse")
    if pa and "compiled" in pa:
        c = pa["compiled"]
        rows.append(("parsing from gzip, compiled parser (spot BTCUSDT)", f"{_lines(c['best_events_per_s'])} best, {_lines(c['median_events_per_s'])} median",
                     ">= 1 M lines/s", yes(c["best_events_per_s"] >= 1e6)))
    co = res.get("command")
    if co and "second_run" in co:
        for key, label in (("second_run", "`bot backtest`, second run, as the command reports it"), ("first_run", "`bot backtest`, first run (empty cache, new process)"),
                           ("maker", "`bot backtest`, maker mode (second run)")):
            x, target = co[key], co["targets"][key]
            ph = x.get("phases") or {}
            rows.append((label, f"{fmt_rate(x['reported_best_events_per_s'])} best, {fmt_rate(x['reported_median_events_per_s'])} median "
                                f"({x['events']:,} events; setup {ph.get('setup_s')} s, replay {ph.get('replay_s')} s)",
                         f">= {fmt_rate(target)}", yes(x["reported_best_events_per_s"] >= target)))
        sw = co.get("sweep")
        if sw:
            rows.append(("example sweep (space.example.toml, spot BTCUSDT, 2 workers)", f"{sw['trials_per_s']} trials/s ({sw['trials']} trials, {sw['wall_time_s']} s)",
                         f">= {co['targets']['sweep']:g} trials/s", yes(sw["trials_per_s"] is not None and sw["trials_per_s"] >= co["targets"]["sweep"])))
    me = res.get("memory")
    if me:
        mapped = [r for r in me.get("rows", []) if r.get("label") == "fast, memory-mapped" and "peak_rss_mib" in r]
        if mapped:
            big = max(mapped, key=lambda r: r["events"])
            sizes = ", ".join(f"{r['events'] / 1e6:g}M: {r['peak_rss_mib']:.0f}" for r in mapped)
            rows.append((f"peak RSS of a fast replay, synthetic ({sizes} MiB)", f"{big['peak_rss_mib']:.0f} MiB at {big['events']:,} events",
                         "<= 1 GiB at 50 M", yes(big["peak_rss_mib"] <= 1024) if big["events"] >= 50_000_000 else "n/a (50M not run)"))
    pe = res.get("peers")
    if pe:
        rows.append(("end to end beside hftbacktest (USD-M BTCUSDT, warm)", f"x{pe['ratio_whole'][-1]:.2f} whole process", ">= x1", yes(pe["ratio_whole"][-1] >= 1.0)))
    lat = res.get("latency_live")
    if lat:
        x = lat.get("tick_to_decision_book") or {}
        if x.get("n"):
            rows.append(("daemon tick-to-decision p99 (live mode, all book updates)", f"{x['p99_ms']:.3f} ms", "< 1 ms", yes(x["p99_ms"] < TARGET_P99_MS)))
    out = ["| target | figure | bar | met |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run the benchmarks and print a markdown summary.")
    p.add_argument("--quick", action="store_true", help="smaller synthetic stream and shorter daemon runs (about 3 minutes)")
    p.add_argument("--only", nargs="+", choices=ALL, default=None)
    p.add_argument("--events", type=int, default=None, help="synthetic events for benchmarks 1 and 2 (default 10M, quick 1M)")
    p.add_argument("--save", default=None, help="also write the combined results as JSON to this file")
    args = p.parse_args(argv)
    machine = print_machine("benchmarks (run_all)")
    only = set(args.only or ALL)
    common = ["--quick"] if args.quick else []
    ev = ["--events", str(args.events)] if args.events else []
    tmp = Path(tempfile.mkdtemp(prefix="bench-all-"))
    started = time.perf_counter()
    res: dict = {"machine": machine, "quick": args.quick}
    if "kernel" in only:
        res["kernel"] = run("bench_kernel.py", common + ev, tmp / "kernel.json")
    if "pipeline" in only:
        res["pipeline"] = run("bench_pipeline.py", common + ev, tmp / "pipeline.json")
    if "latency" in only:
        res["latency_live"] = run("bench_latency.py", common + ["--mode", "live"] + (["--seconds", "30"] if args.quick else ["--seconds", "90"]), tmp / "latency-live.json")
        res["latency_paper"] = run("bench_latency.py", ["--mode", "paper", "--seconds", "20" if args.quick else "30"], tmp / "latency-paper.json")
    if "soak" in only:
        res["soak"] = run("bench_soak.py", common, tmp / "soak.json")
    if "summary" in only:
        res["summary"] = run("bench_summary.py", common, tmp / "summary.json")
    if "peers" in only:
        skip = peers_skip_reason()
        if skip:
            print(f"\n8. bench_peers.py skipped: {skip}", flush=True)
        else:
            res["peers"] = run("bench_peers.py", [], tmp / "peers.json")
    if "parse" in only:
        res["parse"] = run("bench_parse.py", ["--repeat", "3" if args.quick else "5"], tmp / "parse.json")
    if "command" in only:
        res["command"] = run("bench_command.py", ["--rounds", "2" if args.quick else "3"] + (["--no-tune"] if args.quick else []), tmp / "command.json")
    if "memory" in only:
        res["memory"] = run("bench_memory.py", ["--no-command"] + (["--sizes", "1M", "5M"] if args.quick else []), tmp / "memory.json")
    total = time.perf_counter() - started
    m = machine
    print(f"\n## Benchmark results ({'quick' if args.quick else 'full'} run, {total / 60:.1f} min)\n")
    print(f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}; "
          f"load average at start {m.get('loadavg_1m')}, host speed reference {m.get('host_speed_ref_s')} s "
          "(shared machine: figures are the best and median of repeated runs).\n")
    print(table(res))
    print("\n## Issue 13 targets\n")
    print(targets_table(res))
    failed = [k for k, v in res.items() if k not in ("machine", "quick") and v is None]
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    if args.save:
        Path(args.save).write_text(json.dumps(res, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
