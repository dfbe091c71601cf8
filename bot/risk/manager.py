"""Sizing, protective exits and the limits that flatten and halt trading.

Every intent passes :meth:`RiskManager.check`, which returns either a sized, rounded
:class:`~bot.core.orders.Order` or a :class:`~bot.core.orders.Reject` naming the rule. Rules, in
the order they are applied:

``book_unsound``  the book is resyncing, crossed or one-sided: nothing can be priced.
``stale_book``    no book update for ``max_book_age_s``: we would trade on old prices.
``kill_switch``   config or file kill switch: entries refused, positions flattened.
``halted``        a daily-loss or drawdown halt is in force: entries refused.
``position_open`` an entry while a position is open (one position at a time).
``no_position``   an exit with nothing to exit.
``min_qty`` / ``min_notional``  the size left after every cap is below the exchange minimum.

Entry size is the smallest of:
  risk budget   equity * risk_per_trade / (stop distance + round-trip taker fees), per unit
  order cap     max_order_notional / price
  position cap  max_position_notional / price
  depth cap     max_depth_fraction * visible size of the top N levels on the side we take
then truncated to the lot size. Exits are never capped: leaving a position is always allowed.

:meth:`RiskManager.on_mark` runs on every book update: it tracks peak and start-of-day equity
(UTC days), fires stop-loss and take-profit, and flattens and halts on the daily loss limit
(until the next UTC day) or the maximum drawdown (until restarted by an operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from bot.book.book import OrderBook
from bot.config.settings import RiskSection
from bot.core.market import Market, to_decimal
from bot.core.orders import Intent, IntentKind, Order, Reject, Side
from bot.core.portfolio import Portfolio

DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class Halt:
    rule: str
    detail: str
    until_ts: int | None  # None: until an operator restarts the bot


class RiskManager:
    def __init__(
        self,
        cfg: RiskSection,
        market: Market,
        *,
        depth_levels: int,
        taker_fee_bps: float,
        kill_switch_file: str | Path | None = None,
    ):
        self.cfg = cfg
        self.market = market
        self.depth_levels = depth_levels
        self.fee_rate = taker_fee_bps / 1e4
        self.kill_switch_file = Path(kill_switch_file) if kill_switch_file else None
        self.halt: Halt | None = None
        self.peak_equity = 0.0
        self.day = -1
        self.day_start_equity = 0.0
        self._max_age_ns = int(cfg.max_book_age_s * 1e9)
        self._sl = cfg.stop_loss_bps / 1e4
        self._tp = cfg.take_profit_bps / 1e4

    # ------------------------------------------------------------------ limits
    def kill_switch_on(self) -> bool:
        return self.cfg.kill_switch or (self.kill_switch_file is not None and self.kill_switch_file.exists())

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
            if self.halt is not None and not flat:
                return Intent(IntentKind.EXIT, now, self.halt.rule)
        elif not flat:
            return Intent(IntentKind.EXIT, now, self.halt.rule)

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

    def protective_prices(self, qty: Decimal, avg_price: Decimal) -> tuple[Decimal, Decimal]:
        """Stop-loss and take-profit for a position opened at ``avg_price`` (rounded to the tick)."""
        px = float(avg_price)
        if qty > 0:
            stop, target = px * (1 - self._sl), px * (1 + self._tp)
        else:
            stop, target = px * (1 + self._sl), px * (1 - self._tp)
        return self.market.price_to_precision(stop), self.market.price_to_precision(target)

    # ------------------------------------------------------------------ the door
    def check(
        self, intent: Intent, portfolio: Portfolio, equity: float, book: OrderBook, now: int, client_order_id: str
    ) -> Order | Reject:
        """Turn an intent into an order, or say which rule refused it."""
        if not book.is_sound:
            return Reject(now, intent, "book_unsound", f"book status {book.status.value}")
        if book.age_ns(now) > self._max_age_ns:
            return Reject(now, intent, "stale_book", f"last update {book.age_ns(now) / 1e9:.3f}s ago > {self.cfg.max_book_age_s}s")

        if intent.kind is IntentKind.EXIT:
            if portfolio.is_flat:
                return Reject(now, intent, "no_position", "exit requested while flat")
            side = Side.SELL if portfolio.qty > 0 else Side.BUY
            return Order(client_order_id, now, side, abs(portfolio.qty), reason=intent.reason, reduce_only=True)

        if self.kill_switch_on():
            return Reject(now, intent, "kill_switch", "kill switch engaged")
        if self.halt is not None:
            return Reject(now, intent, "halted", f"{self.halt.rule}: {self.halt.detail}")
        if not portfolio.is_flat:
            return Reject(now, intent, "position_open", f"position {portfolio.qty} already open")

        buy = intent.kind is IntentKind.ENTER_LONG
        price = book.best_ask if buy else book.best_bid
        cfg = self.cfg
        loss_per_unit = price * (self._sl + 2.0 * self.fee_rate)
        visible = book.depth("ask" if buy else "bid", self.depth_levels)
        caps = {
            "risk_budget": equity * cfg.risk_per_trade / loss_per_unit,
            "max_order_notional": cfg.max_order_notional / price,
            "max_position_notional": cfg.max_position_notional / price,
            "max_depth_fraction": cfg.max_depth_fraction * visible,
        }
        binding = min(caps, key=caps.__getitem__)
        amount = self.market.amount_to_precision(caps[binding])
        dprice = to_decimal(price)
        problem = self.market.check_order(amount, dprice)
        if problem is not None:
            rule = "min_notional" if "notional" in problem else "min_qty"
            return Reject(now, intent, rule, f"{problem} (size limited by {binding})")
        return Order(
            client_order_id,
            now,
            Side.BUY if buy else Side.SELL,
            amount,
            reason=f"{intent.reason}:{binding}",
        )

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
        dprice = self.market.price_to_precision(price)
        if (side is Side.BUY and float(dprice) >= book.best_ask) or (side is Side.SELL and float(dprice) <= book.best_bid):
            return Reject(now, intent, "post_only", f"{side.value} at {dprice} would cross the book")
        px = float(dprice)
        cfg = self.cfg
        position = float(portfolio.qty) * side.sign  # > 0: this quote adds to the position
        room = cfg.max_position_notional / px - position
        caps = {
            "quote_notional": quote_notional / px,
            "risk_budget": equity * cfg.risk_per_trade / (px * (self._sl + 2.0 * self.fee_rate)),
            "max_order_notional": cfg.max_order_notional / px,
            "max_position_notional": room,
            "max_depth_fraction": cfg.max_depth_fraction * book.depth("bid" if side is Side.BUY else "ask", self.depth_levels) + max(0.0, -position),
        }
        if side is Side.SELL and not allow_short:
            caps["inventory"] = max(0.0, float(portfolio.qty))
        binding = min(caps, key=caps.__getitem__)
        amount = self.market.amount_to_precision(max(0.0, caps[binding]))
        problem = self.market.check_order(amount, dprice)
        if problem is not None:
            rule = "min_notional" if "notional" in problem else "min_qty"
            return Reject(now, intent, rule, f"{problem} (size limited by {binding})")
        return Order(client_order_id, now, side, amount, order_type="limit_maker", price=dprice, reason=f"quote:{binding}")
