"""What a restarted daemon takes over from earlier runs in the same database.

An account is the runs of one mode that traded the same instruments (``runs.symbol``: the
symbol, or the config's symbols joined by commas for ``[[markets]]``). Each instrument's position
is rebuilt from every fill (and funding payment, liquidation clearance) of that instrument the
account's runs stored (fills are the only truth about a position; each carries its fee in the
asset charged), with the dust set-asides (risk events of kind ``dust``, stamped with the fill
that left the remainder) replayed in their place. The first instrument's portfolio starts from
the first run's equity, the others from zero cash (:class:`bot.core.account.Account`).

The risk manager's marks are the account's and carry over so that no limit can be escaped by
restarting: the peak equity (drawdown), the first equity mark of the current UTC day (daily
loss: a restart on the same day does not open a new budget) and a daily-loss halt still in force
today.

A database whose runs of the mode traded an overlapping but different set of instruments is
refused (:class:`AccountMismatch`): those positions belong to another account, and sharing an
instrument between two accounts would let each book the other's fills.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.core.market import Market
from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio
from bot.risk.manager import DAY_NS, Halt
from bot.store.store import Store

ORDER_COLUMNS = ("run_id", "client_order_id", "side", "amount", "status", "filled", "exchange_order_id", "ts", "reason", "order_type", "price")
HALT_PREFIX = "carried over from an earlier run today: "


class AccountMismatch(Exception):
    """The database holds runs of this mode on other instrument sets that share an instrument."""


@dataclass
class Restored:
    portfolio: Portfolio
    peak_equity: float
    previous_runs: list[str]
    open_orders: list[dict]
    day: int = -1  # the UTC day of day_start_equity (-1: no mark today yet)
    day_start_equity: float = 0.0
    halt: Halt | None = None


@dataclass
class RestoredAccount:
    """One :class:`Restored` per instrument (same order as the markets); the marks are the account's."""

    lanes: list[Restored] = field(default_factory=list)

    @property
    def first(self) -> Restored:
        return self.lanes[0]

    @property
    def previous_runs(self) -> list[str]:
        return self.first.previous_runs


def account_key(symbols: list[str]) -> str:
    """``runs.symbol`` of an account trading ``symbols`` (the backtest writes the same)."""
    return ",".join(symbols)


def account_runs(db: sqlite3.Connection, mode: str, symbols: list[str]) -> list[str]:
    """The earlier runs of this account, oldest first; :class:`AccountMismatch` on an overlapping other account."""
    key = account_key(symbols)
    wanted = set(symbols)
    for (other,) in db.execute("SELECT DISTINCT symbol FROM runs WHERE mode = ? AND symbol != ?", [mode, key]).fetchall():
        shared = wanted & set(str(other or "").split(","))
        if shared:
            raise AccountMismatch(
                f"the database holds {mode} runs of {other!r}, which share {', '.join(sorted(shared))} with this config's "
                f"instruments ({key}): one instrument cannot belong to two accounts; trade the same instruments as before "
                f"or use another run.db"
            )
    return [r[0] for r in db.execute("SELECT run_id FROM runs WHERE mode = ? AND symbol = ? ORDER BY started_at, rowid", [mode, key]).fetchall()]


def restore(store: Store, mode: str, market: Any, initial_equity: float, *, now_ns: int = 0) -> Restored:
    """The account of one instrument (``market``, a :class:`bot.core.market.Market`)."""
    return restore_account(store, mode, [market], initial_equity, now_ns=now_ns).first


def restore_account(store: Store, mode: str, markets: list[Any], initial_equity: float, *, now_ns: int = 0,
                    runs: list[str] | None = None) -> RestoredAccount:
    """Every instrument of the account of ``markets`` as the earlier runs left it (``runs``: as
    these runs left it, oldest first; a replay of a run restores what that run restored)."""
    db = store.db
    symbols = [m.symbol for m in markets]
    if runs is None:
        runs = account_runs(db, mode, symbols)
    if runs:
        initial_equity = float(db.execute("SELECT initial_equity FROM runs WHERE run_id = ?", [runs[0]]).fetchone()[0])
    lanes = []
    for i, market in enumerate(markets):
        start = Decimal(repr(initial_equity)) if i == 0 else Decimal(0)
        portfolio = Portfolio.start(start, market.base, market.quote, market=market)
        open_orders: list[dict] = []
        if runs:
            _replay(db, runs, market.symbol, portfolio)
            open_orders = _open_orders(db, runs, market.symbol)
        lanes.append(Restored(portfolio, 0.0, runs, open_orders))
    if runs:
        _account_marks(db, runs, now_ns, lanes)
    return RestoredAccount(lanes)


