"""Strategies are plug-ins: a strategy in its own file trades through backtest and paper with no
engine edit, and every built-in keeps the promise its published wake conditions make."""

from __future__ import annotations

import math

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from bot.config.settings import load_settings
from bot.core.market import Market
from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio
from bot.data.sim import simulate
from bot.emulator.process import daemon_env
from bot.engine.runner import run_backtest
from bot.signals.features import SignalState
from bot.strategies import Context, Position, Quotes, UnknownStrategy, build
from daemon_harness import API_KEY, API_SECRET, Emulator, count, run_until, write_config

SEC = 1_000_000_000
TESTS = Path(__file__).resolve().parent
TOY = {"mode": "toy_clock", "plugins": ["toy_strategy"], "params": {"hold_s": 2.0, "wait_s": 1.0}}


def test_a_plugin_strategy_runs_a_backtest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, strategy=TOY, sim={"duration_s": 30.0}, store={"synchronous": "off"},
                      run={"log_dir": "logs", "console_log_level": "error"})
    summary = run_backtest(s, simulate(s.sim, s.market), db_path=tmp_path / "bt.db", data_files=[])
    db = sqlite3.connect(tmp_path / "bt.db")
    reasons = [r[0] for r in db.execute("SELECT reason FROM orders ORDER BY ts")]
    entries = [ts for ts, reason in db.execute("SELECT ts, reason FROM orders ORDER BY ts") if reason.startswith("toy_clock:") or reason == "toy_clock"]
    assert summary["trades"] >= 5 and len(entries) >= 5, reasons
    assert reasons.count("toy_clock_exit") >= 4
    assert all(b - a >= 3 * SEC for a, b in zip(entries, entries[1:])), "hold 2 s + wait 1 s between entries"
    run = db.execute("SELECT stats_json FROM runs").fetchone()[0]
    assert '"strategy_mode": "toy_clock"' in run


def test_an_unknown_mode_is_one_line_naming_the_registered_ones(tmp_path):
    s = load_settings(None, strategy={"mode": "nonesuch"})
    with pytest.raises(UnknownStrategy, match="'nonesuch' is not a registered strategy; registered: .*momentum.*threshold"):
        build(s, Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001")))
    s = load_settings(None, strategy={"mode": "momentum", "plugins": ["no_such_module_here"]})
    with pytest.raises(UnknownStrategy, match="strategy.plugins: cannot import 'no_such_module_here'"):
        build(s, Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001")))


def test_a_plugin_strategy_trades_in_paper_mode(tmp_path):
    emu = Emulator(tmp_path)
    try:
        config = write_config(tmp_path, emu, mode="paper", duration=600)
        text = config.read_text().replace(
            "[strategy]\n", '[strategy]\nmode = "toy_clock"\nplugins = ["toy_strategy"]\nparams = { hold_s = 1.0, wait_s = 0.5 }\n')
        config.write_text(text)
        db = tmp_path / "bot.db"
        env = daemon_env(API_KEY, API_SECRET, pythonpath=str(TESTS))
        run_until(tmp_path, config, lambda: count(db, "select count(*) from orders where reason = 'toy_clock_exit' and status = 'filled'") >= 2,
                  "two round trips of the plug-in strategy", env=env)
        assert count(db, "select count(*) from round_trips") >= 2
        assert emu.state()["orders"] == [], "paper never reaches the exchange's order book"
    finally:
        emu.stop()


# ---------------------------------------------------------------- the wake-condition contract
def portfolio(sign: int, opened: int) -> Portfolio:
    pf = Portfolio.start(Decimal(10_000))
    if sign:
        pf.apply(Fill(opened, "x-1", Side.BUY if sign > 0 else Side.SELL, Decimal(100), Decimal(1), Decimal(0)))
    return pf


@hsettings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(["momentum", "taker", "maker", "threshold", "mean_reversion"]),
    score=st.floats(-1, 1),
    sign=st.sampled_from([-1, 0, 1]),
    age_s=st.floats(0, 120),
    since_entry_s=st.floats(0, 5),
    valid=st.booleans(),
    spread=st.floats(0.001, 0.5),
    z=st.floats(-4, 4),
    flow=st.floats(-1, 1),
    depletion=st.floats(-1, 1),
)
def test_built_in_strategies_act_only_inside_their_published_conditions(mode, score, sign, age_s, since_entry_s, valid, spread, z, flow, depletion):
    s = load_settings(None, strategy={"mode": mode, "enter_threshold": 0.6, "exit_threshold": 0.1, "cooldown_s": 1.0, "max_holding_s": 60.0,
                                      "expected_move_bps": 50.0})
    market = Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001"))
    strategy = build(s, market)
    t0 = 1_000 * SEC
    strategy.on_entry(t0)  # a cooldown in force until t0 + 1 s
    now = t0 + int(since_entry_s * SEC)
    opened = now - int(age_s * SEC)
    pf = portfolio(sign, opened)
    ctx = Context(market, None, Position(pf), lambda mid: 1.0)
    ctx.state = SignalState(ts=now, score=score, mid=100.0, spread=spread, valid=valid, vwap_deviation_z=z, trade_imbalance=flow, depth_depletion=depletion)
    ctx.now = now

    class Book:
        best_bid, best_ask = 100.0 - spread / 2, 100.0 + spread / 2

    ctx.book = Book()
    wake = strategy.wake(ctx)
    answer = strategy.on_state(ctx)
    acted = answer is not None and (not isinstance(answer, Quotes) or answer.buy is not None or answer.sell is not None)
    if acted:
        x = getattr(ctx.state, wake.feature) if wake.feature else math.nan
        assert wake.admits(score, now, x), f"{mode} acted ({answer}) on score {score} ({wake.feature} {x}) at {now} outside {wake}"
