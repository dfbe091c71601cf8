"""``bot demo``: the embedded default. Starts the exchange emulator on the built-in simulator,
runs the daemon in paper mode against it through the real ccxt client (REST + websockets on
127.0.0.1), then prints the run's report. No keys, no network, no data files."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path



def cmd_demo(args: argparse.Namespace) -> int:
    from bot.config.settings import ConfigError, load_settings
    from bot.emulator.process import EmulatorProcess

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
    try:
        emulator = EmulatorProcess(["--sim", "--config", str(args.config), "--log-level", "warning"])
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        rest_url, ws_url = emulator.url, emulator.ws_url
        settings = load_settings(args.config, **overrides, exchange={"rest_url": rest_url, "ws_url": ws_url})
        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
        print(f"demo: exchange emulator on {rest_url} (simulated BTC/USDT market); paper trading for {settings.run.duration_s:.0f} s; Ctrl-C stops early", file=sys.stderr)
        try:
            asyncio.run(Daemon(settings, db).run())
        except (DaemonError, ExchangeFailure) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        emulator.stop()
    print(format_summary(summarize(db)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = sub.add_parser("demo", help="paper-trade the built-in simulated market through the local exchange emulator, then report")
    demo.add_argument("--config", default="config/demo.toml", help="default: config/demo.toml")
    demo.add_argument("--duration", type=float, help="seconds to trade (default: run.duration_s of the config)")
    demo.add_argument("--db", help="SQLite database (default: run.db of the config)")
    demo.set_defaults(func=cmd_demo)
