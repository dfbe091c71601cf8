"""Sizing, protective exits and the limits that flatten and halt trading.

Every intent passes :meth:`RiskManager.check`, which returns either a sized, rounded
:class:`~bot.core.orders.Order` or a :class:`~bot.core.orders.Reject` naming the rule. Rules, in
the order they are applied:

``book_unsound``  the book is resyncing, crossed or one-sided: nothing can be priced.
``stale_book``    no book update for ``max_book_age_s``: we would trade on old prices.
``kill_switch``   config or file kill switch: entries refused, positions flattened.
``halted``        a daily-loss or drawdown halt is in force: entries refused.
``venue_cooldown`` the venue refused an order on this side moments ago (see below): not yet.
``position_open`` an entry while a position is open (one position at a time).
``no_position``   an exit with nothing to exit.
``min_qty`` / ``min_notional``  the size left after every cap is below the exchange minimum.
``dust``          an exit whose size (the position, capped by what the exchange says is free,
                  rounded down to the lot) is below the exchange minimum: it cannot be sold,
                  and the engine sets it aside as dust instead of retrying it.
``balance_recheck`` an exit when the exchange reports more than one lot less free than the
                  position, in the first balance answer that says so: not yet, the venue reads
                  the balance again (a read taken while an order locked funds).
``balance_mismatch`` the same in a later answer: the books disagree with the account; trading
                  halts without flattening (a halt of the same name) until an operator has looked.

Entry size is the smallest of (money in the account's settle currency, sizes in the
instrument's amount units: base on spot, contracts on derivatives, converted through
:meth:`bot.core.market.Market.value`):
  risk budget   equity * risk_per_trade / (stop distance + round-trip taker fees), per unit
  order cap     max_order_notional
  position cap  max_position_notional
  depth cap     max_depth_fraction * visible size of the top N levels on the side we take
  account caps  max_gross_notional less every other position's value; max_leverage * equity
                less the gross value; derivatives: (max_margin_usage * equity less the margin
                in use) * leverage
then truncated to the lot size. A derivative entry whose estimated liquidation price
(:mod:`bot.risk.liquidation`) lies closer than ``liquidation_buffer_stops`` stop distances is
refused (``liquidation_buffer``).

Account-wide: the halt, peak equity and start-of-day equity live in one :class:`AccountLimits`
shared by every instrument's risk manager, and the equity they see is the account's: a daily
loss or drawdown anywhere halts and flattens every instrument. Exits are never capped by these: leaving a position is always
allowed; they are sized to the position, or to what the exchange reports free when that is less
(a spot sell cannot sell more base than the account holds, e.g. after a fee taken in base).

Venue rejections. Any order the venue refuses starts a cooldown on its side (buy or sell): no
order on that side for ``venue_reject_cooldown_s``, doubling with each further refusal up to
``venue_reject_cooldown_max_s``; a fill on that side resets it. ``max_exit_rejects`` refusals of
exits in a row halt entries (``stuck_exit``, until restart): the exit keeps being retried at the
cooldown's pace, never on every book update.

Last check. Whatever the exchange or a bug says, no order leaves a venue larger than the caps:
:meth:`RiskManager.last_check` is called by the live venue on every order before it is sent.
A position the bot computes beyond its own caps (``POSITION_BREACH_FACTOR`` times
``max_position_notional`` at the mid) is not traded out: it means the bot's books are wrong, so
trading halts (``position_breach``, no flattening) until an operator has looked.

:meth:`RiskManager.on_mark` runs on every book update: it tracks peak and start-of-day equity
(UTC days), fires stop-loss and take-profit, and flattens and halts on the daily loss limit
(until the next UTC day) or the maximum drawdown (until restarted by an operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from bot.book.book import OrderBook
from bot.config.settings import RiskSection
from bot.core.market import Market, to_decimal
from bot.core.orders import Intent, IntentKind, Order, Reject, Side
from bot.core.portfolio import Portfolio
from bot.risk.account_rules import ACCOUNT_CAPS, AccountRules
from bot.risk.wake import RiskWake, risk_wake

if TYPE_CHECKING:
    from bot.core.account import Account

DAY_NS = 86_400 * 1_000_000_000
POSITION_BREACH_FACTOR = 1.25
"""A position worth more than this times ``max_position_notional`` cannot come from the bot's own
sizing (entries are capped at the cap, and the price would have to move 25 % while it is held)."""


@dataclass(frozen=True, slots=True)
class Halt:
    rule: str
    detail: str
    until_ts: int | None  # None: until an operator restarts the bot
    flatten: bool = True  # False: stop trading, but do not trade the position out either


@dataclass(slots=True)
class AccountLimits:
    """The account-wide state every instrument's risk manager shares: one halt, one peak, one day."""

    halt: Halt | None = None
    peak_equity: float = 0.0
    day: int = -1
    day_start_equity: float = 0.0
    halt_seen: Halt | None = None  # the halt last recorded by an engine (recorded once for the account)
    killed: bool = False  # the operator engaged the kill switch (bot.ops control): as risk.kill_switch
    paused: str | None = None  # the operator paused entries: why (exits, stops and halts work as before)


