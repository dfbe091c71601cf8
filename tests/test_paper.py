"""Paper fill model: walks the book after the latency, rounds like the exchange, charges fees."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.book.book import OrderBook
from bot.config.settings import ExecutionSection
from bot.core.events import BookDelta, BookInvalidated, BookSnapshot
from bot.core.market import Market
from bot.core.orders import Order, OrderStatus, Side
from bot.execution.paper import PaperVenue

MARKET = Market("BTC/USDT", Decimal("0.01"), Decimal("0.001"), Decimal("0.001"), Decimal("5"))
MS = 1_000_000


def book_at(ts=0) -> OrderBook:
    book = OrderBook()
    book.apply(BookSnapshot(ts, 0, ((99.99, 1.0), (99.98, 2.0)), ((100.0, 0.5), (100.01, 0.25), (100.05, 1.0)), 1))
    return book


def venue(latency_ms=10.0, fee_bps=10.0) -> PaperVenue:
    return PaperVenue(ExecutionSection(latency_ms=latency_ms, taker_fee_bps=fee_bps), MARKET)


def test_market_buy_walks_levels_and_charges_taker_fee():
    v, book = venue(latency_ms=0), book_at()
    order = Order("c1", 0, Side.BUY, Decimal("0.9"))
    v.submit(order, 0)
    [(done, fills)] = v.on_book(book, 0)
    assert [(f.price, f.amount) for f in fills] == [
        (Decimal("100.0"), Decimal("0.5")), (Decimal("100.01"), Decimal("0.25")), (Decimal("100.05"), Decimal("0.15"))
    ]
    assert done.status is OrderStatus.FILLED and done.filled == Decimal("0.9")
    for f in fills:
        assert f.fee == (f.price * f.amount * Decimal("0.001")).quantize(Decimal("1e-8"))
        assert f.liquidity == "taker"


def test_short_book_gives_partial_fill_and_expires_rest():
    v, book = venue(latency_ms=0), book_at()
    order = Order("c1", 0, Side.SELL, Decimal("5"))
    v.submit(order, 0)
    [(done, fills)] = v.on_book(book, 0)
    assert sum(f.amount for f in fills) == Decimal("3") and done.status is OrderStatus.EXPIRED


def test_fill_uses_book_after_latency():
    v, book = venue(latency_ms=10), book_at()
    v.submit(Order("c1", 0, Side.BUY, Decimal("0.5")), 0)
    assert v.on_book(book, 5 * MS) == [] and v.has_pending
    book.apply(BookDelta(8 * MS, 0, (), ((100.0, 0.0),), 2, 2))  # the best ask disappears during the latency
    [(_, fills)] = v.on_book(book, 10 * MS)
    assert fills[0].price == Decimal("100.01") and not v.has_pending


def test_due_orders_wait_for_a_sound_book():
    v, book = venue(latency_ms=0), book_at()
    v.submit(Order("c1", 0, Side.BUY, Decimal("0.1")), 0)
    book.apply(BookInvalidated(1, 0, "gap"))
    assert v.on_book(book, 1) == [] and v.has_pending


def test_amounts_are_truncated_to_lot_size():
    v, book = venue(latency_ms=0), OrderBook()
    book.apply(BookSnapshot(0, 0, ((99.0, 1.0),), ((100.0, 0.0015), (101.0, 1.0)), 1))
    v.submit(Order("c1", 0, Side.BUY, Decimal("0.003")), 0)
    [(_, fills)] = v.on_book(book, 0)
    assert [(f.price, f.amount) for f in fills] == [(Decimal("100.0"), Decimal("0.001")), (Decimal("101.0"), Decimal("0.002"))]


def test_same_client_order_id_is_never_sent_twice():
    v = venue()
    v.submit(Order("c1", 0, Side.BUY, Decimal("0.1")), 0)
    with pytest.raises(ValueError, match="c1"):
        v.submit(Order("c1", 1, Side.BUY, Decimal("0.1")), 1)


# ---------------------------------------------------------------------- post-only quotes and the queue
from bot.core.events import Trade  # noqa: E402


def quote(cid: str, side: Side, price: str, amount: str) -> Order:
    return Order(cid, 0, side, Decimal(amount), order_type="limit_maker", price=Decimal(price))


def test_resting_bid_fills_only_after_the_queue_ahead_has_traded():
    v, book = venue(latency_ms=0, fee_bps=10), book_at()
    v.maker_rate = Decimal("0.0002")
    order = quote("q1", Side.BUY, "99.99", "0.5")
    v.submit(order, 0)
    assert v.on_book(book, 0) == [] and v.resting(Side.BUY) is order  # queue ahead: the 1.0 at 99.99
    assert v.on_book(book, 1, Trade(1, 0, 99.99, 0.6, "sell")) == []
    [(o, [fill])] = v.on_book(book, 2, Trade(2, 0, 99.99, 0.7, "sell"))  # 0.3 beyond the queue
    assert (fill.price, fill.amount, fill.liquidity) == (Decimal("99.99"), Decimal("0.3"), "maker")
    assert fill.fee == (Decimal("99.99") * Decimal("0.3") * Decimal("0.0002")).quantize(Decimal("1e-8"))
    assert o.status is OrderStatus.PARTIALLY_FILLED
    [(o, [fill2])] = v.on_book(book, 3, Trade(3, 0, 99.99, 0.2, "sell"))
    assert fill2.amount == Decimal("0.2") and o.status is OrderStatus.FILLED and v.resting(Side.BUY) is None


def test_buy_aggressor_trades_do_not_fill_a_bid_and_trade_through_fills_all():
    v, book = venue(latency_ms=0), book_at()
    order = quote("q1", Side.BUY, "99.99", "0.5")
    v.submit(order, 0)
    v.on_book(book, 0)
    assert v.on_book(book, 1, Trade(1, 0, 99.99, 5.0, "buy")) == []
    [(o, fills)] = v.on_book(book, 2, Trade(2, 0, 99.98, 0.01, "sell"))  # printed below our bid
    assert sum(f.amount for f in fills) == Decimal("0.5") and o.status is OrderStatus.FILLED


def test_queue_ahead_shrinks_with_the_level_and_crossing_fills():
    v, book = venue(latency_ms=0), book_at()
    order = quote("q1", Side.SELL, "100.01", "0.1")  # 0.25 ahead at 100.01
    v.submit(order, 0)
    v.on_book(book, 0)
    book.apply(BookDelta(1, 0, (), ((100.01, 0.05),), 2, 2))  # cancels ahead of us
    v.on_book(book, 1)
    [(o, [fill])] = v.on_book(book, 2, Trade(2, 0, 100.01, 0.1, "buy"))
    assert fill.amount == Decimal("0.05") and o.status is OrderStatus.PARTIALLY_FILLED
    book.apply(BookDelta(3, 0, ((100.01, 1.0),), ((100.0, 0.0), (100.01, 0.0)), 3, 3))  # bids reach our ask: we were lifted
    [(o, [fill])] = v.on_book(book, 3)
    assert fill.amount == Decimal("0.05") and o.status is OrderStatus.FILLED


def test_proportional_queue_takes_its_share_of_a_cancel_and_back_takes_none():
    """2.0 ahead of us at 99.98, then 2.0 more joins behind us and 2.0 is cancelled: back says the
    cancel was behind us (2.0 still ahead), proportional that half of it was ahead (1.0 ahead)."""
    fills = {}
    for model in ("back", "proportional"):
        v, book = PaperVenue(ExecutionSection(latency_ms=0, queue_model=model), MARKET), book_at()
        v.submit(quote("q1", Side.BUY, "99.98", "0.5"), 0)
        v.on_book(book, 0)
        book.apply(BookDelta(1, 0, ((99.98, 4.0),), (), 2, 2))  # others join behind us
        v.on_book(book, 1)
        book.apply(BookDelta(2, 0, ((99.98, 2.0),), (), 3, 3))  # half the level cancelled
        v.on_book(book, 2)
        done = v.on_book(book, 3, Trade(3, 0, 99.98, 1.3, "sell"))
        fills[model] = sum((f.amount for _, fs in done for f in fs), Decimal(0))
    assert fills == {"back": Decimal(0), "proportional": Decimal("0.3")}


def test_a_trade_is_not_counted_again_as_a_cancel_when_the_book_shows_it():
    v, book = PaperVenue(ExecutionSection(latency_ms=0, queue_model="proportional"), MARKET), book_at()
    v.submit(quote("q1", Side.BUY, "99.98", "0.5"), 0)
    v.on_book(book, 0)
    v.on_book(book, 1, Trade(1, 0, 99.98, 0.5, "sell"))  # 1.5 ahead
    book.apply(BookDelta(2, 0, ((99.98, 1.5),), (), 2, 2))  # the book now shows that trade: no cancel
    v.on_book(book, 2)
    assert v.on_book(book, 3, Trade(3, 0, 99.98, 1.5, "sell")) == []
    [(_, [fill])] = v.on_book(book, 4, Trade(4, 0, 99.98, 0.2, "sell"))
    assert fill.amount == Decimal("0.2")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 300)), min_size=1, max_size=30))
def test_proportional_queue_never_fills_later_than_back(steps):
    """Same level sizes and trades for both models: the proportional queue is never behind the
    back-of-queue one, so what back has filled proportional has filled too (ticks of 0.01)."""
    filled = {}
    for model in ("back", "proportional"):
        v, book = PaperVenue(ExecutionSection(latency_ms=0, queue_model=model), MARKET), book_at()
        order = quote("q1", Side.BUY, "99.98", "5")
        v.submit(order, 0)
        v.on_book(book, 0)
        level = 2.0
        for t, (is_trade, n) in enumerate(steps, start=1):
            if is_trade:
                size = min(level, n / 100)
                v.on_book(book, t, Trade(t, 0, 99.98, size, "sell"))
                level = round(level - size, 2)
            else:  # the level moves to a new size (a cancel or others joining)
                level = n / 100
            book.apply(BookDelta(t, 0, ((99.98, level),), (), t + 1, t + 1))
            v.on_book(book, t)
        filled[model] = order.filled
    assert filled["proportional"] >= filled["back"]


def test_post_only_order_that_would_cross_is_rejected():
    v, book = venue(latency_ms=0), book_at()
    order = quote("q1", Side.BUY, "100.0", "0.1")  # at the best ask
    v.submit(order, 0)
    [(o, fills)] = v.on_book(book, 0)
    assert o.status is OrderStatus.REJECTED and fills == []


def test_cancel_takes_the_latency_and_the_order_can_fill_meanwhile():
    v, book = venue(latency_ms=10), book_at()
    a, b = quote("a", Side.BUY, "99.98", "0.1"), quote("b", Side.SELL, "100.05", "0.1")
    v.submit(a, 0)
    v.submit(b, 0)
    v.on_book(book, 10 * MS)
    v.cancel("a", 11 * MS)
    v.cancel("b", 11 * MS)
    assert v.has_pending
    [(filled, _)] = v.on_book(book, 15 * MS, Trade(15 * MS, 0, 99.97, 1.0, "sell"))
    assert filled is a and a.status is OrderStatus.FILLED
    [(cancelled, fills)] = v.on_book(book, 21 * MS)
    assert cancelled is b and b.status is OrderStatus.CANCELED and fills == [] and not v.has_pending and not v.active


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.floats(0.0, 0.05, allow_nan=False), min_size=1, max_size=6),
    lots=st.integers(0, 60),
)
def test_walk_book_takes_what_truncated_levels_allow(sizes, lots):
    """walk_book's shortcut for a level that covers the rest changes nothing: each piece is
    min(remaining, the level truncated to whole lots), levels in price order, until filled."""
    from bot.execution.paper import walk_book

    market = Market("BTC/USDT", Decimal("0.01"), Decimal("0.001"))
    book = OrderBook()
    asks = tuple((60000.0 + i, s) for i, s in enumerate(sizes) if s > 0.0)
    book.apply(BookSnapshot(1, 0, ((59999.0, 1.0),), asks or ((60000.0, 0.001),), 1))
    amount = Decimal(lots) * market.lot_size
    expected, remaining = [], amount
    for price, size in book.asks(100):
        if remaining <= 0:
            break
        take = min(remaining, market.amount_to_precision(size))
        if take > 0:
            expected.append((Decimal(repr(price)), take))
            remaining -= take
    assert walk_book(book, Side.BUY, amount, market) == expected


def exit_order(cid: str, side: Side, amount: str) -> Order:
    return Order(cid, 0, side, Decimal(amount), reduce_only=True)


def test_a_reduce_only_exit_is_checked_against_the_position_when_it_executes():
    """The position can change during the latency (a liquidation, a quote's fill): the exit may
    only take it to zero, and with nothing left to reduce it expires without a fill."""
    position = [Decimal("0.4")]
    v, book = venue(latency_ms=10), book_at()
    v.bind_position(lambda: position[0])
    v.submit(exit_order("x1", Side.SELL, "1.0"), 0)
    [(done, fills)] = v.on_book(book, 10 * MS)
    assert sum(f.amount for f in fills) == Decimal("0.4") and done.status is OrderStatus.EXPIRED

    v.submit(exit_order("x2", Side.SELL, "0.4"), 20 * MS)
    position[0] = Decimal(0)  # liquidated while the exit was on its way
    [(done, fills)] = v.on_book(book, 30 * MS)
    assert fills == [] and done.status is OrderStatus.EXPIRED and "nothing to reduce" in done.reject_reason

    position[0] = Decimal("-0.2")  # a short: a reduce-only sell would add to it, a buy covers it
    v.submit(exit_order("x3", Side.SELL, "0.2"), 40 * MS)
    v.submit(exit_order("x4", Side.BUY, "0.5"), 40 * MS)
    (sell, sell_fills), (buy, buy_fills) = v.on_book(book, 50 * MS)
    assert sell_fills == [] and sell.status is OrderStatus.EXPIRED
    assert sum(f.amount for f in buy_fills) == Decimal("0.2")


@settings(max_examples=200, deadline=None)
@given(position=st.integers(-3000, 3000), amount=st.integers(1, 3000), buy=st.booleans())
def test_a_reduce_only_fill_never_opens_grows_or_flips_the_position(position, amount, buy):
    lot = Decimal("0.001")
    held = position * lot
    v, book = venue(latency_ms=0), book_at()
    v.bind_position(lambda: held)
    v.submit(exit_order("x", Side.BUY if buy else Side.SELL, str(amount * lot)), 0)
    [(_, fills)] = v.on_book(book, 0)
    after = held + sum(f.amount for f in fills) * (1 if buy else -1)
    assert abs(after) <= abs(held) and (after == 0 or (after > 0) == (held > 0))


def test_a_reduce_only_exit_counts_a_quote_fill_of_the_same_event():
    """The engine books one on_book call's fills after it returns: an exit due in the same event
    as a quote's fill must see the position that fill made."""
    position = [Decimal(0)]
    v, book = venue(latency_ms=0), book_at()
    v.bind_position(lambda: position[0])
    v.submit(quote("q1", Side.BUY, "99.99", "0.5"), 0)
    v.on_book(book, 0)  # the bid rests; still flat
    v.submit(exit_order("x1", Side.SELL, "0.5"), 1)
    (bid, bid_fills), (exit_, exit_fills) = v.on_book(book, 1, Trade(1, 0, 99.98, 0.01, "sell"))  # printed through our bid
    assert sum(f.amount for f in bid_fills) == Decimal("0.5") and bid.status is OrderStatus.FILLED
    assert sum(f.amount for f in exit_fills) == Decimal("0.5") and exit_.status is OrderStatus.FILLED


def _wake_excludes(v: PaperVenue, book: OrderBook, event) -> bool:
    """The event is one ``PaperVenue.resting_wake`` says cannot change a resting order (the book sound)."""
    for buy, price, below, above in v.resting_wake():
        if (buy and book.best_ask <= price) or (not buy and book.best_bid >= price):
            return False
        if isinstance(event, Trade) and (event.side == "sell") == buy:
            if (event.price <= price) if buy else (event.price >= price):
                return False
            continue
        if not below <= book.size_at("bid" if buy else "ask", price) <= above:
            return False
    return True


@settings(max_examples=400, deadline=None)
@given(
    model=st.sampled_from(["back", "proportional"]),
    # mostly what moves the queues: trades at our bid (99.98) and ask (100.01), their levels' sizes; sometimes the rest
    steps=st.lists(st.tuples(st.sampled_from(["hit", "hit", "lift", "level", "level", "ask_level", "trade", "other"]),
                             st.sampled_from([99.97, 99.98, 99.99, 100.0, 100.01, 100.02]), st.integers(0, 300), st.booleans()), min_size=1, max_size=40),
)
def test_a_venue_fed_only_what_its_resting_wake_admits_fills_the_same(model, steps):
    """The accelerated replay skips every event the venue's resting wake excludes: a venue that
    sees only the admitted events makes the same fills, at the same events, as one that sees all."""
    book = book_at()
    full, fast = (PaperVenue(ExecutionSection(latency_ms=0, queue_model=model), MARKET) for _ in range(2))
    for v in (full, fast):
        v.submit(quote("q1", Side.BUY, "99.98", "3"), 0)
        v.submit(quote("q2", Side.SELL, "100.01", "3"), 0)
        v.on_book(book, 0)
    seq = 2
    for t, (what, price, n, sell) in enumerate(steps, start=1):
        if what == "hit":
            event = Trade(t, 0, 99.98, n / 100, "sell")
        elif what == "lift":
            event = Trade(t, 0, 100.01, n / 100, "buy")
        elif what == "trade":
            event = Trade(t, 0, price, n / 100, "sell" if sell else "buy")
        elif what == "ask_level":  # our ask's level, or another ask (one below our ask trades through it)
            event = BookDelta(t, 0, (), ((100.01 if sell else max(price, 100.0), n / 100),), seq, seq)
        else:  # our bid's level (or another bid level) moves to a new size: a cancel, others joining, a deletion
            event = BookDelta(t, 0, ((99.98 if what == "level" else min(price, 99.99), n / 100),), (), seq, seq)
        if isinstance(event, BookDelta):
            seq += 1
            book.apply(event)
        admitted = not book.is_sound or not _wake_excludes(fast, book, event)
        got_full = [(o.client_order_id, [(f.price, f.amount) for f in fs]) for o, fs in full.on_book(book, t, event)]
        got_fast = [(o.client_order_id, [(f.price, f.amount) for f in fs]) for o, fs in fast.on_book(book, t, event)] if admitted else []
        assert got_fast == got_full, f"step {t}: {event}"
        assert fast.resting_wake() == full.resting_wake(), f"step {t}: {event}: the queue states parted"
