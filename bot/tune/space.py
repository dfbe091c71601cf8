"""The search space file: which config keys to tune, over which values, and how to search.

Grammar (TOML)::

    [search]                 # every key optional; command-line options override them
    method = "grid"          # "grid" (every combination), "random" (``trials`` samples) or "tpe"
                             # (``trials`` candidates proposed by Optuna's TPE, see bot.tune.tpe)
    trials = 20              # random / tpe: number of candidates
    seed = 0                 # random / tpe: the draw is reproducible (and so resumable)
    folds = 3                # walk-forward folds K (the data is cut into K + 1 segments)
    objective = "pnl_net"    # in-sample selection criterion: "pnl_net" or "sharpe"
    skip_invalid = false     # true: drop combinations the config rejects instead of failing

    [params]                 # "section.key" = values; the key must exist in the config
    "signal.depth_levels" = [3, 5, 10]                                   # choices
    "strategy.enter_threshold" = { min = 0.4, max = 0.8, step = 0.1 }    # grid range, ends included
    "risk.stop_loss_bps" = { min = 5.0, max = 20.0, log = true }         # continuous (random only)
    "risk.take_profit_bps" = { min = 5.0, max = 40.0, num = 4, log = true }  # 4 points, geometric
    "strategy.allow_short" = false                                       # fixed value for every candidate

Keys may also be written as nested tables (``[params.signal]`` then ``depth_levels = [3, 5]``).
A range is a table with ``min`` and ``max`` plus at most one of ``step`` (arithmetic grid) or
``num`` (``num`` points, evenly spaced, or geometrically with ``log = true``). Without ``step``
or ``num`` a range is continuous: allowed for ``random`` only (uniform, or log-uniform with
``log = true``; an integer range draws integers). ``random`` draws grid points uniformly from a
range that has ``step``/``num``. Drawn floats are rounded to 6 significant digits.

Only the strategy's own knobs are tunable: the ``signal``, ``strategy`` and ``risk`` sections,
except ``risk.initial_equity`` (it scales PnL) and the kill switch keys. ``market``,
``execution`` (fees, latency), ``store`` (it defines the Sharpe sampling), ``sim``, ``run`` and
``exchange`` describe the venue, the data or the measurement, and tuning them would fit the
simulator rather than the strategy.
"""

from __future__ import annotations

import difflib
import itertools
import math
import random
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.config.settings import ConfigError, Settings, load_settings

TUNABLE_SECTIONS = ("signal", "strategy", "risk")
NOT_TUNABLE_KEYS = {
    "risk.initial_equity": "it scales every PnL figure; the objective would simply prefer more capital",
    "risk.kill_switch": "it disables trading",
    "risk.kill_switch_file": "it is an operational control, not a strategy parameter",
}
_SECTION_REASON = {
    "market": "it describes the exchange's rules for the symbol",
    "execution": "fees and latency describe the venue; tuning them fits the fill model, not the strategy",
    "store": "it defines how results are measured (store.equity_interval_s sets the Sharpe sampling)",
    "sim": "it changes the simulated data itself",
    "run": "it names the run and its files",
    "exchange": "it is the exchange connection",
}
RANGE_KEYS = frozenset({"min", "max", "step", "num", "log"})
METHODS = ("grid", "random", "tpe")
OBJECTIVES = ("pnl_net", "sharpe")
MAX_CANDIDATES = 100_000
SEARCH_KEYS = {"method", "trials", "seed", "folds", "objective", "skip_invalid"}


