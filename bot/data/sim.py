"""The built-in market: a seeded stochastic L2 order book whose order flow reacts to imbalance.

``make demo`` runs the bot on this market, so it needs no network and no data files; a local
exchange emulator can drive :class:`SimMarket` directly and send its own market orders into it
with :meth:`SimMarket.take`. It is a toy with one deliberate property, not a replica of Binance.

Model
-----
Prices live on an integer grid of ticks (``tick = market.tick_size``); sizes are whole lots
(``lot = market.lot_size``). Each side of the book is a queue size per tick. ``b``/``a`` are the
best bid/ask ticks, ``B``/``A`` the sizes resting there, ``D`` the total resting size of both
sides, ``K = sim.levels`` and ``s = sim.imbalance_sensitivity``.

*Clock.* Events arrive as a Poisson process of rate ``lambda = sim.event_rate_hz``: the gaps
are independent exponentials of mean ``1/lambda`` seconds, and timestamps are
``start_ts_ns`` plus their running sum in integer nanoseconds. The run stops at the first
event later than ``duration_s``.

*Event type.* At each event one type is drawn with probability proportional to its weight::

    limit order     w_L = 0.60
    market order    w_M = 0.12
    sweep           w_S = 0.04
    cancellation    w_C = kappa * D,   kappa = 0.40 / (2 K q_ref)

where ``q_ref = 10 * m`` and ``m`` is the median order size (below). Because the cancellation
weight grows with the resting size, the depth mean-reverts: as in the zero-intelligence model
of Smith, Farmer, Gillemot & Krishnamurthy (2003), every resting unit is cancelled at a
constant rate, except that the total event rate is held at ``lambda`` and the type
probabilities vary with ``D`` instead.

*Order sizes.* Every new order's size is lognormal with median ``m = 600 / start_price`` base
units (600 in quote currency: 0.02 BTC at 30,000) and log-sd 1.0, clipped to
``[1 lot, 100 m]`` and rounded to whole lots.

*Limit order.* Side bid or ask with probability 1/2 each. It is placed ``j`` ticks behind the
opposite best quote (bid at ``a - 1 - j``, ask at ``b + 1 + j``), ``j in {0..K-1}`` with
``P(j) ~ (1 + j) ** -0.6``: a power-law decay from the touch, slower than the ``j ** -1.6`` tail
measured for real placements (Bouchaud, Mezard & Potters 2002) so that all ``K`` levels stay
populated. With a one-tick spread ``j = 0`` joins the best queue; when the spread is wider the
order may land inside it and become the new best.

*Cancellation.* A side is chosen with probability proportional to its total size and a level
on it with probability proportional to its size, so each queue is cancelled at a rate
proportional to its size. One order (a fresh size draw) leaves it, at most the whole level;
at the best level at most ``size - 1 lot`` (see *touch rule*).

*Market order* and *sweep*: aggressive orders. They are buys with probability::

    P(buy) = 0.5 + s * (2 I - 1),      I = B / (B + A)   (L1 imbalance, in [0, 1])

and sells otherwise; ``s in [0, 0.5]`` keeps this a probability. A market order takes one
order size from the opposite best level, at most ``size - 1 lot``, without moving the price
(one Trade at the best price). A sweep clears the opposite best level completely (one Trade
of the whole level), then with probability 0.2 the next non-empty level too, and so on
(a geometric number of levels, mean 1.25). The sweeping order's remainder, four order-size
draws' worth, rests at the last price it cleared as the new best quote on its own side, so a
buy sweep moves both the bid and the ask up and the spread stays at least one tick.

*Touch rule.* Only sweeps (and external :meth:`SimMarket.take`) empty a best level; partial
market orders and cancellations always leave at least one lot there. Hence every price move is
the direction of a sweep (or, rarely, a limit order inside a spread widened by a gap), and
the direction of a sweep depends on the book only through ``I``. So ``s`` is the only source
of predictive power in the book: with ``s = 0`` the next mid move is a fair coin whatever the
imbalance (a control market: no strategy should profit there); with ``s > 0`` a heavy bid
(``I > 1/2``) makes buyers more likely, they eat the ask and the mid goes up. Partial buys
shrink ``A`` and so raise ``I`` further: pressure builds up until a sweep releases it.

*Bounds.* Orders ``2 K`` or more ticks behind their side's best price are cancelled (the book
keeps a window around the price). A side that a sweep or a take empties is refilled at once by
a new level (four order sizes) one tick beyond the last price taken. The book is therefore
never empty, never crossed and its spread is at least one tick. An event that would change
nothing (a market order or cancellation against a one-lot best level) emits nothing; the
clock still advances.

*Start.* The first bid is at ``round(start_price / tick)`` ticks and the first ask one tick
above, each followed by ``K - 1`` contiguous levels sized like the placement profile (about
``q_ref`` on average) times lognormal noise (log-sd 0.5).

*What it looks like* (defaults: BTC/USDT, tick 0.01, lot 0.00001, K = 20, 50 events/s,
s = 0.35; measured over a simulated hour): the spread is one tick 98% of the time; 20 to 30
levels a side holding 3 to 6 BTC; best-level size median 0.14 BTC (10%-90%: 0.01-0.4 BTC);
about 6 trades and 1.8 mid moves per second, almost all of one tick. The sign of ``I - 1/2``
just before a mid move matches the move's direction about two times in three (s = 0.35), four
times in five (s = 0.5) and half the time (s = 0).

Output
------
:func:`simulate` yields one :class:`BookSnapshot` (``sequence=1``, ``K`` contiguous levels per
side around ``start_price``), then for every event that changed the book, with update id
``n = 2, 3, ...``: a :class:`Trade` per level taken (aggressor side, best price first), the
:class:`BookDelta` (absolute new sizes of the changed levels, 0 = deleted,
``first_seq = last_seq = n``) and, when the best bid or ask (price or size) changed, a
:class:`BestBidAsk` with ``sequence = n``. ``ts_local = ts_exchange`` = simulated time. Prices
and sizes are the floats nearest to the exact decimals ``ticks * tick`` and ``lots * lot``
(the value of ``round(ticks * tick, tick decimals)``), so their ``repr`` is an exact multiple
of the tick and the lot. The same seed gives the same events: all randomness comes from
``numpy.random.default_rng(sim.seed)``.

The level profile and the event mix are not calibrated to a real market. In particular the
price moves about one tick per sweep: with a 0.01 tick the one-minute standard deviation of
the mid is about 0.1 USDT (0.03 bp), a hundredth of real BTC volatility, so profit targets
and stops measured in basis points are rarely reached on this market.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from decimal import Decimal
from itertools import accumulate
from typing import Iterator

import numpy as np

from bot.config.settings import MarketSection, SimSection
from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, MarketEvent, Trade
from bot.core.market import to_decimal

DEFAULT_START_NS = 1_700_000_000_000_000_000

W_LIMIT = 0.60
W_MARKET = 0.12
W_SWEEP = 0.04
CANCEL_WEIGHT = 0.40  # kappa * D at D = 2 K q_ref
REF_LEVEL_ORDERS = 10.0  # q_ref in median orders
PLACEMENT_EXPONENT = 0.6
ORDER_NOTIONAL_MEDIAN = 600.0  # quote currency
ORDER_SIZE_SIGMA = 1.0
ORDER_SIZE_MAX = 100.0  # in median orders
SWEEP_CONTINUE = 0.2
REMAINDER_ORDERS = 4
WINDOW_FACTOR = 2  # levels kept behind the best price: WINDOW_FACTOR * K
_BLOCK = 4096


def _ratio(step: Decimal) -> tuple[int, int]:
    """``step`` as ``(num, den)`` integers with ``den`` a power of ten."""
    step = Decimal(step).normalize()
    exponent = int(step.as_tuple().exponent)
    if exponent >= 0:
        return int(step), 1
    den = 10 ** -exponent
    return int(step * den), den


def _stream(draw):
    """Endless numbers from ``draw(n)`` blocks: numpy speed, Python-float access."""
    while True:
        yield from draw(_BLOCK).tolist()


class _Side:
    """One side's queues: ``q[i]`` lots at ``i`` ticks behind ``best`` (``q[0] > 0`` always)."""

    __slots__ = ("q", "best", "sign", "total")

    def __init__(self, best: int, sign: int, q: list[int]):
        self.q = q
        self.best = best
        self.sign = sign  # +1 bid (deeper = lower price), -1 ask
        self.total = sum(q)

    def tick_at(self, i: int) -> int:
        return self.best - self.sign * i

    def size_at(self, tick: int) -> int:
        i = self.sign * (self.best - tick)
        return self.q[i] if 0 <= i < len(self.q) else 0

    def add(self, tick: int, lots: int) -> None:
        q = self.q
        i = self.sign * (self.best - tick)
        if i < 0:
            q[0:0] = [lots] + [0] * (-i - 1)
            self.best = tick
        elif i >= len(q):
            q.extend([0] * (i - len(q)))
            q.append(lots)
        else:
            q[i] += lots
        self.total += lots

    def pop_best(self) -> None:
        """Remove the (already emptied) best level and any gap behind it."""
        q = self.q
        self.total -= q[0]
        n = 1
        del q[0]
        while q and q[0] == 0:
            del q[0]
            n += 1
        self.best -= self.sign * n


