"""The streamed features against independent, straightforward computations on real data.

The engine's :class:`~bot.signals.features.SignalEngine` computes every feature incrementally
(rolling deques, running sums); here each is recomputed from scratch per sample with numpy over
the whole recording (the research module's per-sample book arrays and trade tape), and the
rolling helpers are checked against brute force by hypothesis.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from bot.config.settings import load_settings
from bot.research.analysis import trailing_sum_samples
from bot.research.features import extract_features
from bot.signals.rolling import Persistence, RollingMoments, RollingSum

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hftbacktest-binance"
SPOT = DATA / "spot" / "btcusdt_20240808.gz"
NS = 1_000_000_000


@pytest.fixture(scope="module")
def features():
    if not SPOT.is_file():
        pytest.skip(f"../shared/data not present: {SPOT} (real Binance recordings, mounted only on some machines)")
    from bot.data.binance import read_binance

    cfg = load_settings(ROOT / "config" / "backtest.toml").signal
    return extract_features(read_binance([SPOT]), cfg, levels=10), cfg


def test_trade_imbalance_and_vwap_equal_a_plain_window_sum(features):
    fs, cfg = features
    tw, vw = int(cfg.trade_window_s * NS), int(cfg.vwap_window_s * NS)
    t, q, p = fs.trade_ts, fs.trade_signed, fs.trade_price
    got_ti, got_dev = fs.signal_features["trade_imbalance"], fs.signal_features["vwap_deviation"]
    rng = np.random.default_rng(1)
    for i in rng.choice(len(fs.ts), 400, replace=False):
        now = fs.ts[i]
        sel = (t > now - tw) & (t <= now)
        buy, sell = q[sel & (q > 0)].sum(), -q[sel & (q < 0)].sum()
        want = (buy - sell) / (buy + sell) if buy + sell > 0 else 0.0
        assert got_ti[i] == pytest.approx(want, abs=1e-9), i
        sel = (t > now - vw) & (t <= now)
        if not sel.any():
            assert got_dev[i] == 0.0
            continue
        vwap = (p[sel] * np.abs(q[sel])).sum() / np.abs(q[sel]).sum()
        mid = fs.mid[i]
        assert got_dev[i] == pytest.approx((mid - vwap) / vwap * 1e4, abs=1e-6), i


def test_multilevel_ofi_equals_the_vectorized_cks_terms(features):
    """Streamed mlofi = research's vectorized CKS terms over levels 1..N, summed over the OFI window."""
    fs, cfg = features
    want = trailing_sum_samples(fs, fs.ofi_levels()[:, : cfg.mlofi_levels].sum(axis=1), int(cfg.ofi_window_s * NS))
    got = fs.signal_features["mlofi"]
    assert np.allclose(got, want, rtol=1e-9, atol=1e-6), np.flatnonzero(~np.isclose(got, want, rtol=1e-9, atol=1e-6))[:5]
    assert np.abs(got).max() > 0


def test_depth_depletion_equals_a_plain_ema_recursion(features):
    fs, cfg = features
    n = cfg.depth_levels
    b, a = fs.bid_sz[:, :n].sum(axis=1), fs.ask_sz[:, :n].sum(axis=1)
    tau = cfg.depth_mean_s * NS
    got_b, got_a = fs.signal_features["depth_depletion_bid"], fs.signal_features["depth_depletion_ask"]
    mb = ma = None
    last = 0
    for i in range(len(fs.ts)):
        if fs.segment_first[i] or mb is None:
            mb, ma, last = b[i], a[i], fs.ts[i]
            assert got_b[i] == got_a[i] == 0.0
            continue
        assert got_b[i] == pytest.approx(1 - b[i] / mb, abs=1e-9) and got_a[i] == pytest.approx(1 - a[i] / ma, abs=1e-9), i
        w = 1 - math.exp(-(fs.ts[i] - last) / tau) if fs.ts[i] > last else 0.0
        mb, ma, last = mb + w * (b[i] - mb), ma + w * (a[i] - ma), fs.ts[i]
    assert np.allclose(fs.signal_features["depth_depletion"], got_a - got_b)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3_000), st.floats(-100, 100)), min_size=1, max_size=80), st.integers(1, 800))
def test_rolling_sum_and_moments_equal_brute_force(steps, window):
    ts, rs, rm = 0, RollingSum(window, 1), RollingMoments(window)
    seen: list[tuple[int, float]] = []
    for dt, x in steps:
        ts += dt
        rs.expire(ts)
        rs.add(ts, x)
        rm.add(ts, x)
        seen.append((ts, x))
        inside = [v for t, v in seen if t > ts - window]
        assert rs.sums[0] == pytest.approx(math.fsum(inside), abs=1e-6)
        mean, std = rm.mean_std()
        assert mean == pytest.approx(float(np.mean(inside)), abs=1e-6)
        assert std == pytest.approx(float(np.std(inside)), abs=1e-4)


@hsettings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.floats(-1, 1)), min_size=1, max_size=60), st.integers(1, 600))
def test_persistence_is_the_weakest_level_held_on_one_side(steps, window):
    p = Persistence(window)
    ts = 0
    seen: list[tuple[int, float]] = []
    for dt, x in steps:
        ts += dt
        seen.append((ts, x))
        got = p.update(ts, x)
        sign = (x > 0) - (x < 0)
        run_start = ts  # when the current same-sign run began
        for t, v in reversed(seen):
            if ((v > 0) - (v < 0)) != sign:
                break
            run_start = t
        if sign == 0 or ts - run_start < window:
            assert got == 0.0
        else:
            inside = [abs(v) for t, v in seen if t > ts - window]
            assert got == pytest.approx(sign * min(inside))
