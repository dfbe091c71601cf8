"""Every built-in strategy mode makes the same decisions on the fast path as on the readable
engine, on a second real instrument (spot ETHUSDT) and, for the maker and ``mean_reversion``,
on BTCUSDT too: the stored rows and counters are compared by ``compare_backtests``
(:mod:`test_fast_equivalence`). ``mean_reversion`` and the maker's flow and depletion pulls read
the kernel's trade-flow and depth features (:mod:`bot.fast.flow_kernel`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config.settings import load_settings
from bot.data.binance import read_binance
from bot.fast.backtest import fast_path_refusal
from bot.fast.columnar import encode_events
from conftest import shared_data_dir
from test_fast_equivalence import BTC_FILES, compare_backtests

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
ETH_FILES = [SPOT / "ethusdt_20240808.gz", SPOT / "ethusdt_20240809.gz"]

needs_data = pytest.mark.skipif(
    not all(f.exists() for f in ETH_FILES + BTC_FILES),
    reason=f"../shared/data not present: {SPOT} (real Binance BTCUSDT and ETHUSDT recordings)",
)

# each mode with settings under which it trades on these recordings (taker: an expected move its
# cost test lets through; maker: at its defaults)
MODES = {
    "momentum": {"strategy": {"mode": "momentum", "enter_threshold": 0.4, "cooldown_s": 0.5}},
    "taker": {"strategy": {"mode": "taker", "expected_move_bps": 60.0}},
    "maker": {"strategy": {"mode": "maker"}},
    "mean_reversion": {"strategy": {"mode": "mean_reversion"}},
}
# the maker pulling the side aggressive flow hits (over 1 s) and a side whose depth drained
MAKER_PULLS = {"strategy": {"mode": "maker", "pull_flow": 0.3, "pull_depletion": 0.2}, "signal": {"trade_window_s": 1.0}}
# the maker's other wake branches: the score gate, two ticks of requote room, a wait after each
# fill, the microprice pull, no score skew, and the proportional queue (every change of its level)
MAKER_GATED = {"strategy": {"mode": "maker", "quote_min_score": 0.2, "requote_ticks": 2, "fill_cooldown_s": 2.0, "pull_microprice": 0.5,
                            "signal_skew_ticks": 0.0, "quote_offset_ticks": 0}, "execution": {"queue_model": "proportional"}}


def _load(files):
    events = list(read_binance(files))
    return events, encode_events(events)


@pytest.fixture(scope="module")
def eth():
    return _load(ETH_FILES)


@pytest.fixture(scope="module")
def btc():
    return _load(BTC_FILES)


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_mode_matches_on_ethusdt(eth, tmp_path, mode):
    events, arrays = eth
    settings = load_settings(ROOT / "config" / "backtest-ethusdt.toml", **MODES[mode])
    assert fast_path_refusal(settings) is None
    fast = compare_backtests(settings, events, arrays, tmp_path, f"eth-{mode}")
    assert fast["orders"] > 0, f"{mode} placed no order: the comparison would be empty"


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("name, overrides", [("maker", MODES["maker"]), ("maker-pulls", MAKER_PULLS), ("maker-gated", MAKER_GATED),
                                             ("mean_reversion", MODES["mean_reversion"])])
def test_maker_and_mean_reversion_match_on_btcusdt(btc, tmp_path, name, overrides):
    events, arrays = btc
    settings = load_settings(ROOT / "config" / "backtest.toml", **overrides)
    assert fast_path_refusal(settings) is None
    fast = compare_backtests(settings, events, arrays, tmp_path, f"btc-{name}")
    assert fast["orders"] > 0, f"{name} placed no order: the comparison would be empty"
    if name.startswith("maker"):
        assert fast["fills"] > 10
        if name == "maker":  # its wake: bands around its resting quotes, the venue's queue and markout times
            assert fast["stats"]["fast"]["engine_share"] < 0.3
    else:  # its wake is a band of vwap_deviation_z: the engine sees a few events in a hundred
        assert fast["stats"]["fast"]["engine_share"] < 0.2


def test_mean_reversion_and_the_maker_pulls_are_admitted_by_the_fast_path():
    for config in ("backtest.toml", "backtest-usdm-btcusdt.toml"):
        for overrides in (MODES["mean_reversion"], MAKER_PULLS):
            assert fast_path_refusal(load_settings(ROOT / "config" / config, **overrides)) is None, (config, overrides)
    weighed = load_settings(ROOT / "config" / "backtest.toml", signal={"weight_vwap_deviation": 0.5, "weight_trade_imbalance": 0.2, "weight_depth_depletion": 0.1})
    assert fast_path_refusal(weighed) is None  # the kernel adds these terms to the score as SignalEngine does
    reason = fast_path_refusal(load_settings(ROOT / "config" / "backtest.toml", signal={"weight_mlofi": 0.5}))
    assert reason is not None and "mlofi" in reason
