"""The built-in market simulator: determinism, a sound book, its clock, imbalance that predicts
the next move only when the model says so, and external market orders that take liquidity."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.book.book import BookStatus, OrderBook
from bot.config.settings import MarketSection, SimSection
from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, Trade
from bot.data.sim import DEFAULT_START_NS, SimMarket, simulate

BTC = MarketSection()  # tick 0.01, lot 0.00001
ALT = MarketSection(symbol="ALT/USDT", tick_size=Decimal("0.5"), lot_size=Decimal("0.001"))
MARKETS = {"btc": BTC, "alt": ALT}


def run(seed: int = 7, duration_s: float = 600.0, sensitivity: float = 0.35, levels: int = 20,
        rate: float = 50.0, start_price: float = 30_000.0, market: str = "btc") -> tuple:
    """One simulated run's events (10 minutes of the default config unless told otherwise)."""
    return _run(seed, duration_s, sensitivity, levels, rate, start_price, market)


@lru_cache(maxsize=None)
def _run(seed, duration_s, sensitivity, levels, rate, start_price, market) -> tuple:  # shared by tests
    sim = SimSection(seed=seed, duration_s=duration_s, imbalance_sensitivity=sensitivity, levels=levels,
                     event_rate_hz=rate, start_price=start_price)
    return tuple(simulate(sim, MARKETS[market]))


def on_grid(value: float, step: Decimal) -> bool:
    """The float's shortest decimal is a whole number of steps (what an exchange would accept)."""
    return Decimal(repr(value)) % step == 0


def relative_grid_error(value: float, step: Decimal) -> float:
    n = value / float(step)
    return abs(n - round(n)) / max(1.0, abs(n))


# ---------------------------------------------------------------------------------- determinism
def test_same_seed_same_events_and_different_seed_different_events():
    sim = SimSection(seed=11, duration_s=60.0)
    first = list(simulate(sim, BTC))
    again = list(simulate(sim, BTC))
    other = list(simulate(SimSection(seed=12, duration_s=60.0), BTC))
    assert len(first) > 2000
    assert first == again
    assert first != other
    assert first[0] != other[0]  # the initial book too is seeded
    assert [e for e in first if isinstance(e, Trade)] != [e for e in other if isinstance(e, Trade)]


# ---------------------------------------------------------------------------------- book soundness
@pytest.mark.parametrize(
    "kwargs, market",
    [
        (dict(), "btc"),
        (dict(levels=5, start_price=2_000.0, seed=3, sensitivity=0.5, duration_s=300.0), "alt"),
        (dict(levels=60, seed=5, sensitivity=0.0, duration_s=120.0, rate=200.0), "btc"),
    ],
    ids=["btc-default", "coarse-tick-5-levels", "60-levels-fast"],
)
def test_book_is_never_crossed_and_prices_and_sizes_are_on_the_grid(kwargs, market):
    events = run(**kwargs, market=market)
    tick, lot = MARKETS[market].tick_size, MARKETS[market].lot_size
    levels = kwargs.get("levels", 20)

    snap = events[0]
    assert isinstance(snap, BookSnapshot) and snap.sequence == 1
    assert len(snap.bids) == len(snap.asks) == levels
    assert all(b[0] > n[0] for b, n in zip(snap.bids, snap.bids[1:]))  # best first
    assert all(a[0] < n[0] for a, n in zip(snap.asks, snap.asks[1:]))

    book = OrderBook()
    prices: list[float] = []
    sizes: list[float] = []  # sizes that must be positive
    deleted = 0
    for event in events:
        book.apply(event)
        assert book.is_sound, f"book {book.status} after {event}"
        assert book.spread >= float(tick) * (1 - 1e-9)
        if isinstance(event, (BookSnapshot, BookDelta)):
            for price, size in event.bids + event.asks:
                prices.append(price)
                if size == 0.0:
                    deleted += 1
                else:
                    sizes.append(size)
        elif isinstance(event, BestBidAsk):
            prices += [event.bid_price, event.ask_price]
            sizes += [event.bid_size, event.ask_size]
            assert event.bid_price == book.best_bid and event.ask_price == book.best_ask
            assert event.bid_size == book.best_bid_size and event.ask_size == book.best_ask_size
        elif isinstance(event, Trade):
            prices.append(event.price)
            sizes.append(event.size)
            assert event.side in ("buy", "sell")
    assert book.crossed_events == 0 and book.status is BookStatus.SOUND
    assert deleted > 0  # levels do get emptied (sweeps, cancellations)
    assert all(relative_grid_error(p, tick) < 1e-9 for p in prices)
    assert all(on_grid(p, tick) for p in prices)
    assert all(s > 0 for s in sizes)
    assert all(on_grid(s, lot) for s in sizes)
    # BTC-like magnitudes: levels from a few lots up to a few BTC, a few dozen levels a side.
    if market == "btc":
        bids, asks = book.level_count()
        assert 5 <= bids <= 2 * levels and 5 <= asks <= 2 * levels
        assert max(sizes) < 20.0
        assert 0.01 < sorted(sizes)[len(sizes) // 2] < 2.0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sensitivity=st.floats(0.0, 0.5),
    levels=st.integers(5, 40),
    tick=st.sampled_from(["0.01", "0.1", "0.5", "1", "5"]),
    lot=st.sampled_from(["0.00001", "0.001", "0.1", "1"]),
)
def test_any_market_and_config_keep_a_sound_book_on_the_grid(seed, sensitivity, levels, tick, lot):
    market = MarketSection(tick_size=Decimal(tick), lot_size=Decimal(lot))
    sim = SimSection(seed=seed, duration_s=20.0, imbalance_sensitivity=sensitivity, levels=levels)
    book = OrderBook()
    for event in simulate(sim, market):
        book.apply(event)
        assert book.is_sound
        assert book.spread >= float(tick) * (1 - 1e-9)
        if isinstance(event, BookDelta):
            assert all(on_grid(p, market.tick_size) and on_grid(q, market.lot_size) for p, q in event.bids + event.asks)
    assert book.crossed_events == 0


