"""Cross-instrument predictive skill: one symbol's features against another symbol's next move.

Given recordings of two (or more) instruments over the same window, for every ordered pair
(leader, follower) and horizon h: at each book sample t of the leader, the follower's move is
mid_F(t + h) − mid_F(t) in bps of mid_F(t), mid_F(x) the follower's last book sample at or before
x. A pair counts only where both follower samples exist and lie in one sound segment of the
follower's recording (a gap or resync between them drops it, as in the single-instrument table).
The table gives, per leader feature, the Spearman IC and the direction hit rate (zeros excluded)
over those pairs; the follower's own features against its own move are the single-instrument
table's, for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bot.data.binance import RecordingError
from bot.data.merge import Group, group_recordings
from bot.research import stats
from bot.research.analysis import AnalysisParams, _f, index_at, predictive_features, sound_at
from bot.research.features import FeatureSet

NS = 1_000_000_000
MIN_PAIRS = 10


def follower_moves(leader_ts: np.ndarray, follower: FeatureSet, horizon_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """(move in bps, valid) of the follower's mid over (t, t + h] at each leader sample time t."""
    k = index_at(follower.ts, leader_ts)
    t1 = leader_ts + horizon_ns
    j = index_at(follower.ts, t1)
    ok = sound_at(follower, k, leader_ts) & sound_at(follower, j, t1)
    ok &= follower.segment[np.maximum(j, 0)] == follower.segment[np.maximum(k, 0)]
    m0 = follower.mid[np.maximum(k, 0)]
    m1 = follower.mid[np.maximum(j, 0)]
    move = np.divide(m1 - m0, m0, out=np.zeros_like(m0), where=m0 > 0) * 1e4
    return move, ok & (m0 > 0)


def cross_table(leader: FeatureSet, leader_name: str, feats: dict[str, np.ndarray], follower: FeatureSet, follower_name: str,
                horizons_s: tuple[float, ...]) -> dict[str, Any]:
    """The leader's features against the follower's next move, by horizon (see the module docstring)."""
    rows = []
    for h in horizons_s:
        move, valid = follower_moves(leader.ts, follower, int(round(h * NS)))
        n = int(valid.sum())
        row: dict[str, Any] = {"horizon_s": h, "n": n, "features": {}}
        if n >= MIN_PAIRS:
            y = move[valid]
            y_ranks = stats.rankdata(y)
            row["zero_move_share"] = _f(float(np.mean(y == 0)))
            for name, f in feats.items():
                x = f[valid]
                if not np.isfinite(x).all() or np.ptp(x) == 0:
                    row["features"][name] = None
                    continue
                hit, n_hit = stats.hit_rate(x, y)
                row["features"][name] = {"ic": _f(stats.spearman(x, y, y_ranks)), "hit_rate": _f(hit), "n_hit": n_hit}
        rows.append(row)
    return {"leader": leader_name, "follower": follower_name, "horizons": rows,
            "definition": "Spearman IC of the leader's feature at t with the follower's mid move over (t, t+h], bps"}


def format_cross(table: dict[str, Any], names: list[str]) -> str:
    """The console table: a row per leader feature, IC and hit rate per horizon."""
    hs = table["horizons"]
    labels = [f"{h['horizon_s']:g}s IC  hit" for h in hs]
    head = f"  {'feature of ' + table['leader']:<28}" + "".join(f"{label:>16}" for label in labels)
    lines = [f"Cross-instrument: {table['leader']} features -> {table['follower']} next move", head]
    for name in names:
        cells = []
        for h in hs:
            r = h["features"].get(name)
            cells.append(f"{'n/a':>16}" if not r or r.get("ic") is None else f"{r['ic']:>10.3f} {r['hit_rate'] or 0:>5.2f}")
        lines.append(f"  {name:<28}" + "".join(cells))
    return "\n".join(lines)


def instrument_groups(files: list[Path], primary_symbol: str) -> tuple[list[Path], list[Group]]:
    """(the files of the instrument the report is about, the other instruments' groups).

    One instrument (or files the grouping cannot sort, which the reader then refuses with its own
    message): all files, no others. Several: the config's first instrument's files (else the
    first group's) and the rest as groups to compare against.
    """
    if len(files) < 2:
        return files, []
    try:
        groups = group_recordings(files)
    except RecordingError:
        return files, []
    if len(groups) < 2:
        return files, []
    primary = next((g for g in groups if g.unified_symbol == primary_symbol), groups[0])
    return list(primary.files), [g for g in groups if g is not primary]


def cross_section(fs: FeatureSet, name: str, own: dict[str, np.ndarray], params: AnalysisParams,
                  others: list[tuple[FeatureSet, str, AnalysisParams]]) -> list[dict[str, Any]]:
    """Both directions of every pair of the report's instrument (``own``: its features, as the
    single-instrument analysis computed them) with each other one."""
    tables = []
    for other_fs, other_name, other_params in others:
        theirs = predictive_features(other_fs, other_params)
        tables.append(cross_table(fs, name, own, other_fs, other_name, params.horizons_s))
        tables.append(cross_table(other_fs, other_name, theirs, fs, name, params.horizons_s))
    return tables
