"""Risk-adjusted ratios of a run's equity curve, or ``None`` with the reason they cannot be estimated.

Why a module of its own: the Sharpe the report used to print was the mean/std of 1-second returns
times sqrt(seconds per year) (5,616): on a 60-second demo that gives figures like -3,000 or
-4,000, which look like a measurement and are noise. A ratio is only printed once the run holds
enough independent returns to estimate it; otherwise it is ``None`` and ``reason`` says what is
missing. The standard error of an annualized Sharpe estimated from ``n`` returns is about
``sqrt(periods per year / n)`` (Lo 2002, iid case): it depends on the span of the run, not on how
often equity is sampled, so sampling every second does not make a 10-minute run measurable.

Definitions (``P`` = :data:`RETURN_PERIOD_S`, one day; the market trades 24/7, so a year is 365 days):

* Daily equity: the equity rows (in event time, ``ts`` in ns) read at ``t0 + k·P`` for
  ``k = 0..n``, ``t0`` the first row's time and ``n = floor(span / P)``: the value of the last row
  at or before each boundary. Daily returns ``r_k = E_k / E_(k-1) - 1``, ``k = 1..n`` (whole days only).
* At least :data:`MIN_RETURNS` (30) daily returns are needed for any ratio; fewer: every ratio
  is ``None`` with the reason.
* ``sharpe = mean(r) / std(r, ddof=1) * sqrt(365)`` (risk-free rate 0).
* ``sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(365)`` (target 0, downside deviation over
  all ``n`` returns).
* ``cagr = (E_last / E_first) ^ (365 d / span) - 1`` over the equity rows' whole span.
* ``calmar = cagr / max_drawdown`` (the report's max drawdown of the equity rows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

RETURN_PERIOD_S = 86_400
PERIODS_PER_YEAR = 365
MIN_RETURNS = 30
_NS = 1_000_000_000


def period_values(ts_ns: np.ndarray, equity: np.ndarray, period_s: int = RETURN_PERIOD_S) -> np.ndarray:
    """Equity at ``t0 + k·period`` for every whole period of the run (``k = 0..n``), the last row at
    or before each boundary; rows must be in time order."""
    if equity.size == 0:
        return equity
    t0 = int(ts_ns[0])
    n = (int(ts_ns[-1]) - t0) // (period_s * _NS)
    bounds = t0 + np.arange(n + 1, dtype=np.int64) * (period_s * _NS)
    idx = np.searchsorted(ts_ns, bounds, side="right") - 1
    return equity[idx]


def _no_ratios(reason: str, n: int) -> dict[str, Any]:
    return {"period_s": RETURN_PERIOD_S, "min_returns": MIN_RETURNS,
            "sharpe": None, "sortino": None, "cagr": None, "calmar": None, "returns": n, "reason": reason}


def too_short(start_ns: int | None, end_ns: int | None) -> dict[str, Any] | None:
    """The ratios of a run whose equity rows span ``[start_ns, end_ns]`` when that holds fewer than
    :data:`MIN_RETURNS` whole periods (every ratio None, with the reason); None when long enough.
    Known from the span alone, so a short run's report need not read its rows' timestamps."""
    span_ns = 0 if start_ns is None or end_ns is None else int(end_ns) - int(start_ns)
    n = span_ns // (RETURN_PERIOD_S * _NS)
    if n >= MIN_RETURNS:
        return None
    return _no_ratios(
        f"too short to estimate: the run spans {_span_text(span_ns / _NS)} of market time ({n} whole day(s)); "
        f"Sharpe and the other ratios need at least {MIN_RETURNS} daily returns", n)


def risk_ratios(ts_ns: np.ndarray, equity: np.ndarray, max_drawdown: float) -> dict[str, Any]:
    """Sharpe, Sortino, CAGR and Calmar of the equity rows (see the module docstring).

    Returns ``period_s``, ``min_returns``, ``returns`` (daily returns available), the four ratios
    (``None`` when undefined) and ``reason``: None when every ratio is defined, else why the first
    undefined one is (a Sortino without a losing day, a Calmar without a drawdown).
    """
    short = too_short(int(ts_ns[0]), int(ts_ns[-1])) if equity.size else too_short(None, None)
    if short is not None:
        return short
    span_s = (int(ts_ns[-1]) - int(ts_ns[0])) / _NS
    values = period_values(ts_ns, equity)
    n = values.size - 1
    if np.any(values <= 0) or np.any(equity <= 0):
        return _no_ratios("equity reached zero or below: returns are undefined", n)
    r = values[1:] / values[:-1] - 1.0
    std = float(r.std(ddof=1))
    mean = float(r.mean())
    annual = math.sqrt(PERIODS_PER_YEAR)
    reasons = []
    sharpe = mean / std * annual if std > 0 else None
    if sharpe is None:
        reasons.append("sharpe: equity did not change from day to day (zero std)")
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    sortino = mean / downside * annual if downside > 0 else None
    if sortino is None:
        reasons.append("sortino: no losing day (zero downside deviation)")
    cagr = (float(equity[-1]) / float(equity[0])) ** (PERIODS_PER_YEAR * RETURN_PERIOD_S / span_s) - 1.0
    calmar = cagr / max_drawdown if max_drawdown > 0 else None
    if calmar is None:
        reasons.append("calmar: no drawdown")
    return {"period_s": RETURN_PERIOD_S, "min_returns": MIN_RETURNS, "sharpe": _finite(sharpe), "sortino": _finite(sortino),
            "cagr": _finite(cagr), "calmar": _finite(calmar), "returns": n, "reason": "; ".join(reasons) or None}


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, 4)


def _span_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
