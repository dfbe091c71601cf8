"""What a restarted daemon takes over from earlier runs in the same database.

The position is rebuilt from every fill the earlier runs of the same mode and symbol stored
(fills are the only truth about a position), starting from the first such run's equity. The
peak equity carries over so a drawdown halt cannot be escaped by restarting.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio
from bot.store.store import Store


@dataclass
class Restored:
    portfolio: Portfolio
    peak_equity: float
    previous_runs: list[str]
    open_orders: list[dict]


def restore(store: Store, mode: str, symbol: str, initial_equity: float) -> Restored:
    db = store.db
    runs = [r[0] for r in db.execute(
        "SELECT run_id FROM runs WHERE mode = ? AND symbol = ? ORDER BY started_at, rowid", [mode, symbol]
    ).fetchall()]
    if not runs:
        return Restored(Portfolio.start(Decimal(repr(initial_equity))), 0.0, [], [])
    first_equity = db.execute("SELECT initial_equity FROM runs WHERE run_id = ?", [runs[0]]).fetchone()[0]
    portfolio = Portfolio.start(Decimal(repr(float(first_equity))))
    marks = ",".join("?" * len(runs))
    for ts, cid, side, price, amount, fee in db.execute(
        f"SELECT ts, client_order_id, side, price, amount, fee FROM fills WHERE run_id IN ({marks}) ORDER BY ts, id", runs
    ).fetchall():
        portfolio.apply(Fill(int(ts), cid, Side(side), Decimal(price), Decimal(amount), Decimal(fee)))
    portfolio.closed.clear()  # round trips of earlier runs belong to those runs' reports
    peak = db.execute(f"SELECT max(equity) FROM equity WHERE run_id IN ({marks})", runs).fetchone()[0] or 0.0
    open_orders = [
        dict(zip(("run_id", "client_order_id", "side", "amount", "status", "filled", "exchange_order_id", "ts", "reason"), row))
        for row in db.execute(
            f"SELECT run_id, client_order_id, side, amount, status, filled, exchange_order_id, ts, reason FROM orders "
            f"WHERE run_id IN ({marks}) AND status IN ('new', 'partially_filled') ORDER BY ts",
            runs,
        ).fetchall()
    ]
    return Restored(portfolio, float(peak), runs, open_orders)