class SpaceError(Exception):
    """A problem with the space file. ``problems`` lists ``(key, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {key}: {msg}" for key, msg in problems)
        super().__init__(f"invalid search space {source}:\n{lines}")


@dataclass(frozen=True)
class Param:
    """One tuned key. Either ``choices`` or a range (``low``/``high`` with optional step/num/log)."""

    key: str  # "section.field"
    choices: tuple[Any, ...] | None = None
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    num: int | None = None
    log: bool = False
    integer: bool = False

    @property
    def continuous(self) -> bool:
        return self.choices is None and self.step is None and self.num is None

    def grid(self) -> list[Any]:
        """Every value of a discrete parameter, in order."""
        if self.choices is not None:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.step is not None:
            lo, st, hi = Decimal(str(self.low)), Decimal(str(self.step)), Decimal(str(self.high))
            n = int((hi - lo) / st + Decimal("1e-9")) + 1
            values = [lo + i * st for i in range(n)]
            return [int(v) if self.integer else float(v) for v in values]
        assert self.num is not None
        if self.num == 1:
            values_f = [float(self.low)]
        elif self.log:
            ratio = math.log(self.high / self.low)
            values_f = [self.low * math.exp(ratio * i / (self.num - 1)) for i in range(self.num)]
        else:
            values_f = [self.low + (self.high - self.low) * i / (self.num - 1) for i in range(self.num)]
        if self.integer:
            out: list[Any] = []
            for v in values_f:
                r = int(round(v))
                if r not in out:
                    out.append(r)
            return out
        return [_round6(v) for v in values_f]

    def draw(self, rng: random.Random) -> Any:
        if not self.continuous:
            return rng.choice(self.grid())
        lo, hi = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.log:
            value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
        else:
            value = rng.uniform(lo, hi)
        if self.integer:
            return min(max(int(round(value)), int(self.low)), int(self.high))  # type: ignore[arg-type]
        return _round6(value)

    def describe(self) -> str:
        if self.choices is not None:
            return "choices " + ", ".join(repr(c) for c in self.choices)
        extra = f" step {self.step}" if self.step is not None else (f" num {self.num}" if self.num is not None else " continuous")
        return f"[{self.low}, {self.high}]{extra}{' log' if self.log else ''}"


@dataclass
class Space:
    path: str
    params: list[Param]
    method: str = "grid"
    trials: int = 20
    seed: int = 0
    folds: int = 3
    objective: str = "pnl_net"
    skip_invalid: bool = False
    raw_search: dict[str, Any] = field(default_factory=dict)


def _round6(x: float) -> float:
    return float(f"{x:.6g}")


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _flatten(params: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"signal": {"depth_levels": [..]}}`` and ``{"signal.depth_levels": [..]}`` -> dotted pairs."""
    out: list[tuple[str, Any]] = []
    for key, value in params.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and value and not (set(value) & RANGE_KEYS):
            out.extend(_flatten(value, full + "."))
        else:
            out.append((full, value))
    return out


def check_key(key: str) -> str | None:
    """None when ``key`` ("section.field") is a tunable config key, else the reason it is not."""
    section, _, name = key.partition(".")
    sections = Settings.model_fields
    if section not in sections or not name or "." in name:
        if section in sections and not name:
            return f"unknown config key {key!r}: name a key inside [{section}], e.g. {section}.{next(iter(_fields(section)))}"
        known = [f"{s}.{f}" for s in TUNABLE_SECTIONS for f in _fields(s)]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; tunable sections are {', '.join(TUNABLE_SECTIONS)}"
        return f"unknown config key {key!r}{hint}"
    fields = _fields(section)
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=1)
        hint = f"; did you mean {section}.{close[0]!r}?" if close else ""
        return f"unknown config key {key!r}: [{section}] has {', '.join(fields)}{hint}"
    if section not in TUNABLE_SECTIONS:
        return f"{key} is a config key but not tunable: {_SECTION_REASON.get(section, 'not a strategy parameter')}"
    if key in NOT_TUNABLE_KEYS:
        return f"{key} is a config key but not tunable: {NOT_TUNABLE_KEYS[key]}"
    return None


def _fields(section: str) -> list[str]:
    model = Settings.model_fields[section].annotation
    assert isinstance(model, type) and issubclass(model, BaseModel)
    return list(model.model_fields)


