"""PNG figures of a research run (matplotlib, Agg backend: no display needed).

Each function takes the report sections (and, for the scatter, the interval arrays) and writes
one PNG; :func:`write_plots` writes them all and returns the file names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.research.analysis import Intervals
from bot.research.report import _n


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_ic_decay(pred: dict, path: Path, title: str) -> None:
    plt = _plt()
    horizons = [h["horizon_s"] for h in pred["horizons"]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, d in pred["decay"].items():
        ic = [np.nan if v is None else v for v in d["ic"]]
        r2 = [np.nan if v is None else v for v in d["r2_oos"]]
        ax1.plot(horizons, ic, marker="o", label=name)
        ax2.plot(horizons, r2, marker="o", label=name)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_xlabel("horizon (s)")
        ax.grid(alpha=0.3)
    ax1.set_ylabel("Spearman IC (all samples)")
    ax1.set_title("information coefficient by horizon")
    ax2.set_ylabel("out-of-sample R² (test mean)")
    ax2.set_title("out-of-sample R² by horizon")
    ax2.set_ylim(bottom=max(ax2.get_ylim()[0], -0.25))
    ax1.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_conditional_moves(costs: dict, path: Path, title: str) -> None:
    """Mean future move per signal bucket, one line per horizon.

    Top row: on the scale of the taker round-trip cost (dashed, ±), so one sees whether any
    bucket clears it. Bottom row: zoomed on the moves, with the spread-only cost (no fees, dotted).
    """
    plt = _plt()
    signals = [s for s, rows in costs["buckets"].items() if rows]
    if not signals:
        return
    fig, axes = plt.subplots(2, len(signals), figsize=(5.2 * len(signals), 8), squeeze=False)
    rt_fee = 2.0 * costs["fees"]["taker_fee_bps"]
    for c, sig in enumerate(signals):
        top, bottom = axes[0][c], axes[1][c]
        peak_cost = 0.0
        peak_move = 0.0
        for h in costs["buckets"][sig]:
            rows = h["buckets"]
            x = np.arange(1, len(rows) + 1)
            mv = np.array([b["move_mean_bps"] for b in rows])
            cost = np.array([b["cost_bps"] for b in rows])
            peak_cost = max(peak_cost, float(cost.max()))
            peak_move = max(peak_move, float(np.abs(mv).max()))
            for ax in (top, bottom):
                ax.plot(x, mv, marker="o", ms=3, label=f"h={h['horizon_s']:g}s")
            spread_only = cost - rt_fee
            bottom.plot(x, spread_only, ":", color="grey", lw=1)
            bottom.plot(x, -spread_only, ":", color="grey", lw=1)
        rt = costs.get("round_trip_taker_bps") or peak_cost
        top.axhline(rt, color="black", ls="--", lw=1.2, label=f"taker round trip ±{rt:.2f} bps")
        top.axhline(-rt, color="black", ls="--", lw=1.2)
        lim = 1.15 * max(peak_cost, peak_move)
        top.set_ylim(-lim, lim)
        bottom.set_ylim(-1.15 * peak_move, 1.15 * peak_move)
        for ax in (top, bottom):
            ax.axhline(0.0, color="black", lw=0.6)
            ax.grid(alpha=0.3)
            ax.set_xlabel(f"{sig} quantile bucket (1 = lowest)")
        top.set_title(f"{sig}: mean mid move by bucket vs taker cost", fontsize=9)
        bottom.set_title(f"{sig}: zoom (dotted: spread only, no fees)", fontsize=9)
        if c == 0:
            top.set_ylabel("mean move mid(t+h) - mid(t) (bps)")
            bottom.set_ylabel("mean move (bps)")
        top.legend(fontsize=7, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_ofi_scatter(iv: Intervals, cks: dict, path: Path, title: str) -> None:
    plt = _plt()
    panels = [("ofi_quotes", iv.ofi_quotes), ("ofi_book", iv.ofi_book), ("trade_imbalance", iv.trade_imbalance)]
    panels = [(n, x) for n, x in panels if x is not None]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5), squeeze=False)
    y = iv.dmid_ticks[iv.valid]
    for ax, (name, x) in zip(axes[0], panels):
        xv = x[iv.valid]
        ax.scatter(xv, y, s=10, alpha=0.6)
        if len(xv) >= 2 and np.ptp(xv) > 0:
            b, a = np.polyfit(xv, y, 1)
            xs = np.linspace(xv.min(), xv.max(), 50)
            ax.plot(xs, a + b * xs, "r-", lw=1.5)
        reg = cks["regressions"].get(name, {})
        label = ""
        if reg.get("n_windows"):
            # a window without variance has no regression: its means are None (n/a), not a crash
            label = (f"mean over {reg['n_windows']} window(s): β={_n(reg['beta_mean'], '.3g')}, t={_n(reg['t_mean'], '.2f')}, "
                     f"R²={_n(reg['r2_mean'], '.3f')}")
        ax.set_title(f"{name}\n{label}", fontsize=9)
        ax.set_xlabel(f"{name} per {cks['interval_s']:g}s interval (base units)")
        ax.set_ylabel("Δmid (ticks)")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_multilevel(cks: dict, path: Path, title: str) -> None:
    plt = _plt()
    ml = cks.get("multilevel") or []
    if not ml:
        return
    k = [r["levels"] for r in ml]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("r2_mean", "R² (levels as separate regressors)"),
                       ("adj_r2_mean", "adjusted R²"), ("r2_summed_mean", "R² (OFI summed over levels)")):
        ax.plot(k, [np.nan if r[key] is None else r[key] for r in ml], marker="o", label=label)
    ax.set_xlabel("levels used")
    ax.set_ylabel(f"mean R² over windows ({cks['interval_s']:g}s intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(out: Path, sections: dict, plot_data: dict, title: str) -> list[str]:
    """Write every figure into ``out``; return the file names written."""
    files = []
    jobs = [
        ("ic_decay.png", lambda p: plot_ic_decay(sections["predictive"], p, title)),
        ("conditional_move.png", lambda p: plot_conditional_moves(sections["costs"], p, title)),
        ("ofi_scatter.png", lambda p: plot_ofi_scatter(plot_data["intervals"], sections["cks"], p, title)),
        ("multilevel_r2.png", lambda p: plot_multilevel(sections["cks"], p, title)),
    ]
    for name, job in jobs:
        path = out / name
        path.unlink(missing_ok=True)  # never report a stale figure from an earlier run
        job(path)
        if path.exists():
            files.append(name)
    return files
