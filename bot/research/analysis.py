"""The measurements: CKS interval regressions, predictive skill by horizon, and the cost hurdle.

Everything here works on a :class:`~bot.research.features.FeatureSet` and returns plain
JSON-able dicts (``None`` for undefined figures), plus the arrays the plots need.

Time conventions (all on the local receive clock, integer ns):

* "mid at t" is the mid of the last sample with ts <= t, and exists only while the book is sound
  (t before the end of that sample's segment);
* forward change over h at sample i: mid(ts_i + h) - mid_i, defined when ts_i + h is still in
  sample i's segment (so never across a gap or past the end of the recording);
* interval k covers (b_k, b_k+1] with b_k = t0 + k * interval, t0 = first sound sample; its OFI /
  trade imbalance is the sum of the terms stamped in (b_k, b_k+1], its mid change
  mid(b_k+1) - mid(b_k), so flow and price change cover exactly the same events.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from bot.research import stats
from bot.research.features import FeatureSet

NS = 1_000_000_000
SIG_T = 1.96


@dataclass(frozen=True)
class AnalysisParams:
    tick_size: float = 0.01
    taker_fee_bps: float = 10.0
    maker_fee_bps: float = 10.0
    interval_s: float = 10.0
    window_s: float = 1800.0                      # CKS used 30-minute windows
    horizons_s: tuple[float, ...] = (0.1, 1.0, 10.0, 60.0)
    train_frac: float = 0.5
    flow_window_s: float = 1.0                    # trailing window of the flow features (OFI, trades)
    buckets: int = 10
    min_intervals: int = 10                       # fewer valid intervals in a window: no regression
    interval_grid_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    bucket_signals: tuple[str, ...] = ("score", "ofi_quotes", "l1_imbalance")
    enter_threshold: float = 0.6                  # the strategy's |score| entry threshold

    def as_dict(self) -> dict:
        return asdict(self)


def _f(x: float | int | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------- time helpers
def index_at(ts: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the last sample with ts <= t (-1 when none)."""
    return np.searchsorted(ts, t, side="right") - 1


