"""The maker's published wake keeps its promise: for any state inside its bands (and before its
deadline) the engine would leave both quotes as they are, so the fast replay may skip it."""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from bot.config.settings import load_settings
from bot.core.market import Market
from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio
from bot.signals.features import SignalState
from bot.strategies import Context, Position, build, quote_stands

SEC = 1_000_000_000
TICK = 0.01
MARKET = Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001"))
# an inverse contract: its cap in contracts grows with the price (value x price / size), a spot one's shrinks
INVERSE = Market("BTC/USD:BTC", Decimal("0.01"), Decimal("1"), kind="inverse", contract_size=Decimal("100"), settle="BTC")
CAP_VALUE = {MARKET: 1_000.0, INVERSE: 10.0}
FIELDS = {"trade_imbalance": "trade_imbalance", "depth_depletion_bid": "depth_depletion_bid", "depth_depletion_ask": "depth_depletion_ask",
          "microprice_offset": "microprice_offset", "ofi": "ofi", "score": "score", "mid": "mid"}


class Book:
    def __init__(self, best_bid: float, best_ask: float):
        self.best_bid, self.best_ask = best_bid, best_ask


def maker(**overrides):  # type: ignore[no-untyped-def]
    return build(load_settings(None, strategy={"mode": "maker", "cooldown_s": 1.0, **overrides}), MARKET)


def context(qty: float, resting: dict[str, float | None], waits: dict[str, int] | None = None, market: Market = MARKET) -> Context:
    pf = Portfolio.start(Decimal(10_000))
    if qty:
        pf.apply(Fill(0, "x-1", Side.BUY if qty > 0 else Side.SELL, Decimal(100), Decimal(repr(abs(qty))), Decimal(0)))
    waits = waits or {}
    return Context(market, None, Position(pf), lambda mid: market.amount_for_value(CAP_VALUE[market], mid), resting.get, lambda side: waits.get(side, 0))


def set_state(ctx: Context, now: int, bid: float, ask: float, **values: float) -> None:
    ctx.book = Book(bid, ask)
    ctx.state = SignalState(ts=now, mid=values.pop("mid", (bid + ask) * 0.5), spread=ask - bid, valid=True, **values)
    ctx.now = now


def inside(draw, lo: float, hi: float) -> float:  # type: ignore[no-untyped-def]
    """A float strictly inside (lo, hi)."""
    return draw(st.floats(lo, hi, exclude_min=True, exclude_max=True))


