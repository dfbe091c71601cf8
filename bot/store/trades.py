"""The trade list (round trips) of a run and the figures a trader reads from it, from the stored rows.

Why a module of its own: ``bot report --trades``, the summary's ``trade_stats`` and the HTML page
show the same trades; one reader and one set of rules keeps them equal. Money stays Decimal (the
store keeps it as exact TEXT) until it is printed.

Definitions (all from ``round_trips``, ``fills``, ``orders`` and ``positions`` rows of the run):

* A trade is a ``round_trips`` row: from the fill that opened a position to the one that made it
  flat (or flipped it). ``pnl_gross`` is its realized PnL, ``fees`` the fees of its fills (their
  share of a fill that also opened the next trade), ``pnl_net = pnl_gross - fees``; money in the
  run's settle currency.
* ``entry_price`` / ``exit_price``: the price of the fill that opened / closed it (the first fill
  at ``open_ts``, the last at ``close_ts``; a position built or closed by several fills at other
  times has other prices too: ``pnl_gross`` is the exact figure).
* ``exit_reason``: the ``reason`` of the order whose fill closed the trade, without the sizing
  cap after ``:`` (``signal``, ``max_holding``, ``stop_loss``, ``take_profit``, ``end_of_data``,
  ``quote``, a halt's rule such as ``daily_loss_limit``...); a fill of no order of ours is
  ``liquidation`` (client ids ``liquidation-``/``autoclose-``) or ``external``; a trade closed
  without a fill (the remainder set aside as dust) is ``dust``.
* ``win_rate``: share of trades with ``pnl_net > 0``; ``win_rate_gross``: with ``pnl_gross > 0``
  (before fees). ``avg_win`` / ``avg_loss``: mean ``pnl_net`` of the trades with ``pnl_net > 0`` /
  ``< 0``. ``profit_factor``: sum of ``pnl_net`` over winners / |sum over losers| (``_gross``: the
  same on ``pnl_gross``); None without a losing trade (``profit_factor_reason`` says so).
* ``exposure_s``: market time with a non-zero position in any instrument: the union of the trades'
  ``[open_ts, close_ts]`` and of a position still open at the end (from the ``positions`` row that
  opened it, or the run's start for a carried one, to the last equity row), clipped to the run's
  span (first to last equity row, event time); ``exposure`` = ``exposure_s / span_s``. Dust does
  not count as a position.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)
_NS = 1_000_000_000
TRADE_COLUMNS = ("id", "symbol", "side", "open_time", "close_time", "holding_s", "max_qty", "entry_price", "exit_price",
                 "pnl_gross", "fees", "pnl_net", "exit_reason")


@dataclass(frozen=True, slots=True)
class Trade:
    """One stored round trip with its prices and exit reason (see the module docstring)."""

    id: int
    symbol: str
    side: str
    open_ts: int
    close_ts: int
    max_qty: Decimal
    entry_price: Decimal | None
    exit_price: Decimal | None
    pnl_gross: Decimal
    fees: Decimal
    pnl_net: Decimal
    exit_reason: str

    @property
    def holding_s(self) -> float:
        return (self.close_ts - self.open_ts) / _NS

    def row(self) -> dict[str, Any]:
        """The trade as a row of :data:`TRADE_COLUMNS` (times in ISO UTC, money exact)."""
        return {"id": self.id, "symbol": self.symbol, "side": self.side, "open_time": iso(self.open_ts),
                "close_time": iso(self.close_ts), "holding_s": round(self.holding_s, 3), "max_qty": self.max_qty,
                "entry_price": self.entry_price, "exit_price": self.exit_price, "pnl_gross": self.pnl_gross,
                "fees": self.fees, "pnl_net": self.pnl_net, "exit_reason": self.exit_reason}


def iso(ts_ns: int) -> str:
    """Event time (ns) as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(ts_ns / _NS, tz=timezone.utc).isoformat(timespec="milliseconds")