def _replay(db: sqlite3.Connection, runs: list[str], symbol: str, portfolio: Portfolio) -> None:
    """Apply the instrument's stored fills, dust set-asides, adjustments and funding in order.

    Rows written before rows named their instrument (``symbol`` NULL) belong to their run's one symbol.
    """
    marks = ",".join("?" * len(runs))
    mine = "coalesce(symbol, ?) = ?"
    args = [*runs, symbol, symbol]
    dust_events = [int(ts) for (ts,) in db.execute(
        f"SELECT ts FROM risk_events WHERE run_id IN ({marks}) AND {mine} AND kind = 'dust' ORDER BY ts, id", args
    ).fetchall()]
    pending_dust = 0
    for ts, cid, side, price, amount, fee, currency, value, realized in db.execute(
        f"SELECT ts, client_order_id, side, price, amount, fee, fee_currency, fee_value, realized FROM fills "
        f"WHERE run_id IN ({marks}) AND {mine} ORDER BY ts, id", args
    ).fetchall():
        while pending_dust < len(dust_events) and dust_events[pending_dust] < int(ts):
            portfolio.set_aside_dust(dust_events[pending_dust])
            pending_dust += 1
        portfolio.apply(Fill(
            int(ts), cid, Side(side), Decimal(price), Decimal(amount), Decimal(fee),
            fee_currency=currency or "", fee_value=Decimal(value) if value is not None else None, symbol=symbol,
            realized=Decimal(realized) if realized is not None else None,
        ))
    for ts in dust_events[pending_dust:]:
        portfolio.set_aside_dust(ts)
    for (amount,) in db.execute(f"SELECT amount FROM adjustments WHERE run_id IN ({marks}) AND symbol = ? ORDER BY ts, id", [*runs, symbol]).fetchall():
        portfolio.apply_adjustment(Decimal(amount))
    # funding only moves the wallet: its order among the fills does not matter
    for ts, amount in db.execute(f"SELECT ts, amount FROM funding WHERE run_id IN ({marks}) AND symbol = ? ORDER BY ts, id", [*runs, symbol]).fetchall():
        portfolio.apply_funding(Decimal(amount), int(ts))
    portfolio.closed.clear()  # round trips of earlier runs belong to those runs' reports


def _open_orders(db: sqlite3.Connection, runs: list[str], symbol: str) -> list[dict]:
    marks = ",".join("?" * len(runs))
    return [
        dict(zip(ORDER_COLUMNS, row))
        for row in db.execute(
            f"SELECT {', '.join(ORDER_COLUMNS)} FROM orders WHERE run_id IN ({marks}) AND coalesce(symbol, ?) = ? "
            "AND status IN ('new', 'partially_filled') ORDER BY ts",
            [*runs, symbol, symbol],
        ).fetchall()
    ]


def _account_marks(db: sqlite3.Connection, runs: list[str], now_ns: int, lanes: list[Restored]) -> None:
    """Peak equity, today's first equity and today's daily-loss halt: the account's, on every lane."""
    marks = ",".join("?" * len(runs))
    peak = float(db.execute(f"SELECT max(equity) FROM equity WHERE run_id IN ({marks})", runs).fetchone()[0] or 0.0)
    day, day_start, halt = -1, 0.0, None
    if now_ns:
        today = now_ns // DAY_NS
        row = db.execute(
            f"SELECT equity FROM equity WHERE run_id IN ({marks}) AND ts >= ? ORDER BY ts, id LIMIT 1", [*runs, today * DAY_NS]
        ).fetchone()
        if row is not None:
            day, day_start = today, float(row[0])
        found = db.execute(
            f"SELECT detail, ts FROM risk_events WHERE run_id IN ({marks}) AND kind = 'halt' AND rule = 'daily_loss_limit' AND ts >= ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            [*runs, today * DAY_NS],
        ).fetchone()
        if found is not None:
            detail = found[0][len(HALT_PREFIX):] if found[0].startswith(HALT_PREFIX) else found[0]
            halt = Halt("daily_loss_limit", HALT_PREFIX + detail, (today + 1) * DAY_NS)
    for lane in lanes:
        lane.peak_equity, lane.day, lane.day_start_equity, lane.halt = peak, day, day_start, halt


def restore_marks(engine: Any, restored: list[Restored]) -> None:
    """Hand the restored risk marks to an :class:`~bot.engine.account_engine.AccountEngine` built
    on the restored portfolios, and put every carried position's protective prices on its
    average (the daemon at start, and ``bot compare``'s replay of a daemon run)."""
    first = restored[0]
    engine.lanes[0].risk.restore(peak_equity=first.peak_equity, day=first.day, day_start_equity=first.day_start_equity, halt=first.halt)
    for r, lane_engine in zip(restored, engine.lanes):
        pf = r.portfolio
        if not pf.is_flat:
            pf.stop_price, pf.take_profit_price = lane_engine.risk.protective_prices(pf.qty, pf.avg_price)


def market_json(market: Market) -> dict[str, Any]:
    """A market's rules as JSON-able data (decimals as strings): ``runs.replay_json``."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(market).items()}


def market_from_json(data: dict[str, Any]) -> Market:
    """The :class:`Market` :func:`market_json` wrote."""
    kinds = {f.name: f.type for f in dataclasses.fields(Market)}
    return Market(**{k: Decimal(v) if kinds.get(k) in (Decimal, "Decimal") else v for k, v in data.items() if k in kinds})