@hsettings(max_examples=600, deadline=None)
@given(data=st.data())
def test_inside_its_bands_the_maker_leaves_its_quotes_as_they_are(data):
    draw = data.draw
    strategy = maker(
        requote_ticks=draw(st.integers(1, 3)), quote_offset_ticks=draw(st.integers(0, 2)), signal_skew_ticks=draw(st.sampled_from([0.0, 2.0, 4.5])),
        inventory_skew_ticks=draw(st.sampled_from([0.0, 2.0, 5.0])), quote_min_score=draw(st.sampled_from([0.0, 0.3])),
        pull_flow=draw(st.sampled_from([0.0, 0.3])), pull_depletion=draw(st.sampled_from([0.0, 0.2])),
        pull_microprice=draw(st.sampled_from([0.0, 0.4])), allow_short=draw(st.booleans()), pull_ofi=draw(st.sampled_from([0.5, 1.0])),
    )
    market = draw(st.sampled_from([MARKET, INVERSE]))
    cap = market.amount_for_value(CAP_VALUE[market], 100.0)
    qty = round(draw(st.sampled_from([0.0, 0.3, -0.3, 1.0, -1.0, 2.0])) * cap, 5)
    now = 100 * SEC
    if draw(st.booleans()):
        strategy.cool_down(draw(st.sampled_from(["buy", "sell"])), now - draw(st.integers(0, 2 * SEC)))
    bid = draw(st.integers(9_990, 10_010)) * TICK
    ask = bid + draw(st.integers(1, 3)) * TICK
    values = {name: draw(st.floats(-1, 1)) for name in ("score", "trade_imbalance", "depth_depletion_bid", "depth_depletion_ask", "microprice_offset")}
    values["ofi"] = draw(st.floats(-40, 40))
    resting: dict[str, float | None] = {}
    waits = {side: now + draw(st.integers(-SEC, 2 * SEC)) for side in ("buy", "sell") if draw(st.booleans())}  # the venue refused one
    ctx = context(qty, resting, waits, market)
    set_state(ctx, now, bid, ask, **values)
    first = strategy.on_state(ctx)  # the engine's last call: the maker has seen this position
    for side, target in (("buy", first.buy), ("sell", first.sell)):  # resting where the engine left it, or elsewhere
        moved = draw(st.sampled_from([0, 0, 0, 1, -1, 2, None]))
        resting[side] = None if target is None or moved is None else target + moved * TICK
    wake = strategy.wake(ctx)
    if wake.every_event:
        return
    assert wake.deadline is None or wake.deadline > now
    later = draw(st.integers(now, now + 3 * SEC))  # before the deadline: a blocked side waits for it
    if wake.deadline is not None:
        later = min(later, wake.deadline - 1)
    bands = {name: (lo, hi) for name, lo, hi in wake.bands}
    # a band's open ends reach as far as real features do (the score and the flow features lie in [-1, 1])
    reach = {name: (-40.0, 40.0) for name in FIELDS} | {"mid": (0.0, math.inf)}
    state = {name: inside(draw, max(bands[name][0], reach[name][0]), min(bands[name][1], reach[name][1])) if name in bands else draw(st.floats(-40, 40))
             for name in FIELDS}
    b_lo, b_hi = bands.get("best_bid", (-math.inf, math.inf))
    a_lo, a_hi = bands.get("best_ask", (-math.inf, math.inf))
    new_bid = inside(draw, max(b_lo, bid - 5 * TICK), min(b_hi, bid + 5 * TICK))
    new_ask = inside(draw, max(a_lo, ask - 5 * TICK), min(a_hi, ask + 5 * TICK))
    if "mid" not in bands:
        state["mid"] = (new_bid + new_ask) * 0.5
    # else anywhere in its band: wide (up to 5 %) while nothing rests, where only the inventory reads it
    set_state(ctx, later, new_bid, new_ask, **state)
    answer = strategy.on_state(ctx)
    for side, target in (("buy", answer.buy), ("sell", answer.sell)):
        waiting = resting[side] is None and later < waits.get(side, 0)  # check_quote answers venue_cooldown: nothing happens
        assert waiting or quote_stands(resting[side], target, answer.requote_distance), (
            f"{side}: resting {resting[side]} target {target} at {state} bid {new_bid} ask {new_ask} inside {wake}")


def test_a_settled_maker_publishes_bands_and_one_about_to_requote_every_event():
    strategy = maker()
    resting: dict[str, float | None] = {}
    ctx = context(0.0, resting)
    set_state(ctx, 100 * SEC, 100.00, 100.01, score=0.1, ofi=0.0)
    first = strategy.on_state(ctx)
    assert first.buy is not None and first.sell is not None
    resting.update(buy=first.buy, sell=first.sell)
    wake = strategy.wake(ctx)
    assert not wake.every_event and {name for name, _, _ in wake.bands} >= {"score", "ofi", "best_bid", "best_ask"}
    score_lo, score_hi = next((lo, hi) for name, lo, hi in wake.bands if name == "score")
    assert score_lo < 0.1 < score_hi and score_hi - score_lo > 0.05, "the score has room before a target crosses a tick"
    resting["buy"] = first.buy - 2 * TICK  # one tick of requote distance: the engine moves it at the next update
    assert strategy.wake(ctx).every_event
    resting.update(buy=None, sell=None)  # targets with nothing resting: the engine places them
    assert strategy.wake(ctx).every_event
    assert maker(pull_move_bps=5.0).wake(ctx).every_event, "the mid-move pull keeps a window of every call's mid"
