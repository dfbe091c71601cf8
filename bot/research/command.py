"""The ``bot research`` sub-command.

    bot research --data FILE [FILE...] --out DIR [--config FILE] [--interval S] [--window S]
                 [--horizons 0.1,1,10,60] [--levels N] [--train-frac F] [--tick-size X]
                 [--flow-window S] [--buckets N] [--html OUT.html] [--quiet]

Writes ``DIR/report.json`` and PNG figures (and with ``--html`` one self-contained page), prints a short summary on stdout, progress on
stderr. Exit codes: 0 ok, 1 input problem (missing file, bad config, unreadable recording, bad
parameter value) explained on stderr; argparse itself exits 2 on malformed usage.

Wire it with ``from bot.research.command import register; register(sub)`` where ``sub`` is the
``argparse`` sub-parsers object.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_HORIZONS = "0.1,1,10,60"


class ResearchInputError(Exception):
    """A problem with the user's input, reported with exit code 1."""


def register(subparsers: Any) -> None:
    """Add the ``research`` sub-command to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "research",
        help="measure what the imbalance features predict on recordings, net of costs",
        description="Replay recordings once and measure the CKS OFI regressions, the predictive skill of "
                    "each feature by horizon, and the cost hurdle. Writes report.json and PNG plots to --out.",
    )
    p.add_argument("--data", nargs="+", required=True, metavar="FILE",
                   help="recorded market data (format detected from the content; see --format); a split recording is given as all its files")
    p.add_argument("--format", metavar="NAME", help="read --data as this format instead of detecting it (see bot inspect; "
                   "binance-raw, tardis, lobster, bitstamp, bybit, binance-book-csv, tardis-liquidations)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created) for report.json and the PNGs")
    p.add_argument("--config", metavar="FILE", help="TOML config: [signal] for the score, [execution] fees, "
                   "[market] tick_size (default: built-in defaults)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="CKS interval length in seconds (default 10)")
    p.add_argument("--window", type=float, default=1800.0, metavar="S",
                   help="CKS regression window in seconds (default 1800; the whole recording if shorter)")
    p.add_argument("--horizons", default=DEFAULT_HORIZONS, metavar="LIST",
                   help=f"forecast horizons in seconds, comma-separated (default {DEFAULT_HORIZONS})")
    p.add_argument("--levels", type=int, default=10, metavar="N",
                   help="book levels for multi-level OFI and top-N book imbalance (default 10)")
    p.add_argument("--train-frac", type=float, default=0.5, metavar="F",
                   help="first fraction of the time span used to fit the predictive OLS (default 0.5)")
    p.add_argument("--tick-size", type=float, metavar="X", help="override the config's market.tick_size")
    p.add_argument("--flow-window", type=float, metavar="S",
                   help="trailing window of the flow features (default: the config's signal.ofi_window_s)")
    p.add_argument("--buckets", type=int, default=10, metavar="N", help="signal quantile buckets for the cost table (default 10)")
    p.add_argument("--html", metavar="OUT.html", help="also write the report as one self-contained HTML page (charts and tables)")
    p.add_argument("--fit", nargs="?", type=float, const=1.0, default=None, metavar="HORIZON_S",
                   help="fit a linear score to the forward move over HORIZON_S (default 1) on the first --train-frac of the data, "
                        "score it on the rest, and write it as a [signal.model] section to DIR/signal_model.toml")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_research)


def parse_horizons(text: str) -> tuple[float, ...]:
    try:
        hs = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ResearchInputError(f"--horizons must be comma-separated seconds like {DEFAULT_HORIZONS}, got {text!r}") from None
    if not hs or any(not math.isfinite(h) or h <= 0 for h in hs):
        raise ResearchInputError(f"--horizons must be positive seconds, got {text!r}")
    return tuple(sorted(set(hs)))


def _stderr_progress(quiet: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        if not quiet:
            print(f"research: {msg}", file=sys.stderr, flush=True)

    return say


def run_research(
    data: Sequence[str | Path],
    out: str | Path,
    config: str | Path | None = None,
    interval_s: float = 10.0,
    window_s: float = 1800.0,
    horizons_s: Sequence[float] = (0.1, 1.0, 10.0, 60.0),
    levels: int = 10,
    train_frac: float = 0.5,
    tick_size: float | None = None,
    flow_window_s: float | None = None,
    buckets: int = 10,
    log: Callable[[str], None] | None = None,
    fit_horizon_s: float | None = None,
    data_format: str | None = None,
    show_progress: bool = False,
    configure_logging: bool = False,
) -> dict:
    """Run the whole pipeline; write ``out/report.json`` and the PNGs; return the report dict.

    Raises :class:`ResearchInputError` for input problems (the CLI turns it into exit code 1).
    ``show_progress``: a progress bar with an ETA on stderr while the recording is read, when
    stderr is a terminal (elsewhere ``log`` gets a line every few seconds, as before).
    ``configure_logging`` (the command): log as the config's ``[run]`` says, as every command does
    (the readers' warnings and any error's traceback go to the log file, never to stdout).
    """
    from bot.config.settings import ConfigError, load_settings
    from bot.data.binance import ReaderStats
    from bot.data.market_check import market_mismatch
    from bot.research.analysis import AnalysisParams, analyze
    from bot.research.plots import write_plots
    from bot.research.report import iso, write_report

    say = log or (lambda _msg: None)
    started = time.perf_counter()
    files = [Path(f) for f in data]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ResearchInputError("data file not found: " + ", ".join(missing))
    for name, value in (("--interval", interval_s), ("--window", window_s)):
        if not math.isfinite(value) or value <= 0:
            raise ResearchInputError(f"{name} must be a positive number of seconds, got {value}")
    if not 0.0 < train_frac < 1.0:
        raise ResearchInputError(f"--train-frac must be between 0 and 1 (exclusive), got {train_frac}")
    if not 1 <= levels <= 100:
        raise ResearchInputError(f"--levels must be between 1 and 100, got {levels}")
    if buckets < 2:
        raise ResearchInputError(f"--buckets must be at least 2, got {buckets}")
    if not horizons_s or any(h <= 0 for h in horizons_s):
        raise ResearchInputError("horizons must be positive seconds")
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise ResearchInputError(str(exc)) from None
    if configure_logging:
        from bot.log import configure

        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
    tick = float(settings.instruments[0].tick_size) if tick_size is None else float(tick_size)
    if not math.isfinite(tick) or tick <= 0:
        raise ResearchInputError(f"--tick-size must be positive, got {tick_size}")
    flow_w = settings.signal.ofi_window_s if flow_window_s is None else float(flow_window_s)
    if not math.isfinite(flow_w) or flow_w <= 0:
        raise ResearchInputError(f"--flow-window must be positive seconds, got {flow_window_s}")
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResearchInputError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from None

    stats = ReaderStats()
    t_read = time.perf_counter()
    last = [t_read]
    from bot.console import is_terminal
    from bot.console import progress as progress_bar
    from bot.data.recording import ReadMeter
    from bot.research.cross import instrument_groups

    files, others = instrument_groups(files, settings.instruments[0].symbol)
    say(f"reading {len(files)} file(s)")
    meter = ReadMeter()
    with progress_bar(sum(f.stat().st_size for f in files) or None, "research: reading", unit="bytes",
                      enabled=show_progress and is_terminal()) as bar:

        def progress(n_events: int, n_samples: int) -> None:
            if bar.mode != "off":  # the bar shows it; no line every two seconds under it
                bar.update(completed=meter.done())
                return
            now = time.perf_counter()
            if now - last[0] >= 2.0:
                last[0] = now
                say(f"{n_events:,} events, {n_samples:,} book samples, {now - t_read:.1f} s")

        if bar.mode != "off":
            meter.install()
        try:
            fs = _features_of(files, data_format, stats, settings.instruments[0], config, settings.signal, levels, progress)
        finally:
            meter.uninstall()
        bar.update(completed=bar.total)
    read_s = time.perf_counter() - t_read
    say(f"read {fs.counts['events']:,} events -> {len(fs):,} book samples in {read_s:.1f} s; analyzing")

    params = AnalysisParams(
        tick_size=tick,
        taker_fee_bps=settings.execution.taker_fee_bps,
        maker_fee_bps=settings.execution.maker_fee_bps,
        interval_s=interval_s,
        window_s=window_s,
        horizons_s=tuple(horizons_s),
        train_frac=train_frac,
        flow_window_s=flow_w,
        buckets=buckets,
        enter_threshold=settings.strategy.enter_threshold,
    )
    t_an = time.perf_counter()
    sections, plot_data = analyze(fs, params)
    if others:
        sections["cross"] = _cross(fs, stats.symbol, plot_data["features"], params, others, settings, config, levels, data_format, say)
    analyze_s = time.perf_counter() - t_an

    import numpy as np

    duration_s = (int(fs.segment_end_ts[-1]) - 1 - int(fs.ts[0])) / 1e9
    warnings = _warnings(fs, stats, settings, tick, tick_size is not None, params, duration_s, sections)
    if not config:
        other = market_mismatch(stats.symbol, stats.market_type, settings.instruments[0], check_symbol=False)
        if other:
            warnings.insert(0, f"no --config, so the built-in defaults are used: {other}")
    report: dict[str, Any] = {
        "tool": "bot research",
        "report_version": 1,
        "generated_at": iso(time.time_ns()),
        "out_dir": str(out_dir),
        "data": {
            "files": [{"path": str(f), "bytes": f.stat().st_size} for f in files],
            "symbol": stats.symbol,
            "market_type": stats.market_type,
            "start": iso(int(fs.ts[0])),
            "end": iso(int(fs.segment_end_ts[-1]) - 1),
            "start_ts": int(fs.ts[0]),
            "end_ts": int(fs.segment_end_ts[-1]) - 1,
            "duration_s": duration_s,
            "counts": {**fs.counts, "quote_terms": int(len(fs.quote_ts)), "trade_records": int(len(fs.trade_ts))},
            "reader": stats.as_dict(),
            "clock": "local receive timestamps (ts_local), ns",
        },
        "parameters": {
            **params.as_dict(),
            "levels": levels,
            "config": str(config) if config else None,
            "tick_size_source": "--tick-size" if tick_size is not None else "config market.tick_size",
            "signal": settings.signal.model_dump(mode="json"),
            "nw_lag_rule": "floor(4 * (n/100)^(2/9)) (Newey-West 1994), raised to the median number of samples "
                           "per horizon for overlapping forward changes; Bartlett weights",
            "significance": "|t_NW| > 1.96",
        },
        "warnings": warnings,
        **sections,
    }
    say("writing plots")
    title = f"{stats.symbol or 'recording'} {stats.market_type} {iso(int(fs.ts[0]))[:19]} ({duration_s:.0f} s)"
    t_pl = time.perf_counter()
    try:
        report["plots"] = write_plots(out_dir, sections, plot_data, title)
    except ImportError as exc:  # matplotlib is needed for the figures only
        report["plots"] = []
        report["warnings"].append(f"no plots: {exc} (pip install matplotlib)")
    report["runtime_s"] = {"read_and_features": read_s, "analysis": analyze_s,
                           "plots": time.perf_counter() - t_pl, "total": time.perf_counter() - started}
    report["environment"] = {"python": platform.python_version(), "numpy": np.__version__}
    if fit_horizon_s is not None:
        from bot.research.fit import fit_model, write_model

        if not math.isfinite(fit_horizon_s) or fit_horizon_s <= 0:
            raise ResearchInputError(f"--fit must be a positive horizon in seconds, got {fit_horizon_s}")
        try:
            fit = fit_model(fs, fit_horizon_s, train_frac)
        except ValueError as exc:
            raise ResearchInputError(str(exc)) from None
        path = out_dir / "signal_model.toml"
        write_model(path, fit, ", ".join(f.name for f in files))
        fit["toml"] = str(path)
        report["fit"] = fit
        say(f"fitted [signal.model] ({fit['n_train']} samples before the split): out-of-sample IC {fit['ic_test']}, "
            f"R2 {fit['r2_oos']}; wrote {path}")
    write_report(report, out_dir)
    return report


def _warnings(fs, stats, settings, tick: float, tick_overridden: bool, params, duration_s: float, sections: dict) -> list[str]:  # type: ignore[no-untyped-def]
    import numpy as np

    out: list[str] = []
    from bot.data.symbols import unified_symbol

    market = settings.instruments[0]
    unified = unified_symbol(stats.symbol, stats.market_type or market.type) if stats.symbol else None
    if stats.symbol and (unified or stats.symbol.upper()) != market.symbol:
        out.append(f"recording is {stats.symbol} but config market.symbol is {market.symbol}: "
                   f"tick_size {tick:g} and fees come from that config (use --tick-size / a matching --config)")
    spread = fs.spread
    pos = spread[spread > 0]
    if len(pos):
        observed = float(pos.min())
        steps = np.diff(np.unique(np.round(fs.bid / (tick / 100.0))))
        if observed > 1.5 * tick:
            out.append(f"the smallest spread seen is {observed:g} = {observed / tick:.3g} ticks of {tick:g}: "
                       "tick_size looks too small for this market; figures in ticks are scaled by it")
        elif observed < 0.99 * tick or (len(steps) and steps.min() < 99):
            out.append(f"prices move in steps smaller than tick_size {tick:g}: it looks too large for this market")
    if duration_s < params.window_s:
        out.append(f"recording ({duration_s:.0f} s) is shorter than the {params.window_s:g} s CKS window: "
                   "one window = the whole recording, so 'share of significant windows' is 0 or 1")
    if not sections["cks"]["windows"]:
        out.append(f"no CKS window has {params.min_intervals} valid {params.interval_s:g} s intervals")
    if fs.counts["segments"] > 1:
        out.append(f"the book lost sync {fs.counts['segments'] - 1} time(s): nothing is measured across those gaps")
    if stats.problems_total:
        out.append(f"the reader reported {stats.problems_total} data problem(s) (see data.reader.problems)")
    if fs.counts["ts_backwards"]:
        out.append(f"{fs.counts['ts_backwards']} event(s) had a local timestamp earlier than the previous one")
    if not len(fs.quote_ts):
        out.append("no bookTicker quotes in the recording: ofi_quotes unavailable (ofi_book is the book's L1 OFI)")
    if not len(fs.trade_ts):
        out.append("no trades in the recording: trade imbalance unavailable")
    for h in sections["predictive"]["horizons"]:
        if h["n"] < 100:
            out.append(f"horizon {h['horizon_s']:g} s has only {h['n']} valid samples")
    return out


def _features_of(files, data_format, stats, instrument, config, signal, levels, progress=None, label=""):  # type: ignore[no-untyped-def]
    """One instrument's recording read (``stats`` filled in) and replayed into its feature set;
    input problems are :class:`ResearchInputError` (``label`` names the instrument when several)."""
    from bot.data.binance import RecordingError
    from bot.data.market_check import checked_market
    from bot.data.readers import read_events
    from bot.research.features import extract_features

    events = read_events([str(f) for f in files], data_format, stats)
    if config:  # the config's fees and tick would be of the other market (spot / USD-M): refused
        events = checked_market(events, stats, instrument, config, check_symbol=False)
    try:
        fs = extract_features(events, signal, levels, progress=progress)
    except RecordingError as exc:
        raise ResearchInputError(label + str(exc)) from None
    if len(fs) < 2:
        raise ResearchInputError(
            f"{label}the recording gave {len(fs)} sound book sample(s): no depth snapshot, or the book never synced "
            f"(reader: {stats.events}, problems: {stats.problems[:3]})")
    return fs


def _cross(fs, symbol, feats, params, others, settings, config, levels, data_format, say):  # type: ignore[no-untyped-def]
    """The cross-instrument tables: each other instrument read and featurized like the first."""
    from dataclasses import replace

    from bot.data.binance import ReaderStats
    from bot.research.cross import cross_section

    featurized = []
    for group in others:
        inst = next((i for i in settings.instruments if i.symbol == group.unified_symbol), settings.instruments[0])
        say(f"reading {len(group.files)} file(s) of {group.symbol} for the cross-instrument table")
        other = _features_of(group.files, data_format, ReaderStats(), inst, config, settings.signal, levels, label=f"{group.symbol}: ")
        featurized.append((other, group.symbol, replace(params, tick_size=float(inst.tick_size))))
    return cross_section(fs, symbol, feats, params, featurized)


def cmd_research(args: argparse.Namespace) -> int:
    say = _stderr_progress(getattr(args, "quiet", False))
    html = getattr(args, "html", None)
    if html and Path(html).is_dir():  # refused before minutes of work, not after
        print(f"error: --html {html} is a directory: give a file name, e.g. {Path(html) / 'research.html'}", file=sys.stderr)
        return 1
    try:
        horizons = parse_horizons(args.horizons)
        report = run_research(
            args.data, args.out, config=args.config, interval_s=args.interval, window_s=args.window,
            horizons_s=horizons, levels=args.levels, train_frac=args.train_frac, tick_size=args.tick_size,
            flow_window_s=args.flow_window, buckets=args.buckets, log=say, fit_horizon_s=args.fit,
            data_format=getattr(args, "format", None), show_progress=not getattr(args, "quiet", False),
            configure_logging=True,
        )
    except ResearchInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from bot.research.report import format_summary

    print(format_summary(report))
    if report.get("cross"):
        from bot.research.cross import format_cross

        names = list((report["predictive"]["horizons"] or [{}])[0].get("features", {}))
        for table in report["cross"]:
            print("\n" + format_cross(table, names))
    if html:
        from bot.research.page import write_page

        try:
            write_page(report, html)
        except OSError as exc:
            print(f"error: --html {html}: cannot write the page ({exc.strerror or exc}); report.json is in {args.out}", file=sys.stderr)
            return 1
        say(f"wrote the page {html}")
    say(f"done in {report['runtime_s']['total']:.1f} s")
    return 0