def test_start_price_must_be_many_ticks():
    with pytest.raises(ValueError, match="start_price"):
        SimMarket(SimSection(start_price=10.0), MarketSection(tick_size=Decimal("1")))


def test_deltas_reproduce_the_simulators_own_book_even_with_external_orders():
    """Replaying the emitted events gives exactly the simulator's state: no change goes unreported."""
    market = SimMarket(SimSection(seed=21, levels=10), BTC)
    book = OrderBook()
    book.apply(market.snapshot())
    for i in range(20_000):
        if i % 997 == 0:
            market.take("buy" if i % 2 else "sell", 0.3 + (i % 5))
        for event in market.step():
            book.apply(event)
        if i % 1000 == 0 or i == 19_999:
            bids, asks = market.depth()
            assert book.bids(1000) == bids
            assert book.asks(1000) == asks
    assert book.crossed_events == 0


# ---------------------------------------------------------------------------------- clock
def test_timestamps_sequences_and_event_rate():
    duration, rate = 120.0, 200.0
    events = run(seed=4, duration_s=duration, rate=rate)
    ts = [e.ts_local for e in events]
    assert all(e.ts_exchange == e.ts_local for e in events)
    assert ts[0] == DEFAULT_START_NS
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    assert ts[-1] <= DEFAULT_START_NS + duration * 1e9
    assert ts[-1] >= DEFAULT_START_NS + 0.98 * duration * 1e9

    deltas = [e for e in events if isinstance(e, BookDelta)]
    # Every simulated event that changes the book is one delta; a few change nothing.
    assert 0.85 * rate < len(deltas) / duration < 1.1 * rate
    assert [d.first_seq for d in deltas] == list(range(2, len(deltas) + 2))
    assert all(d.first_seq == d.last_seq for d in deltas)
    last_seq = 1
    for e in events:
        if isinstance(e, BookDelta):
            last_seq = e.last_seq
        elif isinstance(e, BestBidAsk):
            assert e.sequence == last_seq  # the quote reflects the delta just before it
    trade_ids = [e.trade_id for e in events if isinstance(e, Trade)]
    assert trade_ids == list(range(1, len(trade_ids) + 1))


def test_duration_scales_with_config():
    short = run(seed=4, duration_s=10.0)
    assert short[-1].ts_local - DEFAULT_START_NS <= 10 * 10**9
    assert 300 < sum(isinstance(e, BookDelta) for e in short) < 700  # ~50 Hz for 10 s


