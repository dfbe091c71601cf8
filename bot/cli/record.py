"""``bot record --config FILE --out DIR``: record the live market of the config's instruments.

What is recorded and how is :mod:`bot.cli.recorder`; the files are the bot's own format
(:mod:`bot.data.own_format`, read back by ``bot inspect``, ``bot backtest --data`` ...). A status
line goes to stderr: one line redrawn every second on a terminal, a plain line every
``--status-interval`` seconds (default 60) otherwise (:mod:`bot.console`, as every command). SIGINT or SIGTERM stops the recording:
every file is closed and one summary line goes to stdout; exit 0. A bad config, an output
directory that cannot be written or an exchange that cannot be reached at the start is one
``error:`` line and exit 1; websocket drops and other retryable failures never end the recorder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config.settings import ConfigError, load_settings
from bot.console import human_size, is_terminal, status_line

if TYPE_CHECKING:  # the recorder imports ccxt: only ``bot record`` itself loads it, not every command's parser
    from bot.cli.recorder import Recorder


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def status_text(rec: "Recorder", now_ns: int | None = None) -> str:
    """One line: per instrument its events, gaps, bytes, current file and the age of its last event."""
    now = now_ns or time.time_ns()
    parts = []
    for ch in rec.channels:
        w = ch.writer
        age = f"{(now - ch.last_event_ns) / 1e9:.1f}s ago" if ch.last_event_ns else "none yet"
        current = w.current.name if w.current is not None else (w.files[-1].name + " (closed)" if w.files else "-")
        parts.append(f"{ch.name}: {w.events} events, {w.gaps} gaps, {human_size(w.bytes_written)}, {current}, last {age}")
    up = time.monotonic() - rec.started_mono if rec.started_mono else 0.0
    return f"recording {up:.0f}s | " + " | ".join(parts)


def _plain_status(rec: "Recorder") -> None:
    """Off a terminal, one plain status line every ``--status-interval`` (:mod:`bot.console` draws
    its status line only on a terminal)."""
    print(status_text(rec), file=sys.stderr, flush=True)


def _check_out_dir(out: Path) -> str | None:
    """What stops the recorder from writing under ``out`` (made if missing), or None."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: not a directory"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".bot-record-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"--out {out}: cannot write there ({exc.strerror or exc})"
    return None


def summary_line(rec: "Recorder") -> str:
    files = rec.files
    names = ", ".join(f.name for f in files[:6]) + (f" and {len(files) - 6} more" if len(files) > 6 else "")
    return (f"recorded {rec.events} events ({rec.gaps} gaps) of {len(rec.channels)} instrument(s) "
            f"into {len(files)} file(s) in {rec.out_dir}" + (f": {names}" if files else ""))


async def _run(rec: "Recorder") -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, rec.stop, signal.Signals(sig).name)
    try:
        await rec.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def cmd_record(args: argparse.Namespace) -> int:
    from bot.cli.recorder import Recorder, RecordError
    from bot.log import configure

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    if args.duration is not None and not args.duration > 0:
        return _fail(f"--duration must be > 0 seconds, got {args.duration:g}")
    if args.status_interval is not None and not args.status_interval > 0:
        return _fail(f"--status-interval must be > 0 seconds, got {args.status_interval:g}")
    out = Path(args.out)
    problem = _check_out_dir(out)
    if problem:
        return _fail(problem)
    try:
        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
    except OSError as exc:
        return _fail(f"run.log_dir {settings.run.log_dir!r}: cannot write the log there ({exc.strerror or exc})")
    tty = is_terminal(sys.stderr)
    interval = args.status_interval or (1.0 if tty else 60.0)
    show = not args.quiet
    rec = Recorder(settings, out, duration_s=args.duration, status=_plain_status if show and not tty else None, status_interval_s=interval)
    # on a terminal: the house status line, rendered in its refresh thread from the recorder's counts
    line = status_line(status_text, enabled=show and tty, refresh_per_second=1.0 / interval)
    line.set(rec)
    try:
        with line:
            asyncio.run(_run(rec))
    except RecordError as exc:
        if rec.files:
            print(summary_line(rec), file=sys.stderr)
        return _fail(str(exc))
    print(summary_line(rec))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("record", help="record the live market (book, trades, mark price, liquidations) of the config's instruments",
                       description="Record the live market of the config's instruments into DIR, in the bot's own format "
                                   "(read by bot inspect and bot backtest --data): the order book, trades, and on perpetuals "
                                   "the mark price, funding and liquidations, with gap lines where the book was lost. "
                                   "Files rotate every UTC hour. SIGINT/SIGTERM close every file and exit 0.")
    p.add_argument("--config", required=True, help="TOML config: the instruments ([market] or [[markets]]) and [exchange]")
    p.add_argument("--out", required=True, metavar="DIR", help="directory of the recording (made if missing); files never overwritten")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long (default: until SIGINT/SIGTERM)")
    p.add_argument("--status-interval", type=float, metavar="SECONDS",
                   help="seconds between status lines (default: 1 on a terminal, redrawn in place; 60 otherwise)")
    p.add_argument("--quiet", action="store_true", help="no status line")
    p.set_defaults(func=cmd_record)
