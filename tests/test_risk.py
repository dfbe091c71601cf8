"""Risk rules: every accepted order respects every cap; every refusal names its rule."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.book.book import OrderBook
from bot.config.settings import RiskSection
from bot.core.events import BookInvalidated, BookSnapshot
from bot.core.market import Market
from bot.core.orders import Fill, Intent, IntentKind, Order, Reject, Side
from bot.core.portfolio import Portfolio
from bot.risk.manager import DAY_NS, RiskManager

MARKET = Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5"))
SEC = 1_000_000_000


def make_book(mid: float, sizes: list[float], ts: int = SEC) -> OrderBook:
    book = OrderBook()
    bids = tuple((round(mid - 0.01 * (i + 1), 2), s) for i, s in enumerate(sizes))
    asks = tuple((round(mid + 0.01 * i, 2), s) for i, s in enumerate(sizes))
    book.apply(BookSnapshot(ts, 0, bids, asks, 1))
    return book


def make_risk(**overrides) -> RiskManager:
    return RiskManager(RiskSection(**overrides), MARKET, depth_levels=5, taker_fee_bps=10.0)


def enter(kind=IntentKind.ENTER_LONG, ts=SEC) -> Intent:
    return Intent(kind, ts, "signal", 0.9)


@settings(max_examples=300, deadline=None)
@given(
    mid=st.floats(100.0, 100_000.0),
    sizes=st.lists(st.floats(0.0001, 50.0), min_size=1, max_size=8),
    equity=st.floats(100.0, 1e6),
    risk_per_trade=st.floats(0.0001, 0.05),
    stop_bps=st.floats(1.0, 500.0),
    max_order=st.floats(10.0, 1e5),
    max_pos=st.floats(10.0, 1e5),
    depth_frac=st.floats(0.01, 1.0),
    short=st.booleans(),
)
def test_accepted_entries_respect_every_cap(mid, sizes, equity, risk_per_trade, stop_bps, max_order, max_pos, depth_frac, short):
    mid = round(mid, 2)
    book = make_book(mid, sizes)
    risk = make_risk(
        risk_per_trade=risk_per_trade, stop_loss_bps=stop_bps, max_order_notional=max_order,
        max_position_notional=max_pos, max_depth_fraction=depth_frac,
    )
    kind = IntentKind.ENTER_SHORT if short else IntentKind.ENTER_LONG
    result = risk.check(enter(kind), Portfolio.start(equity), equity, book, SEC, "c-1")
    if isinstance(result, Reject):
        assert result.rule in {"min_notional", "min_qty"}, result
        return
    price = float(book.best_bid if short else book.best_ask)
    amount = float(result.amount)
    assert result.side is (Side.SELL if short else Side.BUY)
    assert result.amount % MARKET.lot_size == 0
    notional = amount * price
    assert notional <= max_order * (1 + 1e-9)
    assert notional <= max_pos * (1 + 1e-9)
    assert amount <= depth_frac * book.depth("bid" if short else "ask", 5) * (1 + 1e-9)
    loss_at_stop = amount * price * (stop_bps / 1e4 + 2 * 0.001)
    assert loss_at_stop <= equity * risk_per_trade * (1 + 1e-9)
    assert notional >= 5.0 and result.amount >= MARKET.min_qty


def test_tiny_budget_is_rejected_with_the_binding_cap():
    book = make_book(60_000.0, [1.0] * 5)
    result = make_risk(risk_per_trade=0.0001, initial_equity=100).check(enter(), Portfolio.start(100), 100.0, book, SEC, "c")
    assert isinstance(result, Reject) and result.rule == "min_notional" and "risk_budget" in result.detail


def test_unsound_and_stale_books_refuse_everything():
    book = make_book(100.0, [1.0])
    risk = make_risk()
    pf = Portfolio.start(10_000)
    stale = risk.check(enter(), pf, 10_000, book, SEC + 6 * SEC, "c")
    assert isinstance(stale, Reject) and stale.rule == "stale_book"
    book.apply(BookInvalidated(2 * SEC, 0, "gap"))
    unsound = risk.check(enter(), pf, 10_000, book, 2 * SEC, "c")
    assert isinstance(unsound, Reject) and unsound.rule == "book_unsound"


def test_position_open_and_no_position():
    book = make_book(100.0, [10.0] * 5)
    risk = make_risk()
    pf = Portfolio.start(10_000)
    assert isinstance(risk.check(Intent(IntentKind.EXIT, SEC, "signal"), pf, 10_000, book, SEC, "c"), Reject)
    pf.apply(Fill(SEC, "x", Side.BUY, Decimal("100"), Decimal("1"), Decimal("0.1")))
    again = risk.check(enter(), pf, 10_000, book, SEC, "c")
    assert isinstance(again, Reject) and again.rule == "position_open"
    out = risk.check(Intent(IntentKind.EXIT, SEC, "signal"), pf, 10_000, book, SEC, "c2")
    assert isinstance(out, Order) and out.side is Side.SELL and out.amount == Decimal("1") and out.reduce_only


def test_stop_loss_and_take_profit_fire_on_executable_prices():
    risk = make_risk(stop_loss_bps=10, take_profit_bps=20)
    pf = Portfolio.start(10_000)
    pf.apply(Fill(SEC, "x", Side.BUY, Decimal("1000"), Decimal("1"), Decimal("1")))
    pf.stop_price, pf.take_profit_price = risk.protective_prices(pf.qty, pf.avg_price)
    assert (pf.stop_price, pf.take_profit_price) == (Decimal("999.00"), Decimal("1002.00"))
    assert risk.on_mark(pf, 10_000, 999.5, 999.6, SEC) is None
    hit = risk.on_mark(pf, 10_000, 999.0, 999.1, SEC)
    assert hit is not None and hit.reason == "stop_loss"
    tp = risk.on_mark(pf, 10_000, 1002.0, 1002.1, SEC)
    assert tp is not None and tp.reason == "take_profit"
    short = Portfolio.start(10_000)
    short.apply(Fill(SEC, "y", Side.SELL, Decimal("1000"), Decimal("1"), Decimal("1")))
    short.stop_price, short.take_profit_price = risk.protective_prices(short.qty, short.avg_price)
    assert short.stop_price == Decimal("1001.00") and short.take_profit_price == Decimal("998.00")
    assert risk.on_mark(short, 10_000, 1000.9, 1001.0, SEC).reason == "stop_loss"


def test_drawdown_flattens_and_halts_for_good():
    risk = make_risk(max_drawdown=0.05, daily_loss_limit=0.5)
    pf = Portfolio.start(10_000)
    book = make_book(100.0, [10.0] * 5)
    assert risk.on_mark(pf, 10_000, 99.99, 100.0, SEC) is None
    assert risk.on_mark(pf, 12_000, 99.99, 100.0, 2 * SEC) is None  # new peak
    pf.apply(Fill(SEC, "x", Side.BUY, Decimal("100"), Decimal("1"), Decimal("0")))
    exit_intent = risk.on_mark(pf, 11_300, 99.99, 100.0, 3 * SEC)
    assert exit_intent is not None and exit_intent.reason == "max_drawdown"
    assert risk.halt is not None and risk.halt.until_ts is None
    refused = risk.check(enter(ts=DAY_NS * 5), Portfolio.start(11_000), 11_000, make_book(100.0, [10.0] * 5, DAY_NS * 5), DAY_NS * 5, "c")
    assert isinstance(refused, Reject) and refused.rule == "halted"
    assert book.is_sound


def test_daily_loss_halts_until_next_utc_day():
    risk = make_risk(daily_loss_limit=0.02, max_drawdown=0.5)
    pf = Portfolio.start(10_000)
    day0 = 10 * DAY_NS
    risk.on_mark(pf, 10_000, 99.99, 100.0, day0 + SEC)
    risk.on_mark(pf, 9_790, 99.99, 100.0, day0 + 2 * SEC)
    assert risk.halt is not None and risk.halt.rule == "daily_loss_limit"
    book = make_book(100.0, [10.0] * 5, day0 + 3 * SEC)
    refused = risk.check(enter(ts=day0 + 3 * SEC), pf, 9_790, book, day0 + 3 * SEC, "c")
    assert isinstance(refused, Reject) and refused.rule == "halted"
    risk.on_mark(pf, 9_790, 99.99, 100.0, day0 + DAY_NS + SEC)
    assert risk.halt is None
    book2 = make_book(100.0, [10.0] * 5, day0 + DAY_NS + SEC)
    assert isinstance(risk.check(enter(ts=day0 + DAY_NS + SEC), pf, 9_790, book2, day0 + DAY_NS + SEC, "c"), Order)


@pytest.mark.parametrize("via_file", [False, True])
def test_kill_switch(tmp_path, via_file):
    switch = tmp_path / "KILL"
    risk = RiskManager(RiskSection(kill_switch=not via_file), MARKET, depth_levels=5, taker_fee_bps=10, kill_switch_file=switch)
    if via_file:
        switch.touch()
    pf = Portfolio.start(10_000)
    pf.apply(Fill(SEC, "x", Side.BUY, Decimal("100"), Decimal("1"), Decimal("0")))
    flatten = risk.on_mark(pf, 10_000, 99.99, 100.0, SEC)
    assert flatten is not None and flatten.reason == "kill_switch"
    refused = risk.check(enter(), Portfolio.start(10_000), 10_000, make_book(100.0, [10.0] * 5), SEC, "c")
    assert isinstance(refused, Reject) and refused.rule == "kill_switch"


# --------------------------------------------------------------------------- venue feedback
def long_position(qty: str = "1", price: str = "100.00") -> Portfolio:
    pf = Portfolio.start(10_000, "BTC", "USDT")
    pf.apply(Fill(SEC, "c-0", Side.BUY, Decimal(price), Decimal(qty), Decimal(0), fee_currency="USDT"))
    return pf


def exit_intent(ts: int = SEC) -> Intent:
    return Intent(IntentKind.EXIT, ts, "signal")


@settings(max_examples=200, deadline=None)
@given(rejects=st.integers(1, 12), base=st.floats(0.1, 5.0), cap=st.floats(5.0, 120.0), exit_side=st.booleans())
def test_venue_rejects_block_the_side_with_a_doubling_capped_cooldown(rejects, base, cap, exit_side):
    risk = make_risk(venue_reject_cooldown_s=base, venue_reject_cooldown_max_s=max(cap, base), max_exit_rejects=3)
    now = SEC
    halts = []
    for n in range(1, rejects + 1):
        delay, halt = risk.on_venue_reject(Side.SELL, exit_side, now)
        assert delay == pytest.approx(min(base * 2 ** (n - 1), max(cap, base)))
        assert risk.cooling(Side.SELL, now) and not risk.cooling(Side.BUY, now)
        assert risk.cooling(Side.SELL, now + int(delay * 1e9) - 1) and not risk.cooling(Side.SELL, now + int(delay * 1e9))
        if halt is not None:
            halts.append((n, halt.rule))
        now += int(delay * 1e9)
    # exits refused max_exit_rejects times in a row halt entries once; entries never do
    assert halts == ([(3, "stuck_exit")] if exit_side and rejects >= 3 else [])
    risk.on_venue_fill(Side.SELL, exit_side)
    assert not risk.cooling(Side.SELL, now - 1)
    assert risk.on_venue_reject(Side.SELL, exit_side, now)[0] == pytest.approx(base), "a fill resets the backoff"


def test_a_cooling_side_refuses_exits_and_entries_as_not_yet():
    risk = make_risk(venue_reject_cooldown_s=2.0)
    book = make_book(100.0, [10.0] * 5)
    risk.on_venue_reject(Side.SELL, True, SEC)
    refused = risk.check(exit_intent(SEC), long_position(), 10_000, book, SEC, "c")
    assert isinstance(refused, Reject) and refused.rule == "venue_cooldown"
    short = risk.check(enter(IntentKind.ENTER_SHORT), Portfolio.start(10_000), 10_000, book, SEC, "c")
    assert isinstance(short, Reject) and short.rule == "venue_cooldown"
    assert isinstance(risk.check(enter(), Portfolio.start(10_000), 10_000, book, SEC, "c"), Order), "the other side trades"
    later = risk.check(exit_intent(3 * SEC), long_position(), 10_000, make_book(100.0, [10.0] * 5, 3 * SEC), 3 * SEC, "c")
    assert isinstance(later, Order)


@settings(max_examples=300, deadline=None)
@given(qty_lots=st.integers(1, 5000), free_lots=st.integers(0, 6000), extra=st.integers(0, 9))
def test_exits_are_sized_to_what_is_free_dust_or_a_mismatch_never_more(qty_lots, free_lots, extra):
    lot = MARKET.lot_size
    qty = lot * qty_lots + lot * Decimal(extra) / 10  # a net position after a fee in base: not a whole number of lots
    free = lot * free_lots + lot * Decimal(extra) / 10
    pf = long_position(str(qty))
    risk = make_risk()
    book = make_book(100.0, [10.0] * 5)
    result = risk.check(exit_intent(), pf, 10_000, book, SEC, "c", available=free, available_generation=1)
    if free < qty and qty - free > lot:
        # a first answer saying so is read again; the same answer again is still not believed
        assert isinstance(result, Reject) and result.rule == "balance_recheck" and risk.halt is None
        again = risk.check(exit_intent(), pf, 10_000, book, SEC, "c", available=free, available_generation=1)
        assert isinstance(again, Reject) and again.rule == "balance_recheck" and risk.halt is None
        result = risk.check(exit_intent(), pf, 10_000, book, SEC, "c", available=free, available_generation=2)
        assert isinstance(result, Reject) and result.rule == "balance_mismatch"
        assert risk.halt is not None and risk.halt.rule == "balance_mismatch" and not risk.halt.flatten
        assert risk.check(exit_intent(), pf, 10_000, book, SEC, "c", available=free, available_generation=3).rule == "halted"
        return
    if isinstance(result, Reject):
        assert result.rule == "dust"
        size = MARKET.amount_to_precision(min(qty, free))
        assert MARKET.check_order(size, Decimal("99.99")) is not None
        return
    assert result.reduce_only and result.side is Side.SELL
    assert result.amount <= min(qty, free) and result.amount == MARKET.amount_to_precision(min(qty, free))


def test_a_position_beyond_the_caps_halts_without_flattening():
    risk = make_risk(max_position_notional=2000.0)
    pf = long_position("30")  # 3,000 at 100: beyond 1.25 x 2,000
    halt = risk.check_position(pf, 100.0)
    assert halt is not None and halt.rule == "position_breach" and not halt.flatten
    assert risk.on_mark(pf, 10_000, 99.99, 100.01, SEC) is None, "a breach is not traded out"
    assert risk.check_position(long_position("20"), 100.0) is None or risk.halt.rule == "position_breach"
    fresh = make_risk(max_position_notional=2000.0)
    assert fresh.check_position(long_position("24.99"), 100.0) is None


def test_the_last_check_refuses_orders_beyond_the_caps():
    risk = make_risk(max_order_notional=1000.0, max_position_notional=2000.0)
    book = make_book(100.0, [10.0] * 5)
    assert risk.last_check(Order("a", SEC, Side.BUY, Decimal("9.99")), book) is None
    assert "exceeds the cap" in risk.last_check(Order("b", SEC, Side.BUY, Decimal("10.5")), book)
    assert risk.last_check(Order("c", SEC, Side.SELL, Decimal("24.9"), reduce_only=True), book) is None
    assert "exceeds the cap" in risk.last_check(Order("d", SEC, Side.SELL, Decimal("1000000"), reduce_only=True), book)
    assert "not positive" in risk.last_check(Order("e", SEC, Side.SELL, Decimal("-1"), reduce_only=True), book)


def test_a_fill_far_from_the_book_is_not_a_fill():
    risk = make_risk(price_band=0.2)
    book = make_book(100.0, [10.0] * 5)
    assert risk.fill_price_problem(100.5, book) is None
    for price in (9e15, 0.01, -30_000.01, float("nan"), float("inf")):
        assert risk.fill_price_problem(price, book) is not None
    assert risk.fill_price_problem(9e15, OrderBook()) is None, "no sound mid yet: nothing to compare with"


@settings(max_examples=400, deadline=None)
@given(
    peak=st.floats(900, 1100), day_start=st.floats(900, 1100), equity=st.floats(800, 1200),
    side=st.sampled_from([-1, 0, 1]), exit_price=st.floats(90, 110), day_offset=st.integers(-1, 1),
    halted=st.sampled_from([None, "max_drawdown", "balance_mismatch"]),
)
def test_on_mark_acts_only_where_its_published_wake_says(peak, day_start, equity, side, exit_price, day_offset, halted):
    """Outside :meth:`RiskManager.wake`'s conditions, ``on_mark`` neither exits nor changes the halt."""
    from bot.risk.manager import Halt

    risk = make_risk(max_drawdown=0.05, daily_loss_limit=0.02, stop_loss_bps=500.0, take_profit_bps=500.0)
    now = 100 * DAY_NS + 3600 * SEC
    risk.restore(peak_equity=peak, day=now // DAY_NS + day_offset, day_start_equity=day_start,
                 halt=None if halted is None else Halt(halted, "test", None, flatten=halted != "balance_mismatch"))
    pf = Portfolio.start(Decimal(10_000))
    if side:
        pf.apply(Fill(SEC, "x-1", Side.BUY if side > 0 else Side.SELL, Decimal(100), Decimal(1), Decimal(0)))
        pf.stop_price, pf.take_profit_price = risk.protective_prices(pf.qty, pf.avg_price)
    wake = risk.wake(pf)
    halt_before = risk.halt
    bid, ask = (exit_price, exit_price + 0.01) if side >= 0 else (exit_price - 0.01, exit_price)
    running_peak = max(risk.peak_equity, equity)
    intent = risk.on_mark(pf, equity, bid, ask, now)
    if not wake.admits(equity, running_peak, bid if side >= 0 else ask, now):
        assert intent is None and risk.halt is halt_before, (wake, equity, exit_price, intent, risk.halt)


