"""What a restarted daemon takes over from earlier runs in the same database.

The position is rebuilt from every fill (and funding payment) the earlier runs of the same mode and symbol stored
(fills are the only truth about a position; each carries its fee in the asset charged), with the
dust set-asides (risk events of kind ``dust``, stamped with the fill that left the remainder)
replayed in their place, starting from the first such run's equity.

The risk manager's marks carry over so that no limit can be escaped by restarting: the peak
equity (drawdown), the first equity mark of the current UTC day (daily loss: a restart on the
same day does not open a new budget) and a daily-loss halt still in force today.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio
from bot.risk.manager import DAY_NS, Halt
from bot.store.store import Store


@dataclass
class Restored:
    portfolio: Portfolio
    peak_equity: float
    previous_runs: list[str]
    open_orders: list[dict]
    day: int = -1  # the UTC day of day_start_equity (-1: no mark today yet)
    day_start_equity: float = 0.0
    halt: Halt | None = None


def restore(
    store: Store, mode: str, symbol: str, initial_equity: float, *, base: str = "", quote: str = "", now_ns: int = 0, market: Any = None,
) -> Restored:
    """``market`` (a :class:`bot.core.market.Market`) makes the portfolio a derivative one when it is."""
    db = store.db
    runs = [r[0] for r in db.execute(
        "SELECT run_id FROM runs WHERE mode = ? AND symbol = ? ORDER BY started_at, rowid", [mode, symbol]
    ).fetchall()]
    if not runs:
        return Restored(Portfolio.start(Decimal(repr(initial_equity)), base, quote, market=market), 0.0, [], [])
    first_equity = db.execute("SELECT initial_equity FROM runs WHERE run_id = ?", [runs[0]]).fetchone()[0]
    portfolio = Portfolio.start(Decimal(repr(float(first_equity))), base, quote, market=market)
    marks = ",".join("?" * len(runs))
    dust_events = [int(ts) for (ts,) in db.execute(
        f"SELECT ts FROM risk_events WHERE run_id IN ({marks}) AND kind = 'dust' ORDER BY ts, id", runs
    ).fetchall()]
    pending_dust = 0
    for ts, cid, side, price, amount, fee, currency, value, realized in db.execute(
        f"SELECT ts, client_order_id, side, price, amount, fee, fee_currency, fee_value, realized FROM fills WHERE run_id IN ({marks}) ORDER BY ts, id", runs
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
    for (amount,) in db.execute(f"SELECT amount FROM adjustments WHERE run_id IN ({marks}) ORDER BY ts, id", runs).fetchall():
        portfolio.apply_adjustment(Decimal(amount))
    # funding only moves the wallet: its order among the fills does not matter
    for ts, amount in db.execute(f"SELECT ts, amount FROM funding WHERE run_id IN ({marks}) ORDER BY ts, id", runs).fetchall():
        portfolio.apply_funding(Decimal(amount), int(ts))
    portfolio.closed.clear()  # round trips of earlier runs belong to those runs' reports
    peak = db.execute(f"SELECT max(equity) FROM equity WHERE run_id IN ({marks})", runs).fetchone()[0] or 0.0
    open_orders = [
        dict(zip(("run_id", "client_order_id", "side", "amount", "status", "filled", "exchange_order_id", "ts", "reason", "order_type", "price"), row))
        for row in db.execute(
            f"SELECT run_id, client_order_id, side, amount, status, filled, exchange_order_id, ts, reason, order_type, price FROM orders "
            f"WHERE run_id IN ({marks}) AND status IN ('new', 'partially_filled') ORDER BY ts",
            runs,
        ).fetchall()
    ]
    out = Restored(portfolio, float(peak), runs, open_orders)
    if now_ns:
        day = now_ns // DAY_NS
        row = db.execute(
            f"SELECT equity FROM equity WHERE run_id IN ({marks}) AND ts >= ? ORDER BY ts, id LIMIT 1", [*runs, day * DAY_NS]
        ).fetchone()
        if row is not None:
            out.day, out.day_start_equity = day, float(row[0])
        halt = db.execute(
            f"SELECT detail, ts FROM risk_events WHERE run_id IN ({marks}) AND kind = 'halt' AND rule = 'daily_loss_limit' AND ts >= ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            [*runs, day * DAY_NS],
        ).fetchone()
        if halt is not None:
            prefix = "carried over from an earlier run today: "
            detail = halt[0][len(prefix):] if halt[0].startswith(prefix) else halt[0]
            out.halt = Halt("daily_loss_limit", prefix + detail, (day + 1) * DAY_NS)
    return out
