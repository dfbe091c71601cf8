"""``bot backtest``: replay recordings (or the simulator) through the engine, on the fast path by default.

Engines. ``--engine fast`` (the default) runs the compiled scan (:mod:`bot.fast.backtest`): the
readable engine only sees the events where the strategy or the risk manager could act, so the
stored rows are identical to ``--engine readable``, the reference path kept for checking. A
config or input the scan does not cover (several instruments, a perpetual recording with
mark-price or liquidation messages, features it does not compute, the simulator) runs on the
readable engine, with a note on stderr saying why; the JSON says which engine ran
(``stats.command.engine``, ``stats.command.engine_reason``). ``--fast`` is the old spelling of
``--engine fast``.

Data. A Binance raw-stream recording is parsed by the compiled parser into columnar arrays and
cached (``--cache``); every other format is read by its reader and encoded chunk by chunk to a
memory-mapped scratch directory, removed after the run (bounded memory, :mod:`bot.fast.colstore`).

What the run stores (so ``bot report`` shows the same): ``wall_time_s`` from the start of the
bot's code to the run's close and ``events_per_s`` over it (what the user gets: imports, parsing
and storing included), and under ``stats.command`` the engine and the phases
``setup_s`` (imports, the config, the strategy: everything before the data is read), ``parse_s``
(reading and decoding the data), ``replay_s`` (the engine) and ``store_s`` (SQLite writes and
closing the run).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bot.cli.common import check_strategy, fail, print_summary

FORMATS_HELP = "binance-raw, bot-recording, tardis, tardis-liquidations, lobster, bitstamp, bybit, binance-book-csv"


def register(sub: Any, started: float) -> None:
    bt = sub.add_parser("backtest", help="replay recordings (or the built-in simulator) through the engine")
    bt.add_argument("--config", required=True, help="TOML config, e.g. config/backtest.toml")
    bt.add_argument("--data", nargs="+", metavar="FILE", help="recorded market data, format detected from the content "
                    "(Binance raw streams, the bot's own recordings, Tardis CSV, LOBSTER, Bitstamp log, Bybit dump; see bot inspect); "
                    "a split recording is given as all its files")
    bt.add_argument("--format", metavar="NAME", help=f"read --data as this format instead of detecting it ({FORMATS_HELP})")
    bt.add_argument("--sim", action="store_true", help="use the built-in order book simulator ([sim] section)")
    bt.add_argument("--db", help="SQLite database (default: run.db of the config)")
    bt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    bt.add_argument("--engine", choices=("fast", "readable"), default="fast",
                    help="fast (default): the compiled scan, same decisions and stored rows; readable: the reference engine on every event")
    bt.add_argument("--fast", action="store_true", help="the same as --engine fast (the default)")
    bt.add_argument("--cache", metavar="DIR", help="where parsed Binance recordings are cached (default $BOT_FAST_CACHE or the temp dir)")
    bt.add_argument("--progress", action="store_true", help="draw the progress bar on stderr even when it is not a terminal")
    bt.add_argument("--no-progress", action="store_true", help="no progress bar (by default one is drawn when stderr is a terminal)")
    bt.set_defaults(func=lambda args: cmd_backtest(args, started))


class Phases:
    """Where the command's time goes (see the module docstring)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parse_s = 0.0
        self.store_s = 0.0
        self.run_start = started  # when the run began (its replay, with the reading a readable replay interleaves)
        self.data_start = started  # when reading the data began: before it, imports and the config

    def begin_data(self) -> None:
        self.data_start = time.perf_counter()

    def timed_events(self, events: Iterator[Any]) -> Iterator[Any]:
        """``events`` with the time spent inside the reader added to ``parse_s`` (readable replays interleave them)."""
        clock = time.perf_counter
        it = iter(events)
        while True:
            t = clock()
            try:
                event = next(it)
            except StopIteration:
                self.parse_s += clock() - t
                return
            self.parse_s += clock() - t
            yield event

    def time_store(self, store: Any) -> None:
        """Count the store's batched writes into ``store_s``."""
        store.time_writes(self._add_store)

    def _add_store(self, seconds: float) -> None:
        self.store_s += seconds

    def at_close(self, engine: str, reason: str | None, parse_in_replay: bool) -> Callable[[], dict[str, Any]]:
        """The run's stats entries, computed as the run closes: ``wall_time_s`` becomes the whole
        command's so far (so the stored, reported ``events_per_s`` is what the user got), and
        ``command`` holds the engine and the phases."""

        def stats() -> dict[str, Any]:
            now = time.perf_counter()
            run_wall = now - self.run_start
            in_run = self.parse_s if parse_in_replay else 0.0
            return {
                "wall_time_s": round(now - self.started, 6),
                "command": {
                    "engine": engine,
                    "engine_reason": reason,
                    "setup_s": round(self.data_start - self.started, 3),
                    "parse_s": round(self.parse_s, 3),
                    "replay_s": round(max(run_wall - in_run - self.store_s, 0.0), 3),
                    "store_s": round(self.store_s, 3),
                },
            }

        return stats


