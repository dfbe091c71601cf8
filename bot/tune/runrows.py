"""A trial run's rows, moved from the worker's private database to the main process, and the two
figures the sweep derives from them (the ranking Sharpe and the traded notional)."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

Rows = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def export_run(db_path: str, run_id: str) -> Rows:
    """Every row of one run from a store database, table by table: (column names, row tuples),
    without autoincrement ids (tuples, not dicts: a trial's equity points are thousands of rows,
    pickled to the main process and inserted with one ``executemany`` per table)."""
    from bot.store.store import BUFFERED_TABLES

    conn = sqlite3.connect(db_path, timeout=30)
    try:
        out: Rows = {}
        for table in ("runs", *BUFFERED_TABLES):
            # the columns named in the SELECT, so SQLite leaves the ids out (no tuple rebuilt per row here)
            names = [r[1] for r in conn.execute(f"PRAGMA table_info([{table}])")]
            keep = [k for k in names if not (k == "id" and table != "runs")]
            sql = f"SELECT {', '.join(f'[{k}]' for k in keep)} FROM [{table}] WHERE run_id = ? ORDER BY rowid"
            out[table] = (keep, conn.execute(sql, (run_id,)).fetchall())
        return out
    finally:
        conn.close()


def row_sharpe(rows: Rows, equity_interval_s: float) -> float | None:
    """:func:`bot.store.report.sharpe_ratio` of a trial's equity rows (time order), rounded like the report."""
    import numpy as np

    from bot.store.report import sharpe_ratio

    names, equity = rows["equity"]
    ts, eq = names.index("ts"), names.index("equity")
    curve = [r[eq] for r in sorted(equity, key=lambda r: r[ts])]
    value = sharpe_ratio(np.array(curve, dtype=np.float64), equity_interval_s)
    return None if value is None else round(value, 4)


def traded_notional(db_path: str, run_id: str) -> Decimal:
    """Sum of |price x amount| over the run's fills, exactly (the store keeps them as TEXT)."""
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        rows = conn.execute("SELECT price, amount FROM fills WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        conn.close()
    return sum((abs(Decimal(p) * Decimal(a)) for p, a in rows), Decimal(0))
