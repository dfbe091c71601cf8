"""``bot demo``: the embedded default. Starts the exchange emulator on the built-in simulator,
runs the daemon in paper mode against it through the real ccxt client (REST + websockets on
127.0.0.1), then prints the run's report. No keys, no network, no data files."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from bot.config.settings import ConfigError, load_settings


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.engine.daemon import Daemon, DaemonError
    from bot.exchange.client import ExchangeFailure
    from bot.log import configure
    from bot.store.report import format_summary, summarize

    overrides: dict = {"run": {"mode": "paper"}}
    if args.duration is not None:
        overrides["run"]["duration_s"] = args.duration
    try:
        settings = load_settings(args.config, **overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    db = Path(args.db or settings.run.db)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "bot", "emulator", "--sim", "--port", "0", "--config", str(args.config), "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True, env={k: v for k, v in os.environ.items() if not k.startswith("BOT__")},
    )
    try:
        ready = emulator.stdout.readline() if emulator.stdout else ""
        if not ready.startswith("EMULATOR READY"):
            print(f"error: the exchange emulator did not start ({ready.strip() or 'no output'})", file=sys.stderr)
            return 1
        _, _, rest_url, ws_url = ready.split()
        settings = load_settings(args.config, **overrides, exchange={"rest_url": rest_url, "ws_url": ws_url})
        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
        print(f"demo: exchange emulator on {rest_url} (simulated BTC/USDT market); paper trading for {settings.run.duration_s:.0f} s; Ctrl-C stops early", file=sys.stderr)
        try:
            asyncio.run(Daemon(settings, db).run())
        except (DaemonError, ExchangeFailure) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        if emulator.poll() is None:
            emulator.send_signal(signal.SIGTERM)
            try:
                emulator.wait(10)
            except subprocess.TimeoutExpired:
                emulator.kill()
    print(format_summary(summarize(db)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="paper-trade the built-in simulated market through the local exchange emulator, then report")
    demo.add_argument("--config", default="config/demo.toml", help="default: config/demo.toml")
    demo.add_argument("--duration", type=float, help="seconds to trade (default: run.duration_s of the config)")
    demo.add_argument("--db", help="SQLite database (default: run.db of the config)")
    demo.set_defaults(func=cmd_demo)