class SimMarket:
    """State of the simulated market; :meth:`step` runs one event (see the module docstring)."""

    def __init__(self, sim: SimSection, market: MarketSection, start_ts_ns: int = DEFAULT_START_NS):
        self.sim = sim
        self.tick = float(market.tick_size)
        self.lot = float(market.lot_size)
        self._lot_size = market.lot_size
        # Exact decimal steps as integer ratios: ``n * num / den`` (int true division, correctly
        # rounded) is the float nearest to the decimal ``n * step``, the same as round(n * step, d).
        self._tick_num, self._tick_den = _ratio(market.tick_size)
        self._lot_num, self._lot_den = _ratio(market.lot_size)
        self._rng = np.random.default_rng(sim.seed)
        K = sim.levels
        self._window = WINDOW_FACTOR * K
        self._s = sim.imbalance_sensitivity
        self._ns_per_mean_gap = 1e9 / sim.event_rate_hz
        weights = [(1.0 + j) ** -PLACEMENT_EXPONENT for j in range(K)]
        total_w = sum(weights)
        self._placement_cdf = list(accumulate(w / total_w for w in weights))
        self._placement_cdf[-1] = 1.0
        median_lots = ORDER_NOTIONAL_MEDIAN / sim.start_price / self.lot
        self._kappa = CANCEL_WEIGHT / (2 * K * REF_LEVEL_ORDERS * median_lots)
        rng = self._rng
        self._unif = _stream(rng.random).__next__
        self._exp = _stream(rng.standard_exponential).__next__
        size_mu, size_max = math.log(median_lots), max(1.0, ORDER_SIZE_MAX * median_lots)
        self._order_lots = _stream(
            lambda n: np.maximum(1, np.rint(np.minimum(rng.lognormal(size_mu, ORDER_SIZE_SIGMA, n), size_max))).astype(np.int64)
        ).__next__

        # Initial book: K contiguous levels a side, sized like the placement profile.
        bid0 = round(sim.start_price / self.tick)
        if bid0 < 100 * K:
            raise ValueError(
                f"start_price {sim.start_price} is only {bid0} ticks of {market.tick_size}: "
                f"the simulator needs at least {100 * K} (100 x levels) to keep prices positive"
            )
        mean_level = REF_LEVEL_ORDERS * median_lots
        noise = self._rng.lognormal(0.0, 0.5, size=2 * K)
        shape = [w * K / total_w for w in weights]
        bq = [max(1, int(round(mean_level * shape[j] * noise[j]))) for j in range(K)]
        aq = [max(1, int(round(mean_level * shape[j] * noise[K + j]))) for j in range(K)]
        self.bids = _Side(bid0, 1, bq)
        self.asks = _Side(bid0 + 1, -1, aq)

        self.seq = 1
        self.trade_id = 0
        self.now_ns = start_ts_ns
        self.next_ts = start_ts_ns + int(self._exp() * self._ns_per_mean_gap)
        self.events = 0  # simulated events run (including ones that changed nothing)
        self._pending: list[MarketEvent] = []

    # ------------------------------------------------------------------ conversions and reads
    def price(self, tick: int) -> float:
        """Price of a tick index: the float nearest to the exact decimal ``tick * tick_size``."""
        return tick * self._tick_num / self._tick_den

    def size(self, lots: int) -> float:
        """Size of a lot count: the float nearest to the exact decimal ``lots * lot_size``."""
        return lots * self._lot_num / self._lot_den

    @property
    def imbalance(self) -> float:
        """L1 imbalance ``I = B / (B + A)`` that drives the aggressive order flow."""
        b, a = self.bids.q[0], self.asks.q[0]
        return b / (b + a)

    def snapshot(self) -> BookSnapshot:
        """The whole current book as a snapshot valid at the current update id."""
        bids = tuple((self.price(self.bids.tick_at(i)), self.size(n)) for i, n in enumerate(self.bids.q) if n)
        asks = tuple((self.price(self.asks.tick_at(i)), self.size(n)) for i, n in enumerate(self.asks.q) if n)
        return BookSnapshot(self.now_ns, self.now_ns, bids, asks, self.seq)

    def depth(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """All levels as (price, size), best first: (bids, asks)."""
        snap = self.snapshot()
        return list(snap.bids), list(snap.asks)

    # ------------------------------------------------------------------ simulation
    def step(self) -> list[MarketEvent]:
        """Run the next simulated event (at ``next_ts``) and return its market events.

        Events queued by :meth:`take` come first. The list is empty when the event changed
        nothing (a market order or cancellation against a one-lot best level).
        """
        out = self._pending
        self._pending = []
        self.now_ns = now = self.next_ts
        self.next_ts = now + int(self._exp() * self._ns_per_mean_gap)
        self.events += 1
        bids, asks = self.bids, self.asks
        top = (bids.best, bids.q[0], asks.best, asks.q[0])
        changed_b: list[int] = []
        changed_a: list[int] = []
        trades: list[tuple[int, int, str]] = []

        x = self._unif() * (W_LIMIT + W_MARKET + W_SWEEP + self._kappa * (bids.total + asks.total))
        if x < W_LIMIT:
            j = bisect_right(self._placement_cdf, self._unif())
            lots = self._order_lots()
            if self._unif() < 0.5:
                tick = asks.best - 1 - j
                bids.add(tick, lots)
                changed_b.append(tick)
                if len(bids.q) > self._window:
                    self._trim(bids, changed_b)
            else:
                tick = bids.best + 1 + j
                asks.add(tick, lots)
                changed_a.append(tick)
                if len(asks.q) > self._window:
                    self._trim(asks, changed_a)
        elif x < W_LIMIT + W_MARKET + W_SWEEP:
            buy = self._unif() < 0.5 + self._s * (2.0 * bids.q[0] / (bids.q[0] + asks.q[0]) - 1.0)
            if x < W_LIMIT + W_MARKET:
                side, changed = (asks, changed_a) if buy else (bids, changed_b)
                lots = min(self._order_lots(), side.q[0] - 1)
                if lots <= 0:
                    return out
                side.q[0] -= lots
                side.total -= lots
                changed.append(side.best)
                trades.append((side.best, lots, "buy" if buy else "sell"))
            elif buy:
                self._sweep(asks, bids, changed_a, changed_b, trades, "buy")
            else:
                self._sweep(bids, asks, changed_b, changed_a, trades, "sell")
        else:
            side, changed = (bids, changed_b) if self._unif() * (bids.total + asks.total) < bids.total else (asks, changed_a)
            q = side.q
            i = bisect_right(list(accumulate(q)), self._unif() * side.total)
            lots = min(self._order_lots(), q[i] - 1 if i == 0 else q[i])
            if lots <= 0:
                return out
            q[i] -= lots
            side.total -= lots
            changed.append(side.tick_at(i))
            if q[-1] == 0:
                while q[-1] == 0:
                    q.pop()
        out.extend(self._events(now, changed_b, changed_a, trades, top))
        return out

    def _sweep(self, passive: _Side, aggressor: _Side, changed_p: list[int], changed_g: list[int],
               trades: list[tuple[int, int, str]], side: str) -> None:
        last = passive.best
        while True:
            last = passive.best
            trades.append((last, passive.q[0], side))
            changed_p.append(last)
            passive.pop_best()
            if not passive.q or self._unif() >= SWEEP_CONTINUE:
                break
        if not passive.q:
            self._refill(passive, last, changed_p)
        lots = sum(self._order_lots() for _ in range(REMAINDER_ORDERS))
        aggressor.add(last, lots)
        changed_g.append(last)
        if len(aggressor.q) > self._window:
            self._trim(aggressor, changed_g)

    def _refill(self, side: _Side, last: int, changed: list[int]) -> None:
        """Put a fresh level one tick beyond ``last`` on an emptied side."""
        tick = last - side.sign
        side.best = tick
        side.q.append(sum(self._order_lots() for _ in range(REMAINDER_ORDERS)))
        side.total = side.q[0]
        changed.append(tick)

    def _trim(self, side: _Side, changed: list[int]) -> None:
        q = side.q
        for i in range(self._window, len(q)):
            if q[i]:
                changed.append(side.tick_at(i))
                side.total -= q[i]
        del q[self._window:]
        while q[-1] == 0:
            q.pop()

    def _events(self, ts: int, changed_b: list[int], changed_a: list[int],
                trades: list[tuple[int, int, str]], top: tuple[int, int, int, int]) -> list[MarketEvent]:
        self.seq += 1
        seq = self.seq
        price, size = self.price, self.size
        out: list[MarketEvent] = []
        for tick, lots, side in trades:
            self.trade_id += 1
            out.append(Trade(ts, ts, price(tick), size(lots), side, self.trade_id))
        bids, asks = self.bids, self.asks
        out.append(BookDelta(
            ts, ts,
            tuple((price(t), size(bids.size_at(t))) for t in (dict.fromkeys(changed_b) if len(changed_b) > 1 else changed_b)),
            tuple((price(t), size(asks.size_at(t))) for t in (dict.fromkeys(changed_a) if len(changed_a) > 1 else changed_a)),
            seq, seq,
        ))
        bq, aq = bids.q[0], asks.q[0]
        if (bids.best, bq, asks.best, aq) != top:
            out.append(BestBidAsk(ts, ts, price(bids.best), size(bq), price(asks.best), size(aq), seq))
        return out

    # ------------------------------------------------------------------ external orders
    def take(self, side: str, amount: float, ts_ns: int | None = None) -> list[tuple[float, float]]:
        """Execute an external market order now; return its fills ``(price, size)``, best first.

        ``side`` is ``"buy"`` (takes asks) or ``"sell"`` (takes bids). ``amount`` is truncated
        down to whole lots; the order walks the book level by level and what the whole side
        cannot fill is dropped (IOC), after which the emptied side is refilled as after a
        sweep. The resulting Trades, BookDelta and BestBidAsk get the next update id and are
        returned first by the next :meth:`step` (or by :meth:`pop_pending`). They are stamped
        ``max(ts_ns, time of the last event)``; a later ``ts_ns`` also delays the next
        simulated event to no earlier than it.
        """
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', not {side!r}")
        want = int(to_decimal(amount) / self._lot_size) if amount > 0 else 0  # int() truncates
        if want <= 0:
            return []
        changed_b: list[int] = []
        changed_a: list[int] = []
        passive, changed = (self.asks, changed_a) if side == "buy" else (self.bids, changed_b)
        if ts_ns is not None and ts_ns > self.now_ns:
            self.now_ns = ts_ns
            self.next_ts = max(self.next_ts, ts_ns)
        top = (self.bids.best, self.bids.q[0], self.asks.best, self.asks.q[0])
        trades: list[tuple[int, int, str]] = []
        last = passive.best
        while want > 0 and passive.q:
            last = passive.best
            lots = min(want, passive.q[0])
            trades.append((last, lots, side))
            changed.append(last)
            want -= lots
            if lots == passive.q[0]:
                passive.pop_best()
            else:
                passive.q[0] -= lots
                passive.total -= lots
        if not passive.q:
            self._refill(passive, last, changed)
        self._pending.extend(self._events(self.now_ns, changed_b, changed_a, trades, top))
        return [(self.price(tick), self.size(lots)) for tick, lots, _ in trades]

    def pop_pending(self) -> list[MarketEvent]:
        """Take the events queued by :meth:`take` (so the next :meth:`step` does not return them)."""
        out, self._pending = self._pending, []
        return out


def simulate(sim: SimSection, market: MarketSection, start_ts_ns: int = DEFAULT_START_NS) -> Iterator[MarketEvent]:
    """Yield the simulated market's events for ``sim.duration_s`` seconds (see the module docstring)."""
    m = SimMarket(sim, market, start_ts_ns)
    yield m.snapshot()
    end = start_ts_ns + int(round(sim.duration_s * 1e9))
    step = m.step
    while m.next_ts <= end:
        yield from step()
