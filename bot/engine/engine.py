"""One engine for every world: feed -> book -> signals -> strategy -> risk -> venue -> portfolio -> store.

The engine is synchronous and driven by events: each market event is applied to the book, due
orders are executed by the venue against the new book, signals update, and at most one new
decision is made. The clock is the event's local timestamp, so a replay is deterministic and a
recorded live session replays to the same decisions.

One order is in flight at a time: while the venue holds a pending order no new decision is made,
so an exit can never race the entry it closes.

What the venue reports back is acted on here, by the risk manager's rules: an order the venue
refused pauses its side (``venue_reject``; repeated exit refusals halt entries, ``stuck_exit``);
a position beyond the caps halts without trading it out (``position_breach``); an exit too small
for the exchange is set aside as dust (``dust``) instead of being retried.
"""

from __future__ import annotations

from decimal import Decimal

from bot.book.book import OrderBook
from bot.config.settings import MarketSection, Settings
from bot.core.account import Account
from bot.core.events import Liquidation, MarketEvent, MarkPrice, Trade
from bot.core.market import Market
from bot.core.orders import Fill, Intent, IntentKind, Order, OrderStatus, Reject, Side
from bot.core.portfolio import Portfolio
from bot.log import enabled_for as log_enabled_for
from bot.log import get_logger
from bot.engine.derivative_booking import DerivativeBooking
from bot.engine.funding import FundingClock
from bot.engine.markouts import Markouts
from bot.engine.quoting import Quoting
from bot.engine.types import EngineStats, EquitySchedule, OrderIds, Venue, market_from_settings
from bot.risk.manager import AccountLimits, RiskManager
from bot.signals.features import SignalEngine
from bot.strategies import Context, Position, Quotes, build as build_strategy
from bot.store.store import Store

OBSERVED = frozenset({Trade, Liquidation, MarkPrice})  # events the signals read without a book change

__all__ = ["Engine", "EngineStats", "EquitySchedule", "OrderIds", "Venue", "market_from_settings"]