def _parse_param(key: str, value: Any, problems: list[tuple[str, str]]) -> Param | None:
    where = f"params.{key}"
    if isinstance(value, list):
        if not value:
            problems.append((where, "empty list of choices"))
            return None
        if any(isinstance(v, (dict, list)) for v in value):
            problems.append((where, "choices must be plain values (numbers, strings, booleans)"))
            return None
        unique: list[Any] = []
        for v in value:
            if not any(v == u and type(v) is type(u) for u in unique):
                unique.append(v)
        return Param(key, choices=tuple(unique))
    if isinstance(value, dict):
        unknown = sorted(set(value) - RANGE_KEYS)
        if unknown:
            problems.append((where, f"unknown range option(s) {', '.join(unknown)}; a range has min, max and optionally step, num, log"))
            return None
        if "min" not in value or "max" not in value:
            problems.append((where, "a range needs both min and max"))
            return None
        lo, hi = value["min"], value["max"]
        if not (_is_number(lo) and _is_number(hi)):
            problems.append((where, f"min and max must be finite numbers, got {lo!r} and {hi!r}"))
            return None
        if lo > hi:
            problems.append((where, f"min ({lo}) is above max ({hi})"))
            return None
        log = value.get("log", False)
        if not isinstance(log, bool):
            problems.append((where, f"log must be true or false, got {log!r}"))
            return None
        if log and lo <= 0:
            problems.append((where, f"log = true needs min > 0, got {lo}"))
            return None
        step, num = value.get("step"), value.get("num")
        if step is not None and num is not None:
            problems.append((where, "give step or num, not both"))
            return None
        if step is not None:
            if not _is_number(step) or step <= 0:
                problems.append((where, f"step must be a positive number, got {step!r}"))
                return None
            if log:
                problems.append((where, "step and log = true do not combine; use num = N with log = true for geometric points"))
                return None
        if num is not None and (not isinstance(num, int) or isinstance(num, bool) or num < 1):
            problems.append((where, f"num must be a positive integer, got {num!r}"))
            return None
        integer = all(isinstance(x, int) for x in (lo, hi)) and (step is None or isinstance(step, int))
        return Param(key, low=lo, high=hi, step=step, num=num, log=log, integer=integer)
    if isinstance(value, (int, float, str, bool)):
        return Param(key, choices=(value,))
    problems.append((where, f"expected a list of choices, a range table or a single value, got {type(value).__name__}"))
    return None