def cmd_backtest(args: argparse.Namespace, started: float) -> int:
    from bot.config.settings import ConfigError, load_settings
    from bot.data.binance import RecordingError
    from bot.data.readers import resolve
    from bot.log import configure

    phases = Phases(started)
    try:
        settings = load_settings(args.config)
        check_strategy(settings, args.config)
    except ConfigError as exc:
        return fail(str(exc))
    if not args.data and not args.sim:
        return fail("give recordings with --data FILE [FILE...] or use the built-in simulator with --sim")
    if args.data and args.sim:
        return fail("--data and --sim are exclusive: replay recordings or simulate, not both")
    if args.fast and args.engine == "readable":
        return fail("--fast and --engine readable contradict each other: give one")
    configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
    db = args.db or settings.run.db
    if args.sim:
        if len(settings.instruments) > 1:
            return fail("--sim simulates one market: give a config with one [market], or recordings of every [[markets]] entry with --data")
        return _readable(settings, args, db, phases, [], "--sim: the simulator's events replay on the readable engine")
    missing = [f for f in args.data if not Path(f).is_file()]
    if missing:
        return fail("data file not found: " + ", ".join(missing))
    try:  # a file no reader recognizes (or files of different formats) is refused before anything runs
        fmt = resolve(args.data, args.format).name
    except RecordingError as exc:
        return fail(str(exc))
    if fmt != "binance-raw" and len(settings.instruments) > 1:
        return fail(f"several [[markets]] are replayed from Binance raw-stream recordings only; {', '.join(args.data)} "
                    f"are {fmt}: give a config with one [market]")
    if args.engine == "readable":
        return _readable(settings, args, db, phases, [str(f) for f in args.data], "--engine readable", fmt)
    from bot.fast.backtest import fast_path_refusal

    refusal = fast_path_refusal(settings)
    if refusal is not None:
        print(f"note: the readable engine runs this backtest ({refusal}); same results, slower", file=sys.stderr)
        return _readable(settings, args, db, phases, [str(f) for f in args.data], refusal, fmt)
    return _fast(settings, args, db, phases, fmt)


