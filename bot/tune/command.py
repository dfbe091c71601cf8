"""The ``bot tune`` sub-command.

    bot tune --config BASE.toml --space SPACE.toml (--data FILE [FILE...] | --sim)
             [--engine fast|readable] [--workers N] [--executor local|dask] [--scheduler ADDRESS] [--db PATH] [--folds K] [--method grid|random] [--trials N] [--seed S]
             [--objective pnl_net|sharpe] [--out BEST.toml] [--max-trials N] [--skip-invalid]
             [--json] [--html OUT.html] [--quiet]

Results go to stdout (the leaderboard, or one JSON object with ``--json``); progress, warnings and
errors to stderr. Exit codes: 0 success (also a sweep stopped by ``--max-trials``: the JSON says
``"complete": false``), 1 a problem with the input (config, space, data) or a failed trial,
explained on stderr, 2 wrong usage (argparse), 130 / 143 interrupted by SIGINT / SIGTERM
(every finished trial is kept: run the same command again to resume).

Wire it with ``from bot.tune.command import register; register(sub)``; ``python -m bot.tune``
runs it stand-alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def register(subparsers: Any) -> None:
    """Add the ``tune`` sub-command to an argparse sub-parsers object."""
    p = subparsers.add_parser(
        "tune",
        help="walk-forward parameter sweep with a leaderboard; writes the best config",
        description="Backtest every candidate of a search space on walk-forward folds (fit in-sample, score "
                    "out-of-sample), print a leaderboard and write the best candidate as a complete config. "
                    "Finished trials are kept in the database; re-running the same command resumes.",
    )
    add_arguments(p)
    p.set_defaults(func=cmd_tune)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="BASE.toml", help="base config; the space's keys override it")
    p.add_argument("--space", required=True, metavar="SPACE.toml", help="search space (see config/space.example.toml)")
    p.add_argument("--data", nargs="+", metavar="FILE", help="recorded market data (format detected from the content); a split recording is given as all its files")
    p.add_argument("--format", metavar="NAME", help="read --data as this format instead of detecting it (names: see bot inspect --help)")
    p.add_argument("--sim", action="store_true", help="tune on the built-in simulator (the base config's [sim] section)")
    p.add_argument("--engine", choices=("fast", "readable"), default="fast",
                   help="fast (default): trials replay shared columnar arrays with the compiled scan, same results; "
                        "readable: the reference engine over Python events")
    p.add_argument("--workers", type=int, metavar="N",
                   help=f"parallel worker processes (default: CPU count = {os.cpu_count()}; 0 = run in this process)")
    p.add_argument("--executor", choices=("local", "dask"), default="local",
                   help="where trials run: local = this machine's process pool (default); dask = a Dask distributed "
                        "cluster (--scheduler, or a local one of --workers processes; pip install 'imbalance-bot[cluster]')")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --executor dask: the running cluster's scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(default: start a local cluster on 127.0.0.1 and close it at the end)")
    p.add_argument("--db", metavar="PATH", help="SQLite database for the trials and their runs (default: tune.db next to the config's run.db)")
    p.add_argument("--folds", type=int, metavar="K", help="walk-forward folds; the data is cut into K+1 segments (default: space file, else 3)")
    p.add_argument("--method", choices=("grid", "random", "tpe"), help="search method (default: space file, else grid)")
    p.add_argument("--trials", type=int, metavar="N", help="random search: number of candidates (default: space file, else 20)")
    p.add_argument("--seed", type=int, metavar="S", help="random search seed (default: space file, else 0)")
    p.add_argument("--objective", choices=("pnl_net", "sharpe"), help="in-sample selection criterion (default: space file, else pnl_net)")
    p.add_argument("--out", metavar="BEST.toml", help="where to write the best config (default: best.toml next to --db)")
    p.add_argument("--max-trials", type=int, metavar="N", help="run at most N new trials now, then stop (re-run to continue)")
    p.add_argument("--skip-invalid", action="store_true", help="drop candidate combinations the config rejects instead of failing")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the text leaderboard")
    p.add_argument("--html", metavar="OUT.html", help="also write the walk-forward result and leaderboard as one self-contained HTML page")
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _speed(trials: int, t0: float) -> dict[str, float]:
    """``wall_time_s`` of the whole command so far and the trials it ran per second of it."""
    wall = time.perf_counter() - t0
    return {"wall_time_s": round(wall, 3), "trials_per_s": round(trials / wall, 3) if wall > 0 else 0.0}


def _executor_problem(args: argparse.Namespace) -> str | None:
    """A combination of --executor / --scheduler / --workers that cannot work, said before anything runs."""
    executor = getattr(args, "executor", "local") or "local"
    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and executor != "dask":
        return f"--scheduler {scheduler} needs --executor dask (the local executor runs trials in this machine's processes)"
    if executor == "dask" and scheduler is not None and args.workers is not None:
        return (f"--workers {args.workers} does not apply with --scheduler: the cluster runs as many trials at once "
                f"as its workers have threads (set them with `dask worker {scheduler} --nworkers N --nthreads 1`)")
    if executor == "dask" and args.workers == 0:
        return "--workers 0 runs trials in this process, which only --executor local does: give --workers N >= 1 with --executor dask"
    if scheduler is not None and not scheduler.strip():
        return "--scheduler is empty: give the scheduler's address, e.g. tcp://10.0.0.5:8786"
    return None


def cmd_tune(args: argparse.Namespace) -> int:
    # a started cluster executor is closed however the command ends
    with contextlib.ExitStack() as exits:
        return _tune(args, exits)


def _tune(args: argparse.Namespace, exits: contextlib.ExitStack) -> int:
    from bot.store.jsonout import strict_json
    from bot.config.settings import ConfigError, load_settings
    from bot.data.binance import RecordingError
    from bot.log import configure
    from bot.tune.executor import ClusterError, make_executor
    from bot.tune.output import write_config
    from bot.tune.space import SpaceError, build_candidates, load_space
    from bot.tune.sweep import build_leaderboard, plan_sweep, run_sweep
    from bot.tune.trials import DataSpec, TrialError, load_source

    t0 = time.perf_counter()
    try:
        base = load_settings(args.config)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        space = load_space(args.space)
    except SpaceError as exc:
        return _fail(str(exc))
    for name in ("folds", "trials", "max_trials"):
        value = getattr(args, name)
        if value is not None and value < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.workers is not None and args.workers < 0:
        return _fail(f"--workers must be >= 0, got {args.workers}")
    problem = _executor_problem(args)
    if problem:
        return _fail(problem)
    if args.html and Path(args.html).is_dir():  # refused before the sweep, not after it
        return _fail(f"--html {args.html} is a directory: give a file name, e.g. {Path(args.html) / 'tune.html'}")
    method = args.method or space.method
    objective = args.objective or space.objective
    folds = args.folds or space.folds
    try:
        if method == "tpe":  # proposed during the search, from the first segment's scores
            from bot.tune.space import check_values

            check_values(space, args.config)
            candidates, warnings = [], []
        else:
            candidates, warnings = build_candidates(
                space, args.config, method=method, trials=args.trials, seed=args.seed,
                skip_invalid=True if args.skip_invalid else None,
            )
    except SpaceError as exc:
        return _fail(str(exc))
    except ConfigError as exc:
        return _fail(str(exc))
    for w in warnings:
        _warn(w)

    if not args.data and not args.sim:
        return _fail("give recordings with --data FILE [FILE...] or tune on the built-in simulator with --sim")
    if args.data and args.sim:
        return _fail("--data and --sim are exclusive: tune on recordings or on the simulator, not both")
    if args.data:
        missing = [f for f in args.data if not Path(f).is_file()]
        if missing:
            return _fail("data file not found: " + ", ".join(missing))
        data = DataSpec.for_files(args.data, args.format, args.engine)
    else:
        data = DataSpec.for_sim(base.sim.model_dump(mode="json"), base.instruments[0].model_dump(mode="json"), args.engine)

    configure(base.run.log_dir, base.run.log_level, base.run.console_log_level)
    db = Path(args.db) if args.db else Path(base.run.db).with_name("tune.db")
    out = Path(args.out) if args.out else db.parent / "best.toml"
    workers = (os.cpu_count() or 1) if args.workers is None else args.workers
    executor_kind = getattr(args, "executor", "local") or "local"
    try:  # before the data is read: a bad --scheduler is said at once
        executor = make_executor(executor_kind, workers=workers, scheduler=getattr(args, "scheduler", None),
                                 log_dir=base.run.log_dir, log_level=base.run.log_level)
    except ClusterError as exc:
        return _fail(str(exc))
    close = getattr(executor, "close", None)
    if close is not None:
        exits.callback(close)
    if executor_kind == "dask":
        workers = executor.slots  # type: ignore[attr-defined]  # what the cluster runs at once
        where = f"dask cluster {executor.address}"  # type: ignore[attr-defined]
    else:
        where = f"{workers or 1} worker(s)"

    try:
        source, info = load_source(data)
    except (RecordingError, TrialError) as exc:
        return _fail(str(exc))
    if data.kind == "files":
        from bot.data.market_check import market_mismatch

        problem = market_mismatch(info.get("symbol"), info.get("market_type"), base.instruments[0], args.config)
        if problem:  # another symbol or market (spot / USD-M futures): wrong fees, tick and lot sizes
            return _fail(problem)
        if info.get("problems_total"):
            _warn(f"the recording has {info['problems_total']} data problem(s) (gaps {info.get('gaps', 0)}, "
                  f"malformed {info.get('malformed', 0)}); see bot backtest for the list")
    searched = None
    if method == "tpe":
        from bot.tune import tpe

        trials = args.trials or space.trials
        if not args.quiet:
            print(f"tune: tpe search for {trials} candidates, each scored in-sample on segment 0 of {folds + 1} "
                  f"(the one window no fold scores out of sample), db {db}", file=sys.stderr)
        try:
            searched = tpe.search(space=space, base_config=args.config, data=data, source=source, folds=folds, db_path=db,
                                  objective=objective, trials=trials, seed=args.seed if args.seed is not None else space.seed,
                                  executor=executor, batch=max(1, workers), max_trials=args.max_trials,
                                  say=None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True)))
        except ValueError as exc:
            return _fail(str(exc))
        for w in searched.warnings:
            _warn(w)
        if searched.error:
            print(f"error: {searched.error}", file=sys.stderr)
            print(f"tune: the search is kept in {db}; fix the problem and re-run the same command to resume", file=sys.stderr)
            return 1
        if searched.stopped:
            reason = f"interrupted ({searched.interrupted})" if searched.interrupted else f"stopped after --max-trials {args.max_trials}"
            print(f"tune: {reason} during the tpe search: {len(searched.candidates)} candidates proposed and kept in {db}; "
                  "re-run the same command to resume", file=sys.stderr)
            if args.json:
                print(strict_json({"complete": False, "sweep": {"method": method, "db": str(db), "candidates": len(searched.candidates),
                                                                 "trials": searched.run_now, **_speed(searched.run_now, t0)}}))
            return EXIT_SIGNAL.get(searched.interrupted or "", 0)
        candidates = searched.candidates
    try:
        plan = plan_sweep(base_config=args.config, candidates=candidates, data=data, source=source, folds=folds,
                          db_path=db, objective=objective, method=method)
    except ValueError as exc:
        return _fail(str(exc))
    small = [f"{s.index} ({n})" for s, n in zip(plan.segments, plan.segment_events) if n < 1000]
    if small:
        _warn(f"segments with fewer than 1000 events: {', '.join(small)}; results on them are noisy")

    if not args.quiet:
        print(f"tune: {len(candidates)} candidates x {folds} folds x 2 (in-sample, out-of-sample) = {len(plan.specs)} trials, "
              f"{where}, db {db}", file=sys.stderr)
    budget = args.max_trials if searched is None or args.max_trials is None else args.max_trials - searched.run_now
    outcome = run_sweep(plan, executor, max_trials=budget, show_progress=not args.quiet)
    run_now = outcome.run_now + (searched.run_now if searched is not None else 0)
    elapsed = time.perf_counter() - t0
    sweep_info: dict[str, Any] = {
        "base_config": str(args.config), "space": str(args.space), "db": str(db), "method": method, "objective": objective,
        "folds": folds, "candidates": len(candidates), "trials_total": len(plan.specs),
        "trials_finished": len(outcome.results), "trials_run": run_now,
        "trials_resumed": len(outcome.results) - run_now,
        "workers": workers, "executor": executor_kind, "data": data.describe(), "elapsed_s": round(elapsed, 3),
        "complete": outcome.complete(plan), "trials": run_now, **_speed(run_now, t0),
    }
    if outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)
        print(f"tune: {len(outcome.results)} of {len(plan.specs)} trials are finished and kept in {db}; "
              "fix the problem and re-run the same command to resume", file=sys.stderr)
        return 1
    if not outcome.complete(plan):
        reason = f"interrupted ({outcome.interrupted})" if outcome.interrupted else f"stopped after --max-trials {args.max_trials}"
        print(f"tune: {reason}: {len(outcome.results)} of {len(plan.specs)} trials finished and kept in {db}; "
              "re-run the same command to resume (finished trials are not recomputed)", file=sys.stderr)
        if args.json:
            print(strict_json({"complete": False, "sweep": sweep_info}))
        if args.html:
            _warn(f"--html: no page written: the sweep is not complete (re-run to finish it, then the page is written to {args.html})")
        return EXIT_SIGNAL.get(outcome.interrupted or "", 0)

    report: dict[str, Any] = {"complete": True, "sweep": sweep_info}
    report["leaderboard"] = lb = build_leaderboard(plan, outcome)
    best = lb["best"]
    header = [
        f"Written by bot tune: candidate #{best['candidate']} of {len(candidates)} ({method} search over {args.space}),",
        f"base config {args.config}, data {', '.join(data.describe())}.",
        f"Chosen on the last fold's in-sample window by {objective}; tuned keys are marked '# tuned'.",
        f"Out-of-sample on fold {plan.folds[-1].index}: pnl_net {best['out_of_sample_last_fold']['pnl_net']}, "
        f"sharpe {best['out_of_sample_last_fold']['sharpe']}; walk-forward (OOS) pnl_net {lb['walk_forward']['pnl_net']}.",
        "Secrets are never written: set BOT__EXCHANGE__API_KEY / BOT__EXCHANGE__API_SECRET in the environment.",
    ]
    try:
        problems = write_config(out, args.config, best["params"], header)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or exc}")
    if problems:
        return _fail(f"the best config did not validate, not written to {out}: "
                     + "; ".join(f"{k}: {m}" for k, m in problems))
    report["best_config"] = str(out)
    sweep_info["elapsed_s"] = round(time.perf_counter() - t0, 3)
    sweep_info.update(_speed(run_now, t0))
    if args.json:
        print(strict_json(report))  # null, never NaN/Infinity
    else:
        from bot.tune.leaderboard import format_text

        print(format_text(report))
    if args.html:
        from bot.tune.page import write_page

        try:
            write_page(report, args.html)
        except OSError as exc:
            return _fail(f"--html {args.html}: cannot write the page ({exc.strerror or exc}); the sweep is kept in {db}")
        if not args.quiet:
            print(f"tune: wrote the page {args.html}", file=sys.stderr)
    return 0