def load_space(path: str | Path) -> Space:
    """Parse and check the space file (keys and grammar; values are checked by :func:`build_candidates`)."""
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpaceError(source, [("<file>", f"cannot read: {exc.strerror or exc}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(source, [("<toml>", str(exc))]) from None
    problems: list[tuple[str, str]] = []
    for top in sorted(set(data) - {"search", "params"}):
        problems.append((top, "unknown section; a space file has [search] and [params]"))
    search = data.get("search", {})
    if not isinstance(search, dict):
        problems.append(("search", "must be a table"))
        search = {}
    for key in sorted(set(search) - SEARCH_KEYS):
        problems.append((f"search.{key}", f"unknown key; [search] has {', '.join(sorted(SEARCH_KEYS))}"))
    space = Space(source, [], raw_search=dict(search))
    if "method" in search:
        if search["method"] not in METHODS:
            problems.append(("search.method", f"must be one of {', '.join(METHODS)}, got {search['method']!r}"))
        else:
            space.method = search["method"]
    if "objective" in search:
        if search["objective"] not in OBJECTIVES:
            problems.append(("search.objective", f"must be one of {', '.join(OBJECTIVES)}, got {search['objective']!r}"))
        else:
            space.objective = search["objective"]
    for key, minimum in (("trials", 1), ("folds", 1), ("seed", None)):
        if key in search:
            v = search[key]
            if not isinstance(v, int) or isinstance(v, bool) or (minimum is not None and v < minimum):
                problems.append((f"search.{key}", f"must be an integer{f' >= {minimum}' if minimum is not None else ''}, got {v!r}"))
            else:
                setattr(space, key, v)
    if "skip_invalid" in search:
        if not isinstance(search["skip_invalid"], bool):
            problems.append(("search.skip_invalid", f"must be true or false, got {search['skip_invalid']!r}"))
        else:
            space.skip_invalid = search["skip_invalid"]

    params = data.get("params")
    if not isinstance(params, dict) or not params:
        problems.append(("params", 'missing or empty: name at least one config key, e.g. "signal.depth_levels" = [3, 5, 10]'))
        raise SpaceError(source, problems)
    seen: set[str] = set()
    for key, value in _flatten(params):
        reason = check_key(key)
        if reason is not None:
            problems.append((f"params.{key}", reason))
            continue
        if key in seen:
            problems.append((f"params.{key}", "given twice"))
            continue
        seen.add(key)
        param = _parse_param(key, value, problems)
        if param is not None:
            space.params.append(param)
    if problems:
        raise SpaceError(source, problems)
    return space


def to_overrides(params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat ``{"signal.depth_levels": 3}`` -> ``{"signal": {"depth_levels": 3}}`` for load_settings."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        section, _, name = key.partition(".")
        out.setdefault(section, {})[name] = value
    return out


def _enumerate(space: Space, method: str, trials: int, seed: int) -> list[dict[str, Any]]:
    keys = [p.key for p in space.params]
    if method == "grid":
        continuous = [p.key for p in space.params if p.continuous]
        if continuous:
            raise SpaceError(space.path, [(f"params.{k}", "a continuous range (no step or num) needs method = \"random\"; "
                                           "add step = ... or num = ... for a grid") for k in continuous])
        grids = [p.grid() for p in space.params]
        total = math.prod(len(g) for g in grids)
        if total > MAX_CANDIDATES:
            raise SpaceError(space.path, [("params", f"the grid has {total} combinations (limit {MAX_CANDIDATES}); use method = \"random\"")])
        return [dict(zip(keys, combo)) for combo in itertools.product(*grids)]
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    attempts = 0
    while len(out) < trials and attempts < trials * 50:
        attempts += 1
        cand = {p.key: p.draw(rng) for p in space.params}
        sig = tuple(repr(cand[k]) for k in keys)
        if sig in seen:
            continue
        seen.add(sig)
        out.append(cand)
    return out


def _config_problem(exc: ConfigError) -> str:
    return "; ".join(f"{k}: {m}" for k, m in exc.problems)


def check_values(space: Space, base_config: str | Path) -> None:
    """Every value of every parameter, alone, against the base config: :class:`SpaceError` naming
    the key and the value (cross-key rules are judged per candidate). :class:`ConfigError` for a bad base."""
    load_settings(base_config)  # the base must be valid on its own (ConfigError names its problems)
    problems: list[tuple[str, str]] = []
    for p in space.params:
        values = p.grid() if not p.continuous else [p.low, p.high]
        for v in values:
            try:
                load_settings(base_config, **to_overrides({p.key: v}))
            except ConfigError as exc:
                own = [m for k, m in exc.problems if k == p.key]
                if own:
                    problems.append((f"params.{p.key}", f"value {v!r} is invalid: {'; '.join(own)}"))
                # a section-level problem (cross-key rule) is judged per combination below
    if problems:
        raise SpaceError(space.path, problems)


def build_candidates(
    space: Space,
    base_config: str | Path,
    *,
    method: str | None = None,
    trials: int | None = None,
    seed: int | None = None,
    skip_invalid: bool | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every candidate (flat ``{"section.key": value}``) after checking it builds a valid config.

    Each value is first checked alone against the base config (the error names the key and the
    value), then each combination (cross-key rules such as ``exit_threshold < enter_threshold``).
    Returns ``(candidates, warnings)``; raises :class:`SpaceError` for an invalid value or, unless
    ``skip_invalid``, an invalid combination. :class:`ConfigError` propagates for a bad base config.
    """
    method = method or space.method
    trials = space.trials if trials is None else trials
    seed = space.seed if seed is None else seed
    skip = space.skip_invalid if skip_invalid is None else skip_invalid
    check_values(space, base_config)
    candidates = _enumerate(space, method, trials, seed)
    valid: list[dict[str, Any]] = []
    bad: list[tuple[dict[str, Any], str]] = []
    from bot.tune.trials import candidate_settings

    for cand in candidates:
        try:
            candidate_settings(base_config, cand)  # kept: the plan and the forked workers reuse it
        except ConfigError as exc:
            bad.append((cand, _config_problem(exc)))
            continue
        valid.append(cand)
    warnings: list[str] = []
    if bad:
        shown = [(_fmt(c), why) for c, why in bad[:10]]
        if not skip:
            more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
            raise SpaceError(
                space.path,
                [("params", f"candidate {c} is not a valid config with base {base_config}: {why}") for c, why in shown]
                + [("params", f"{len(bad)} of {len(candidates)} combinations are invalid{more}; set skip_invalid = true "
                              "in [search] (or --skip-invalid) to drop them")],
            )
        warnings.append(f"dropped {len(bad)} of {len(candidates)} combinations that the config rejects, e.g. {shown[0][0]}: {shown[0][1]}")
    if not valid:
        raise SpaceError(space.path, [("params", "no valid candidate left")])
    return valid, warnings


def _fmt(cand: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}={v!r}" for k, v in cand.items()) + "}"
