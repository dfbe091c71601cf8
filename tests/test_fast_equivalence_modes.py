"""Every built-in strategy mode the compiled scan covers makes the same decisions on the fast
path as on the readable engine, on a second real instrument (spot ETHUSDT) and, for the maker,
on BTCUSDT too: the stored rows and counters are compared by ``compare_backtests``
(:mod:`test_fast_equivalence`). ``mean_reversion`` reads features the kernel does not compute
yet, so its config is refused by the fast path (checked here, so the day it runs fast this test
says to add it)."""

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
}


def _load(files):
    events = list(read_binance(files))
    return events, encode_events(events)


@pytest.fixture(scope="module")
def eth():
    return _load(ETH_FILES)


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
def test_maker_matches_on_btcusdt(tmp_path):
    events, arrays = _load(BTC_FILES)
    settings = load_settings(ROOT / "config" / "backtest.toml", **MODES["maker"])
    fast = compare_backtests(settings, events, arrays, tmp_path, "btc-maker")
    assert fast["fills"] > 10


def test_mean_reversion_is_refused_by_the_fast_path_and_says_why():
    settings = load_settings(ROOT / "config" / "backtest.toml", strategy={"mode": "mean_reversion"})
    reason = fast_path_refusal(settings)
    assert reason is not None and "mean_reversion" in reason and "vwap_deviation_z" in reason