def _readable(settings: Any, args: argparse.Namespace, db: str, phases: Phases, files: list[str], reason: str,
              fmt: str | None = None) -> int:
    from bot.data.binance import ReaderStats, RecordingError
    from bot.data.readers import read_events
    from bot.data.sim import simulate
    from bot.engine.runner import run_backtest
    from bot.store.store import StoreError

    if not files:
        events: Iterator[Any] = simulate(settings.sim, settings.instruments[0])
        source_stats: Callable[[], dict[str, Any]] = lambda: {"source": "sim", "seed": settings.sim.seed, "duration_s": settings.sim.duration_s}  # noqa: E731
    elif len(settings.instruments) > 1:
        from bot.cli.instruments import merged_events

        try:
            events, source_stats = merged_events(settings, files, args.config)
        except RecordingError as exc:
            return fail(str(exc))
    else:
        stats = ReaderStats()
        events = _checked_symbol(read_events(files, fmt, stats), stats, settings.instruments[0], args.config)
        source_stats = stats.as_dict
    phases.begin_data()
    events = phases.timed_events(events)
    if files:
        # the first event before the run is stored: a file of another format, a recording without
        # market events or of another market is refused here, without leaving a failed run behind
        try:
            first = next(events)
        except RecordingError as exc:
            return fail(str(exc))
        except StopIteration:  # the reader raises instead; kept so an empty replay can never pass
            return fail(f"{', '.join(files)}: the recording yields no market events")
        events = itertools.chain([first], events)
    try:
        phases.run_start = time.perf_counter()
        with _replay_progress(args, files, settings) as metered:
            summary = run_backtest(settings, metered(events), db_path=db, data_files=files, source_stats=source_stats,
                                   on_store=phases.time_store, extra_stats=phases.at_close("readable", reason, parse_in_replay=True))
    except (RecordingError, StoreError) as exc:
        return fail(str(exc))
    return _finish(summary, args)


def _fast(settings: Any, args: argparse.Namespace, db: str, phases: Phases, fmt: str) -> int:
    """The compiled scan over columnar events: the stored results are identical to the readable engine's."""
    with contextlib.ExitStack() as cleanup:
        return _fast_run(settings, args, db, phases, fmt, cleanup)


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fast_run(settings: Any, args: argparse.Namespace, db: str, phases: Phases, fmt: str, cleanup: contextlib.ExitStack) -> int:
    from bot.data.binance import ReaderStats, RecordingError
    from bot.data.market_check import market_mismatch
    from bot.fast.backtest import arrays_refusal, run_backtest_fast
    from bot.store.store import StoreError

    from bot.console import progress
    from bot.data.recording import ReadMeter

    phases.begin_data()
    t = time.perf_counter()
    bar_on = {"enabled": not args.no_progress, "force": args.progress}
    try:
        if fmt == "binance-raw":
            from bot.fast.columnar import load_binance

            meter = ReadMeter().install()
            try:
                with progress(sum(Path(f).stat().st_size for f in args.data) or None, "parse", unit="bytes", **bar_on) as bar:
                    arrays, info = load_binance(args.data, args.cache, on_block=lambda: bar.update(completed=meter.done()))
                    bar.update(completed=bar.total)  # a cached recording is read in one go
            finally:
                meter.uninstall()
            if info.get("rebuilt"):
                print(f"note: the cached recording could not be used ({info['rebuilt']}); parsed again", file=sys.stderr)
            reader = arrays.meta.get("reader", {})
            symbol = str(reader.get("symbol") or arrays.meta.get("symbol") or "")
            problem = market_mismatch(symbol, str(reader.get("market_type") or ""), settings.instruments[0], args.config)
            if problem:
                return fail(problem)
        else:
            import tempfile

            from bot.data.readers import read_events
            from bot.fast.colstore import open_columns, write_events
            from bot.fast.columnar import default_cache_dir

            stats = ReaderStats()
            try:  # encoded chunk by chunk to a mapped scratch directory (bounded memory), removed after the run
                scratch = Path(tempfile.mkdtemp(prefix="encoded-", dir=_made(Path(args.cache) if args.cache else default_cache_dir())))
                cleanup.callback(shutil.rmtree, scratch, True)
                arrays = open_columns(write_events(_checked_symbol(read_events(args.data, fmt, stats), stats, settings.instruments[0], args.config),
                                                   scratch / "events.cols"))
            except ValueError as exc:  # prices the columnar encoding cannot hold exactly
                reason = f"{fmt} prices cannot be encoded exactly for the compiled scan ({exc})"
                print(f"note: the readable engine runs this backtest ({reason}); same results, slower", file=sys.stderr)
                return _readable(settings, args, db, Phases(phases.started), [str(f) for f in args.data], reason, fmt)
            reader = stats.as_dict()
    except RecordingError as exc:
        return fail(str(exc))
    except OSError as exc:  # a data file that cannot be read, or a cache directory that cannot be written (full disk)
        return fail(f"cannot read or write {exc.filename or 'a file'}: {exc.strerror or exc} (the data files, or the cache: give --cache DIR)")
    refusal = arrays_refusal(arrays)
    if refusal is not None:
        print(f"note: the readable engine runs this backtest ({refusal}); same results, slower", file=sys.stderr)
        return _readable(settings, args, db, Phases(phases.started), [str(f) for f in args.data], refusal, fmt)
    phases.parse_s = time.perf_counter() - t
    try:
        phases.run_start = time.perf_counter()
        with progress(float(len(arrays)), "backtest", unit="events", **bar_on) as bar:
            summary = run_backtest_fast(settings, arrays, db_path=db, data_files=[str(f) for f in args.data], source_stats=lambda: reader,
                                        progress=lambda n: bar.update(completed=n),
                                        on_store=phases.time_store, extra_stats=phases.at_close("fast", None, parse_in_replay=False))
            bar.update(completed=bar.total)
    except StoreError as exc:
        return fail(str(exc))
    summary.pop("fast_path", None)  # not stored: the run's stats say which engine ran (command.engine)
    return _finish(summary, args)


