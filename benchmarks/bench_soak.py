"""Benchmark 4: soak of the daemon against the emulator at accelerated simulation speed.

``python -m bot emulator --sim --speed S`` simulates the built-in market S times faster than the
wall clock (``SimFeed``: simulated time = start + S x elapsed wall time), so ``--speed 20`` for
3 minutes of wall time is one hour of simulated market. The daemon (``python -m bot run --live``,
a separate process, unchanged) trades it in live mode through the emulator's REST and websocket
API for ``run.duration_s`` and stops by itself.

Recorded: the daemon's resident set size (VmRSS from /proc) 3 s after start, every ``--sample``
seconds until it exits (and its peak so far, VmHWM), the emulator's RSS, orders and fills (the daemon's database
and the emulator's account), and how fast the simulated market ran: market events applied by the
emulator per wall second, compared with a short measurement at ``--speed 1``.
The daemon's own clock is the wall clock: its strategy timers (cooldown, holding time) are not
accelerated, only the market is.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_machine, rss_mb, write_json
from daemon_common import Emulator, daemon_env, write_config


def hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def market_progress(emu: Emulator) -> tuple[int, int]:
    """(book update id, market events applied) from the emulator's admin state."""
    book = emu.state().get("book") or {}
    return int(book.get("update_id") or 0), int(book.get("events") or 0)


def speed_probe(work: Path, speed: float, seconds: float) -> dict:
    """Book updates per wall second of a fresh emulator at ``speed``."""
    emu = Emulator(work, "--speed", str(speed))
    try:
        _, e0 = market_progress(emu)
        t0 = time.monotonic()
        time.sleep(seconds)
        _, e1 = market_progress(emu)
        return {"speed": speed, "events_per_wall_s": round((e1 - e0) / (time.monotonic() - t0), 1)}
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="60 s at speed 60 (one simulated hour) instead of 180 s at speed 20")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--sample", type=float, default=None, help="RSS sampling interval in seconds")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    seconds = args.seconds or (60.0 if args.quick else 180.0)
    speed = args.speed or (60.0 if args.quick else 20.0)
    every = args.sample or (10.0 if args.quick else 20.0)
    result: dict = {"benchmark": "soak", "machine": print_machine("benchmark 4: daemon soak against the emulator"), "wall_s": seconds, "speed": speed,
                    "simulated_s": seconds * speed}
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    probe = speed_probe(work, 1.0, 4.0)
    emu = Emulator(work, "--speed", str(speed))
    samples: list[dict] = []
    try:
        cfg = write_config(work, emu.url, mode="live", duration=seconds)
        log = open(work / "daemon.out", "w")
        u0, tr0 = market_progress(emu)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(cfg), "--live"], stdout=log, stderr=subprocess.STDOUT, cwd=work, env=daemon_env())
        print(f"   daemon pid {proc.pid} (live mode) against the emulator (--sim --speed {speed:g}) for {seconds:.0f} s = {seconds * speed / 3600:.2f} simulated hours ...", flush=True)
        time.sleep(3.0)  # imports, market load, first book
        while proc.poll() is None:
            el = time.monotonic() - t0
            samples.append({"t_s": round(el, 1), "daemon_rss_mb": rss_mb(proc.pid), "daemon_peak_rss_mb": hwm_mb(proc.pid), "emulator_rss_mb": rss_mb(emu.proc.pid)})
            print(f"      t={el:6.1f}s daemon RSS {samples[-1]['daemon_rss_mb']} MiB (peak {samples[-1]['daemon_peak_rss_mb']}), emulator RSS {samples[-1]['emulator_rss_mb']} MiB", flush=True)
            deadline = time.monotonic() + (every if len(samples) > 1 else max(1.0, every - 3.0))
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if time.monotonic() - t0 > seconds + 60:
                proc.terminate()
        rc = proc.wait()
        wall = time.monotonic() - t0
        u1, tr1 = market_progress(emu)
        state = emu.state()
        log.close()
    finally:
        emu.stop()
    db = work / "bot.db"
    conn = sqlite3.connect(db)
    try:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
        fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]
        by_status = dict(conn.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall())
        run_status = conn.execute("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    rss = [s["daemon_rss_mb"] for s in samples if s["daemon_rss_mb"] is not None]
    result.update({
        "daemon_exit_code": rc,
        "run_status": run_status,
        "wall_measured_s": round(wall, 1),
        "rss_samples": samples,
        "daemon_rss_first_mb": rss[0] if rss else None,
        "daemon_rss_last_mb": rss[-1] if rss else None,
        "daemon_rss_max_sampled_mb": max(rss) if rss else None,
        "daemon_peak_rss_mb": max((s["daemon_peak_rss_mb"] or 0) for s in samples) if samples else None,
        "orders": orders,
        "fills": fills,
        "orders_by_status": by_status,
        "exchange_orders": len(state.get("orders", [])),
        "exchange_trades_ours": len(state.get("trades", [])),
        "market_events_per_wall_s": round((tr1 - tr0) / wall, 1),
        "book_update_ids_per_wall_s": round((u1 - u0) / wall, 1),
        "speed_probe": probe,
    })
    if rss:
        half = rss[len(rss) // 2 :]
        result["daemon_rss_growth_second_half_mb"] = round(half[-1] - half[0], 1)
    ratio = result["market_events_per_wall_s"] / probe["events_per_wall_s"] if probe["events_per_wall_s"] else None
    result["measured_speedup"] = round(ratio, 1) if ratio else None
    print(f"   daemon exit code {rc}, run {run_status}; {orders} orders ({by_status}), {fills} fills; exchange: {result['exchange_orders']} orders, {result['exchange_trades_ours']} of our trades")
    print(f"   daemon RSS: first sample {result['daemon_rss_first_mb']} MiB, last {result['daemon_rss_last_mb']} MiB, max sampled {result['daemon_rss_max_sampled_mb']} MiB "
          f"(growth over the second half {result.get('daemon_rss_growth_second_half_mb')} MiB)")
    print(f"   simulated market: {result['market_events_per_wall_s']} market events per wall second at --speed {speed:g} vs {probe['events_per_wall_s']} at --speed 1 "
          f"(x{result['measured_speedup']}); {result['book_update_ids_per_wall_s']} book update ids per wall second")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
