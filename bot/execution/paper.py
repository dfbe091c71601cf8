"""Simulated execution against the book: the fill model of backtest and paper modes.

A market order waits ``latency_ms`` after the decision (network plus matching delay), then
walks the book as it is *at that moment*, level by level, taking each level's size until the
order is filled. If the visible book is too thin the rest expires, as an IOC market order does
on Binance. Fill amounts are truncated to the lot size and prices are the book's own level
prices, so every fill is something the exchange could have printed. Taker fees are charged in
the quote currency on each fill's notional.

Post-only limit orders (maker mode) reach the book after the same latency; one that would cross
is rejected, as Binance rejects a LIMIT_MAKER. A resting order joins the back of its price level:
``queue_ahead`` starts at the visible size there and shrinks by every trade printed at our price.
Where the level shrinks without a trade (someone cancelled), ``execution.queue_model`` says
whose order it was: ``back`` (the default, the pessimistic bound) takes cancels from behind us
first, so our place only improves once the level is smaller than the queue ahead of us;
``proportional`` treats every resting lot as equally likely to be cancelled, so the queue ahead
shrinks by its share (ahead / level) of each cancel. The truth lies between the two, and a
recording of aggregated levels cannot say where. It fills, at its own price with the maker fee,
by the part of a trade that exceeds the queue ahead, fully when a trade prints through its price
or the opposite best price crosses it. Cancels also take the latency, and the order can still
fill meanwhile.

A reduce-only order is checked against the position when it executes, not only when it was sent:
the position may have changed during the latency (a liquidation, a resting quote's fill). It
fills at most what reduces the position to zero and, with nothing left to reduce, expires
unfilled, as Binance futures treat a reduce-only order that would open or flip a position
(https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order).

Limits of the model, stated so nobody over-trusts a backtest: our own fills do not remove
liquidity from the recorded book (no market impact), and hidden liquidity is not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from bot.book.book import OrderBook
from bot.config.settings import ExecutionSection
from bot.core.events import MarketEvent, Trade
from bot.core.market import Market, to_decimal
from bot.core.orders import Fill, Order, OrderStatus, SentIds, Side

FEE_QUANTUM = Decimal("0.00000001")


def fee_of(market: Market, amount: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """The simulated fee of a fill: ``rate`` of the trade's value in the settle currency
    (:meth:`Market.exact_value`; inverse: contracts x size / price), rounded half up to 1e-8."""
    return (market.exact_value(amount, price) * rate).quantize(FEE_QUANTUM, rounding=ROUND_HALF_UP)


def walk_book(book: OrderBook, side: Side, amount: Decimal, market: Market) -> list[tuple[Decimal, Decimal]]:
    """Return (price, amount) pieces a market order of ``amount`` would take, best price first."""
    remaining = amount
    if remaining <= 0:
        return []
    # a level of at least remaining + 2 lots covers the rest whatever the rounding of its size
    # (amount_to_precision truncates a decimal within one ulp of it): no Decimal work needed
    covers = remaining + 2 * market.lot_size
    pieces: list[tuple[Decimal, Decimal]] = []
    levels = book.asks(1 << 30) if side is Side.BUY else book.bids(1 << 30)
    for price, size in levels:
        take = remaining if size >= covers else min(remaining, market.amount_to_precision(size))
        if take <= 0:
            continue
        pieces.append((to_decimal(price), take))
        remaining -= take
        if remaining <= 0:
            break
    return pieces


@dataclass(slots=True)
class _Resting:
    """A post-only order in the book: ``queue_ahead`` is the visible size in front of it,
    ``level`` the others' size at its price as last seen (to tell a cancel from a trade)."""

    order: Order
    price: float
    queue_ahead: float
    level: float


