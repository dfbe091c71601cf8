"""Benchmark 6: tick-to-decision with and without the operator surface (``[http] port``, bot.ops),
and with ``--console`` also with ``bot run``'s status line drawn on a (pseudo-)terminal.

Method. As benchmark 3 (``bench_latency.py``): the real :class:`bot.engine.daemon.Daemon` runs in
this process against ``python -m bot emulator --sim``, and ``bot.engine.daemon.Engine`` is replaced
by a subclass that records ``time.time_ns()`` when ``on_event`` returns; tick-to-decision = that -
``event.ts_local`` (the feed's receipt of the update), over the book updates after the first 2 s.
The daemon runs ``--rounds`` times in each setting, alternating (so a neighbour's load on a
shared machine falls on both alike), with the same config and emulator: without an observer
(``[http] port`` unset), and with ``bot.ops`` attached as ``bot run`` attaches it (server on
127.0.0.1, latency histogram fed by the daemon) while a separate process plays Prometheus and an
open dashboard: every second it GETs ``/metrics`` and the five ``/api/`` endpoints the page
polls. The samples of each setting are pooled; p50/p99/p99.9 of both and their difference are
printed.

``--setting record`` compares instead without and with ``run.record_dir`` (the daemon recording
every event its engine receives): tick-to-decision as above, plus the time the event loop spends
in each ``RunRecorder.write`` (after the decision, in the same coroutine: the hand-over to the
writer thread; a cost there would delay the next event's receipt rather than this decision).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_latency import percentiles
from common import print_machine, write_json
from daemon_common import BENCH_KEY, BENCH_SECRET, Emulator, write_config

TOKEN = "bench-ops-token-5e1c9a0f7b3d"

POLLER = """
import sys, time, urllib.request
port, token = sys.argv[1], sys.argv[2]
paths = ["/metrics", "/api/status", "/api/live", "/api/equity", "/api/fills", "/api/events"]
n = 0
while True:
    t = time.monotonic()
    for p in paths:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{p}", headers={"Authorization": f"Bearer {token}"})
        try:
            urllib.request.urlopen(req, timeout=5).read()
            n += 1
        except OSError:
            pass
    print(n, flush=True)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PseudoTerminal:
    """A 160x40 pseudo-terminal whose output a thread reads and throws away (a person's terminal
    for ``bot run``'s status line, which only draws on a terminal)."""

    def __init__(self) -> None:
        import fcntl
        import struct
        import termios
        import threading

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.stream = os.fdopen(slave, "w", encoding="utf-8")
        self.drawn = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.drawn += len(chunk)

    def close(self) -> None:
        self.stream.close()