def _where_symbol(conn: sqlite3.Connection, table: str, alias: str = "") -> str:
    """A file written before instruments were stored has no ``symbol`` column: its rows are the run's first."""
    have = {row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")}
    return f"coalesce({alias}symbol, ?)" if "symbol" in have else "?"


def _exit_reason(fill: tuple[str, str | None] | None) -> str:
    if fill is None:
        return "dust"
    client_id, reason = fill
    if reason is None:
        return "liquidation" if client_id.startswith(("liquidation", "autoclose")) else "external"
    return reason.partition(":")[0] or "unknown"


def load_trades(conn: sqlite3.Connection, run_id: str, first_symbol: str) -> list[Trade]:
    """The run's round trips in closing order, with entry/exit prices and exit reasons."""
    fsym = _where_symbol(conn, "fills", "f.")
    opening: dict[tuple[str, int], Decimal] = {}
    closing: dict[tuple[str, int], tuple[Decimal, str, str | None]] = {}
    for ts, symbol, price, client_id, reason in conn.execute(
        f"SELECT f.ts, {fsym}, f.price, f.client_order_id, o.reason FROM fills f "
        "LEFT JOIN orders o ON o.run_id = f.run_id AND o.client_order_id = f.client_order_id "
        # only the fills at a trip's ends (a long daemon run has far more fills than it needs here)
        "WHERE f.run_id = ? AND f.ts IN (SELECT open_ts FROM round_trips WHERE run_id = ? UNION SELECT close_ts FROM round_trips WHERE run_id = ?) "
        "ORDER BY f.id", (first_symbol, run_id, run_id, run_id),
    ):
        key = (symbol, int(ts))
        if reason is None:  # an order of an earlier run that filled in this one (a resumed daemon), else none of ours
            row = conn.execute("SELECT reason FROM orders WHERE client_order_id = ? LIMIT 1", (client_id,)).fetchone()
            reason = None if row is None else (row[0] or "")
        opening.setdefault(key, Decimal(price))
        closing[key] = (Decimal(price), client_id, reason)
    tsym = _where_symbol(conn, "round_trips")
    out = []
    for rid, symbol, side, open_ts, close_ts, max_qty, gross, fees, net in conn.execute(
        f"SELECT id, {tsym}, side, open_ts, close_ts, max_qty, pnl_gross, fees, pnl_net FROM round_trips "
        "WHERE run_id = ? ORDER BY close_ts, id", (first_symbol, run_id),
    ):
        close = closing.get((symbol, int(close_ts)))
        out.append(Trade(int(rid), symbol, side, int(open_ts), int(close_ts), Decimal(max_qty),
                         opening.get((symbol, int(open_ts))), None if close is None else close[0],
                         Decimal(gross), Decimal(fees), Decimal(net), _exit_reason(None if close is None else close[1:])))
    return out


def open_positions(conn: sqlite3.Connection, run_id: str, first_symbol: str, start_ns: int, carried: dict | None) -> dict[str, int]:
    """Since when each instrument still open at the end of the run has held its position (ns):
    the ``positions`` row that made it non-zero, or ``start_ns`` for a position carried in."""
    since: dict[str, int | None] = {}
    if carried and Decimal(str(carried.get("qty") or 0)) != ZERO:
        since[first_symbol] = start_ns
    psym = _where_symbol(conn, "positions")
    for ts, symbol, qty in conn.execute(f"SELECT ts, {psym}, qty FROM positions WHERE run_id = ? ORDER BY ts, id", (first_symbol, run_id)):
        if Decimal(qty) == ZERO:
            since[symbol] = None
        elif since.get(symbol) is None:
            since[symbol] = int(ts)
    return {s: t for s, t in since.items() if t is not None}


def union_seconds(intervals: Iterable[tuple[int, int]], start_ns: int, end_ns: int) -> float:
    """Length (s) of the union of ``[a, b]`` intervals (ns) clipped to ``[start_ns, end_ns]``."""
    total, cur_a, cur_b = 0, None, None
    for a, b in sorted((max(a, start_ns), min(b, end_ns)) for a, b in intervals):
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        total += cur_b - cur_a
    return total / _NS


def _mean(values: Sequence[Decimal]) -> Decimal | None:
    return sum(values, ZERO) / len(values) if values else None


def _factor(values: Sequence[Decimal]) -> Decimal | None:
    won = sum((v for v in values if v > 0), ZERO)
    lost = -sum((v for v in values if v < 0), ZERO)
    return won / lost if lost > 0 else None


def trade_stats(trades: Sequence[Trade], open_since: dict[str, int], start_ns: int, end_ns: int) -> dict[str, Any]:
    """The figures of the module docstring over ``trades`` (money as Decimal, rates as floats)."""
    net = [t.pnl_net for t in trades]
    wins = [v for v in net if v > 0]
    losses = [v for v in net if v < 0]
    n = len(trades)
    span_s = max(end_ns - start_ns, 0) / _NS
    intervals = [(t.open_ts, t.close_ts) for t in trades] + [(since, end_ns) for since in open_since.values()]
    exposure_s = union_seconds(intervals, start_ns, end_ns)
    factor = _factor(net)
    return {
        "trades": n,
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": round(len(wins) / n, 6) if n else None,
        "win_rate_gross": round(sum(1 for t in trades if t.pnl_gross > 0) / n, 6) if n else None,
        "avg_win": _mean(wins),
        "avg_loss": _mean(losses),
        "avg_trade": _mean(net),
        "profit_factor": factor,
        "profit_factor_gross": _factor([t.pnl_gross for t in trades]),
        "profit_factor_reason": None if factor is not None else ("no trades" if not n else "no losing trade: the ratio is unbounded"),
        "pnl_gross": sum((t.pnl_gross for t in trades), ZERO),
        "fees": sum((t.fees for t in trades), ZERO),
        "pnl_net": sum(net, ZERO),
        "avg_holding_s": round(sum(t.holding_s for t in trades) / n, 3) if n else None,
        "exposure_s": round(exposure_s, 3),
        "exposure": round(exposure_s / span_s, 6) if span_s > 0 else None,
        "span_s": round(span_s, 3),
        "open_at_end": sorted(open_since),
        "by_exit_reason": by_exit_reason(trades),
    }


def by_exit_reason(trades: Sequence[Trade]) -> list[dict[str, Any]]:
    """One row per exit reason (most trades first): count, net win rate and the three sums."""
    groups: dict[str, list[Trade]] = {}
    for t in trades:
        groups.setdefault(t.exit_reason, []).append(t)
    rows = []
    for reason, group in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        wins = sum(1 for t in group if t.pnl_net > 0)
        rows.append({"exit_reason": reason, "trades": len(group), "wins": wins, "win_rate": round(wins / len(group), 6),
                     "pnl_gross": sum((t.pnl_gross for t in group), ZERO), "fees": sum((t.fees for t in group), ZERO),
                     "pnl_net": sum((t.pnl_net for t in group), ZERO)})
    return rows


# --------------------------------------------------------------------------- text and CSV
def text_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  ") -> str:
    """Aligned plain-text table: the first column left-aligned, the others right-aligned."""
    table = [tuple(str(h) for h in headers)] + [tuple("n/a" if c is None else str(c) for c in row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join(indent + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in table)


def format_trades(trades: Sequence[Trade], settle: str) -> str:
    """The trade list as a text table (``bot report --trades``)."""
    if not trades:
        return "no trades (round trips) in this run"
    rows = [[r[c] for c in TRADE_COLUMNS] for r in (t.row() for t in trades)]
    return f"trades (money in {settle or 'the settle currency'}):\n" + text_table(TRADE_COLUMNS, rows)


def trades_csv(trades: Sequence[Trade]) -> str:
    """The trade list as CSV text with a header row (money exact, as stored)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRADE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for t in trades:
        writer.writerow(t.row())
    return buf.getvalue()


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def _money(x: Decimal | None) -> str:
    return "n/a" if x is None else f"{x:.8f}".rstrip("0").rstrip(".")


def format_trade_stats(stats: dict[str, Any], settle: str) -> str:
    """The trade figures and the per-exit-reason table of the text summary."""
    pf = stats.get("profit_factor")
    pf_text = f"{pf:.4f}" if pf is not None else f"n/a ({stats.get('profit_factor_reason')})"
    pfg = stats.get("profit_factor_gross")
    lines = [
        f"trades (money in {settle or 'the settle currency'}): {stats['trades']}, {stats['wins']} won, {stats['losses']} lost; "
        f"win rate {_pct(stats['win_rate'])} after fees, {_pct(stats['win_rate_gross'])} before",
        f"  average win {_money(stats['avg_win'])}, average loss {_money(stats['avg_loss'])}, average trade {_money(stats['avg_trade'])}",
        f"  profit factor {pf_text} (before fees {'n/a' if pfg is None else f'{pfg:.4f}'})",
        f"  exposure {stats['exposure_s']:g} s of {stats['span_s']:g} s ({_pct(stats['exposure'])}); "
        f"average holding {'n/a' if stats['avg_holding_s'] is None else format(stats['avg_holding_s'], 'g') + ' s'}",
    ]
    reasons = stats.get("by_exit_reason") or []
    if reasons:
        head = ("exit_reason", "trades", "win_rate", "pnl_gross", "fees", "pnl_net")
        lines.append("by exit reason:")
        lines.append(text_table(head, [[r["exit_reason"], r["trades"], _pct(r["win_rate"]), _money(r["pnl_gross"]),
                                         _money(r["fees"]), _money(r["pnl_net"])] for r in reasons]))
    return "\n".join(lines)