# ---------------------------------------------------------------------------------- imbalance
def imbalance_vs_next_move(events) -> tuple[float, float, int]:
    """(hit rate, correlation, moves): L1 imbalance of the quote before each mid change vs its sign."""
    prev = None
    xs: list[float] = []
    ys: list[int] = []
    for e in events:
        if not isinstance(e, BestBidAsk):
            continue
        if prev is not None:
            before, after = prev.bid_price + prev.ask_price, e.bid_price + e.ask_price
            if after != before:
                xs.append(prev.bid_size / (prev.bid_size + prev.ask_size) - 0.5)
                ys.append(1 if after > before else -1)
        prev = e
    signed = [(x > 0) == (y > 0) for x, y in zip(xs, ys) if x != 0]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    var_x = sum((x - mx) ** 2 for x in xs)
    var_y = sum((y - my) ** 2 for y in ys)
    return sum(signed) / len(signed), cov / (var_x * var_y) ** 0.5, n


def test_imbalance_predicts_the_next_mid_move_when_flow_reacts_to_it():
    hit, corr, moves = imbalance_vs_next_move(run(seed=7, sensitivity=0.35))
    assert moves > 500
    assert hit > 0.58
    assert corr > 0.2
    stronger, _, _ = imbalance_vs_next_move(run(seed=7, sensitivity=0.5))
    assert stronger > hit


def test_imbalance_is_not_predictive_without_sensitivity():
    hit, corr, moves = imbalance_vs_next_move(run(seed=7, sensitivity=0.0))
    assert moves > 500
    assert 0.45 < hit < 0.58
    assert abs(corr) < 0.08


# ---------------------------------------------------------------------------------- external orders
def warmed_market(seed: int = 5) -> SimMarket:
    market = SimMarket(SimSection(seed=seed), BTC)
    for _ in range(2_000):
        market.step()
    return market


def test_take_buy_walks_the_asks_and_moves_the_best_ask_up():
    market = warmed_market()
    bids_before, asks_before = market.depth()
    amount = round(sum(size for _, size in asks_before[:3]) - 0.00007, 5)  # into the third level
    fills = market.take("buy", amount)

    assert [p for p, _ in fills] == [p for p, _ in asks_before[:3]]
    assert all(a < b for (a, _), (b, _) in zip(fills, fills[1:]))
    assert sum(Decimal(repr(s)) for _, s in fills) == Decimal(repr(amount))
    assert fills[-1][1] == round(asks_before[2][1] - 0.00007, 5)
    bids_after, asks_after = market.depth()
    assert asks_after[0] == (asks_before[2][0], 0.00007)
    assert asks_after[0][0] > asks_before[0][0]
    assert bids_after == bids_before

    events = market.step()  # the take's events come first, under the next update id
    trades = [e for e in events if isinstance(e, Trade)][: len(fills)]
    assert [(t.price, t.size, t.side) for t in trades] == [(p, s, "buy") for p, s in fills]
    delta = next(e for e in events if isinstance(e, BookDelta))
    assert delta.asks == ((asks_before[0][0], 0.0), (asks_before[1][0], 0.0), (asks_before[2][0], 0.00007))
    bbo = next(e for e in events if isinstance(e, BestBidAsk))
    assert (bbo.ask_price, bbo.ask_size) == asks_after[0]


def test_take_larger_than_the_book_fills_the_depth_and_the_side_is_refilled():
    market = warmed_market(seed=6)
    bids_before, _ = market.depth()
    book = OrderBook()
    book.apply(market.snapshot())
    fills = market.take("sell", 10_000.0)
    assert fills == bids_before  # every bid level, best (highest) first
    assert all(a > b for (a, _), (b, _) in zip(fills, fills[1:]))
    bids_after, asks_after = market.depth()
    assert len(bids_after) == 1 and bids_after[0][0] == round(fills[-1][0] - 0.01, 2)
    for event in market.pop_pending():
        book.apply(event)
    assert book.is_sound and book.bids(1000) == bids_after and book.asks(1000) == asks_after
    assert market.take("sell", 0.000001) == []  # below one lot: nothing
    with pytest.raises(ValueError):
        market.take("hold", 1.0)


def test_take_timestamps_never_go_back():
    market = warmed_market()
    later = market.now_ns + 1_000
    market.take("buy", 0.01, ts_ns=later)
    events = market.step()
    assert events[0].ts_local == later
    assert all(e.ts_local >= later for e in events)
    market.take("sell", 0.01, ts_ns=later - 10**9)  # an old stamp is moved up, not back
    assert all(e.ts_local >= market.now_ns for e in market.pop_pending())
