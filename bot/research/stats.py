"""Small statistics toolkit (numpy only): OLS with Newey-West errors, ranks, Spearman, OOS R².

Conventions:

* Newey-West (1987, Econometrica 55(3) 703-708) HAC covariance with Bartlett weights
  w_j = 1 - j / (L + 1), no small-sample correction; with L = 0 it is White's HC0.
* Default lag (Newey & West 1994, Rev. Econ. Studies 61(4) 631-653, the common rule of thumb):
  L = floor(4 * (n / 100) ** (2 / 9)). For regressions on overlapping forward changes the error
  is a moving average as long as the overlap, so callers raise L to at least the overlap length
  (:func:`nw_lag`).
* Out-of-sample R² = 1 - SSE / SST with SST around the *test-set* mean: 0 means "no better than
  knowing the test period's average move", negative means worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def nw_lag(n: int, overlap: int = 0) -> int:
    """Newey-West lag: max(floor(4 (n/100)^(2/9)), overlap), capped at n - 1."""
    if n <= 1:
        return 0
    rule = int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0)))
    return int(min(max(rule, overlap), n - 1))


@dataclass
class OLSResult:
    coef: np.ndarray       # intercept first when fitted with a constant
    se: np.ndarray         # Newey-West standard errors
    t: np.ndarray
    r2: float
    adj_r2: float
    n: int
    k: int                 # number of columns including the constant
    lag: int
    resid: np.ndarray

    def as_dict(self, names: list[str] | None = None) -> dict:
        names = names or [f"b{i}" for i in range(self.k)]
        return {
            "n": self.n, "nw_lag": self.lag, "r2": _f(self.r2), "adj_r2": _f(self.adj_r2),
            "coef": {nm: _f(c) for nm, c in zip(names, self.coef)},
            "se_nw": {nm: _f(s) for nm, s in zip(names, self.se)},
            "t_nw": {nm: _f(t) for nm, t in zip(names, self.t)},
        }


def _f(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def design(x: np.ndarray, add_const: bool = True) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return np.column_stack([np.ones(len(x)), x]) if add_const else x


def _hac_meat_loop(U: np.ndarray, lag: int) -> np.ndarray:
    S = U.T @ U
    for j in range(1, lag + 1):
        g = U[j:].T @ U[:-j]
        S += (1.0 - j / (lag + 1.0)) * (g + g.T)
    return S


def _hac_meat_fft(U: np.ndarray, lag: int) -> np.ndarray:
    """Same as the loop in O(k^2 n log n): c[j] = sum_t U[t, p] U[t - j, q] by FFT.

    The FFT length is >= n + lag, so the circular correlation has no wrap-around for lags
    0..lag; the same transform read backwards, c[size - j], gives sum_t U[t, q] U[t - j, p].
    """
    n, k = U.shape
    size = 1 << int(math.ceil(math.log2(max(n + lag + 1, 2))))
    F = np.fft.rfft(U, size, axis=0)
    w = 1.0 - np.arange(1, lag + 1) / (lag + 1.0)
    S = U.T @ U
    for p in range(k):
        for q in range(p, k):
            c = np.fft.irfft(F[:, p] * np.conj(F[:, q]), size)
            fwd = float(w @ c[1 : lag + 1])               # sum_j w_j Gamma_j[p, q]
            bwd = float(w @ c[size - 1 : size - lag - 1 : -1])  # sum_j w_j Gamma_j[q, p]
            S[p, q] += fwd + bwd
            if q != p:
                S[q, p] += fwd + bwd
    return S


def newey_west_cov(X: np.ndarray, resid: np.ndarray, lag: int) -> np.ndarray:
    """HAC covariance of the OLS coefficients: (X'X)^-1 S (X'X)^-1 with
    S = Gamma_0 + sum_{j=1..L} w_j (Gamma_j + Gamma_j'), Gamma_j = sum_t u_t u_{t-j}', u_t = x_t e_t.

    Long lags (overlapping forward changes) use an FFT for the autocovariances.
    """
    U = X * resid[:, None]
    S = _hac_meat_loop(U, lag) if lag <= 32 else _hac_meat_fft(U, lag)
    bread = np.linalg.pinv(X.T @ X)
    return bread @ S @ bread


def ols(y: np.ndarray, x: np.ndarray, add_const: bool = True, lag: int | None = None) -> OLSResult:
    """OLS of ``y`` on ``x`` (1-D or 2-D) with Newey-West t-stats (lag from :func:`nw_lag` if None)."""
    y = np.asarray(y, dtype=np.float64)
    X = design(x, add_const)
    n, k = X.shape
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    lag = nw_lag(n) if lag is None else int(lag)
    sse = float(resid @ resid)
    yc = y - y.mean() if add_const else y
    sst = float(yc @ yc)
    r2 = 1.0 - sse / sst if sst > 0 else math.nan
    dof = n - k
    adj = 1.0 - (1.0 - r2) * (n - (1 if add_const else 0)) / dof if dof > 0 and sst > 0 else math.nan
    if n > k:
        se = np.sqrt(np.clip(np.diag(newey_west_cov(X, resid, lag)), 0.0, None))
    else:
        se = np.full(k, math.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, coef / se, math.nan)
    return OLSResult(coef, se, t, r2, adj, n, k, lag, resid)


def r2_score(y: np.ndarray, yhat: np.ndarray) -> float:
    """1 - SSE / SST, SST around the mean of ``y`` (so out of sample: the test-set mean)."""
    y = np.asarray(y, dtype=np.float64)
    sst = float(((y - y.mean()) ** 2).sum())
    if sst <= 0.0:
        return math.nan
    return 1.0 - float(((y - yhat) ** 2).sum()) / sst


def rankdata(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the average of the ranks they span."""
    a = np.asarray(a, dtype=np.float64)
    n = len(a)
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    new = np.ones(n, dtype=bool)
    new[1:] = s[1:] != s[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], n)
    avg = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = avg[np.cumsum(new) - 1]
    return ranks


def dot(x: np.ndarray, y: np.ndarray) -> float:
    """1-D dot product without BLAS (BLAS threads spin badly on a busy machine)."""
    return float(np.einsum("i,i->", x, y))


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    d = math.sqrt(dot(x, x) * dot(y, y))
    return dot(x, y) / d if d > 0 else math.nan


def spearman(x: np.ndarray, y: np.ndarray, y_ranks: np.ndarray | None = None) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); ``y_ranks`` may be cached."""
    if len(x) < 3:
        return math.nan
    return pearson(rankdata(x), rankdata(y) if y_ranks is None else y_ranks)


def hit_rate(x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """Share of sign(x) == sign(y) among pairs where both are non-zero; returns (rate, count)."""
    m = (x != 0) & (y != 0)
    n = int(m.sum())
    if n == 0:
        return math.nan, 0
    return float(np.mean(np.sign(x[m]) == np.sign(y[m]))), n
