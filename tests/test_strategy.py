"""Strategy modes: the taker cost hurdle and the maker's quote placement."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.settings import SignalSection, StrategySection
from bot.core.orders import IntentKind
from bot.signals.features import SignalState
from bot.strategies.maker import MakerStrategy
from bot.strategies.momentum import MomentumStrategy

SEC = 1_000_000_000


def state(score: float, mid: float = 100.0, spread: float = 0.01, ofi: float = 0.0) -> SignalState:
    return SignalState(ts=SEC, score=score, mid=mid, spread=spread, ofi=ofi, valid=True)


def test_taker_enters_only_when_the_expected_move_clears_the_cost():
    cfg = StrategySection(mode="taker", enter_threshold=0.5, expected_move_bps=30.0, slippage_bps=1.0, cost_margin_bps=2.0)
    strat = MomentumStrategy(cfg, taker_fee_bps=10.0, taker=True)
    # cost = 2*10 + 2*1 + 2 + spread (0.01/100 = 1 bp) = 25 bps; expected = 30 * |score|
    assert strat.decide(state(0.8), 0, 0, SEC) is None  # 0.8 * 30 = 24 < 25
    assert strat.decide(state(0.9), 0, 0, SEC).kind is IntentKind.ENTER_LONG  # 27 > 25
    assert MomentumStrategy(cfg, taker_fee_bps=10.0, taker=True).decide(state(-0.85), 0, 0, SEC) is not None  # 25.5 > 25


def test_taker_refuses_when_costs_are_too_high():
    cfg = StrategySection(mode="taker", enter_threshold=0.5, expected_move_bps=20.0)
    strat = MomentumStrategy(cfg, taker_fee_bps=10.0, taker=True)
    assert strat.decide(state(1.0), 0, 0, SEC) is None  # 20 bps expected vs 20 fees + 1 spread
    assert MomentumStrategy(StrategySection(enter_threshold=0.5), 10.0).decide(state(1.0), 0, 0, SEC) is not None


def maker(**kw) -> MakerStrategy:
    cfg = StrategySection(mode="maker", **kw)
    return MakerStrategy(cfg, SignalSection(ofi_scale=1.0), tick=0.01)


@settings(max_examples=200, deadline=None)
@given(
    score=st.floats(-1, 1),
    position=st.floats(-2, 2),
    bid_ticks=st.integers(9000, 11000),
    spread_ticks=st.integers(1, 5),
    ofi=st.floats(-3, 3),
)
def test_quotes_never_cross_and_lean_with_signal_and_against_inventory(score, position, bid_ticks, spread_ticks, ofi):
    m = maker(allow_short=True, signal_skew_ticks=3, inventory_skew_ticks=3, pull_ofi=0.6)
    bid, ask = bid_ticks * 0.01, (bid_ticks + spread_ticks) * 0.01
    s = state(score, mid=(bid + ask) / 2, spread=ask - bid, ofi=ofi)
    q = m.quotes(s, bid, ask, position, cap=1.0, now=SEC)
    if q["buy"] is not None:
        assert q["buy"] < ask - 1e-9
        assert abs(q["buy"] / 0.01 - round(q["buy"] / 0.01)) < 1e-6
        assert math.tanh(ofi) > -0.6 and position < 1.0
    if q["sell"] is not None:
        assert q["sell"] > bid + 1e-9
        assert math.tanh(ofi) < 0.6 and position > -1.0
    # a stronger signal never lowers the bid target; more inventory never raises it
    q_up = m.quotes(state(min(1.0, score + 0.5), s.mid, s.spread, 0.0), bid, ask, position, 1.0, SEC)
    q_base = m.quotes(state(score, s.mid, s.spread, 0.0), bid, ask, position, 1.0, SEC)
    if q_up["buy"] is not None and q_base["buy"] is not None:
        assert q_up["buy"] >= q_base["buy"] - 1e-9
    longer = min(0.99, position + 0.5)
    q_long = m.quotes(state(score, s.mid, s.spread, 0.0), bid, ask, longer, 1.0, SEC)
    if longer > position and q_long["sell"] is not None and q_base["sell"] is not None:
        assert q_long["sell"] <= q_base["sell"] + 1e-9


def test_spot_maker_only_sells_inventory_and_pulls_against_flow():
    m = maker(allow_short=False, pull_ofi=0.5)
    q = m.quotes(state(0.0, mid=100.005), 100.0, 100.01, 0.0, 1.0, SEC)
    assert q["buy"] is not None and q["sell"] is None
    q = m.quotes(state(0.0, mid=100.005), 100.0, 100.01, 0.3, 1.0, SEC)
    assert q["sell"] is not None
    heavy_selling = m.quotes(state(0.0, mid=100.005, ofi=-2.0), 100.0, 100.01, 0.3, 1.0, SEC)
    assert heavy_selling["buy"] is None and heavy_selling["sell"] is not None
    m.cool_down("buy", SEC)
    assert m.quotes(state(0.0, mid=100.005), 100.0, 100.01, 0.0, 1.0, SEC + 1)["buy"] is None


@settings(max_examples=200, deadline=None)
@given(flow=st.floats(-1, 1), dep_bid=st.floats(-2, 1), dep_ask=st.floats(-2, 1),
       pull_flow=st.sampled_from([0.0, 0.3, 0.6]), pull_depletion=st.sampled_from([0.0, 0.2, 0.4]))
def test_feature_pulls_stand_aside_from_the_side_about_to_be_run_over(flow, dep_bid, dep_ask, pull_flow, pull_depletion):
    """Sellers hitting bids (trade_imbalance <= -pull_flow) or drained bids (depletion >= pull_depletion)
    pull the bid, the mirror image the ask; with both pulls off, the features change nothing."""
    m = maker(allow_short=True, pull_ofi=1.0, pull_flow=pull_flow, pull_depletion=pull_depletion)
    s = state(0.0, mid=100.005)
    s.trade_imbalance, s.depth_depletion_bid, s.depth_depletion_ask = flow, dep_bid, dep_ask
    q = m.quotes(s, 100.0, 100.01, 0.0, 1.0, SEC)
    bid_pulled = (pull_flow > 0 and flow <= -pull_flow) or (pull_depletion > 0 and dep_bid >= pull_depletion)
    ask_pulled = (pull_flow > 0 and flow >= pull_flow) or (pull_depletion > 0 and dep_ask >= pull_depletion)
    assert (q["buy"] is None) == bid_pulled
    assert (q["sell"] is None) == ask_pulled
    reads = set(m.reads_features)
    assert ("trade_imbalance" in reads) == (pull_flow > 0) and ("depth_depletion" in reads) == (pull_depletion > 0)


@settings(max_examples=200, deadline=None)
@given(micro=st.floats(-1, 1), pull=st.sampled_from([0.0, 0.2, 0.5]))
def test_microprice_pull_stands_aside_from_the_side_the_touch_queue_points_at(micro, pull):
    """A microprice below the mid (thin bids) pulls the bid once it is pull_microprice half-spreads
    away, above the mid the ask; at 0 the microprice changes nothing."""
    m = maker(allow_short=True, pull_ofi=1.0, pull_microprice=pull)
    s = state(0.0, mid=100.005)
    s.microprice_offset = micro
    q = m.quotes(s, 100.0, 100.01, 0.0, 1.0, SEC)
    assert (q["buy"] is None) == (pull > 0 and micro <= -pull)
    assert (q["sell"] is None) == (pull > 0 and micro >= pull)
    assert ("microprice_offset" in m.reads_features) == (pull > 0)


def test_fill_cooldown_rests_the_side_that_filled():
    """After the position grows (the bid filled) the bid waits fill_cooldown_s; the ask, which
    would reduce it, is still quoted; after the wait the bid is back. At 0 nothing waits."""
    m = maker(allow_short=True, pull_ofi=1.0, fill_cooldown_s=5.0, inventory_skew_ticks=0.0)
    s = state(0.0, mid=100.005)
    assert m.quotes(s, 100.0, 100.01, 0.0, 1.0, SEC)["buy"] is not None
    q = m.quotes(s, 100.0, 100.01, 0.3, 1.0, 2 * SEC)  # bought 0.3
    assert q["buy"] is None and q["sell"] is not None
    assert m.quotes(s, 100.0, 100.01, 0.3, 1.0, 6 * SEC)["buy"] is None
    assert m.quotes(s, 100.0, 100.01, 0.3, 1.0, 7 * SEC)["buy"] is not None
    q = m.quotes(s, 100.0, 100.01, 0.0, 1.0, 8 * SEC)  # sold 0.3
    assert q["sell"] is None and q["buy"] is not None
    off = maker(allow_short=True, pull_ofi=1.0)
    off.quotes(s, 100.0, 100.01, 0.0, 1.0, SEC)
    assert off.quotes(s, 100.0, 100.01, 0.3, 1.0, 2 * SEC)["buy"] is not None


def test_markouts_of_maker_fills_by_hand():
    from bot.engine.markouts import Markouts

    m = Markouts()
    # a bid filled at 99.9 with the mid at 100 (captured 10 bps), then the mid falls to 99.8 by 1 s
    # (adverse 20 bps) and recovers to 100.1 by 10 s (adverse -10 bps)
    m.on_fill(0, True, 99.9, 1000.0, 100.0)
    # an ask filled at 100.05 with the mid at 100 (5 bps), twice the notional; mid 100 at 1 s, 100.2 at 10 s
    m.on_fill(0, False, 100.05, 2000.0, 100.0)
    m.on_mid(SEC // 2, 99.0)  # not due yet
    m.on_mid(SEC, 99.8)
    m.on_mid(10 * SEC, 100.1)
    out = m.stats()
    assert out["maker_fills"] == 2
    assert out["spread_captured_bps"] == round((10 * 1000 + 5 * 2000) / 3000, 4)
    # at 1 s both see 99.8: buy adverse +20, sell adverse -20 (the price fell after it sold)
    assert out["adverse_selection_1s_bps"] == round((20 * 1000 - 20 * 2000) / 3000, 4)
    # at 10 s both see 100.1: buy -10, sell +10
    assert out["adverse_selection_10s_bps"] == round((-10 * 1000 + 10 * 2000) / 3000, 4)
    assert out["net_1s_bps"] == round(out["spread_captured_bps"] - out["adverse_selection_1s_bps"], 4)
    assert out["unresolved_1s"] == out["unresolved_10s"] == 0
