"""The ``bot`` command.

Exit codes: 0 success, 1 a problem with the user's input (config, data, database) explained on
stderr, 2 wrong command-line usage. Results go to stdout (one JSON object with ``--json``),
logs to stderr and ``logs/bot.log``, so scripts can parse stdout safely.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.config.settings import ConfigError, load_settings, validate_file


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    from bot.store.jsonout import strict_json
    from bot.store.report import format_summary

    if as_json:
        print(strict_json(summary))  # null, never NaN/Infinity: strict parsers reject those
    else:
        print(format_summary(summary))


def _check_strategy(settings: Any, config: str | None) -> None:
    """An unknown ``strategy.mode`` (or a plug-in that cannot be imported) is a config error."""
    from bot.strategies.registry import UnknownStrategy, check

    try:
        check(settings)
    except UnknownStrategy as exc:
        key = "strategy.plugins" if str(exc).startswith("strategy.plugins") else "strategy.mode"
        raise ConfigError(config or "(defaults)", [(key, str(exc).removeprefix("strategy.plugins: ").removeprefix("strategy.mode "))]) from None


def cmd_backtest(args: argparse.Namespace) -> int:
    import itertools

    from bot.data.binance import RecordingError, ReaderStats
    from bot.data.readers import read_events, resolve
    from bot.data.sim import simulate
    from bot.engine.runner import run_backtest
    from bot.log import configure

    try:
        settings = load_settings(args.config)
        _check_strategy(settings, args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    if not args.data and not args.sim:
        return _fail("give recordings with --data FILE [FILE...] or use the built-in simulator with --sim")
    if args.data and args.sim:
        return _fail("--data and --sim are exclusive: replay recordings or simulate, not both")
    configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
    db = args.db or settings.run.db

    if args.sim:
        if len(settings.instruments) > 1:
            return _fail("--sim simulates one market: give a config with one [market], or recordings of every [[markets]] entry with --data")
        events = simulate(settings.sim, settings.instruments[0])
        files: list[str] = []
        source_stats = lambda: {"source": "sim", "seed": settings.sim.seed, "duration_s": settings.sim.duration_s}  # noqa: E731
    else:
        missing = [f for f in args.data if not Path(f).is_file()]
        if missing:
            return _fail("data file not found: " + ", ".join(missing))
        many = len(settings.instruments) > 1
        try:  # a file no reader recognizes (or files of different formats) is refused before anything runs
            fmt = resolve(args.data, args.format).name
        except RecordingError as exc:
            return _fail(str(exc))
        if fmt != "binance-raw" and many:
            return _fail(f"several [[markets]] are replayed from Binance raw-stream recordings only; {', '.join(args.data)} "
                         f"are {fmt}: give a config with one [market]")
        if args.fast and fmt != "binance-raw":
            print(f"note: --fast replays Binance raw-stream recordings; {fmt} data runs on the readable engine, "
                  "with the same results", file=sys.stderr)
        elif args.fast:
            from bot.fast.backtest import replays_market

            if replays_market(settings):
                return _backtest_fast(settings, args, db)
            print("note: --fast replays one spot market so far; derivatives (funding, liquidation) and several instruments "
                  "run on the readable engine, with the same results", file=sys.stderr)
        files = [str(f) for f in args.data]
        if many:
            from bot.cli.instruments import merged_events

            try:
                events, source_stats = merged_events(settings, files, args.config)
            except RecordingError as exc:
                return _fail(str(exc))
        else:
            stats = ReaderStats()
            events = _checked_symbol(read_events(args.data, fmt, stats), stats, settings.instruments[0], args.config)
            source_stats = stats.as_dict
        # the first event before the run is stored: a file of another format, a recording without
        # market events or of another market is refused here, without leaving a failed run behind
        try:
            first = next(events)
        except RecordingError as exc:
            return _fail(str(exc))
        except StopIteration:  # the reader raises instead; kept so an empty replay can never pass
            return _fail(f"{', '.join(files)}: the recording yields no market events")
        events = itertools.chain([first], events)
    from bot.store.store import StoreError

    try:
        summary = run_backtest(settings, events, db_path=db, data_files=files, source_stats=source_stats)
    except (RecordingError, StoreError) as exc:
        return _fail(str(exc))
    _print_summary(summary, args.json)
    if not args.json and not args.sim:
        src = summary.get("stats", {}).get("source", {})
        for problem in src.get("problems", [])[:20]:
            print(f"data problem: {problem}", file=sys.stderr)
    return 0 if summary.get("status") == "completed" else 1


def _backtest_fast(settings, args: argparse.Namespace, db: str) -> int:  # type: ignore[no-untyped-def]
    """``--fast``: columnar events (cached) and the compiled scan; the stored results are identical."""
    from bot.data.binance import RecordingError
    from bot.data.market_check import market_mismatch
    from bot.fast.backtest import run_backtest_fast
    from bot.fast.columnar import load_binance

    try:
        arrays, _ = load_binance(args.data, args.cache)
    except RecordingError as exc:
        return _fail(str(exc))
    reader = arrays.meta.get("reader", {})
    symbol = str(reader.get("symbol") or arrays.meta.get("symbol") or "")
    problem = market_mismatch(symbol, str(reader.get("market_type") or ""), settings.instruments[0], args.config)
    if problem:
        return _fail(problem)
    from bot.store.store import StoreError

    try:
        summary = run_backtest_fast(settings, arrays, db_path=db, data_files=[str(f) for f in args.data], source_stats=lambda: reader)
    except StoreError as exc:
        return _fail(str(exc))
    _print_summary(summary, args.json)
    return 0 if summary.get("status") == "completed" else 1


def _checked_symbol(events, stats, market, config):  # type: ignore[no-untyped-def]
    """Refuse to replay a recording of another symbol or market type (spot / USD-M futures) than the
    config's ``[market]`` (wrong fees, tick and lot sizes): raises MarketMismatch, a RecordingError."""
    from bot.data.market_check import checked_market

    return checked_market(events, stats, market, config)