@settings(max_examples=300, deadline=None)
@given(
    inverse=st.booleans(), cross=st.booleans(), long=st.booleans(), leverage=st.integers(2, 50),
    contracts=st.integers(1, 500), entry=st.floats(1_000.0, 100_000.0), move=st.floats(-0.6, 0.6),
)
def test_liquidation_hits_only_where_the_published_wake_says(inverse, cross, long, leverage, contracts, entry, move):
    """Outside ``RiskWake.liquidation_below``/``liquidation_above`` (what a fast replay reads),
    ``liquidation_hit`` finds no liquidation."""
    market = Market("X/USD:X" if inverse else "X/USDT:USDT", Decimal("0.1"), Decimal(1), kind="inverse" if inverse else "linear",
                    contract_size=Decimal(100) if inverse else Decimal("0.001"), leverage=leverage,
                    margin_mode="cross" if cross else "isolated", maintenance_margin_rate=Decimal("0.004"))
    risk = RiskManager(RiskSection(), market, depth_levels=5, taker_fee_bps=5.0)
    price = market.price_to_precision(entry)
    pf = Portfolio.start(Decimal("0.5") if inverse else Decimal(10_000), market=market)
    pf.apply(Fill(SEC, "x-1", Side.BUY if long else Side.SELL, price, Decimal(contracts), Decimal(0)))
    wake = risk.wake(pf)
    mark = float(price) * (1 + move)
    if risk.liquidation_hit(pf, mark, pf.equity(mark)) is not None:
        assert wake.may_liquidate(mark), (wake, mark)
    flat = risk.wake(Portfolio.start(Decimal(10_000), market=market))
    assert not flat.may_liquidate(mark)