class RiskManager:
    def __init__(
        self,
        cfg: RiskSection,
        market: Market,
        *,
        depth_levels: int,
        taker_fee_bps: float,
        kill_switch_file: str | Path | None = None,
        limits: AccountLimits | None = None,
        account: Account | None = None,
        lane: int = 0,
    ):
        self.cfg = cfg
        self.market = market
        self.limits = limits if limits is not None else AccountLimits()
        self.account = account
        self.lane = lane
        self.account_rules = AccountRules(cfg, market, account, lane)
        self.depth_levels = depth_levels
        self.fee_rate = taker_fee_bps / 1e4
        self.kill_switch_file = Path(kill_switch_file) if kill_switch_file else None
        self._max_age_ns = int(cfg.max_book_age_s * 1e9)
        self._sl = cfg.stop_loss_bps / 1e4
        self._tp = cfg.take_profit_bps / 1e4
        self._blocked_until = {Side.BUY: 0, Side.SELL: 0}
        self._reject_streak = {Side.BUY: 0, Side.SELL: 0}
        self._exit_rejects = 0
        self._mismatch_generation: int | None = None  # the balance answer a mismatch was first seen in

    # ------------------------------------------------------------------ account-wide state
    @property
    def halt(self) -> Halt | None:
        return self.limits.halt

    @halt.setter
    def halt(self, value: Halt | None) -> None:
        self.limits.halt = value

    @property
    def peak_equity(self) -> float:
        return self.limits.peak_equity

    @peak_equity.setter
    def peak_equity(self, value: float) -> None:
        self.limits.peak_equity = value

    @property
    def day(self) -> int:
        return self.limits.day

    @day.setter
    def day(self, value: int) -> None:
        self.limits.day = value

    @property
    def day_start_equity(self) -> float:
        return self.limits.day_start_equity

    @day_start_equity.setter
    def day_start_equity(self, value: float) -> None:
        self.limits.day_start_equity = value

    # ------------------------------------------------------------------ restarts
    def restore(self, *, peak_equity: float, day: int, day_start_equity: float, halt: Halt | None) -> None:
        """Carry the equity marks and a halt in force over from earlier runs of the same account,
        so that a restart neither forgets the drawdown peak nor opens a new daily loss budget."""
        self.peak_equity = peak_equity
        if day >= 0:
            self.day = day
            self.day_start_equity = day_start_equity
        if halt is not None:
            self.halt = halt

    # ------------------------------------------------------------------ venue feedback
    def on_venue_reject(self, side: Side, is_exit: bool, now: int) -> tuple[float, Halt | None]:
        """The venue refused an order on ``side``: block that side; return the cooldown (s) and
        the ``stuck_exit`` halt when exits keep being refused (None otherwise)."""
        streak = self._reject_streak[side] + 1
        self._reject_streak[side] = streak
        cfg = self.cfg
        delay = min(cfg.venue_reject_cooldown_s * 2.0 ** min(streak - 1, 60), cfg.venue_reject_cooldown_max_s)
        self._blocked_until[side] = now + int(delay * 1e9)
        halt = None
        if is_exit:
            self._exit_rejects += 1
            if self._exit_rejects >= cfg.max_exit_rejects and (self.halt is None or self.halt.rule != "stuck_exit"):
                halt = Halt("stuck_exit", f"{self._exit_rejects} exits in a row refused by the venue; entries halted until restart", None)
                self.halt = halt
        return delay, halt

    def on_venue_fill(self, side: Side, is_exit: bool) -> None:
        """An order on ``side`` traded: the venue takes orders there again."""
        self._reject_streak[side] = 0
        self._blocked_until[side] = 0
        if is_exit:
            self._exit_rejects = 0

    def cooling(self, side: Side, now: int) -> bool:
        return now < self._blocked_until[side]

    def venue_wait(self, side: Side) -> int:
        """Until when (ns) orders on ``side`` wait after the venue refused one (0: none); before
        then ``check`` and ``check_quote`` answer ``venue_cooldown`` once their earlier rules pass."""
        return self._blocked_until[side]

    def check_position(self, portfolio: Portfolio, mid: float) -> Halt | None:
        """Halt (without flattening) when the position is beyond what the bot's own caps allow."""
        if portfolio.is_flat or not mid > 0:
            return None
        notional = self.market.value(abs(float(portfolio.qty)), mid)
        limit = self.cfg.max_position_notional * POSITION_BREACH_FACTOR
        if notional <= limit:
            return None
        if self.halt is not None and self.halt.rule == "position_breach":
            return None
        self.halt = Halt(
            "position_breach",
            f"position {portfolio.qty} ({notional:.2f} at mid {mid}) exceeds {POSITION_BREACH_FACTOR} x max_position_notional "
            f"{self.cfg.max_position_notional}: the books disagree with the bot's own sizing; not trading it out, check the exchange",
            None,
            flatten=False,
        )
        return self.halt

    def fill_price_problem(self, price: float, book: OrderBook) -> str | None:
        """Why a fill at ``price`` cannot be real (None if it can): an execution is at a price of
        the book it traded against, so one more than ``price_band`` away from the last sound mid
        is a broken or foreign answer, not a fill."""
        ref = book.ref_mid
        if not ref > 0:
            return None
        if not (0 < price < float("inf")) or abs(price - ref) > self.cfg.price_band * ref:
            return f"{price} is more than price_band {self.cfg.price_band} away from the book's mid {ref}"
        return None

    def last_check(self, order: Order, book: OrderBook) -> str | None:
        """Why ``order`` must not leave the venue (too large for any cap), or None.

        Entries are capped at ``max_order_notional``; exits (reduce-only) at what a position can
        legitimately reach. Priced at the order's limit price or the touch it would take.
        """
        if order.amount <= 0:
            return f"amount {order.amount} is not positive"
        if order.price is not None:
            price = float(order.price)
        else:
            price = book.best_ask if order.side is Side.BUY else book.best_bid
        if not (price > 0 and price < float("inf")):
            return f"no sane price to value it (touch {price})"
        cfg = self.cfg
        cap = cfg.max_position_notional * POSITION_BREACH_FACTOR if order.reduce_only else max(cfg.max_order_notional, 0.0)
        notional = self.market.value(float(order.amount), price)
        slack = self.market.value(float(self.market.lot_size), price)  # one lot of rounding
        if notional > cap * (1 + 1e-9) + slack:
            return f"notional {notional:.2f} ({order.amount} at {price}) exceeds the cap {cap:.2f}"
        return None

    # ------------------------------------------------------------------ limits
    def kill_switch_on(self) -> bool:
        return self.cfg.kill_switch or self.limits.killed or (self.kill_switch_file is not None and self.kill_switch_file.exists())

    # ------------------------------------------------------------------ operator controls
    def operator_control(self, action: str, detail: str) -> tuple[bool, str]:
        """An operator's request (``pause``, ``flatten``, ``kill``): account-wide, in force until
        restart, applied by the next decision through the same rules as every limit. Returns
        (done, what happened)."""
        limits = self.limits
        if action == "pause":
            if limits.paused is None:
                limits.paused = detail
            return True, "entries paused: exits, stops and halts work as before"
        if action == "kill":
            limits.killed = True
            return True, "kill switch engaged: positions are flattened, no entries until restart"
        if action == "flatten":
            halt = limits.halt
            if halt is not None and not halt.flatten:
                return False, f"halt {halt.rule} is in force and does not trade the position out: {halt.detail}"
            if halt is None:
                limits.halt = Halt("operator_flatten", detail, None)
            return True, "flattening: positions are traded out, entries halted until restart"
        return False, f"unknown control {action!r}"

    def on_mark(self, portfolio: Portfolio, equity: float, bid: float, ask: float, now: int) -> Intent | None:
        """Update equity marks; return a flattening intent when a limit or a protective price is hit.

        ``bid``/``ask`` are the prices an exit would trade at, so stops fire on executable prices,
        not on the mid.
        """
        if equity > self.peak_equity:
            self.peak_equity = equity
        day = now // DAY_NS
        if day != self.day:
            self.day = day
            self.day_start_equity = equity
            if self.halt is not None and self.halt.until_ts is not None and now >= self.halt.until_ts:
                self.halt = None
        flat = portfolio.is_flat

        if self.halt is None:
            if self.kill_switch_on():
                self.halt = Halt("kill_switch", "kill switch engaged", None)
            elif equity < self.peak_equity * (1.0 - self.cfg.max_drawdown):
                dd = 1.0 - equity / self.peak_equity
                self.halt = Halt("max_drawdown", f"drawdown {dd:.4%} from peak {self.peak_equity:.2f} exceeds {self.cfg.max_drawdown:.4%}", None)
            elif equity < self.day_start_equity * (1.0 - self.cfg.daily_loss_limit):
                loss = 1.0 - equity / self.day_start_equity
                self.halt = Halt("daily_loss_limit", f"day loss {loss:.4%} exceeds {self.cfg.daily_loss_limit:.4%}", (day + 1) * DAY_NS)
            if self.halt is not None and not flat and self.halt.flatten:
                return Intent(IntentKind.EXIT, now, self.halt.rule)
        elif not flat:
            return Intent(IntentKind.EXIT, now, self.halt.rule) if self.halt.flatten else None

        if flat:
            return None
        if portfolio.qty > 0:
            if portfolio.stop_price is not None and bid <= portfolio.stop_price:
                return Intent(IntentKind.EXIT, now, "stop_loss")
            if portfolio.take_profit_price is not None and bid >= portfolio.take_profit_price:
                return Intent(IntentKind.EXIT, now, "take_profit")
        else:
            if portfolio.stop_price is not None and ask >= portfolio.stop_price:
                return Intent(IntentKind.EXIT, now, "stop_loss")
            if portfolio.take_profit_price is not None and ask <= portfolio.take_profit_price:
                return Intent(IntentKind.EXIT, now, "take_profit")
        return None

    def wake(self, portfolio: Portfolio) -> RiskWake:
        """When :meth:`on_mark` could act next, and where :meth:`liquidation_hit` could hit (:mod:`bot.risk.wake`)."""
        return risk_wake(self, portfolio, DAY_NS)

    def protective_prices(self, qty: Decimal, avg_price: Decimal) -> tuple[Decimal, Decimal]:
        """Stop-loss and take-profit for a position opened at ``avg_price`` (rounded to the tick)."""
        px = float(avg_price)
        if qty > 0:
            stop, target = px * (1 - self._sl), px * (1 + self._tp)
        else:
            stop, target = px * (1 + self._sl), px * (1 - self._tp)
        return self.market.price_to_precision(stop), self.market.price_to_precision(target)

    def liquidation_hit(self, portfolio: Portfolio, mark: float, equity: float) -> float | None:
        return self.account_rules.liquidation_hit(portfolio, mark, equity)

    # ------------------------------------------------------------------ the door
    def check(
        self,
        intent: Intent,
        portfolio: Portfolio,
        equity: float,
        book: OrderBook,
        now: int,
        client_order_id: str,
        available: Decimal | None = None,
        available_generation: int = 0,
    ) -> Order | Reject:
        """Turn an intent into an order, or say which rule refused it.

        ``available``: what the exchange reports free of the asset an exit would sell (None: no
        limit known, as in backtest and paper); ``available_generation`` changes with every
        balance answer (a mismatch is only believed from a second answer).
        """
        if not book.is_sound:
            return Reject(now, intent, "book_unsound", f"book status {book.status.value}")
        if book.age_ns(now) > self._max_age_ns:
            return Reject(now, intent, "stale_book", f"last update {book.age_ns(now) / 1e9:.3f}s ago > {self.cfg.max_book_age_s}s")

        if intent.kind is IntentKind.EXIT:
            if portfolio.is_flat:
                return Reject(now, intent, "no_position", "exit requested while flat")
            if self.halt is not None and not self.halt.flatten:
                return Reject(now, intent, "halted", f"{self.halt.rule}: {self.halt.detail} (not traded out)")
            side = Side.SELL if portfolio.qty > 0 else Side.BUY
            if self.cooling(side, now):
                return Reject(now, intent, "venue_cooldown", f"{side.value} orders refused by the venue; retry after the cooldown")
            size = abs(portfolio.qty)
            if available is not None and side is Side.SELL and available < size:
                if size - available > self.market.lot_size:
                    # not rounding and not a fee in base: the exchange does not hold the position
                    # the books say (funds locked elsewhere, moved, or a wrong answer); selling what
                    # is free would leave the rest looking like dust. A first sight may be a balance
                    # read while an order still locked funds: read it again before concluding.
                    if self._mismatch_generation is None or self._mismatch_generation == available_generation:
                        self._mismatch_generation = available_generation
                        return Reject(now, intent, "balance_recheck", f"position {portfolio.qty}, {available} free: reading the balance again")
                    self.halt = Halt(
                        "balance_mismatch",
                        f"position {portfolio.qty} but the exchange reports {available} {self.market.base} free: not traded, check the account",
                        None,
                        flatten=False,
                    )
                    return Reject(now, intent, "balance_mismatch", self.halt.detail)
                size = max(available, Decimal(0))
            self._mismatch_generation = None
            amount = self.market.amount_to_precision(size)
            price = book.best_bid if side is Side.SELL else book.best_ask
            # a reduce-only exit of a derivative is exempt from the minimum notional (Binance
            # futures MIN_NOTIONAL applies to orders that open or add), never from whole lots
            problem = self.market.check_order(amount, to_decimal(price)) if not self.market.is_derivative else (
                "amount rounds to zero lots" if amount <= 0 else None)
            if problem is not None:
                return Reject(now, intent, "dust", f"position {portfolio.qty} (free {available}): {problem}; set aside as dust")
            return Order(client_order_id, now, side, amount, reason=intent.reason, reduce_only=True, symbol=self.market.symbol)

        if self.kill_switch_on():
            return Reject(now, intent, "kill_switch", "kill switch engaged")
        if self.halt is not None:
            return Reject(now, intent, "halted", f"{self.halt.rule}: {self.halt.detail}")
        if self.limits.paused is not None:
            return Reject(now, intent, "paused", self.limits.paused)
        if not portfolio.is_flat:
            return Reject(now, intent, "position_open", f"position {portfolio.qty} already open")

        buy = intent.kind is IntentKind.ENTER_LONG
        if self.cooling(Side.BUY if buy else Side.SELL, now):
            return Reject(now, intent, "venue_cooldown", "orders on this side refused by the venue; retry after the cooldown")
        price = book.best_ask if buy else book.best_bid
        cfg = self.cfg
        market = self.market
        loss_per_unit = market.value(1.0, price) * (self._sl + 2.0 * self.fee_rate)
        visible = book.depth("ask" if buy else "bid", self.depth_levels)
        caps = {
            "risk_budget": equity * cfg.risk_per_trade / loss_per_unit,
            "max_order_notional": market.amount_for_value(cfg.max_order_notional, price),
            "max_position_notional": market.amount_for_value(cfg.max_position_notional, price),
            "max_depth_fraction": cfg.max_depth_fraction * visible,
        }
        if self.account is not None:
            self.account_rules.caps(caps, equity, price)
        binding = min(caps, key=caps.__getitem__)
        amount = market.amount_to_precision(max(0.0, caps[binding]))
        dprice = to_decimal(price)
        problem = market.check_order(amount, dprice)
        if problem is not None:
            rule = binding if binding in ACCOUNT_CAPS else ("min_notional" if "notional" in problem else "min_qty")
            return Reject(now, intent, rule, f"{problem} (size limited by {binding})")
        side = Side.BUY if buy else Side.SELL
        problem = self.account_rules.liquidation_problem(float(amount) * side.sign, price, equity)
        if problem is not None:
            return Reject(now, intent, "liquidation_buffer", problem)
        return Order(client_order_id, now, side, amount, reason=f"{intent.reason}:{binding}", symbol=market.symbol)

    def check_quote(
        self,
        side: Side,
        price: float,
        quote_notional: float,
        allow_short: bool,
        portfolio: Portfolio,
        equity: float,
        book: OrderBook,
        now: int,
        client_order_id: str,
    ) -> Order | Reject:
        """Size a post-only maker quote, or say which rule refused it.

        The quote is sized like an entry (risk budget, order and position caps, depth share)
        with ``quote_notional`` as a further cap, and never beyond what keeps the position inside
        ``max_position_notional`` (or, without shorting, beyond the inventory it sells).
        """
        intent = Intent(IntentKind.ENTER_LONG if side is Side.BUY else IntentKind.ENTER_SHORT, now, "quote")
        if not book.is_sound:
            return Reject(now, intent, "book_unsound", f"book status {book.status.value}")
        if book.age_ns(now) > self._max_age_ns:
            return Reject(now, intent, "stale_book", f"last update {book.age_ns(now) / 1e9:.3f}s ago > {self.cfg.max_book_age_s}s")
        if self.kill_switch_on():
            return Reject(now, intent, "kill_switch", "kill switch engaged")
        if self.halt is not None:
            return Reject(now, intent, "halted", f"{self.halt.rule}: {self.halt.detail}")
        if self.limits.paused is not None:
            return Reject(now, intent, "paused", self.limits.paused)
        if self.cooling(side, now):
            return Reject(now, intent, "venue_cooldown", f"{side.value} orders refused by the venue; retry after the cooldown")
        dprice = self.market.price_to_precision(price)
        if (side is Side.BUY and float(dprice) >= book.best_ask) or (side is Side.SELL and float(dprice) <= book.best_bid):
            return Reject(now, intent, "post_only", f"{side.value} at {dprice} would cross the book")
        px = float(dprice)
        cfg = self.cfg
        position = float(portfolio.qty) * side.sign  # > 0: this quote adds to the position
        market = self.market
        room = market.amount_for_value(cfg.max_position_notional, px) - position
        caps = {
            "quote_notional": market.amount_for_value(quote_notional, px),
            "risk_budget": equity * cfg.risk_per_trade / (market.value(1.0, px) * (self._sl + 2.0 * self.fee_rate)),
            "max_order_notional": market.amount_for_value(cfg.max_order_notional, px),
            "max_position_notional": room,
            "max_depth_fraction": cfg.max_depth_fraction * book.depth("bid" if side is Side.BUY else "ask", self.depth_levels) + max(0.0, -position),
        }
        if side is Side.SELL and not allow_short:
            caps["inventory"] = max(0.0, float(portfolio.qty))
        if self.account is not None and position >= 0:  # a quote that reduces the position needs no account room
            self.account_rules.caps(caps, equity, px, adds=position > 0)
        binding = min(caps, key=caps.__getitem__)
        amount = market.amount_to_precision(max(0.0, caps[binding]))
        problem = market.check_order(amount, dprice)
        if problem is not None:
            rule = binding if binding in ACCOUNT_CAPS else ("min_notional" if "notional" in problem else "min_qty")
            return Reject(now, intent, rule, f"{problem} (size limited by {binding})")
        problem = self.account_rules.liquidation_problem(float(portfolio.qty) + float(amount) * side.sign, px, equity) if position >= 0 else None
        if problem is not None:
            return Reject(now, intent, "liquidation_buffer", problem)
        return Order(client_order_id, now, side, amount, order_type="limit_maker", price=dprice, reason=f"quote:{binding}", symbol=market.symbol)
