"""The ``bot`` command.

Exit codes: 0 success, 1 a problem with the user's input (config, data, database) explained on
stderr, 2 wrong command-line usage (``bot compare``: 3 when the replay diverges). Results go to stdout (one JSON object with ``--json``),
logs to stderr and ``logs/bot.log``, so scripts can parse stdout safely.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # bot backtest's end-to-end figures count from here (imports included)

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bot.cli.common import check_strategy as _check_strategy  # noqa: E402
from bot.cli.common import fail as _fail  # noqa: E402
from bot.cli.common import print_summary as _print_summary  # noqa: E402


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

    from bot.config.settings import ConfigError, load_settings
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
    configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)  # LogDirError: main says it
    from bot.cli.run_console import RunConsole, print_summary
    from bot.engine.observer import Observers

    db = args.db or settings.run.db
    try:
        daemon = Daemon(settings, db, live=args.live)
    except DaemonError as exc:
        return _fail(str(exc))
    ops = build_ops(settings)
    # bot.ops first: a server that cannot listen refuses the start before anything is printed
    observers = Observers(ops, RunConsole(settings, status=settings.run.status_line and not args.no_status, ops=ops))
    observers.log = daemon.log
    daemon.observer = observers
    try:
        code = asyncio.run(daemon.run())
    except DaemonError as exc:
        print_summary(db, daemon.run_id)  # a run that started and then failed: what it did, as stored
        return _fail(str(exc))
    print_summary(db, daemon.run_id)
    return code


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
    from bot.config.settings import validate_file

    problems = validate_file(args.file)
    if not problems:
        print(f"{args.file}: ok")
        return 0
    for key, message in problems:
        print(f"{args.file}: {key}: {message}")
    return 1


def _register_report(sub: Any) -> None:
    rp = sub.add_parser("report", help="print a run's summary (or its trades) from the database; write an HTML page of it")
    rp.add_argument("--db", required=True)
    rp.add_argument("--run", help="run id (default: the latest run)")
    rp.add_argument("--json", action="store_true", help="one JSON object (the summary, or with --trades the trade list)")
    rp.add_argument("--trades", action="store_true", help="print the trade list (round trips) instead of the summary")
    rp.add_argument("--csv", metavar="FILE", help="write the trade list as CSV to FILE ('-': to stdout, instead of anything else)")
    rp.add_argument("--html", metavar="OUT.html", help="write one self-contained HTML page of the run (charts, trades, halts)")
    rp.set_defaults(func=cmd_report)


def _register_run(sub: Any) -> None:
    run = sub.add_parser("run", help="the daemon: trade in paper or live mode until SIGINT/SIGTERM")
    run.add_argument("--config", required=True, help="TOML config with run.mode paper or live")
    run.add_argument("--live", action="store_true", help="required (with run.mode = \"live\" and keys) to trade real money")
    run.add_argument("--db", help="SQLite database (default: run.db of the config); one daemon per database")
    run.add_argument("--no-status", action="store_true", help="no live status line on stderr (by default one is drawn when stderr is a terminal)")
    run.set_defaults(func=cmd_run)


def _register_status(sub: Any) -> None:
    st = sub.add_parser("status", help="show a daemon's mode, uptime, position, open orders, PnL, book age, halts")
    st.add_argument("--db", required=True)
    st.add_argument("--run", help="run id (default: the latest run)")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)


def _register_emulator(sub: Any) -> None:
    from bot.emulator.cli import build_parser as emulator_parser

    emu = sub.add_parser("emulator", help="local Binance-compatible exchange emulator on 127.0.0.1 (for tests and the demo)")
    emulator_parser(emu)
    emu.set_defaults(func=cmd_emulator)


def _register_config(sub: Any) -> None:
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    check = cfg_sub.add_parser("check", help="validate a config file; exit 1 listing every problem")
    check.add_argument("file")
    check.set_defaults(func=cmd_config_check)


def _lazy(module: str, *args: Any) -> Callable[[Any], None]:
    """A command registered by ``module.register(sub, *args)``, imported only when needed."""

    def register(sub: Any) -> None:
        import importlib

        importlib.import_module(module).register(sub, *args)

    return register


COMMANDS: dict[str, Callable[[Any], None]] = {
    "backtest": _lazy("bot.cli.backtest", _STARTED),
    "report": _register_report,
    "run": _register_run,
    "status": _register_status,
    "emulator": _register_emulator,
    "compare": _lazy("bot.cli.compare"),
    "demo": _lazy("bot.cli.demo"),
    "inspect": _lazy("bot.cli.inspect"),
    "record": _lazy("bot.cli.record"),
    "research": _lazy("bot.research.command"),
    "tune": _lazy("bot.tune.command"),
    "config": _register_config,
}
"""Every command and how its parser is built, in ``bot --help``'s order."""


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, only its command's parser is built.

    Building a command's parser imports its module, and with it what the command needs (the
    emulator's aiohttp for ``bot emulator``, the settings models for ``bot record``): a few tenths
    of a second that every other command would pay at start-up. Without a known command (``bot``,
    ``bot --help``, a typo) every command is built, so the help and the error list them all.
    """
    parser = argparse.ArgumentParser(prog="bot", description="Order-book-imbalance trading bot.")
    sub = parser.add_subparsers(dest="command", required=True)
    words = sys.argv[1:] if argv is None else argv
    # the top level has only -h: a leading option (``bot --help backtest``) asks for the full list
    first = words[0] if words and not words[0].startswith("-") else None
    for name, register in COMMANDS.items():
        if first not in COMMANDS or name == first:
            register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Whatever goes wrong ends in one ``error:`` line on stderr and exit 1
    (the traceback goes to the log file only, secrets masked), never a traceback on the console."""
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (`bot report --trades | head`): nothing is wrong with the input
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the interpreter's final flush cannot fail again
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        from bot.log import LogDirError, get_logger, mask_secrets

        if isinstance(exc, LogDirError):  # no log file to put a traceback in: the one line says what to fix
            return _fail(str(exc))

        get_logger("bot.cli").error("command failed", command=args.command, exc_info=True)
        detail = mask_secrets(" ".join(str(exc).split()))[:400]
        return _fail(f"{args.command}: {type(exc).__name__}: {detail} (the traceback is in the log file)")


if __name__ == "__main__":
    raise SystemExit(main())