def sound_at(fs: FeatureSet, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True where sample ``idx`` exists and its segment is still sound at time ``t``."""
    ok = idx >= 0
    end = fs.segment_end_ts[fs.segment[np.maximum(idx, 0)]]
    return ok & (t < end)


def forward_change(fs: FeatureSet, values: np.ndarray, horizon_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values(ts_i + h) - values_i, valid, j) with j the sample index at ts_i + h."""
    t1 = fs.ts + horizon_ns
    j = index_at(fs.ts, t1)
    valid = sound_at(fs, j, t1) & (fs.segment[j] == fs.segment)
    return values[j] - values, valid, j


def trailing_sum_samples(fs: FeatureSet, values: np.ndarray, window_ns: int) -> np.ndarray:
    """Sum of per-sample ``values`` over samples in (ts_i - w, ts_i] of the same segment, up to i."""
    n = len(fs.ts)
    cs = np.zeros(n + 1)
    np.cumsum(values, out=cs[1:])
    lo = np.searchsorted(fs.ts, fs.ts - window_ns, side="right")
    first_idx = np.flatnonzero(fs.segment_first)[fs.segment]
    lo = np.maximum(lo, first_idx)
    return cs[np.arange(1, n + 1)] - cs[lo]


def trailing_sum_stream(fs: FeatureSet, stream_ts: np.ndarray, values: np.ndarray, window_ns: int) -> np.ndarray:
    """Sum of stream ``values`` stamped in (max(ts_i - w, segment start - 1), ts_i] at each sample."""
    cs = np.zeros(len(values) + 1)
    np.cumsum(values, out=cs[1:])
    seg_start = fs.ts[np.flatnonzero(fs.segment_first)][fs.segment]
    lower = np.maximum(fs.ts - window_ns, seg_start - 1)
    return cs[np.searchsorted(stream_ts, fs.ts, "right")] - cs[np.searchsorted(stream_ts, lower, "right")]


def predictive_features(fs: FeatureSet, p: AnalysisParams) -> dict[str, np.ndarray]:
    """Each feature at each sample, using only information up to and including that sample."""
    w = int(round(p.flow_window_s * NS))
    feats = {
        "l1_imbalance": fs.l1_imbalance(),
        "book_imbalance": fs.book_imbalance(),
        "microprice_offset": fs.microprice_offset() / p.tick_size,
        "ofi_book": trailing_sum_samples(fs, fs.ofi_book(), w),
        "ofi_multilevel": trailing_sum_samples(fs, fs.ofi_levels().sum(axis=1), w),
    }
    if len(fs.quote_ts):
        feats["ofi_quotes"] = trailing_sum_stream(fs, fs.quote_ts, fs.quote_e, w)
    if len(fs.trade_ts):
        feats["trade_flow"] = trailing_sum_stream(fs, fs.trade_ts, fs.trade_signed, w)
    for name, values in fs.signal_features.items():
        if name in STREAMED_IN_TABLE:
            feats[name] = values
    feats["score"] = fs.score
    return feats


# the streamed features reported by name (the per-side depletions and funding rate stay in the arrays)
STREAMED_IN_TABLE = ("trade_imbalance", "vwap_deviation", "vwap_deviation_z", "depth_depletion", "mlofi", "liquidation_flow", "basis_bps")


FEATURE_DOC = {
    "l1_imbalance": "(qb - qa) / (qb + qa) at the best level",
    "book_imbalance": "(sum bid size - sum ask size) / total over the top N levels (N = --levels), unweighted",
    "microprice_offset": "microprice - mid, in ticks",
    "ofi_book": "CKS OFI of the book's best quotes, summed over the trailing flow window (base units)",
    "ofi_multilevel": "CKS OFI summed over levels 1..N and over the trailing flow window (base units)",
    "ofi_quotes": "CKS OFI of the bookTicker quote stream, summed over the trailing flow window (base units)",
    "trade_flow": "buyer- minus seller-initiated traded size over the trailing flow window (base units)",
    "score": "the bot's SignalEngine score in [-1, 1] (config [signal])",
    "trade_imbalance": "SignalEngine: (aggressor buy - sell volume) / their sum over signal.trade_window_s",
    "vwap_deviation": "SignalEngine: (mid - rolling trade VWAP) / VWAP in bps over signal.vwap_window_s",
    "vwap_deviation_z": "SignalEngine: vwap_deviation over its own rolling standard deviation",
    "depth_depletion": "SignalEngine: ask depletion - bid depletion, each 1 - top-N depth / its EMA mean (signal.depth_mean_s)",
    "mlofi": "SignalEngine: CKS OFI summed over levels 1..signal.mlofi_levels and signal.ofi_window_s (base units)",
    "liquidation_flow": "SignalEngine: forced buys - forced sells over signal.liquidation_window_s (base units; derivatives)",
    "basis_bps": "SignalEngine: (mark - index) / index in bps from the latest mark-price message (derivatives)",
}


# ---------------------------------------------------------------------- CKS intervals
@dataclass
class Intervals:
    start_ts: np.ndarray
    dmid_ticks: np.ndarray
    ofi_quotes: np.ndarray | None
    ofi_levels: np.ndarray          # (K, levels), column 0 = book best-level OFI
    trade_imbalance: np.ndarray | None
    valid: np.ndarray
    window: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def ofi_book(self) -> np.ndarray:
        return self.ofi_levels[:, 0]


def _stream_sum_at(stream_ts: np.ndarray, values: np.ndarray, b: np.ndarray) -> np.ndarray:
    cs = np.zeros(len(values) + 1)
    np.cumsum(values, out=cs[1:])
    return cs[np.searchsorted(stream_ts, b, "right")]


def intervals(fs: FeatureSet, interval_ns: int, window_ns: int, tick: float) -> Intervals:
    """Aggregate flows and mid changes over consecutive fixed intervals from the first sample."""
    t0 = int(fs.ts[0])
    t_last = int(fs.segment_end_ts[-1]) - 1 if len(fs.segment_end_ts) else int(fs.ts[-1])
    K = max((t_last - t0) // interval_ns, 0)
    b = t0 + np.arange(K + 1, dtype=np.int64) * interval_ns
    idx = index_at(fs.ts, b)
    ok = sound_at(fs, idx, b)
    idx0 = np.maximum(idx, 0)
    seg = fs.segment[idx0]
    valid = ok[:-1] & ok[1:] & (seg[:-1] == seg[1:])
    mid = fs.mid[idx0]
    levels = fs.ofi_levels()
    cs = np.zeros((len(levels) + 1, levels.shape[1]))
    np.cumsum(levels, axis=0, out=cs[1:])
    s_lv = cs[idx + 1]
    ofi_q = None
    if len(fs.quote_ts):
        s = _stream_sum_at(fs.quote_ts, fs.quote_e, b)
        ofi_q = s[1:] - s[:-1]
    ti = None
    if len(fs.trade_ts):
        s = _stream_sum_at(fs.trade_ts, fs.trade_signed, b)
        ti = s[1:] - s[:-1]
    return Intervals(
        start_ts=b[:-1],
        dmid_ticks=(mid[1:] - mid[:-1]) / tick,
        ofi_quotes=ofi_q,
        ofi_levels=s_lv[1:] - s_lv[:-1],
        trade_imbalance=ti,
        valid=valid,
        window=(b[:-1] - t0) // window_ns,
    )


def _regress(y: np.ndarray, x: np.ndarray) -> dict | None:
    if len(y) < 3 or np.ptp(x) == 0:
        return None
    r = stats.ols(y, x)
    return {"n": r.n, "nw_lag": r.lag, "alpha": _f(r.coef[0]), "beta": _f(r.coef[1]),
            "t_beta": _f(r.t[1]), "r2": _f(r.r2)}


def _summarize_windows(rows: list[dict]) -> dict:
    rows = [r for r in rows if r is not None]
    if not rows:
        return {"n_windows": 0}
    beta = np.array([r["beta"] for r in rows], dtype=float)
    t = np.array([r["t_beta"] if r["t_beta"] is not None else np.nan for r in rows], dtype=float)
    r2 = np.array([r["r2"] if r["r2"] is not None else np.nan for r in rows], dtype=float)
    return {
        "n_windows": len(rows),
        "beta_mean": _f(np.nanmean(beta)), "beta_median": _f(np.nanmedian(beta)),
        "t_mean": _f(np.nanmean(t)),
        "r2_mean": _f(np.nanmean(r2)), "r2_median": _f(np.nanmedian(r2)),
        "share_significant": _f(np.mean(np.abs(np.nan_to_num(t)) > SIG_T)),
        "n_intervals": int(sum(r["n"] for r in rows)),
    }


def cks_table(fs: FeatureSet, p: AnalysisParams, interval_s: float | None = None, multilevel: bool = True) -> tuple[dict, Intervals]:
    """Per window: Δmid (ticks) = α + β X + ε for X = OFI (quotes, book L1) and trade imbalance."""
    interval_s = p.interval_s if interval_s is None else interval_s
    iv = intervals(fs, int(round(interval_s * NS)), int(round(p.window_s * NS)), p.tick_size)
    regressors = {"ofi_quotes": iv.ofi_quotes, "ofi_book": iv.ofi_book, "trade_imbalance": iv.trade_imbalance}
    per_window: dict[str, list] = {k: [] for k in regressors if regressors[k] is not None}
    ml_rows: list[list[dict]] = []
    windows_used = []
    for w in np.unique(iv.window):
        m = (iv.window == w) & iv.valid
        n = int(m.sum())
        if n < p.min_intervals:
            continue
        y = iv.dmid_ticks[m]
        win_start = int(iv.start_ts[m][0])
        windows_used.append({"window": int(w), "start_ts": win_start, "n_intervals": n})
        for name in per_window:
            row = _regress(y, regressors[name][m])
            if row is not None:
                row["window"] = int(w)
            per_window[name].append(row)
        if multilevel:
            lv = iv.ofi_levels[m]
            rows = []
            for k in range(1, lv.shape[1] + 1):
                row = {"levels": k, "r2": None, "adj_r2": None, "r2_summed": None}
                if n > k + 2 and np.all(np.ptp(lv[:, :k], axis=0) > 0):
                    r = stats.ols(y, lv[:, :k], lag=0)
                    row["r2"], row["adj_r2"] = _f(r.r2), _f(r.adj_r2)
                    row["r2_summed"] = _f(stats.ols(y, lv[:, :k].sum(axis=1), lag=0).r2)
                rows.append(row)
            ml_rows.append(rows)
    out: dict = {
        "interval_s": interval_s,
        "window_s": p.window_s,
        "intervals_total": int(len(iv.valid)),
        "intervals_valid": int(iv.valid.sum()),
        "windows": windows_used,
        "regressions": {name: {**_summarize_windows(rows), "per_window": [r for r in rows if r is not None]}
                        for name, rows in per_window.items()},
        "dmid_ticks_std": _f(np.std(iv.dmid_ticks[iv.valid])) if iv.valid.any() else None,
    }
    if multilevel:
        ml = []
        for k in range(fs.levels):
            vals = [rows[k] for rows in ml_rows]

            def mean_of(key: str) -> float | None:
                xs = [v[key] for v in vals if v[key] is not None]
                return _f(np.mean(xs)) if xs else None

            ml.append({"levels": k + 1, "r2_mean": mean_of("r2"), "adj_r2_mean": mean_of("adj_r2"),
                       "r2_summed_mean": mean_of("r2_summed")})
        out["multilevel"] = ml
    return out, iv


# ---------------------------------------------------------------------- predictive skill
def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    xc = x - x.mean()
    sxx = stats.dot(xc, xc)
    b = stats.dot(xc, y - y.mean()) / sxx if sxx > 0 else 0.0
    return float(y.mean()) - b * float(x.mean()), b


def predictive_table(fs: FeatureSet, p: AnalysisParams, feats: dict[str, np.ndarray]) -> dict:
    ts = fs.ts
    t0, t1 = int(ts[0]), int(fs.segment_end_ts[-1]) - 1
    split = t0 + int(p.train_frac * (t1 - t0))
    mid = fs.mid
    horizons = []
    for h in p.horizons_s:
        h_ns = int(round(h * NS))
        d, valid, j = forward_change(fs, mid, h_ns)
        d_ticks = d / p.tick_size
        n = int(valid.sum())
        row: dict = {"horizon_s": h, "n": n}
        if n < 10:
            row["features"] = {}
            horizons.append(row)
            continue
        overlap = int(np.median((j - np.arange(len(j)))[valid]))
        train = valid & (ts + h_ns <= split)   # the label must end before the split (no overlap leak)
        test = valid & (ts >= split)
        y = d_ticks[valid]
        row.update({
            "n_train": int(train.sum()), "n_test": int(test.sum()),
            "zero_move_share": _f(np.mean(y == 0)),
            "move_std_ticks": _f(np.std(y)),
            "move_std_bps": _f(np.std((d / mid * 1e4)[valid])),
            "samples_per_horizon_median": overlap,
            "nw_lag": stats.nw_lag(n, overlap),
        })
        y_ranks = stats.rankdata(y)
        y_test_ranks = stats.rankdata(d_ticks[test]) if test.sum() >= 10 else None
        fr: dict = {}
        for name, f in feats.items():
            x = f[valid]
            if np.ptp(x) == 0:
                fr[name] = None
                continue
            full = stats.ols(y, x, lag=stats.nw_lag(n, overlap))
            res = {"beta": _f(full.coef[1]), "t_nw": _f(full.t[1]), "r2_in_sample": _f(full.r2),
                   "ic": _f(stats.spearman(x, y, y_ranks))}
            hit, n_hit = stats.hit_rate(x, y)
            res.update({"hit_rate": _f(hit), "n_hit": n_hit, "feature_zero_share": _f(np.mean(x == 0))})
            if train.sum() >= 10 and test.sum() >= 10:
                a, b = _fit_line(f[train], d_ticks[train])
                yt, xt = d_ticks[test], f[test]
                res["r2_oos"] = _f(stats.r2_score(yt, a + b * xt))
                res["ic_test"] = _f(stats.spearman(xt, yt, y_test_ranks))
                res["hit_rate_test"] = _f(stats.hit_rate(xt, yt)[0])
            else:
                res["r2_oos"] = res["ic_test"] = res["hit_rate_test"] = None
            fr[name] = res
        row["features"] = fr
        horizons.append(row)
    decay = {}
    for name in feats:
        ics = [(r["features"].get(name) or {}).get("ic") for r in horizons]
        first = ics[0] if ics and ics[0] else None
        decay[name] = {"ic": ics, "ic_ratio_to_shortest": [(_f(i / first) if (i is not None and first) else None) for i in ics],
                       "r2_oos": [(r["features"].get(name) or {}).get("r2_oos") for r in horizons]}
    return {
        "train_frac": p.train_frac,
        "split_ts": split,
        "sampling": "every book update while the book is sound (event time)",
        "r2_oos_definition": "OLS y = a + b x fitted on samples whose horizon ends before the split "
                             "(first train_frac of the time span); on samples after the split, "
                             "R2_oos = 1 - SSE / SST with SST around the TEST-set mean",
        "ic_definition": "Spearman rank correlation (average ranks for ties) on all valid samples; ic_test on the test part",
        "hit_rate_definition": "share of sign(feature) == sign(move) among samples where both are non-zero",
        "t_nw_definition": "full-sample slope t-stat, Newey-West lag = max(rule of thumb, median samples per horizon)",
        "feature_doc": {k: FEATURE_DOC.get(k, "") for k in feats},
        "horizons": horizons,
        "decay": decay,
    }


# ---------------------------------------------------------------------- costs
def _time_weights(fs: FeatureSet) -> np.ndarray:
    nxt = np.empty(len(fs.ts), dtype=np.int64)
    nxt[:-1] = fs.ts[1:]
    last = np.ones(len(fs.ts), dtype=bool)
    last[:-1] = fs.segment[1:] != fs.segment[:-1]
    nxt[last] = fs.segment_end_ts[fs.segment[last]]
    return np.maximum(nxt - fs.ts, 0).astype(np.float64)


def bucket_table(x: np.ndarray, move_bps: np.ndarray, cost_bps: np.ndarray, n_buckets: int) -> list[dict]:
    """Quantile buckets of ``x`` (edges merged when tied); mean move and net of cost per bucket.

    ``move_excess_bps`` is the bucket's mean move minus the mean over all samples: the part the
    signal explains beyond the period's drift (which no signal knew in advance).
    """
    edges = np.unique(np.quantile(x, np.linspace(0, 1, n_buckets + 1)[1:-1]))
    b = np.searchsorted(edges, x, side="right")
    overall = float(move_bps.mean())
    rows = []
    for k in range(len(edges) + 1):
        m = b == k
        n = int(m.sum())
        if n == 0:
            continue
        mv = move_bps[m]
        mean = float(mv.mean())
        cost = float(cost_bps[m].mean())
        rows.append({
            "bucket": k, "n": n, "x_min": _f(x[m].min()), "x_max": _f(x[m].max()), "x_mean": _f(x[m].mean()),
            "move_mean_bps": _f(mean), "move_excess_bps": _f(mean - overall), "move_se_bps_naive": _f(mv.std() / math.sqrt(n)) if n > 1 else None,
            "cost_bps": _f(cost), "net_long_bps": _f(mean - cost), "net_short_bps": _f(-mean - cost),
            "best_net_bps": _f(max(mean - cost, -mean - cost)), "clears_cost": bool(abs(mean) > cost),
        })
    return rows


def cost_table(fs: FeatureSet, p: AnalysisParams, feats: dict[str, np.ndarray]) -> dict:
    mid = fs.mid
    spread = fs.spread
    spread_ticks = spread / p.tick_size
    spread_bps = spread / mid * 1e4
    w = _time_weights(fs)
    tw = float(w.sum())
    rt_fee = 2.0 * p.taker_fee_bps
    cost_bps = rt_fee + spread_bps  # taker in and out: half a spread each way plus two fees
    out: dict = {
        "spread": {
            "mean_ticks": _f(spread_ticks.mean()), "median_ticks": _f(np.median(spread_ticks)),
            "time_weighted_mean_ticks": _f((spread_ticks * w).sum() / tw) if tw > 0 else None,
            "share_one_tick": _f(np.mean(np.abs(spread_ticks - 1.0) < 1e-6)),
            "mean_bps": _f(spread_bps.mean()),
            "time_weighted_mean_bps": _f((spread_bps * w).sum() / tw) if tw > 0 else None,
        },
        "fees": {"taker_fee_bps": p.taker_fee_bps, "maker_fee_bps": p.maker_fee_bps},
        "round_trip_taker_bps": _f(rt_fee + spread_bps.mean()),
        "round_trip_definition": "2 * taker_fee_bps + spread_bps at entry (half a spread paid on entry, "
                                 "half on exit), averaged over the samples of each bucket",
        "bucket_definition": "quantile buckets of the signal over all valid samples (in-sample edges); "
                             "move = mid(t + h) - mid(t) in bps of mid(t); a bucket clears the cost when "
                             "|mean move| > mean cost (trading in the move's direction)",
        "buckets": {},
    }
    any_clear = False
    any_clear_spread_only = False
    for name in p.bucket_signals:
        if name not in feats:
            continue
        per_h = []
        for h in p.horizons_s:
            d, valid, _ = forward_change(fs, mid, int(round(h * NS)))
            if valid.sum() < p.buckets * 5:
                continue
            x = feats[name][valid]
            mv = (d / mid * 1e4)[valid]
            rows = bucket_table(x, mv, cost_bps[valid], p.buckets)
            spread_only = bucket_table(x, mv, spread_bps[valid], p.buckets)
            best = max(rows, key=lambda r: r["best_net_bps"] if r["best_net_bps"] is not None else -math.inf)
            clears = any(r["clears_cost"] for r in rows)
            clears_so = any(r["clears_cost"] for r in spread_only)
            any_clear |= clears
            any_clear_spread_only |= clears_so
            per_h.append({
                "horizon_s": h, "n": int(valid.sum()), "buckets": rows,
                "best_bucket": best["bucket"], "best_net_bps": best["best_net_bps"],
                "max_abs_move_bps": _f(max(abs(r["move_mean_bps"]) for r in rows)),
                "any_bucket_clears_taker_cost": clears,
                "any_bucket_clears_spread_only": clears_so,
            })
        out["buckets"][name] = per_h
    out["any_bucket_clears_taker_cost"] = any_clear
    out["any_bucket_clears_spread_only"] = any_clear_spread_only
    # the strategy's own entry rule: |score| >= enter_threshold, trade in the score's direction
    thr = []
    for h in p.horizons_s:
        d, valid, _ = forward_change(fs, mid, int(round(h * NS)))
        s = fs.score
        sel = valid & (np.abs(s) >= p.enter_threshold)
        n = int(sel.sum())
        row = {"horizon_s": h, "n": n, "signed_move_mean_bps": None, "cost_bps": None, "net_bps": None}
        if n:
            signed = (np.sign(s) * d / mid * 1e4)[sel]
            row.update({"signed_move_mean_bps": _f(signed.mean()), "cost_bps": _f(cost_bps[sel].mean()),
                        "net_bps": _f(signed.mean() - cost_bps[sel].mean()),
                        "share_samples": _f(n / max(int(valid.sum()), 1))})
        thr.append(row)
    out["entry_rule"] = {"enter_threshold": p.enter_threshold, "by_horizon": thr}
    return out


# ---------------------------------------------------------------------- all together
def analyze(fs: FeatureSet, p: AnalysisParams) -> tuple[dict, dict]:
    """Run every measurement; return (report sections, arrays for the plots)."""
    if len(fs.ts) < 2:
        raise ValueError("fewer than two sound book samples: nothing to analyze")
    feats = predictive_features(fs, p)
    cks, iv = cks_table(fs, p)
    grid = []
    for g in sorted(set(p.interval_grid_s) | {p.interval_s}):
        tab, _ = cks_table(fs, p, g, multilevel=False)
        grid.append({"interval_s": g, **{name: {k: v for k, v in r.items() if k != "per_window"}
                                         for name, r in tab["regressions"].items()}})
    cks["by_interval"] = grid
    l1_depth = (fs.bid_size + fs.ask_size) * 0.5
    cks["mean_l1_depth"] = _f(l1_depth.mean())
    pred = predictive_table(fs, p, feats)
    costs = cost_table(fs, p, feats)
    plot_data = {"intervals": iv, "features": feats}
    return {"cks": cks, "predictive": pred, "costs": costs}, plot_data
