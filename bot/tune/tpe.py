"""``method = "tpe"``: candidates proposed by Optuna's Tree-structured Parzen Estimator.

Grid and random search fix every candidate before any trial runs. TPE proposes each new
candidate from the scores of the earlier ones, so which candidates exist depends on data the
optimizer has seen. To keep the walk-forward guarantee (nothing a fold scores out of sample ever
shaped a choice made for that fold), TPE only ever sees the candidates' **in-sample objective on
the first segment**: segment 0 is inside every fold's in-sample window (folds grow forward:
fold ``i`` fits on segments ``0..i-1`` and is scored on segment ``i``), and no fold scores it out
of sample. Those first-segment trials are the first fold's in-sample trials, which the sweep
needs anyway, so the search costs no extra backtest. Once ``trials`` candidates are proposed,
the sweep runs every candidate on every fold as for grid and random, and the leaderboard picks
per fold by in-sample objective exactly as before.

Proposals are kept in the sweep database (table ``tpe_proposals``, keyed by the search: space,
base config, data, folds, objective, seed), so an interrupted search resumes with the same
candidates whatever ``--workers`` is, and finished trials are never scored twice. A candidate
the config rejects (a cross-key rule) is told to TPE as failed and not counted; floats are
rounded to 6 significant digits, as random search draws them. A resumed study is told every
stored proposal first; a proposal equal to a known candidate is told as failed (TPE already has
that point, and a failed trial adds no weight), so nothing is scored or counted twice.

Trials run ``workers`` at a time; TPE's constant liar keeps parallel proposals apart.
Reference: Bergstra, Bardenet, Bengio, Kégl, "Algorithms for Hyper-Parameter Optimization",
NIPS 2011; Optuna's ``TPESampler``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.settings import ConfigError
from bot.tune.executor import TrialExecutor
from bot.tune.leaderboard import objective_value
from bot.tune.space import Param, Space, _round6, check_values
from bot.tune.sweep import SweepOutcome, plan_sweep, run_sweep
from bot.tune.trials import DataSpec, TrialTable, candidate_settings

MAX_ATTEMPTS_PER_TRIAL = 50  # proposals the config rejects before the search gives up


@dataclass
class SearchOutcome:
    candidates: list[dict[str, Any]] = field(default_factory=list)  # valid proposals, in proposal order
    rejected: int = 0  # proposals the config rejected (told to TPE as failed)
    run_now: int = 0  # first-segment trials run by this call
    resumed: int = 0  # proposals found in the database
    interrupted: str | None = None
    error: str | None = None
    budget_exhausted: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        return bool(self.interrupted or self.error or self.budget_exhausted)


def distribution(p: Param) -> Any:
    """The Optuna distribution of one space parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not p.continuous:
        return CategoricalDistribution(p.grid())
    if p.integer:
        return IntDistribution(int(p.low), int(p.high), log=p.log)  # type: ignore[arg-type]
    return FloatDistribution(float(p.low), float(p.high), log=p.log)  # type: ignore[arg-type]


def _rounded(p: Param, value: Any) -> Any:
    if p.continuous and not p.integer:
        return min(max(_round6(float(value)), float(p.low)), float(p.high))  # type: ignore[arg-type]
    return value