class PaperVenue:
    """Fills market orders against the current book after a fixed latency; rests post-only
    limit orders with a queue model (see the module docstring)."""

    def __init__(self, cfg: ExecutionSection, market: Market):
        self.market = market
        self.taker_rate = to_decimal(cfg.taker_fee_bps) / Decimal(10_000)
        self.maker_rate = to_decimal(cfg.maker_fee_bps) / Decimal(10_000)
        self.latency_ns = int(cfg.latency_ms * 1e6)
        self.proportional_queue = cfg.queue_model == "proportional"
        self._pending: list[tuple[int, Order]] = []
        self._cancels: list[tuple[int, str]] = []
        self._resting: dict[str, _Resting] = {}
        self._seen = SentIds()
        self._fill_seq = 0
        self._position: Callable[[], Decimal] | None = None

    def bind_position(self, position: Callable[[], Decimal]) -> None:
        """The engine's signed position in order amounts, read when a reduce-only order executes."""
        self._position = position

    @property
    def has_pending(self) -> bool:
        """Work in flight whose outcome the engine must wait for (new orders, cancels)."""
        return bool(self._pending) or bool(self._cancels)

    @property
    def active(self) -> bool:
        """Anything that a market event could change: pending work or resting orders."""
        return bool(self._pending) or bool(self._cancels) or bool(self._resting)

    @property
    def has_resting(self) -> bool:
        """Post-only orders in the book: every market event may fill them."""
        return bool(self._resting)

    def resting_wake(self) -> list[tuple[bool, float, float, float]]:
        """What could change each resting order at a market event, as ``(buy, price, level_below,
        level_above)``: the other side's best price at or through ``price``, a trade by the side
        that hits it at or through ``price``, or any other event with the size at ``price`` on its
        side outside ``[level_below, level_above]``. Inside that band ``_requeue`` leaves it as it
        is: the ``back`` model takes a cancel from the queue ahead only once the level is smaller
        than it, and ``proportional`` reads every change of the level. A hitting trade short of
        the price leaves it alone too. An accelerated replay skips the other events."""
        out = []
        for r in self._resting.values():
            below, above = (r.level, r.level) if self.proportional_queue else (r.queue_ahead, math.inf)
            out.append((r.order.side is Side.BUY, r.price, below, above))
        return out

    def next_due(self) -> int | None:
        """The earliest time at which ``on_book`` has pending work to do (an order or a cancel
        whose latency has passed), or None. Resting orders are not included (see ``has_resting``)."""
        due = self._pending[0][0] if self._pending else None
        if self._cancels and (due is None or self._cancels[0][0] < due):
            due = self._cancels[0][0]
        return due

    balance_generation = 0

    event_clock = True
    """Advanced by market events only, at their ``ts_local``, never by the wall clock (the daemon's
    :meth:`~bot.engine.engine.Engine.poll` leaves it alone): every paper fill is a function of the
    event stream, so a paper run's recording replays to the same fills (``bot compare``)."""

    def available(self, asset: str) -> Decimal | None:
        """No exchange balance to respect: a simulated account holds what its fills say."""
        return None

    def recheck_balance(self) -> None:
        """Nothing to read again: :meth:`available` never doubts the fills."""

    def resting(self, side: Side) -> Order | None:
        for r in self._resting.values():
            if r.order.side is side:
                return r.order
        return None

    def abandon(self) -> list[Order]:
        """The run stops (a paper daemon's stop, a backtest's end): every order still in flight or
        resting is cancelled (nothing simulates it once the market data stops), with the reason on the order."""
        gone = [order for _, order in self._pending] + [r.order for r in self._resting.values()]
        self._pending, self._cancels, self._resting = [], [], {}
        for order in gone:
            order.status = OrderStatus.CANCELED
            order.reject_reason = "the run stopped before the simulated exchange executed it"
        return gone

    def submit(self, order: Order, now: int) -> None:
        """Accept an order; it reaches the book at ``now + latency``."""
        if order.client_order_id in self._seen:
            raise ValueError(f"duplicate client order id {order.client_order_id}: refusing to send it twice")
        self._seen.add(order.client_order_id)
        self._pending.append((now + self.latency_ns, order))

    def cancel(self, client_order_id: str, now: int) -> None:
        """Request a cancel; it takes effect after the latency (the order may fill meanwhile)."""
        self._cancels.append((now + self.latency_ns, client_order_id))

    def on_book(self, book: OrderBook, now: int, event: MarketEvent | None = None) -> list[tuple[Order, list[Fill]]]:
        """Advance every order against the book (and ``event`` if it is a trade).

        Due market orders execute now; resting orders fill when the queue ahead of them is gone
        or the market trades through them; due cancels and new post-only orders take effect.
        While the book is unsound nothing happens (we cannot know at what price it would have).
        """
        if not book.is_sound:
            return []
        done: list[tuple[Order, list[Fill]]] = []
        if self._resting:
            self._match_resting(book, event, now, done)
        if self._cancels and self._cancels[0][0] <= now:
            self._apply_cancels(now, done)
        if self._pending and self._pending[0][0] <= now:
            still: list[tuple[int, Order]] = []
            for due, order in self._pending:
                if due > now:
                    still.append((due, order))
                elif order.order_type == "market":
                    done.append((order, self._execute(order, book, now, done)))
                else:
                    self._activate(order, book, done)
            self._pending = still
        return done

    # ------------------------------------------------------------------ market orders
    def _execute(self, order: Order, book: OrderBook, now: int, done: list[tuple[Order, list[Fill]]]) -> list[Fill]:
        fills = []
        amount = order.amount - order.filled
        if order.reduce_only and self._position is not None:
            # the engine books this call's fills after it returns: count the ones already made here
            # (a resting quote's, an earlier order's) into the position the exit may reduce
            position = self._position() + sum((f.amount if f.side is Side.BUY else -f.amount) for _, fs in done for f in fs)
            reducible = max(-position if order.side is Side.BUY else position, Decimal(0))  # a buy reduces a short
            if amount > reducible:
                amount = reducible
                # the rest expires (the engine reports why), as Binance trims a reduce-only order to the position
                order.reject_reason = (f"reduce-only with nothing to reduce (position {position} when it executed)" if reducible == 0
                                       else f"reduce-only capped at the position {position} when it executed")
            if amount <= 0:
                order.status = OrderStatus.EXPIRED
                return fills
        for price, amount in walk_book(book, order.side, amount, self.market):
            fills.append(self._fill(order, now, price, amount, self.taker_rate, "taker"))
        order.status = OrderStatus.FILLED if order.filled >= order.amount else OrderStatus.EXPIRED
        return fills

    def _fill(self, order: Order, now: int, price: Decimal, amount: Decimal, rate: Decimal, liquidity: str) -> Fill:
        market = self.market
        fee = fee_of(market, amount, price, rate)
        self._fill_seq += 1
        order.filled += amount
        return Fill(
            now, order.client_order_id, order.side, price, amount, fee, liquidity, f"paper-{self._fill_seq}",
            market.settle_currency, symbol=order.symbol or market.symbol,
        )

    # ------------------------------------------------------------------ resting orders
    def _activate(self, order: Order, book: OrderBook, done: list[tuple[Order, list[Fill]]]) -> None:
        assert order.price is not None, "limit orders need a price"
        price = float(order.price)
        buy = order.side is Side.BUY
        if (buy and book.best_ask <= price) or (not buy and book.best_bid >= price):
            order.status = OrderStatus.REJECTED  # post-only: it would have taken liquidity
            order.reject_reason = "post-only order would immediately match and take"
            done.append((order, []))
            return
        ahead = book.size_at("bid" if buy else "ask", price)
        self._resting[order.client_order_id] = _Resting(order, price, ahead, ahead)

    def _requeue(self, r: _Resting, level: float) -> None:
        """The level at our price now shows ``level`` (others' size): a drop not explained by the
        trades already counted is a cancel, ahead of us in proportion under ``proportional``."""
        if self.proportional_queue and level < r.level and r.level > 0.0:
            r.queue_ahead -= (r.level - level) * (r.queue_ahead / r.level)
        r.queue_ahead = max(0.0, min(r.queue_ahead, level))
        r.level = level

    def _apply_cancels(self, now: int, done: list[tuple[Order, list[Fill]]]) -> None:
        still = []
        for due, cid in self._cancels:
            if due > now:
                still.append((due, cid))
                continue
            resting = self._resting.pop(cid, None)
            if resting is not None:
                resting.order.status = OrderStatus.CANCELED
                done.append((resting.order, []))
                continue
            for i, (_, order) in enumerate(self._pending):
                if order.client_order_id == cid:
                    del self._pending[i]
                    order.status = OrderStatus.CANCELED
                    done.append((order, []))
                    break
        self._cancels = still

    def _match_resting(self, book: OrderBook, event: MarketEvent | None, now: int, done: list[tuple[Order, list[Fill]]]) -> None:
        trade = event if isinstance(event, Trade) else None
        for cid in list(self._resting):
            r = self._resting[cid]
            order = r.order
            buy = order.side is Side.BUY
            remaining = order.amount - order.filled
            take = Decimal(0)
            if (buy and book.best_ask <= r.price) or (not buy and book.best_bid >= r.price):
                take = remaining  # the market moved through our price: we were hit
            elif trade is not None and (trade.side == "sell") == buy:
                through = trade.price < r.price if buy else trade.price > r.price
                if through:
                    take = remaining
                elif trade.price == r.price:
                    r.queue_ahead -= trade.size
                    r.level = max(0.0, r.level - trade.size)
                    if r.queue_ahead < 0.0:
                        # rounded first: float noise (0.6 + 0.7 - 1.0) must not cost a whole lot
                        take = min(remaining, self.market.amount_to_precision(round(-r.queue_ahead, 10)))
                        r.queue_ahead = 0.0
            else:
                self._requeue(r, book.size_at("bid" if buy else "ask", r.price))
            if take <= 0:
                continue
            fill = self._fill(order, now, order.price, take, self.maker_rate, "maker")
            if order.filled >= order.amount:
                order.status = OrderStatus.FILLED
                del self._resting[cid]
            else:
                order.status = OrderStatus.PARTIALLY_FILLED
            done.append((order, [fill]))