def _finish(summary: dict[str, Any], args: argparse.Namespace) -> int:
    print_summary(summary, args.json)
    if not args.json:
        c = summary.get("stats", {}).get("command", {})
        print(f"command: {summary['wall_time_s']:.2f} s, {summary['events_per_s']:,.0f} events/s end to end on the {c['engine']} engine "
              f"(setup {c['setup_s']:.2f} s, parse {c['parse_s']:.2f} s, replay {c['replay_s']:.2f} s, store {c['store_s']:.2f} s)")
        if not args.sim:
            src = summary.get("stats", {}).get("source", {})
            for problem in src.get("problems", [])[:20]:
                print(f"data problem: {problem}", file=sys.stderr)
    return 0 if summary.get("status") == "completed" else 1


@contextlib.contextmanager
def _replay_progress(args: argparse.Namespace, files: list[str], settings: Any) -> Iterator[Callable[[Iterator[Any]], Iterator[Any]]]:
    """``bot backtest``'s progress bar on stderr (a terminal only, or ``--progress``; never with
    ``--no-progress``): the data files' bytes read by the replay against their sizes, or for
    ``--sim`` the simulated time against ``sim.duration_s``. Yields the wrapper for the events."""
    from bot.console import progress
    from bot.data.recording import ReadMeter

    enabled = not args.no_progress
    if files:
        total: float | None = sum(Path(f).stat().st_size for f in files) or None
        bar_args: dict[str, Any] = {"unit": "bytes"}
    else:
        total, bar_args = float(settings.sim.duration_s), {"unit": "s simulated"}
    meter = ReadMeter()
    with progress(total, "backtest", enabled=enabled, force=args.progress, **bar_args) as bar:
        if bar.mode == "off":
            yield lambda events: events
            return

        def metered(events: Iterator[Any]) -> Iterator[Any]:
            start = None
            for n, event in enumerate(events, 1):
                if n & 4095 == 0:  # a bar update every few thousand events: nothing per event
                    if files:
                        bar.update(completed=meter.done())
                    else:
                        bar.update(completed=(event.ts_local - start) / 1e9)
                elif start is None:
                    start = event.ts_local
                yield event
            bar.update(completed=total)

        meter.install()
        try:
            yield metered
        finally:
            meter.uninstall()


def _checked_symbol(events, stats, market, config):  # type: ignore[no-untyped-def]
    """Refuse to replay a recording of another symbol or market type (spot / USD-M futures) than the
    config's ``[market]`` (wrong fees, tick and lot sizes): raises MarketMismatch, a RecordingError."""
    from bot.data.market_check import checked_market

    return checked_market(events, stats, market, config)
