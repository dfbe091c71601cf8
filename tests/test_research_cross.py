"""Cross-instrument IC in ``bot research``: one symbol's features against another's next move."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.settings import load_settings
from bot.data.sim import simulate
from bot.research.analysis import AnalysisParams
from bot.research.cross import cross_table, follower_moves
from bot.research.features import extract_features

ROOT = Path(__file__).resolve().parents[1]
SPOT = ROOT.parent / "shared" / "data" / "hftbacktest-binance" / "spot"
needs_spot = pytest.mark.skipif(not (SPOT / "ethusdt_20240809.gz").is_file(),
                                reason=f"shared spot recordings not found in {SPOT} (see ../shared/data/README.md)")


@dataclasses.dataclass
class Samples:
    """The parts of a FeatureSet the cross table reads: sample times, mids, sound segments."""

    ts: np.ndarray
    mid: np.ndarray
    segment: np.ndarray
    segment_end_ts: np.ndarray


def samples(gaps: list[int], mids: list[float], cuts: list[int], end_pad: int) -> Samples:
    ts = np.cumsum(np.array(gaps, dtype=np.int64)) + 1_000
    segment = np.zeros(len(ts), dtype=np.int64)
    for c in sorted(set(cuts)):  # a resync starts a new segment at sample c
        if 0 < c < len(ts):
            segment[c:] += 1
    ends = [int(ts[np.flatnonzero(segment == s)[-1]]) + end_pad for s in range(int(segment[-1]) + 1)]
    for s in range(len(ends) - 1):  # a segment is sound until the next one starts
        ends[s] = min(ends[s], int(ts[np.flatnonzero(segment == s + 1)[0]]))
    return Samples(ts, np.array(mids, dtype=float), segment, np.array(ends, dtype=np.int64))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n_lead=st.integers(1, 30), n_follow=st.integers(1, 30), horizon=st.integers(1, 50))
def test_follower_moves_equal_a_plain_lookup(data, n_lead, n_follow, horizon):
    lead_ts = np.sort(np.array(data.draw(st.lists(st.integers(0, 600), min_size=n_lead, max_size=n_lead)), dtype=np.int64))
    f = samples(data.draw(st.lists(st.integers(1, 30), min_size=n_follow, max_size=n_follow)),
                data.draw(st.lists(st.floats(50, 150), min_size=n_follow, max_size=n_follow)),
                data.draw(st.lists(st.integers(0, n_follow), max_size=3)), data.draw(st.integers(1, 40)))
    move, valid = follower_moves(lead_ts, f, horizon)  # type: ignore[arg-type]
    for i, t in enumerate(lead_ts):
        def last_at(x: int) -> int | None:
            idx = [k for k in range(len(f.ts)) if f.ts[k] <= x]
            return idx[-1] if idx else None
        k, j = last_at(int(t)), last_at(int(t) + horizon)
        ok = (k is not None and j is not None and f.segment[k] == f.segment[j]
              and t < f.segment_end_ts[f.segment[k]] and t + horizon < f.segment_end_ts[f.segment[j]])
        assert bool(valid[i]) == ok
        if ok:
            assert move[i] == pytest.approx((f.mid[j] - f.mid[k]) / f.mid[k] * 1e4)


def test_a_feature_that_is_the_followers_next_move_has_ic_one():
    rng = np.random.default_rng(5)
    ts = np.arange(1, 401, dtype=np.int64) * 1_000_000_000
    mids = 100 + np.cumsum(rng.normal(0, 0.05, len(ts)))
    follower = Samples(ts, mids, np.zeros(len(ts), dtype=np.int64), np.array([ts[-1] + 1]))
    leader = Samples(ts, mids, np.zeros(len(ts), dtype=np.int64), np.array([ts[-1] + 1]))
    ahead = np.append((mids[1:] - mids[:-1]) / mids[:-1], 0.0)  # the follower's move over the next second
    table = cross_table(leader, "A", {"peek": ahead, "noise": rng.normal(size=len(ts))}, follower, "B", (1.0,))  # type: ignore[arg-type]
    row = table["horizons"][0]
    assert row["n"] == len(ts) - 1
    assert row["features"]["peek"]["ic"] == pytest.approx(1.0)
    assert abs(row["features"]["noise"]["ic"]) < 0.2


def test_each_leader_samples_move_depends_only_on_its_own_time():
    """Changing the leader's samples after time T changes no IC row computed from samples before T
    and horizons ending before T: the leader's features are taken as given, at their own time."""
    s = load_settings(ROOT / "config" / "demo.toml", sim={"duration_s": 120.0})
    fs = extract_features(simulate(s.sim, s.market), s.signal, levels=5)
    from bot.research.analysis import predictive_features

    feats = predictive_features(fs, AnalysisParams(tick_size=float(s.market.tick_size)))
    move_all, valid_all = follower_moves(fs.ts, fs, 1_000_000_000)
    cut = len(fs.ts) // 2
    move_half, valid_half = follower_moves(fs.ts[:cut], fs, 1_000_000_000)
    assert np.array_equal(valid_all[:cut], valid_half) and np.allclose(move_all[:cut][valid_half], move_half[valid_half])
    own = cross_table(fs, "X", feats, fs, "X", (1.0,))["horizons"][0]["features"]["book_imbalance"]["ic"]
    assert -1.0 <= own <= 1.0


@needs_spot
def test_research_on_two_symbols_reports_both_directions(tmp_path: Path) -> None:
    files = sorted(SPOT.glob("*usdt_2024080*.gz"))
    out = tmp_path / "r"
    proc = subprocess.run([sys.executable, "-m", "bot", "research", "--config", str(ROOT / "config" / "backtest-spot-btc-eth.toml"),
                           "--data", *map(str, files), "--out", str(out), "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["symbol"] == "BTCUSDT"  # the config's first market
    pairs = [(t["leader"], t["follower"]) for t in report["cross"]]
    assert pairs == [("BTCUSDT", "ETHUSDT"), ("ETHUSDT", "BTCUSDT")]
    for table in report["cross"]:
        horizons = [h["horizon_s"] for h in table["horizons"]]
        assert horizons == [h["horizon_s"] for h in report["predictive"]["horizons"]]
        for h in table["horizons"]:
            assert h["n"] > 1000
            for name in ("book_imbalance", "trade_imbalance", "depth_depletion", "mlofi", "vwap_deviation"):
                assert -1.0 <= h["features"][name]["ic"] <= 1.0
    assert "Cross-instrument: BTCUSDT features -> ETHUSDT next move" in proc.stdout
    # one symbol: no cross table
    single = subprocess.run([sys.executable, "-m", "bot", "research", "--config", str(ROOT / "config" / "backtest.toml"),
                             "--data", str(SPOT / "btcusdt_20240808.gz"), "--out", str(tmp_path / "one"), "--quiet"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-2000:]
    assert "cross" not in json.loads((tmp_path / "one" / "report.json").read_text())
