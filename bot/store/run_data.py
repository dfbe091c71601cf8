"""Everything the HTML page of a run shows, read from the database in one place.

Why apart from the page: the page is layout; this is the reading, and it reuses the summary's
rules (:func:`bot.store.report.summarize` for every total, its fee expression, its drawdown and
the trade reader of :mod:`bot.store.trades`), so a figure on the page is the figure of
``bot report --json``. Series are as stored: equity rows (``ts`` in ns of event time), fills
(prices and amounts exact), risk events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.report import drawdown_series, fee_expression, find_run, open_run, summarize
from bot.store.trades import Trade, load_trades, open_positions, trade_stats

ZERO = Decimal(0)
# risk events drawn on the equity chart (the rest are listed in the table only)
HALT_KINDS = ("halt", "stuck_exit", "liquidation", "foreign_position", "position_mismatch")


@dataclass(frozen=True)
class FillRow:
    ts: int
    symbol: str
    side: str
    price: Decimal
    amount: Decimal
    fee_value: Decimal
    fee_currency: str
    liquidity: str
    client_order_id: str


@dataclass
class RunData:
    """The summary and the stored series of one run."""

    summary: dict[str, Any]
    symbols: list[str]
    ts: np.ndarray
    equity: np.ndarray
    mid: np.ndarray
    drawdown: np.ndarray
    fills: list[FillRow]
    trades: list[Trade]
    events: list[dict[str, Any]]
    rejects: list[tuple[str, int]]
    open_since: dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> int:
        return int(self.ts[0]) if self.ts.size else 0

    @property
    def end(self) -> int:
        return int(self.ts[-1]) if self.ts.size else 0

    def stats_of(self, symbol: str) -> dict[str, Any]:
        """:func:`bot.store.trades.trade_stats` of one instrument's trades (exposure of its positions only)."""
        trades = [t for t in self.trades if t.symbol == symbol]
        since = {s: t for s, t in self.open_since.items() if s == symbol}
        return trade_stats(trades, since, self.start, self.end)

    def fees_by(self) -> list[dict[str, Any]]:
        """Fee sums (settle currency, exact) by instrument, liquidity and the currency charged."""
        groups: dict[tuple[str, str, str], list[Decimal]] = {}
        for f in self.fills:
            groups.setdefault((f.symbol, f.liquidity, f.fee_currency), []).append(f.fee_value)
        return [{"symbol": k[0], "liquidity": k[1], "fee_currency": k[2], "fills": len(v), "fees": sum(v, ZERO)}
                for k, v in sorted(groups.items())]

    def engine_stat(self, symbol: str, key: str) -> dict[str, Any] | None:
        """An instrument's engine figure (``stats.cost_hurdle``, ``stats.markouts``; under
        ``stats.instruments`` in a several-instrument run)."""
        stats = self.summary.get("stats") or {}
        per = (stats.get("instruments") or {}).get(symbol) or {}
        return per.get(key) or (stats.get(key) if len(self.symbols) <= 1 else None)


def load_run(db_path: str | Path, run_id: str | None = None) -> RunData:
    """Read a run for its page; LookupError (one line) for a missing database or run."""
    summary = summarize(db_path, run_id)
    run_id = summary["run_id"]
    db = open_run(db_path)
    try:
        conn = db.conn
        run = find_run(db, Path(db_path), run_id)
        symbols = [s for s in str(run["symbol"] or "").split(",") if s] or [str(summary.get("symbol") or "")]
        first = symbols[0]
        rows = conn.execute("SELECT ts, equity, mid FROM equity WHERE run_id = ? ORDER BY ts, id", (run_id,)).fetchall()
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        equity = np.array([r[1] for r in rows], dtype=np.float64)
        mid = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=np.float64)
        cols = {r[1] for r in conn.execute("PRAGMA table_info(fills)")}
        sym = "coalesce(symbol, ?)" if "symbol" in cols else "?"
        cur = "fee_currency" if "fee_currency" in cols else "''"
        fills = [FillRow(int(t), s, side, Decimal(p), Decimal(a), Decimal(fv), c or "", liq or "", cid)
                 for t, s, side, p, a, fv, c, liq, cid in conn.execute(
                     f"SELECT ts, {sym}, side, price, amount, {fee_expression(conn)}, {cur}, liquidity, client_order_id "
                     "FROM fills WHERE run_id = ? ORDER BY ts, id", (first, run_id))]
        ecols = {r[1] for r in conn.execute("PRAGMA table_info(risk_events)")}
        esym = "symbol" if "symbol" in ecols else "NULL"
        events = [{"ts": int(t), "symbol": s, "kind": k, "rule": r, "detail": d} for t, s, k, r, d in conn.execute(
            f"SELECT ts, {esym}, kind, rule, detail FROM risk_events WHERE run_id = ? AND kind != 'reject' ORDER BY ts, id", (run_id,))]
        rejects = [(r or "", int(n)) for r, n in conn.execute(
            "SELECT rule, COUNT(*) FROM risk_events WHERE run_id = ? AND kind = 'reject' GROUP BY rule ORDER BY 2 DESC, 1", (run_id,))]
        trades = load_trades(conn, run_id, first)
        carried = json.loads(run["carried_json"]) if run.get("carried_json") else None
        open_since = open_positions(conn, run_id, first, int(ts[0]) if ts.size else 0, carried)
    finally:
        db.close()
    return RunData(summary, symbols, ts, equity, mid, drawdown_series(equity), fills, trades, events, rejects, open_since)
