"""Simulated execution against the book: the fill model of backtest and paper modes.

A market order waits ``latency_ms`` after the decision (network plus matching delay), then
walks the book as it is *at that moment*, level by level, taking each level's size until the
order is filled. If the visible book is too thin the rest expires, as an IOC market order does
on Binance. Fill amounts are truncated to the lot size and prices are the book's own level
prices, so every fill is something the exchange could have printed. Taker fees are charged in
the quote currency on each fill's notional.

Limits of the model, stated so nobody over-trusts a backtest: our own fills do not remove
liquidity from the recorded book (no market impact), and hidden liquidity is not modelled.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from bot.book.book import OrderBook
from bot.config.settings import ExecutionSection
from bot.core.market import Market, to_decimal
from bot.core.orders import Fill, Order, OrderStatus, Side

FEE_QUANTUM = Decimal("0.00000001")


def walk_book(book: OrderBook, side: Side, amount: Decimal, market: Market) -> list[tuple[Decimal, Decimal]]:
    """Return (price, amount) pieces a market order of ``amount`` would take, best price first."""
    remaining = amount
    pieces: list[tuple[Decimal, Decimal]] = []
    levels = book.asks(1 << 30) if side is Side.BUY else book.bids(1 << 30)
    for price, size in levels:
        take = min(remaining, market.amount_to_precision(size))
        if take <= 0:
            continue
        pieces.append((to_decimal(price), take))
        remaining -= take
        if remaining <= 0:
            break
    return pieces


class PaperVenue:
    """Fills market orders against the current book after a fixed latency."""

    def __init__(self, cfg: ExecutionSection, market: Market):
        self.market = market
        self.taker_rate = to_decimal(cfg.taker_fee_bps) / Decimal(10_000)
        self.latency_ns = int(cfg.latency_ms * 1e6)
        self._pending: list[tuple[int, Order]] = []
        self._seen: set[str] = set()
        self._fill_seq = 0

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def submit(self, order: Order, now: int) -> None:
        """Accept an order; it executes on the first book after ``now + latency``."""
        if order.client_order_id in self._seen:
            raise ValueError(f"duplicate client order id {order.client_order_id}: refusing to send it twice")
        self._seen.add(order.client_order_id)
        self._pending.append((now + self.latency_ns, order))

    def on_book(self, book: OrderBook, now: int) -> list[tuple[Order, list[Fill]]]:
        """Execute every order whose latency has elapsed; return each with its fills.

        While the book is unsound, due orders wait (a real exchange would still fill them, but we
        cannot know at what price; they are filled at the first sound book instead).
        """
        if not self._pending or self._pending[0][0] > now or not book.is_sound:
            return []
        done: list[tuple[Order, list[Fill]]] = []
        still: list[tuple[int, Order]] = []
        for due, order in self._pending:
            if due > now:
                still.append((due, order))
                continue
            done.append((order, self._execute(order, book, now)))
        self._pending = still
        return done

    def _execute(self, order: Order, book: OrderBook, now: int) -> list[Fill]:
        fills = []
        for price, amount in walk_book(book, order.side, order.amount - order.filled, self.market):
            fee = (price * amount * self.taker_rate).quantize(FEE_QUANTUM, rounding=ROUND_HALF_UP)
            self._fill_seq += 1
            fills.append(Fill(now, order.client_order_id, order.side, price, amount, fee, "taker", f"paper-{self._fill_seq}"))
            order.filled += amount
        order.status = OrderStatus.FILLED if order.filled >= order.amount else OrderStatus.EXPIRED
        return fills
