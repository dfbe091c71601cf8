"""``bot research --fit``: a linear score fitted on the first part of a recording, scored on the rest.

Model: the forward mid move over ``horizon_s``, in bps, regressed by ordinary least squares (with
an intercept) on the engine's own streamed features at each book sample (:data:`FEATURES`, the
:class:`~bot.signals.features.SignalState` fields). Fitted only on samples whose horizon ends
before the split (the first ``train_frac`` of the time span), so no fitted value has seen a price
after the split; a test changes everything after the split and gets the same coefficients.
The bot runs it as ``[signal.model]``: score = tanh((intercept + Σ coef·feature) / scale_bps),
``scale_bps`` the standard deviation of the fitted values on the fit set. On the samples after the
split the report gives the model's information coefficient, hit rate and out-of-sample R².
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bot.research import stats
from bot.research.analysis import forward_change
from bot.research.features import FeatureSet

FEATURES = ("book_imbalance", "ofi", "microprice_offset", "trade_imbalance", "vwap_deviation_z", "depth_depletion", "mlofi",
            "liquidation_flow", "basis_bps")
NS = 1_000_000_000


def fit_model(fs: FeatureSet, horizon_s: float, train_frac: float) -> dict[str, Any]:
    """The fitted ``[signal.model]`` and its out-of-sample figures (see the module docstring)."""
    h_ns = int(round(horizon_s * NS))
    ts = fs.ts
    t0, t1 = int(ts[0]), int(fs.segment_end_ts[-1]) - 1
    split = t0 + int(train_frac * (t1 - t0))
    mid = fs.mid
    d, valid, _ = forward_change(fs, mid, h_ns)
    y = np.divide(d, mid, out=np.zeros_like(d), where=mid > 0) * 1e4
    X = np.column_stack([fs.signal_features[name] for name in FEATURES])
    finite = np.isfinite(X).all(axis=1) & np.isfinite(y)
    train = valid & finite & (ts + h_ns <= split)
    test = valid & finite & (ts >= split)
    if train.sum() < 20:
        raise ValueError(f"--fit: only {int(train.sum())} samples before the split with a complete {horizon_s:g} s horizon; need 20")
    Xt = X[train]
    used = [i for i in range(len(FEATURES)) if np.ptp(Xt[:, i]) > 0]  # a constant feature cannot be fitted
    A = np.column_stack([np.ones(len(Xt))] + [Xt[:, i] for i in used])
    coef, *_ = np.linalg.lstsq(A, y[train], rcond=None)
    fitted = A @ coef
    scale = float(np.std(fitted)) or 1.0
    coefficients = {FEATURES[i]: float(c) for i, c in zip(used, coef[1:])}
    out: dict[str, Any] = {
        "horizon_s": horizon_s, "train_frac": train_frac, "split_ts": split,
        "n_train": int(train.sum()), "n_test": int(test.sum()),
        "model": {"intercept": float(coef[0]), "coefficients": coefficients, "scale_bps": scale, "horizon_s": horizon_s},
        "r2_in_sample": float(stats.r2_score(y[train], fitted)),
        "dropped_constant": [FEATURES[i] for i in range(len(FEATURES)) if i not in used],
    }
    if test.sum() >= 10:
        pred = coef[0] + X[test][:, used] @ coef[1:]
        out.update({"ic_test": float(stats.spearman(pred, y[test])), "hit_rate_test": float(stats.hit_rate(pred, y[test])[0]),
                    "r2_oos": float(stats.r2_score(y[test], pred))})
    else:
        out.update({"ic_test": None, "hit_rate_test": None, "r2_oos": None})
    return out


def model_toml(fit: dict[str, Any], fitted_on: str) -> str:
    """The ``[signal.model]`` section the bot runs with (append it to a config, or merge it in)."""
    m = fit["model"]
    lines = [
        f"# fitted by `bot research --fit {fit['horizon_s']:g}` on {fitted_on}",
        f"# first {fit['train_frac']:g} of the span ({fit['n_train']} samples); after the split: "
        f"IC {_g(fit['ic_test'])}, hit rate {_g(fit['hit_rate_test'])}, out-of-sample R2 {_g(fit['r2_oos'])}",
        "[signal.model]",
        f"intercept = {m['intercept']!r}",
        f"scale_bps = {m['scale_bps']!r}",
        f"horizon_s = {m['horizon_s']!r}",
        f"fitted_on = {fitted_on!r}".replace("'", '"'),
        "",
        "[signal.model.coefficients]",
        *(f"{k} = {v!r}" for k, v in m["coefficients"].items()),
    ]
    return "\n".join(lines) + "\n"


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def write_model(path: Path, fit: dict[str, Any], fitted_on: str) -> None:
    path.write_text(model_toml(fit, fitted_on))