def cmd_report(args: argparse.Namespace) -> int:
    from bot.store.report import summarize

    if not Path(args.db).is_file():
        return _fail(f"database not found: {args.db}")
    problem = _report_outputs(args)
    if problem:
        return _fail(problem)
    try:
        summary = summarize(args.db, args.run)
    except LookupError as exc:
        return _fail(str(exc))
    if args.trades or args.csv:
        from bot.store.report import open_run
        from bot.store.trades import load_trades

        db = open_run(args.db)
        try:
            first = (str(summary["symbol"] or "").split(",") or [""])[0]
            trades = load_trades(db.conn, summary["run_id"], first)
        finally:
            db.close()
    if args.html:
        from bot.store.report_html import write_run_page

        try:
            written = write_run_page(args.db, summary["run_id"], args.html)
        except OSError as exc:
            return _fail(f"--html {args.html}: cannot write the page ({exc.strerror or exc})")
        print(f"wrote the report page of run {summary['run_id']} to {written}", file=sys.stderr)
    if args.csv:
        from bot.store.trades import trades_csv

        if args.csv == "-":
            sys.stdout.write(trades_csv(trades))
            return 0
        from bot.store.page import write_text

        try:
            write_text(args.csv, trades_csv(trades))
        except OSError as exc:
            return _fail(f"--csv {args.csv}: cannot write the trade list ({exc.strerror or exc})")
        print(f"wrote {len(trades)} trades of run {summary['run_id']} to {args.csv}", file=sys.stderr)
    if args.trades:
        from bot.store.jsonout import strict_json
        from bot.store.trades import format_trades

        if args.json:  # money as exact decimal strings, as stored
            print(strict_json({"run_id": summary["run_id"], "settle": summary["settle"], "trades": [t.row() for t in trades]}))
        else:
            print(format_trades(trades, str(summary.get("settle") or "")))
        return 0
    _print_summary(summary, args.json)
    return 0


