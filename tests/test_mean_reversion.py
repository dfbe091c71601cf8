"""``mean_reversion``: its rules by hand, and it trades in backtest (shared recordings), paper and
live (the emulator, through the real ccxt client) with the engine unchanged."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.config.settings import load_settings
from bot.core.market import Market
from bot.core.orders import Fill, IntentKind, Side
from bot.core.portfolio import Portfolio
from bot.engine.runner import run_backtest
from bot.signals.features import SignalState
from bot.strategies import Context, Position, build
from daemon_harness import Emulator, check_books_match, count, query, run_until, set_keys, write_config

SEC = 1_000_000_000
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "hftbacktest-binance"
MARKET = Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001"))


def decide(z: float, flow: float, depletion: float = 0.0, sign: int = 0, age_s: float = 1.0, **mr):
    s = load_settings(None, strategy={"mode": "mean_reversion", "max_holding_s": 30.0, "mean_reversion": mr})
    strategy = build(s, MARKET)
    pf = Portfolio.start(Decimal(10_000))
    now = 100 * SEC
    if sign:
        pf.apply(Fill(now - int(age_s * SEC), "x-1", Side.BUY if sign > 0 else Side.SELL, Decimal(100), Decimal(1), Decimal(0)))
    ctx = Context(MARKET, None, Position(pf), lambda mid: 1.0)
    ctx.state = SignalState(ts=now, mid=100.0, spread=0.01, valid=True, vwap_deviation_z=z, trade_imbalance=flow, depth_depletion=depletion)
    ctx.now = now
    return strategy.on_state(ctx)


def test_fades_a_stretched_move_only_once_the_flow_has_turned():
    assert decide(2.5, -0.3).kind is IntentKind.ENTER_SHORT  # above VWAP, sellers now aggress
    assert decide(2.5, 0.3) is None  # still driven up: momentum, not exhaustion
    assert decide(1.5, -0.9) is None  # not stretched enough
    assert decide(-2.5, 0.3).kind is IntentKind.ENTER_LONG
    assert decide(-2.5, 0.3, depletion=-0.1, depletion_min=0.05) is None  # the asks are not the thinner side
    assert decide(-2.5, 0.3, depletion=0.1, depletion_min=0.05).kind is IntentKind.ENTER_LONG


def test_exits_when_reverted_or_held_too_long():
    assert decide(-1.0, 0.0, sign=1) is None  # long, still below VWAP by more than exit_z
    assert decide(-0.4, 0.0, sign=1).kind is IntentKind.EXIT
    assert decide(0.4, 0.0, sign=-1).kind is IntentKind.EXIT
    assert decide(-1.0, 0.0, sign=1, age_s=31.0).reason == "max_holding"


@pytest.mark.parametrize("config, files", [
    ("backtest.toml", ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"]),
    ("backtest-usdm-btcusdt.toml", ["usdm/btcusdt_20240808.gz"]),
])
def test_trades_on_the_shared_recordings(tmp_path, monkeypatch, config, files):
    paths = [DATA / f for f in files]
    if not all(p.is_file() for p in paths):
        pytest.skip(f"../shared/data not present: {DATA} (real Binance recordings)")
    from bot.data.binance import read_binance

    monkeypatch.chdir(tmp_path)
    s = load_settings(ROOT / "config" / config, strategy={"mode": "mean_reversion"}, store={"synchronous": "off"},
                      run={"log_dir": "logs", "console_log_level": "error"})
    summary = run_backtest(s, read_binance(paths), db_path=tmp_path / "bt.db", data_files=[str(p) for p in paths])
    assert summary["trades"] >= 2 and summary["stats"]["strategy_mode"] == "mean_reversion"
    for key in ("instruments",):
        assert summary[key][0]["trades"] == summary["trades"]


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_trades_against_the_emulator(tmp_path, mode):
    emu = Emulator(tmp_path)
    try:
        config = write_config(tmp_path, emu, mode=mode, duration=600)
        # loose thresholds: the simulator's moves are small and a test waits for a few round trips
        config.write_text(set_keys(config.read_text(), "strategy", 'mode = "mean_reversion"\nmax_holding_s = 2.0\n'
                                   "mean_reversion = { enter_z = 0.3, exit_z = 0.1, flow_reversal = 0.0 }\n"))
        db = tmp_path / "bot.db"
        args = ("--live",) if mode == "live" else ()
        run_until(tmp_path, config, lambda: count(db, "select count(*) from round_trips") >= 2, "two mean-reversion round trips", *args)
        reasons = {r.split(":")[0] for (r,) in query(db, "select reason from orders")}
        assert "stretched_down" in reasons and reasons & {"reverted", "max_holding"}, reasons
        if mode == "live":
            check_books_match(db, emu.state())
        else:
            assert emu.state()["orders"] == []
    finally:
        emu.stop()