def run_once(work: Path, url: str, mode: str, seconds: float, http_port: int | None,
             console: PseudoTerminal | None = None, record: bool = False,
             writes: list[int] | None = None) -> tuple[list[tuple[int, int, int]], int]:
    import bot.engine.daemon as daemon_mod
    import bot.engine.recording as recording_mod
    from bot.config.settings import load_settings
    from bot.engine.engine import Engine
    from bot.ops import build

    name = f"{'with' if http_port else 'without'}-http{'-console' if console else ''}-{'rec-' if record else ''}{len(list(work.iterdir()))}"
    (work / name).mkdir()
    cfg = write_config(work / name, url, mode=mode, duration=seconds)
    if http_port:
        cfg.write_text(cfg.read_text() + f"\n[http]\nport = {http_port}\n")
    if record:
        cfg.write_text(cfg.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{work / name / 'rec'}\"\n", 1))
    plain_write = recording_mod.RunRecorder.write

    def timed_write(self, lane, event):  # type: ignore[no-untyped-def]
        t = time.perf_counter_ns()
        plain_write(self, lane, event)
        if writes is not None:
            writes.append(time.perf_counter_ns() - t)
    settings = load_settings(cfg)
    records: list[tuple[int, int, int]] = []  # (ts_local, return time_ns, kind: 1 book update)

    class TimedEngine(Engine):
        def on_event(self, event):  # type: ignore[no-untyped-def]
            super().on_event(event)
            records.append((event.ts_local, time.time_ns(), type(event).__name__ == "BookSnapshot"))

    poller = None
    daemon_mod.Engine = TimedEngine
    recording_mod.RunRecorder.write = timed_write  # type: ignore[method-assign]
    try:
        daemon = daemon_mod.Daemon(settings, settings.run.db, live=mode == "live")
        daemon.observer = build(settings)
        if console is not None:  # as `bot run` attaches it, drawing its status line on a terminal
            from bot.cli.run_console import RunConsole
            from bot.engine.observer import Observers

            daemon.observer = Observers(daemon.observer, RunConsole(settings, out=open(os.devnull, "w"), status_stream=console.stream,
                                                                    force_status=True))
            daemon.observer.log = daemon.log
        if http_port:
            poller = subprocess.Popen([sys.executable, "-c", POLLER, str(http_port), TOKEN], stdout=subprocess.PIPE, text=True)
        asyncio.run(daemon.run())
    finally:
        daemon_mod.Engine = Engine
        recording_mod.RunRecorder.write = plain_write  # type: ignore[method-assign]
        polled = 0
        if poller is not None:
            poller.terminate()
            out, _ = poller.communicate(timeout=30)
            lines = out.split()
            polled = int(lines[-1]) if lines else 0
    return records, polled


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20 s per run instead of 40 s")
    p.add_argument("--rounds", type=int, default=3, help="runs per setting, alternating")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--mode", choices=["live", "paper"], default="paper")
    p.add_argument("--json", default=None)
    p.add_argument("--console", action="store_true", help="a third setting: no [http], bot run's status line drawn on a pseudo-terminal")
    p.add_argument("--setting", choices=["http", "record"], default="http", help="compare without/with [http] or run.record_dir")
    args = p.parse_args(argv)
    seconds = args.seconds or (20.0 if args.quick else 40.0)
    what = "[http]" if args.setting == "http" else "run.record_dir"
    result: dict = {"benchmark": f"tick-to-decision with and without {what}", "machine": print_machine(f"benchmark 6: cost of {what}"),
                    "seconds": seconds, "rounds": args.rounds, "mode": args.mode}
    labels = ("without_http", "with_http") if args.setting == "http" else ("without_record", "with_record")
    work = Path(tempfile.mkdtemp(prefix="bench-ops-"))
    os.environ["BOT__EXCHANGE__API_KEY"] = BENCH_KEY
    os.environ["BOT__EXCHANGE__API_SECRET"] = BENCH_SECRET
    os.environ["BOT__HTTP__TOKEN"] = TOKEN
    from bot.log import configure

    emu = Emulator(work)
    try:
        configure(str(work / "logs"), "info", "warning")
        labels = labels + (("with_console",) if args.console else ())
        samples: dict[str, list[int]] = {label: [] for label in labels}
        writes: list[int] = []
        served = 0
        terminal = PseudoTerminal() if args.console else None
        for n in range(args.rounds):
            for label in labels:
                port = free_port() if label == "with_http" else None
                print(f"   round {n + 1}/{args.rounds}: daemon ({args.mode}) {label.replace('_', ' ')} for {seconds:.0f} s ...", flush=True)
                records, polled = run_once(work, emu.url, args.mode, seconds, port, terminal if label == "with_console" else None,
                                           record=label == "with_record", writes=writes)
                if not records:
                    raise SystemExit("no events reached the engine")
                served += polled
                t0 = records[0][0] + 2_000_000_000
                samples[label] += [end - ts for ts, end, is_book in records if is_book and ts >= t0]
        for label, book in samples.items():
            result[label] = {"tick_to_decision_book": percentiles(book), "requests_served": served if label == "with_http" else 0}
        if terminal is not None:
            result["with_console"]["terminal_bytes_drawn"] = terminal.drawn
            terminal.close()
        if args.setting == "record":
            result["with_record"]["recording_write"] = percentiles(writes)
    finally:
        emu.stop()
    for label in labels:
        x = result[label]["tick_to_decision_book"]
        extra = f"  ({result[label]['requests_served']} HTTP requests served)" if label == "with_http" else ""
        if label == "with_console":
            extra = f"  (status line: {result[label]['terminal_bytes_drawn']} bytes drawn on the terminal)"
        print(f"      tick-to-decision, {label.replace('_', ' '):13s} n={x['n']:5d}  p50 {x['p50_ms']:.3f} ms  p99 {x['p99_ms']:.3f} ms  "
              f"p99.9 {x['p99_9_ms']:.3f} ms  max {x['max_ms']:.3f} ms{extra}")
    if args.setting == "record":
        w = result["with_record"]["recording_write"]
        print(f"      recording hand-over (after the decision) n={w['n']:5d}  p50 {w['p50_ms']:.3f} ms  p99 {w['p99_ms']:.3f} ms  max {w['max_ms']:.3f} ms")
    a, b = (result[label]["tick_to_decision_book"] for label in labels)
    result["p99_difference_ms"] = round(b["p99_ms"] - a["p99_ms"], 4)
    print(f"      p99 with - without: {result['p99_difference_ms']:+.3f} ms, p50: {b['p50_ms'] - a['p50_ms']:+.3f} ms")
    if args.console:
        c = result["with_console"]["tick_to_decision_book"]
        result["p99_console_difference_ms"] = round(c["p99_ms"] - a["p99_ms"], 4)
        print(f"      p99 with the status line - without: {result['p99_console_difference_ms']:+.3f} ms, p50: {c['p50_ms'] - a['p50_ms']:+.3f} ms")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