def _report_outputs(args: argparse.Namespace) -> str | None:
    """What is wrong with ``bot report``'s output options, before anything is read or written."""
    if args.csv == "-" and (args.json or args.trades):
        return "--csv - writes the trade list to stdout, which then holds nothing else: leave out --json/--trades or give --csv a file"
    db = Path(args.db).resolve()
    for flag, value in (("--html", args.html), ("--csv", args.csv)):
        if not value or value == "-":
            continue
        out = Path(value)
        if out.resolve() == db:
            return f"{flag} {value} is the database itself: give another output file"
        if out.is_dir():
            return f"{flag} {value} is a directory: give a file name, e.g. {Path(value) / ('report.html' if flag == '--html' else 'trades.csv')}"
    if args.html and args.csv and args.csv != "-" and Path(args.html).resolve() == Path(args.csv).resolve():
        return "--html and --csv name the same file: give two files"
    return None


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.engine.daemon import Daemon, DaemonError
    from bot.log import configure
    from bot.ops import build as build_ops
    from bot.ops import config_problem

    try:
        settings = load_settings(args.config)
        _check_strategy(settings, args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    problem = config_problem(settings)
    if problem:
        return _fail(f"invalid configuration {args.config or '(defaults)'}: {problem}")
    try:
        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
    except OSError as exc:
        return _fail(f"run.log_dir {settings.run.log_dir!r}: cannot write the log there ({exc.strerror or exc})")
    try:
        daemon = Daemon(settings, args.db or settings.run.db, live=args.live)
        daemon.observer = build_ops(settings)
        return asyncio.run(daemon.run())
    except DaemonError as exc:
        return _fail(str(exc))


def cmd_status(args: argparse.Namespace) -> int:
    from bot.store.jsonout import strict_json
    from bot.store.status import format_status, read_status

    if not Path(args.db).is_file():
        return _fail(f"database not found: {args.db}")
    try:
        status = read_status(args.db, args.run)
    except LookupError as exc:
        return _fail(str(exc))
    print(strict_json(status) if args.json else format_status(status))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from bot.emulator.cli import run_emulator

    return run_emulator(args)


def cmd_config_check(args: argparse.Namespace) -> int:
    problems = validate_file(args.file)
    if not problems:
        print(f"{args.file}: ok")
        return 0
    for key, message in problems:
        print(f"{args.file}: {key}: {message}")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bot", description="Order-book-imbalance trading bot.")
    sub = parser.add_subparsers(dest="command", required=True)

    bt = sub.add_parser("backtest", help="replay recordings (or the built-in simulator) through the engine")
    bt.add_argument("--config", required=True, help="TOML config, e.g. config/backtest.toml")
    bt.add_argument("--data", nargs="+", metavar="FILE", help="recorded market data, format detected from the content "
                    "(Binance raw streams, Tardis CSV, LOBSTER, Bitstamp log, Bybit dump, bot record files; see bot inspect); a split recording is given as all its files")
    bt.add_argument("--format", metavar="NAME", help="read --data as this format instead of detecting it "
                    "(binance-raw, tardis, tardis-liquidations, lobster, bitstamp, bybit, binance-book-csv, bot-recording)")
    bt.add_argument("--sim", action="store_true", help="use the built-in order book simulator ([sim] section)")
    bt.add_argument("--db", help="SQLite database (default: run.db of the config)")
    bt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    bt.add_argument("--fast", action="store_true", help="compiled replay (numba): same decisions and stored rows, much faster")
    bt.add_argument("--cache", metavar="DIR", help="--fast: where parsed recordings are cached (default $BOT_FAST_CACHE or the temp dir)")
    bt.set_defaults(func=cmd_backtest)

    rp = sub.add_parser("report", help="print a run's summary (or its trades) from the database; write an HTML page of it")
    rp.add_argument("--db", required=True)
    rp.add_argument("--run", help="run id (default: the latest run)")
    rp.add_argument("--json", action="store_true", help="one JSON object (the summary, or with --trades the trade list)")
    rp.add_argument("--trades", action="store_true", help="print the trade list (round trips) instead of the summary")
    rp.add_argument("--csv", metavar="FILE", help="write the trade list as CSV to FILE ('-': to stdout, instead of anything else)")
    rp.add_argument("--html", metavar="OUT.html", help="write one self-contained HTML page of the run (charts, trades, halts)")
    rp.set_defaults(func=cmd_report)

    run = sub.add_parser("run", help="the daemon: trade in paper or live mode until SIGINT/SIGTERM")
    run.add_argument("--config", required=True, help="TOML config with run.mode paper or live")
    run.add_argument("--live", action="store_true", help="required (with run.mode = \"live\" and keys) to trade real money")
    run.add_argument("--db", help="SQLite database (default: run.db of the config); one daemon per database")
    run.set_defaults(func=cmd_run)

    st = sub.add_parser("status", help="show a daemon's mode, uptime, position, open orders, PnL, book age, halts")
    st.add_argument("--db", required=True)
    st.add_argument("--run", help="run id (default: the latest run)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    from bot.emulator.cli import build_parser as emulator_parser

    emu = sub.add_parser("emulator", help="local Binance-compatible exchange emulator on 127.0.0.1 (for tests and the demo)")
    emulator_parser(emu)
    emu.set_defaults(func=cmd_emulator)

    from bot.cli.demo import register as register_demo
    from bot.research.command import register as register_research
    from bot.tune.command import register as register_tune

    from bot.cli.inspect import register as register_inspect
    from bot.cli.record import register as register_record

    register_demo(sub)
    register_inspect(sub)
    register_record(sub)
    register_research(sub)
    register_tune(sub)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file; exit 1 listing every problem")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Whatever goes wrong ends in one ``error:`` line on stderr and exit 1
    (the traceback goes to the log file only, secrets masked), never a traceback on the console."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (`bot report --trades | head`): nothing is wrong with the input
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        from bot.log import get_logger, mask_secrets

        get_logger("bot.cli").error("command failed", command=args.command, exc_info=True)
        detail = mask_secrets(" ".join(str(exc).split()))[:400]
        return _fail(f"{args.command}: {type(exc).__name__}: {detail} (the traceback is in the log file)")


if __name__ == "__main__":
    raise SystemExit(main())