class Engine(Quoting, DerivativeBooking):
    """Runs the strategy for one instrument against one venue and records everything in the store.

    Several engines (one per instrument, see :mod:`bot.engine.account_engine`) share one
    :class:`~bot.core.account.Account`, one :class:`~bot.risk.manager.AccountLimits` and one
    :class:`EquitySchedule`; alone, an engine makes its own. Each numbers its orders with its
    own :class:`OrderIds` prefix.

    Bookkeeping an accelerated replay (:mod:`bot.fast.backtest`) reads before it skips events and
    hands back through :meth:`absorb_skipped`: ``sound_seen``/``status_seen`` (the book soundness
    and status last acted on),
    ``next_equity_ts``/``equity_interval_ns`` (the equity curve's schedule), ``spread_sum``/
    ``spread_n`` (the mean relative spread of the cost hurdle) and ``last_mid``.
    """

    def __init__(
        self,
        settings: Settings,
        market: Market,
        venue: Venue,
        store: Store,
        run_id: str,
        portfolio: Portfolio | None = None,
        peak_equity: float = 0.0,
        *,
        account: Account | None = None,
        limits: AccountLimits | None = None,
        lane: int = 0,
        schedule: EquitySchedule | None = None,
        market_cfg: MarketSection | None = None,
    ):
        self.settings = settings
        self.market = market
        self.lane = lane
        self.symbol = market.symbol
        self.market_cfg = market_cfg if market_cfg is not None else settings.instruments[lane]
        self.venue = venue
        self.store = store
        self.run_id = run_id
        self.log = get_logger("bot.engine")
        # per-order info lines build their fields (Decimal to str, the average price) only when
        # an info line would be written: at warning level a backtest skips that work
        self._info = log_enabled_for("info")
        self.book = OrderBook(price_band=settings.risk.price_band)
        self.signals = SignalEngine(settings.signal)
        self.strategy = build_strategy(settings, market)  # strategy.mode from the registry: the engine names none
        if account is None:
            if portfolio is None:
                portfolio = Portfolio.start(Decimal(repr(settings.risk.initial_equity)), market=market)
            account = Account([market], [portfolio])
        self.account = account
        self.portfolio = account.portfolios[lane]
        venue.bind_position(lambda: self.portfolio.qty)  # a simulated venue enforces reduce-only with it
        cap_value = settings.risk.max_position_notional
        self.context = Context(market, self.book, Position(self.portfolio), lambda mid: market.amount_for_value(cap_value, mid),
                               self._resting_quote, lambda side: self.risk.venue_wait(Side(side)))
        self.risk = RiskManager(
            settings.risk,
            market,
            depth_levels=settings.signal.depth_levels,
            taker_fee_bps=settings.execution.taker_fee_bps,
            kill_switch_file=settings.risk.kill_switch_file,
            limits=limits,
            account=account,
            lane=lane,
        )
        if limits is None:
            self.risk.peak_equity = peak_equity
        self.stats = EngineStats()
        self.markouts = Markouts()
        self.last_mid = float("nan")
        self.now = 0
        self.ids = OrderIds(run_id if lane == 0 else f"{run_id}.{lane}")
        self.equity_interval_ns = int(settings.store.equity_interval_s * 1e9)
        self.schedule = schedule if schedule is not None else EquitySchedule(self.equity_interval_ns)
        self.funding = FundingClock(self.market_cfg) if market.is_derivative else None
        # backtest and paper liquidate a derivative position whose mark passed its liquidation
        # price as the exchange would; live sets this False (the exchange does, the bot reads it)
        self.simulate_liquidation = market.is_derivative
        self._liquidations = 0
        self.sound_seen = False
        self.status_seen = self.book.status  # the book status last acted on (a new reason to be unsound is recorded too)
        self._reanchors_seen = 0
        self.spread_sum = 0.0
        self.spread_n = 0

    @property
    def next_equity_ts(self) -> int:
        return self.schedule.next_ts

    @next_equity_ts.setter
    def next_equity_ts(self, value: int) -> None:
        self.schedule.next_ts = value

    # ------------------------------------------------------------------ event loop
    def _resting_quote(self, side: str) -> float | None:
        """The price of our post-only order resting on ``side`` at the venue (the strategy's view of its quotes)."""
        order = self.venue.resting(Side(side))
        return None if order is None or order.price is None else float(order.price)

    def on_event(self, event: MarketEvent) -> None:
        now = event.ts_local
        self.now = now
        self.stats.events += 1
        book = self.book
        changed = book.apply(event)
        if not changed and type(event) in OBSERVED:
            self.signals.observe(event)  # trades, liquidations, mark prices: flow features
        funding = self.funding
        if funding is not None:
            if funding.feed_next and event.ts_exchange >= funding.feed_next and funding.held_for != funding.feed_next:
                funding.hold(self.portfolio.qty)
            if now >= funding.next_ts or type(event) is MarkPrice:
                self._funding(event, now)
        if book.is_sound != self.sound_seen or book.status is not self.status_seen:
            self._soundness_changed(now)
        if self.venue.active:
            for order, fills in self.venue.on_book(book, now, event):
                self._on_execution(order, fills, now)
        if not changed:
            return
        self.stats.book_updates += 1
        state = self.signals.update(book, now)
        if not state.valid:
            return
        self.last_mid = state.mid
        if self.markouts.waiting:
            self.markouts.on_mid(now, state.mid)
        self.spread_sum += state.spread / state.mid
        self.spread_n += 1
        account = self.account
        account.marks[self.lane] = state.mid
        equity = account.equity()
        if now >= self.schedule.next_ts:
            self._record_equity(now, equity)
        if self.simulate_liquidation and not self.portfolio.is_flat:
            liq = self.risk.liquidation_hit(self.portfolio, state.mid, equity)
            if liq is not None:
                self._liquidate(liq, now)
                equity = account.equity()
        if self.venue.has_pending:
            return
        intent = self.risk.on_mark(self.portfolio, equity, book.best_bid, book.best_ask, now)
        halt = self.risk.halt
        if halt is not self.risk.limits.halt_seen:
            self._halt_changed(now)
        if intent is None:
            if halt is not None:
                if self._cancel_quotes(now):
                    return  # resting quotes go first; nothing new while halted
                if not halt.flatten and not self.portfolio.is_flat:
                    return  # a halt that must not trade the position: not even the strategy's exit
            ctx = self.context
            ctx.book, ctx.state, ctx.now = book, state, now
            answer = self.strategy.on_state(ctx)
            if answer is None:
                return
            if type(answer) is Quotes:
                if halt is None:
                    self._quote(answer, state.score, equity, now)
                return
            intent = answer  # type: ignore[assignment]
        elif self._cancel_quotes(now):
            return  # the risk manager's exit waits until the quotes are off the book
        self._decide(intent, equity, now)  # type: ignore[arg-type]

    def absorb_skipped(
        self,
        *,
        last_mid: float,
        spread_sum: float,
        spread_n: int,
        peak_equity: float,
        equity_points: list[tuple[int, float]],
        next_equity_ts: int,
    ) -> None:
        """Take the bookkeeping of book updates that ``on_event`` would have handled without a
        decision (no order due, no intent possible): the last mid, the spread accumulator, the
        peak equity mark and the equity points ``(ts, mid)`` due meanwhile, all computed by the
        caller with the same float operations as ``on_event``. The portfolio did not change
        between those updates, so each point's equity is ``Portfolio.equity(mid)``.
        """
        if equity_points:
            pf = self.portfolio
            row_qty, row_cash = float(pf.qty), float(pf.cash)
            self.store.record_equity_many(self.run_id, [(ts, pf.equity(mid), mid, row_qty, row_cash) for ts, mid in equity_points])
            ts = equity_points[-1][0]
            expected = ts - ts % self.equity_interval_ns + self.equity_interval_ns
            if next_equity_ts != expected:
                raise ValueError(f"equity schedule diverged: after a point at {ts} the next is due at {expected}, not {next_equity_ts}")
        self.next_equity_ts = next_equity_ts
        self.last_mid = last_mid
        if last_mid == last_mid:
            self.account.marks[self.lane] = last_mid  # the final equity and marks value the position here
        self.spread_sum = spread_sum
        self.spread_n = spread_n
        self.risk.peak_equity = peak_equity

    def poll(self, now: int) -> None:
        """Collect venue results when no market event arrives (live venues finish orders on their own).

        A simulated venue (``event_clock``: paper) keeps event time: executing it at the wall
        clock's ``now`` would fill on the book before the next event at a moment no event marks,
        which no replay of the run's events could reproduce."""
        if getattr(self.venue, "event_clock", False):
            return
        self.now = max(self.now, now)
        if self.venue.active:
            for order, fills in self.venue.on_book(self.book, now):
                self._on_execution(order, fills, now)

    def finish(self, reason: str = "end_of_data", checkpoint: bool = True) -> None:
        """Cancel resting quotes, flatten any open position on the last book, record the final
        equity (``checkpoint=False``: the account's engine records it once for every instrument)."""
        now = self.now
        latency = int(self.settings.execution.latency_ms * 1e6)
        if self._cancel_quotes(now) or self.venue.has_pending:
            for order, fills in self.venue.on_book(self.book, now + latency):
                self._on_execution(order, fills, now + latency)
            self.now = now = now + latency
        if not self.portfolio.is_flat and not self.venue.has_pending:
            equity = self.account.equity()
            # the last update's own time: the book is as fresh as it will ever be
            self._decide(Intent(IntentKind.EXIT, now, reason), equity, max(now, self.book.last_update_ts))
        if self.venue.has_pending:
            due = now + latency
            for order, fills in self.venue.on_book(self.book, due):
                self._on_execution(order, fills, due)
            self.now = max(now, due)
        self.abandon_orders()  # what could not execute (the data ended on an unsound book) ends with the run
        if checkpoint:
            self.checkpoint()

    # ------------------------------------------------------------------ decisions
    def _next_client_order_id(self) -> str:
        return self.ids.take()

    def _decide(self, intent: Intent, equity: float, now: int) -> None:
        venue = self.venue
        available = venue.available(self.market.base) if intent.kind is IntentKind.EXIT and not self.market.is_derivative else None
        result = self.risk.check(intent, self.portfolio, equity, self.book, now, self._next_client_order_id(), available, venue.balance_generation)
        if isinstance(result, Reject):
            self.ids.give_back()  # the id was not used: ids stay contiguous (SentIds keeps them flat)
            if result.rule == "venue_cooldown":
                return  # nothing was decided: not yet
            if result.rule == "balance_recheck":
                venue.recheck_balance()  # not yet either: the balance is read again before anything is concluded
                return
        self.stats.decisions += 1  # a "not yet" above is none: the count does not depend on how many updates a wait spans
        if isinstance(result, Reject):
            if result.rule == "dust":
                self._set_aside_dust(now, result.detail)
                return
            self.stats.rejects += 1
            self.strategy.on_reject(intent.kind.value, now)
            self.store.record_risk_event(self.run_id, now, "reject", result.rule, f"{intent.kind.value}: {result.detail}", self.symbol)
            if self._info:
                self.log.info("order rejected", intent=intent.kind.value, reason=intent.reason, rule=result.rule, detail=result.detail, score=round(intent.score, 4))
            return
        order = result
        self.stats.orders += 1
        self.venue.submit(order, now)
        self.store.record_order(self.run_id, order)
        if self._info:
            self.log.info(
                "order sent",
                client_order_id=order.client_order_id,
                side=order.side.value,
                amount=str(order.amount),
                reason=order.reason,
                score=round(intent.score, 4),
                bid=self.book.best_bid,
                ask=self.book.best_ask,
            )

    def _set_aside_dust(self, now: int, detail: str) -> None:
        """An exit too small for the exchange: keep it as dust (valued, never re-sent)."""
        pf = self.portfolio
        left_by = pf.last_fill_ts
        trip = pf.set_aside_dust(now)
        self.stats.dust_set_aside += 1
        if trip is not None:
            self.store.record_round_trip(self.run_id, trip, self.symbol)
        pf.closed.clear()
        # stamped with the fill that left the remainder, so a restart replays it in its place
        self.store.record_risk_event(self.run_id, left_by, "dust", "min_order", detail, self.symbol)
        self._record_position(now)
        self.log.warning("position remainder set aside as dust", dust=str(pf.dust), detail=detail)

    def _moot_exit(self, order: Order) -> bool:
        """A reduce-only order that ended without a fill while no position is left: nothing was
        refused and the book was not thin, the position was closed before it executed (a
        liquidation, a quote's fill) and the venue expired it with nothing to reduce."""
        return order.reduce_only and order.filled == 0 and self.portfolio.is_flat

    def _venue_feedback(self, order: Order, fills: list[Fill], now: int) -> None:
        """The risk manager's reaction to what the venue did with an order."""
        risk = self.risk
        # a market exit that came back without any fill (expired in a thin book) is as good as
        # refused: re-sending it on the next update would storm the exchange the same way
        unfilled_exit = order.reduce_only and order.order_type == "market" and not fills and order.filled == 0 and order.status in (
            OrderStatus.EXPIRED, OrderStatus.CANCELED)
        if unfilled_exit and self._moot_exit(order):
            self.log.info("exit not needed any more: the position was closed first", client_order_id=order.client_order_id,
                          reason=order.reject_reason or "ended without a fill")
            return
        if order.status is OrderStatus.REJECTED or unfilled_exit:
            self.stats.venue_rejects += 1
            delay, halt = risk.on_venue_reject(order.side, order.reduce_only, now)
            what = "exit" if order.reduce_only else ("quote" if order.order_type != "market" else "entry")
            reason = order.reject_reason or ("ended without a fill" if unfilled_exit else "no reason given")
            self.store.record_risk_event(
                self.run_id, now, "venue_reject", what,
                f"{order.client_order_id} {order.side.value} {order.amount}: {reason}; no {order.side.value} order for {delay:g}s",
                self.symbol,
            )
            self.log.warning("order refused by the venue", client_order_id=order.client_order_id, kind=what, reason=reason, cooldown_s=delay)
            if halt is not None:
                self.store.record_risk_event(self.run_id, now, "stuck_exit", halt.rule, halt.detail, self.symbol)
                self._halt_changed(now)
        elif fills:
            risk.on_venue_fill(order.side, order.reduce_only)
            mid = self.last_mid if self.last_mid == self.last_mid else float(fills[-1].price)
            if risk.check_position(self.portfolio, mid) is not None:
                self._halt_changed(now)

    def _book_fills(self, fills: list[Fill]) -> None:
        """Apply fills to the position and store them with the round trips they close."""
        portfolio = self.portfolio
        for fill in fills:
            self.stats.fills += 1
            if fill.liquidity == "maker":
                price = float(fill.price)
                self.markouts.on_fill(fill.ts, fill.side is Side.BUY, price, abs(self.market.value(float(fill.amount), price)), self.last_mid)
            trip = portfolio.apply(fill)
            self.store.record_fill(self.run_id, fill)
            if trip is not None:
                self.store.record_round_trip(self.run_id, trip, self.symbol)
                if self._info:
                    self.log.info("round trip closed", side=trip.side, pnl_net=str(trip.pnl_net), fees=str(trip.fees))
        portfolio.closed.clear()  # recorded in the store; a daemon must not keep every round trip in memory

    def _on_execution(self, order: Order, fills: list[Fill], now: int) -> None:
        portfolio = self.portfolio
        was_flat = portfolio.is_flat
        self._book_fills(fills)
        if fills:
            self._record_position(now)
        if was_flat and not portfolio.is_flat:
            stop, target = self.risk.protective_prices(portfolio.qty, portfolio.avg_price)
            portfolio.stop_price, portfolio.take_profit_price = stop, target
            order.stop_price, order.take_profit_price = stop, target
            self.strategy.on_entry(now)
        elif fills and not portfolio.is_flat and order.order_type != "market":
            # a maker position grows or shrinks by quotes: keep its protective prices on its average
            portfolio.stop_price, portfolio.take_profit_price = self.risk.protective_prices(portfolio.qty, portfolio.avg_price)
        self.store.record_order(self.run_id, order)
        if self._info:
            self.log.info(
                "order update",
                client_order_id=order.client_order_id,
                status=order.status.value,
                filled=str(order.filled),
                fills=len(fills),
                avg_price=str(portfolio.avg_price),
                position=str(portfolio.qty),
            )
        if order.status is OrderStatus.EXPIRED and order.filled < order.amount and order.order_type == "market" and not self._moot_exit(order):
            # the rest of a market order expires in a thin book, unless the venue said why (a reduce-only cap)
            why = f": {order.reject_reason}" if order.reject_reason else ""
            self.store.record_risk_event(self.run_id, now, "partial_fill", "venue" if why else "book_depth",
                                         f"{order.client_order_id} filled {order.filled} of {order.amount}{why}", self.symbol)
        if fills or order.status is not OrderStatus.FILLED:
            self._venue_feedback(order, fills, now)

    def run_stats(self) -> dict[str, object]:
        """Counters stored with the run when it ends (``stats`` in the report)."""
        return {
            **self.stats.as_dict(),
            "crossed_book_events": self.book.crossed_events,
            "book_resyncs": self.book.resyncs,
            "implausible_book_events": self.book.implausible_events,
            "price_band_reanchors": self.book.reanchors,
            "bad_price_levels": self.book.bad_prices,
            "strategy_mode": self.settings.strategy.mode,
            "cost_hurdle": self.cost_hurdle(),
            "markouts": self.markouts.stats(),
        }

    def abandon_orders(self) -> None:
        """The process stops: store the orders that end with it (a simulated venue's), so the
        database never keeps an order ``new`` that nothing will ever execute."""
        for order in self.venue.abandon():
            self.store.record_order(self.run_id, order)
            self.log.info("order cancelled at stop", client_order_id=order.client_order_id, reason=order.reject_reason)

    def checkpoint(self) -> None:
        """Record the current equity and this instrument's mark (if the market is known); flush."""
        if self.last_mid == self.last_mid:
            self._record_equity(self.now, self.account.equity())
            self.record_mark(self.now)
        self.store.flush()

    def record_mark(self, now: int) -> None:
        """This instrument's mid, position and PnL so far (its equity less its initial cash): the
        per-instrument rows of ``bot report``."""
        pf = self.portfolio
        pnl = self.account.contribution(self.lane) - float(pf.initial_cash)
        self.store.record_mark(self.run_id, now, self.symbol, self.last_mid, pf.qty + pf.dust, pnl)

    def cost_hurdle(self) -> dict[str, float | str | None]:
        """What a round trip costs on this market, in bps: the bar any signal must clear.

        Without a single sound book state the mean spread is undefined: it and the taker round
        trip are None (never NaN, which is not JSON) and ``note`` says why.
        """
        ex = self.settings.execution
        maker = round(2 * ex.maker_fee_bps, 4)
        if not self.spread_n:
            return {
                "mean_spread_bps": None,
                "taker_round_trip_bps": None,
                "maker_round_trip_bps": maker,
                "note": "no sound book state was seen, so the spread (and the taker round trip) is unknown",
            }
        spread = self.spread_sum / self.spread_n * 1e4
        return {
            "mean_spread_bps": round(spread, 4),
            "taker_round_trip_bps": round(2 * ex.taker_fee_bps + spread, 4),
            "maker_round_trip_bps": maker,
        }

    # ------------------------------------------------------------------ bookkeeping
    def _record_equity(self, now: int, equity: float) -> None:
        """An equity point of the account (``mid`` and ``position_qty`` of the instrument that updated)."""
        self.store.record_equity(self.run_id, now, equity, self.last_mid, float(self.portfolio.qty), float(self.account.cash))
        self.schedule.next_ts = now - now % self.equity_interval_ns + self.equity_interval_ns

    def _record_position(self, now: int) -> None:
        pf = self.portfolio
        self.store.record_position(
            self.run_id, now, pf.qty, pf.avg_price, pf.realized_pnl, self.account.cash, pf.fees, pf.dust, self.symbol, pf.funding,
        )

    def _soundness_changed(self, now: int) -> None:
        was_sound = self.sound_seen
        self.sound_seen = self.book.is_sound
        self.status_seen = self.book.status
        if self.sound_seen:
            if not was_sound:
                reanchors = self.book.reanchors
                if reanchors != self._reanchors_seen:  # only ever on a fresh snapshot, so always at a soundness change
                    self._reanchors_seen = reanchors
                    detail = f"the price moved beyond risk.price_band while the book was rebuilt; fresh snapshots agree on mid {self.book.ref_mid}"
                    self.store.record_risk_event(self.run_id, now, "reanchor", "price_band", detail, self.symbol)
                    self.log.warning("price band re-anchored", mid=self.book.ref_mid)
                self.store.record_risk_event(self.run_id, now, "resume", "book_sound", "book sound again: trading allowed", self.symbol)
                self.log.info("book sound", depth_sequence=self.book.depth_sequence)
        else:
            if was_sound:
                self.stats.unsound_periods += 1
            self.store.record_risk_event(self.run_id, now, "book_unsound", self.book.status.value, "no trading until the book is sound", self.symbol)
            self.log.warning("book unsound", status=self.book.status.value)

    def _halt_changed(self, now: int) -> None:
        halt = self.risk.halt
        self.risk.limits.halt_seen = halt
        if halt is None:
            self.store.record_risk_event(self.run_id, now, "resume", "halt_expired", "halt lifted")
            self.log.info("halt lifted")
            return
        self.stats.halts += 1
        self.store.record_risk_event(self.run_id, now, "halt", halt.rule, halt.detail)
        self.log.warning("trading halted", rule=halt.rule, detail=halt.detail)
