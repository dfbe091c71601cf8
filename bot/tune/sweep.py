"""Plan a walk-forward sweep (candidates x folds x {in-sample, out-of-sample}) and run it resumably."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.settings import load_settings
from bot.console import progress
from bot.tune import leaderboard
from bot.tune.executor import TrialExecutor
from bot.tune.folds import Fold, Segment, make_folds, make_segments
from bot.tune.trials import ROLES, DataSpec, TrialSpec, TrialTable, candidate_settings, run_trial, trial_key


@dataclass
class SweepPlan:
    base_config: str
    db_path: str
    data: DataSpec
    candidates: list[dict[str, Any]]
    segments: list[Segment]
    folds: list[Fold]
    segment_events: list[int]
    specs: list[TrialSpec]
    objective: str = "pnl_net"
    method: str = "grid"
    equity_interval_s: float = 1.0

    def weights(self) -> dict[str, float]:
        """Events each trial replays (its window's segments), for the ETA (at least 1)."""
        out = {}
        for spec in self.specs:
            n = sum(c for seg, c in zip(self.segments, self.segment_events) if spec.start_ns <= seg.start_ns and seg.end_ns <= spec.end_ns)
            out[spec.key] = float(max(n, 1))
        return out


@dataclass
class SweepOutcome:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> result, every finished trial of the plan
    run_now: int = 0
    resumed: int = 0
    interrupted: str | None = None  # "SIGINT" / "SIGTERM" when stopped by a signal
    error: str | None = None
    budget_exhausted: bool = False

    def complete(self, plan: SweepPlan) -> bool:
        return len(self.results) == len(plan.specs)


def plan_sweep(
    *,
    base_config: str | Path,
    candidates: list[dict[str, Any]],
    data: DataSpec,
    source: Any,  # SegmentSource or bot.tune.columns.ArraySource (first_ts, last_ts, count, warm)
    folds: int,
    db_path: str | Path,
    objective: str = "pnl_net",
    method: str = "grid",
) -> SweepPlan:
    """Every trial of the sweep with its stable key (raises ValueError when the data is too short)."""
    base_config = str(Path(base_config).resolve())
    db_path = str(Path(db_path).resolve())
    base_sha = hashlib.sha256(Path(base_config).read_bytes()).hexdigest()
    segments = make_segments(source.first_ts, source.last_ts, folds)
    counts = [source.count(s.start_ns, s.end_ns) for s in segments]
    empty = [s.index for s, n in zip(segments, counts) if n == 0]
    if empty:
        raise ValueError(
            f"segment(s) {', '.join(map(str, empty))} of {len(segments)} hold no events: "
            f"use fewer folds (--folds) or more data"
        )
    fold_list = make_folds(segments)
    specs: list[TrialSpec] = []
    base = load_settings(base_config)
    for c, params in enumerate(candidates):
        snapshot = candidate_settings(base_config, params).snapshot()  # kept: forked workers inherit it
        for f in fold_list:
            for role in ROLES:
                start, end = f.window(role)
                key = trial_key(params=params, settings_snapshot=snapshot, fold=f.index, role=role, folds=folds,
                                start_ns=start, end_ns=end, data=data, base_sha=base_sha)
                specs.append(TrialSpec(key, c, params, f.index, role, folds, start, end, base_config, data))
    source.warm({(s.start_ns, s.end_ns) for s in specs})  # before the pool forks: workers inherit the windows
    return SweepPlan(base_config, db_path, data, candidates, segments, fold_list, counts, specs, objective, method,
                     base.store.equity_interval_s)


@contextlib.contextmanager
def _sigterm_as_interrupt(state: dict[str, str], requested: threading.Event | None) -> Iterator[None]:
    """SIGTERM and SIGINT stop the sweep, remembering which signal it was.

    With ``requested`` (an executor that polls it between waits) the handler only sets it, and
    the executor ends its run at its next safe point. Without, the handler raises
    KeyboardInterrupt in the main thread wherever it is, which is the only way to stop a trial
    running in this process. Raising inside ``concurrent.futures`` internals (a submit, a wait)
    could leave the pool's manager thread waiting forever, and the interpreter joins that thread
    at exit: the sweep printed its result and then never ended.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        state["signal"] = signal.Signals(signum).name
        if requested is None:
            raise KeyboardInterrupt
        requested.set()

    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_sweep(
    plan: SweepPlan,
    executor: TrialExecutor,
    *,
    max_trials: int | None = None,
    show_progress: bool = False,
    on_commit: Callable[[TrialSpec, dict[str, Any]], None] | None = None,
) -> SweepOutcome:
    """Run the plan's unfinished trials; commit each one as it finishes; never raise on Ctrl-C/SIGTERM.

    Trials already in the ``trials`` table are skipped. ``max_trials`` caps how many new trials
    this call runs (a budget; run again to continue).
    """
    table = TrialTable(plan.db_path)
    outcome = SweepOutcome()
    state: dict[str, str] = {}
    try:
        keys = [s.key for s in plan.specs]
        outcome.results = table.finished(keys)
        outcome.resumed = len(outcome.results)
        todo = [s for s in plan.specs if s.key not in outcome.results]
        # longest windows first: keeps the workers busy until the end
        todo.sort(key=lambda s: s.end_ns - s.start_ns, reverse=True)
        if max_trials is not None and len(todo) > max_trials:
            todo = todo[:max_trials]
            outcome.budget_exhausted = True
        weight = plan.weights()
        total = len(plan.specs)
        resumed = f" ({outcome.resumed} resumed)" if outcome.resumed else ""

        def trials(done: int) -> str:
            return f"{done}/{total} trials{resumed}"

        # the bar runs on events replayed, so the long in-sample windows that run first do not
        # make the ETA wildly pessimistic; the note counts trials
        with progress(sum(weight.values()), "tune", unit="", enabled=show_progress and total > 0, plain_every_s=5.0,
                      completed=sum(weight[k] for k in outcome.results), note=trials(outcome.resumed)) as bar:
            runs = executor.run(run_trial, todo)
            requested: threading.Event | None = getattr(executor, "stop_requested", None)
            if requested is not None:
                requested.clear()
            try:
                with _sigterm_as_interrupt(state, requested):
                    for spec, result in runs:
                        if isinstance(result, BaseException):
                            outcome.error = (
                                f"trial failed (candidate #{spec.candidate} {spec.params}, fold {spec.fold} {spec.role}): "
                                f"{type(result).__name__}: {result}"
                            )
                            break
                        table.commit(spec, result)
                        outcome.results[spec.key] = result
                        outcome.run_now += 1
                        bar.advance(weight[spec.key], note=trials(outcome.resumed + outcome.run_now))
                        if on_commit is not None:
                            on_commit(spec, result)
                if "signal" in state:  # the executor saw the request and ended its run
                    outcome.interrupted = state["signal"]
            except KeyboardInterrupt:
                outcome.interrupted = state.get("signal", "SIGINT")
            finally:
                with _signals_ignored():  # a second Ctrl-C must not abort stopping the workers
                    executor.stop()
                    close = getattr(runs, "close", None)
                    if close is not None:
                        close()
        # the leaderboard is built from what the database holds
        outcome.results = table.finished(keys)
    finally:
        table.close()
    return outcome


def results_by_cell(plan: SweepPlan, results: dict[str, dict[str, Any]]) -> dict[tuple[int, int, str], dict[str, Any]]:
    return {(s.candidate, s.fold, s.role): results[s.key] for s in plan.specs if s.key in results}


def build_leaderboard(plan: SweepPlan, outcome: SweepOutcome) -> dict[str, Any]:
    return leaderboard.build(
        candidates=plan.candidates,
        folds=plan.folds,
        segments=plan.segments,
        segment_events=plan.segment_events,
        results=results_by_cell(plan, outcome.results),
        objective=plan.objective,
        db_path=plan.db_path,
        equity_interval_s=plan.equity_interval_s,
    )