def search_key(space: Space, base_config: str, data: DataSpec, folds: int, objective: str, seed: int) -> str:
    """Identity of a search: a change of any of these starts a new one (``trials`` may grow)."""
    ident = {
        "params": [dataclasses.asdict(p) for p in space.params], "base": hashlib.sha256(Path(base_config).read_bytes()).hexdigest(),
        "data": data.fingerprint, "folds": folds, "objective": objective, "seed": seed, "v": 1,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


class ProposalTable:
    """``tpe_proposals``: every proposal of a search, in order, valid or not (sqlite3, own transactions)."""

    def __init__(self, db_path: str | Path, key: str):
        self.trials = TrialTable(db_path)  # the store's tables and ``trials`` first: a sweep database like any other
        self.key = key
        with self.trials._connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS tpe_proposals (search_key TEXT NOT NULL, n INTEGER NOT NULL, "
                         "params_json TEXT NOT NULL, valid INTEGER NOT NULL, problem TEXT, PRIMARY KEY (search_key, n))")

    def _connect(self) -> Any:
        return self.trials._connect()  # its own connection per call, closed after (workers are forked)

    def load(self) -> list[tuple[dict[str, Any], bool, str | None]]:
        with self._connect() as conn:
            rows = conn.execute("SELECT params_json, valid, problem FROM tpe_proposals WHERE search_key = ? ORDER BY n", (self.key,)).fetchall()
        return [(json.loads(p), bool(v), problem) for p, v, problem in rows]

    def add(self, n: int, params: dict[str, Any], valid: bool, problem: str | None) -> None:
        with self._connect() as conn:
            conn.execute("INSERT OR IGNORE INTO tpe_proposals VALUES (?, ?, ?, ?, ?)",
                         (self.key, n, json.dumps(params, sort_keys=True), int(valid), problem))


def search(
    *,
    space: Space,
    base_config: str,
    data: DataSpec,
    source: Any,  # SegmentSource or bot.tune.columns.ArraySource
    folds: int,
    db_path: str | Path,
    objective: str,
    trials: int,
    seed: int,
    executor: TrialExecutor,
    batch: int = 1,
    max_trials: int | None = None,
    say: Callable[[str], None] | None = None,
) -> SearchOutcome:
    """Propose ``trials`` candidates with TPE, scoring each on the first segment (fold 0 in-sample)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_values(space, base_config)
    dists = {p.key: distribution(p) for p in space.params}
    table = ProposalTable(db_path, search_key(space, base_config, data, folds, objective, seed))
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    out = SearchOutcome()
    stored = table.load()
    out.resumed = len(stored)
    scores: dict[int, float | None] = {}  # candidate index -> first-segment objective, once known

    def tell_known(params: dict[str, Any], value: float | None) -> None:
        if value is None or not math.isfinite(value):
            study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.FAIL))
        else:
            study.add_trial(create_trial(params=params, distributions=dists, value=value))

    known: dict[str, int] = {}  # a candidate's params -> its index
    rejected: set[str] = set()
    unscored: list[int] = []
    for params, valid, _ in stored:
        if not valid:
            out.rejected += 1
            rejected.add(_signature(params))
            study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.FAIL))
            continue
        out.candidates.append(params)
        known[_signature(params)] = len(out.candidates) - 1
        unscored.append(len(out.candidates) - 1)
    n_proposed = len(stored)
    budget = max_trials

    def tell(trial: Any, c: int) -> None:
        value = scores.get(c)
        if value is None or not math.isfinite(value):
            study.tell(trial, state=TrialState.FAIL)  # no score (no trades for a Sharpe, or not run: resumed next time)
        else:
            study.tell(trial, value)

    # scores of stored candidates already in the database, then TPE learns them
    if unscored:
        results, _ = _score(unscored, out, base_config, data, source, folds, db_path, objective, executor, budget=0)
        scores.update(results)
        for c in unscored:
            if c in results:
                tell_known(out.candidates[c], results[c])
        unscored = [c for c in unscored if c not in results]
    attempts = 0
    while True:
        asked: list[tuple[Any, int]] = []  # (TPE trial, its new candidate)
        todo = list(unscored)  # stored proposals whose trial did not finish (an interrupted run)
        unscored = []
        while len(out.candidates) < trials and len(todo) + len(asked) < batch and attempts < trials * MAX_ATTEMPTS_PER_TRIAL:
            attempts += 1
            trial = study.ask(dists)
            params = {p.key: _rounded(p, trial.params[p.key]) for p in space.params}
            sig = _signature(params)
            if sig in rejected:
                study.tell(trial, state=TrialState.FAIL)
                continue
            if sig in known:  # proposed before (a resumed study draws its first proposals again): TPE
                study.tell(trial, state=TrialState.FAIL)  # has that point already; a failed trial adds no weight
                continue
            problem = _config_problem(base_config, params)
            table.add(n_proposed, params, problem is None, problem)
            n_proposed += 1
            if problem is not None:
                out.rejected += 1
                rejected.add(sig)
                study.tell(trial, state=TrialState.FAIL)
                continue
            out.candidates.append(params)
            c = len(out.candidates) - 1
            known[sig] = c
            asked.append((trial, c))
        run = todo + [c for _, c in asked]
        if not run:
            break
        results, sweep = _score(run, out, base_config, data, source, folds, db_path, objective, executor, budget=budget)
        out.run_now += sweep.run_now
        if budget is not None:
            budget -= sweep.run_now
        scores.update(results)
        for c in todo:
            if c in results:
                tell_known(out.candidates[c], results[c])
        for trial, c in asked:
            tell(trial, c)
        if sweep.error or sweep.interrupted or sweep.budget_exhausted:
            out.error, out.interrupted, out.budget_exhausted = sweep.error, sweep.interrupted, sweep.budget_exhausted
            return out
        if say is not None:
            best = max((v for v in scores.values() if v is not None and math.isfinite(v)), default=None)
            say(f"tpe: {len(out.candidates)}/{trials} candidates scored on segment 0"
                + (f", best {objective} so far {best:.6g}" if best is not None else ""))
    if len(out.candidates) < trials:
        out.warnings.append(f"tpe: only {len(out.candidates)} of {trials} candidates: {out.rejected} proposals were rejected by the config "
                            f"(the space allows few valid combinations)")
    if out.rejected:
        out.warnings.append(f"tpe: {out.rejected} proposal(s) rejected by the config were told to TPE as failed and not counted")
    if not out.candidates:
        out.error = "tpe: no valid candidate was proposed"
    return out


def _signature(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _config_problem(base_config: str, params: dict[str, Any]) -> str | None:
    try:
        candidate_settings(base_config, params)  # kept: the plan and the forked workers reuse it
    except ConfigError as exc:
        return "; ".join(f"{k}: {m}" for k, m in exc.problems)
    return None


def _score(indices: list[int], out: SearchOutcome, base_config: str, data: DataSpec, source: Any, folds: int,
           db_path: str | Path, objective: str, executor: TrialExecutor, budget: int | None) -> tuple[dict[int, float | None], SweepOutcome]:
    """Run (or find in the database) the first-segment trial of each candidate; their objectives."""
    cands = [out.candidates[c] for c in indices]
    plan = plan_sweep(base_config=base_config, candidates=cands, data=data, source=source, folds=folds, db_path=db_path, objective=objective,
                      method="tpe")
    first = plan.folds[0].index
    specs = [dataclasses.replace(s, candidate=indices[s.candidate]) for s in plan.specs if s.fold == first and s.role == "is"]
    sweep = run_sweep(dataclasses.replace(plan, specs=specs), executor, max_trials=budget)
    by_key = {s.key: s.candidate for s in specs}
    results: dict[int, float | None] = {}
    for key, result in sweep.results.items():
        value = objective_value(result, objective)
        results[by_key[key]] = value if math.isfinite(value) else None
    return results, sweep
