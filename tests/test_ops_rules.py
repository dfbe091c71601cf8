"""The parts of bot.ops that need no process: the operator controls in the risk manager, the alert
rules over heartbeat states, and the webhook queue's bound."""

from __future__ import annotations

from decimal import Decimal

from bot.config.settings import AlertsSection, RiskSection
from bot.core.orders import Fill, Intent, IntentKind, Order, Reject, Side
from bot.core.portfolio import Portfolio
from bot.ops.alerts import DAY_S, AlertRules, Webhooks
from bot.risk.manager import Halt, RiskManager

from test_risk import MARKET, SEC, make_book

BOOK = make_book(100.0, [10.0] * 5)


def risk() -> RiskManager:
    return RiskManager(RiskSection(), MARKET, depth_levels=5, taker_fee_bps=10.0)


def long_position() -> Portfolio:
    pf = Portfolio.start(10_000, "BTC", "USDT")
    pf.apply(Fill(SEC, "c-0", Side.BUY, Decimal("100.00"), Decimal("1"), Decimal(0), fee_currency="USDT"))
    return pf


def test_pause_refuses_entries_and_lets_exits_through():
    r = risk()
    assert r.operator_control("pause", "paused by a test") == (True, "entries paused: exits, stops and halts work as before")
    refused = r.check(Intent(IntentKind.ENTER_LONG, SEC, "signal", 0.9), Portfolio.start(10_000), 10_000, BOOK, SEC, "c-1")
    assert isinstance(refused, Reject) and refused.rule == "paused"
    pf = long_position()
    assert isinstance(r.check(Intent(IntentKind.EXIT, SEC, "signal"), pf, 10_000, BOOK, SEC, "c-2"), Order)
    assert r.on_mark(pf, 10_000, 99.99, 100.0, SEC) is None  # no halt: the position stays until its exit


def test_kill_and_flatten_trade_the_position_out_through_on_mark():
    for action, rule in (("kill", "kill_switch"), ("flatten", "operator_flatten")):
        r = risk()
        done, _ = r.operator_control(action, f"{action} by a test")
        assert done
        flatten = r.on_mark(long_position(), 10_000, 99.99, 100.0, SEC)
        assert flatten is not None and flatten.reason == rule and r.halt is not None and r.halt.rule == rule
        refused = r.check(Intent(IntentKind.ENTER_LONG, SEC, "signal", 0.9), Portfolio.start(10_000), 10_000, BOOK, SEC, "c")
        assert isinstance(refused, Reject)


def test_flatten_never_overrides_a_halt_that_must_not_trade():
    r = risk()
    r.halt = Halt("balance_mismatch", "check the account", None, flatten=False)
    done, message = r.operator_control("flatten", "flatten by a test")
    assert not done and "balance_mismatch" in message and r.halt.rule == "balance_mismatch"
    assert r.operator_control("nonsense", "x")[0] is False


def state(**kw):
    base = {"equity": 10_000.0, "pnl": 0.0, "halt": None, "uptime_s": 30.0, "orders": 0, "fills": 0, "position": "0",
            "instruments": [{"symbol": "BTC/USDT", "book_status": "sound", "book_age_s": 0.1, "position": "0", "orders": 0, "fills": 0}]}
    base.update(kw)
    return base


def test_alert_rules():
    errors = {"NetworkError": 0}
    rules = AlertRules(AlertsSection(exchange_errors=3, error_window_s=60), 5.0, "run-1", "paper", lambda: dict(errors))
    t = 10 * DAY_S + 100.0
    assert rules.check(state(), t) == []
    halted = rules.check(state(halt={"rule": "daily_loss_limit", "detail": "day loss 3%"}), t + 1)
    assert [a["kind"] for a in halted] == ["halt"] and halted[0]["rule"] == "daily_loss_limit"
    assert rules.check(state(halt={"rule": "daily_loss_limit", "detail": "day loss 3%"}), t + 2) == []  # once per halt
    assert [a["kind"] for a in rules.check(state(), t + 3)] == ["resume"]
    assert [a["kind"] for a in rules.check(state(halt={"rule": "kill_switch", "detail": "kill switch engaged"}), t + 4)] == ["kill_switch"]
    stale = state(instruments=[{"symbol": "BTC/USDT", "book_status": "sound", "book_age_s": 9.0}])
    assert [a["kind"] for a in rules.check(stale, t + 5) if a["kind"] != "resume"] == ["stale_feed"]
    assert [a["kind"] for a in rules.check(state(), t + 6) if a["kind"] != "resume"] == ["feed_ok"]
    errors["NetworkError"] = 2
    assert [a for a in rules.check(state(), t + 7) if a["kind"] == "exchange_errors"] == []
    errors["NetworkError"] = 3
    burst = [a for a in rules.check(state(), t + 8) if a["kind"] == "exchange_errors"]
    assert len(burst) == 1 and burst[0]["count"] == 3
    errors["NetworkError"] = 9
    assert [a for a in rules.check(state(), t + 9) if a["kind"] == "exchange_errors"] == []  # one alert per window
    summary = [a for a in rules.check(state(equity=10_050.0, pnl=50.0), 11 * DAY_S + 1) if a["kind"] == "daily_summary"]
    assert len(summary) == 1 and summary[0]["day_pnl"] == 50.0


def test_a_book_that_was_never_sound_is_not_stale_while_starting():
    rules = AlertRules(AlertsSection(), 5.0, "run-1", "paper", dict)
    starting = state(uptime_s=1.0, instruments=[{"symbol": "BTC/USDT", "book_status": "awaiting_snapshot", "book_age_s": None}])
    assert rules.check(starting, 100.0) == []


def test_the_queue_is_bounded_and_drops_the_oldest():
    hooks = Webhooks(AlertsSection(webhooks=["http://127.0.0.1:9/x"], queue_size=2))
    for n in range(5):
        hooks.put({"kind": "k", "n": n})
    assert [a["n"] for a in hooks.queue] == [3, 4] and hooks.dropped == 3


def test_order_counts_follow_each_order_to_its_final_status_once():
    from bot.store.order_counts import RECENT_FINAL, OrderCounts

    c = OrderCounts()
    c.record("r", "r-1", "new")
    c.record("r", "r-2", "new")
    c.record("r", "r-1", "partially_filled")
    c.record("r", "r-1", "filled")
    c.record("r", "r-1", "filled")  # recorded again: counted once
    c.record("old", "old-7", "canceled")  # reconciling an earlier run's order: not this run's
    assert c.of("r") == {"new": 1, "filled": 1}
    for n in range(RECENT_FINAL * 2):
        c.record("r", f"x-{n}", "canceled")
    assert c.of("r")["canceled"] == RECENT_FINAL * 2 and len(c._final) <= RECENT_FINAL and len(c._open) == 1
