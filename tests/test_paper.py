"""Paper fill model: walks the book after the latency, rounds like the exchange, charges fees."""

from __future__ import annotations

from decimal import Decimal

import pytest

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
