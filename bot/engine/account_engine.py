"""Several instruments, one account: route each event to its instrument's engine.

Every instrument has its own :class:`~bot.engine.engine.Engine` (book, signals, strategy, risk
manager, venue); they share the :class:`~bot.core.account.Account` (cash, equity, gross
exposure and margin), the account-wide :class:`~bot.risk.manager.AccountLimits` (halt, peak and
start-of-day equity: a daily loss or drawdown flattens every instrument) and one equity
schedule; client order ids are unique across instruments (:class:`~bot.engine.engine.OrderIds`). With one instrument this is exactly one engine.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from bot.config.settings import Settings
from bot.core.account import Account
from bot.core.events import MarketEvent
from bot.core.market import Market, market_from_section
from bot.core.portfolio import Portfolio
from bot.engine.engine import Engine, EquitySchedule, Venue
from bot.risk.manager import AccountLimits
from bot.store.store import Store

SUMMED_STATS = ("events", "book_updates", "decisions", "orders", "rejects", "venue_rejects", "fills", "halts",
                "unsound_periods", "dust_set_aside", "crossed_book_events", "book_resyncs", "implausible_book_events",
                "price_band_reanchors", "bad_price_levels")


class AccountEngine:
    """The engines of every instrument in ``settings.instruments``, in that order."""

    def __init__(self, settings: Settings, venue_for: Callable[[int, Market], Venue], store: Store, run_id: str,
                 markets: list[Market] | None = None, portfolios: list[Portfolio] | None = None, engine_class: type[Engine] = Engine):
        """``markets`` default to the config's (a backtest); a daemon passes the exchange's, and the
        ``portfolios`` its earlier runs left (:func:`bot.engine.restore.restore_account`)."""
        markets = markets if markets is not None else [market_from_section(m) for m in settings.instruments]
        if portfolios is None:
            self.account = Account.start(markets, Decimal(repr(settings.risk.initial_equity)))
        else:
            self.account = Account(markets, portfolios)
        self.limits = AccountLimits()
        schedule = EquitySchedule(int(settings.store.equity_interval_s * 1e9))
        self.store = store
        self.run_id = run_id
        self.lanes = [
            engine_class(settings, market, venue_for(i, market), store, run_id, account=self.account, limits=self.limits, lane=i,
                   schedule=schedule, market_cfg=settings.instruments[i])
            for i, market in enumerate(markets)
        ]
        self.symbols = [m.symbol for m in markets]

    def on_event(self, lane: int, event: MarketEvent) -> None:
        self.lanes[lane].on_event(event)

    @property
    def now(self) -> int:
        return max(e.now for e in self.lanes)

    def finish(self, reason: str = "end_of_data") -> None:
        """Flatten every instrument, then record the account's final equity and marks once."""
        for engine in self.lanes:
            engine.finish(reason, checkpoint=False)
        self.checkpoint()

    def checkpoint(self) -> None:
        now = self.now
        known = [e for e in self.lanes if e.last_mid == e.last_mid]
        if known:
            known[0]._record_equity(now, self.account.equity())
            for engine in known:
                engine.record_mark(now)
        self.store.flush()

    def run_stats(self) -> dict[str, Any]:
        """The counters summed over the instruments, and each instrument's own under ``instruments``."""
        if len(self.lanes) == 1:
            return self.lanes[0].run_stats()
        per = {e.symbol: e.run_stats() for e in self.lanes}
        first = per[self.lanes[0].symbol]
        out: dict[str, Any] = {key: sum(int(s[key]) for s in per.values()) for key in SUMMED_STATS}  # type: ignore[call-overload]
        out["strategy_mode"] = first["strategy_mode"]
        out["cost_hurdle"] = first["cost_hurdle"]
        out["instruments"] = per
        return out
