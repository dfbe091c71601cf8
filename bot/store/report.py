"""The run summary, computed from the database alone (no engine state, no log files).

Definitions (all per run):

* ``initial_equity``: the run's own starting equity. A daemon run that resumed a position of
  earlier runs valued it at the mid when it started (``carried``: qty, avg_price, dust, mark,
  value), so ``pnl_net`` is this run's own result, never an earlier run's.
* ``final_equity``: equity of the last equity row (``initial_equity`` if there is none);
  ``pnl_net = final_equity - initial_equity``; ``fees`` = sum of the fills' fee values in the
  quote currency (a fee charged in another asset is valued as the fill recorded it; summed
  exactly as Decimal); ``pnl_gross = pnl_net + fees - funding`` (the trading PnL before costs).
* ``trades``: round trips; ``win_rate``: share of round trips with ``pnl_net > 0`` (None without trades).
* ``max_drawdown``: largest drop from a running peak of the equity rows, as a fraction of that peak.
* ``sharpe``: mean / sample std (ddof=1) of the simple returns between consecutive equity rows,
  annualized by ``sqrt(365*24*3600 / equity_interval_s)`` (the market trades 24/7); None with
  fewer than 3 equity points or zero std.
* ``settle``: the currency every money figure is in (the account's settle currency: USDT for
  spot and USD-M, BTC for COIN-M BTC contracts); ``funding``: the sum of the funding payments
  (received > 0), part of ``pnl_net``.
* ``instruments``: one entry per traded instrument with ``symbol``, ``trades``, ``orders``,
  ``fills``, ``pnl_gross``, ``fees``, ``funding``, ``pnl_net`` computed from that instrument's
  rows; an instrument's ``pnl_net`` is its equity contribution at the run's last checkpoint (the
  ``marks`` row: realized and unrealized PnL less fees, plus funding), so the entries add up to
  the total (a one-instrument run's entry is the total itself).
* ``events``, ``wall_time_s``: from the stats the engine wrote at ``finish_run``; a run whose status
  is still ``running`` did not finish (killed, crashed hard, or still in progress).
"""

from __future__ import annotations

import itertools
import json
import math
import sqlite3
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from bot.store.schema import columns

SECONDS_PER_YEAR = 365 * 24 * 3600
DEFAULT_EQUITY_INTERVAL_S = 1.0
_OWN_STATS = ("events", "wall_time_s")

SUMMARY_KEYS = (
    "run_id", "db", "mode", "symbol", "status", "started_at", "ended_at",
    "events", "wall_time_s", "events_per_s",
    "trades", "fills", "orders", "rejects",
    "pnl_gross", "fees", "pnl_net", "win_rate", "max_drawdown",
    "sharpe", "sharpe_annualization", "initial_equity", "final_equity", "settle", "funding", "carried",
    "instruments", "stats",
)


def settle_of(config: dict[str, Any]) -> str:
    """The settle currency of a stored config snapshot (``[[markets]]`` or ``[market]``)."""
    markets = config.get("markets") or [config.get("market") or {}]
    symbol = str((markets[0] or {}).get("symbol") or "BTC/USDT")
    _, _, rest = symbol.partition("/")
    quote, _, settle = rest.partition(":")
    return settle or quote


def _decimal_sum(conn: sqlite3.Connection, sql: str, params: tuple) -> Decimal:
    """The exact sum of the TEXT quantities ``sql`` selects."""
    return sum((Decimal(v) for (v,) in conn.execute(sql, params)), Decimal(0))


def _instruments(
    conn: sqlite3.Connection, run_id: str, symbols: list[str], total: dict[str, Any], tables: list[str], fee: str
) -> list[dict[str, Any]]:
    """Per-instrument figures from the rows naming each instrument (see the module docstring);
    ``fee`` is the fills' fee expression of this file."""
    if len(symbols) <= 1:
        keys = ("trades", "orders", "fills", "pnl_gross", "fees", "funding", "pnl_net")
        return [{"symbol": symbols[0] if symbols else total.get("symbol"), **{k: total[k] for k in keys}}]
    first = symbols[0]
    # rows of a file written before instruments were stored have no symbol: the run's first
    where = {t: "coalesce(symbol, ?) = ?" if "symbol" in columns(conn, t) else "? = ?" for t in ("round_trips", "orders", "fills")}

    def count(table: str, symbol: str) -> int:
        return conn.execute(f"SELECT COUNT(*) FROM [{table}] WHERE run_id = ? AND {where[table]}", (run_id, first, symbol)).fetchone()[0]

    out = []
    for symbol in symbols:
        fees = _decimal_sum(conn, f"SELECT {fee} FROM fills WHERE run_id = ? AND {where['fills']}", (run_id, first, symbol))
        funding = Decimal(0)
        if "funding" in tables:
            funding = _decimal_sum(conn, "SELECT amount FROM funding WHERE run_id = ? AND symbol = ?", (run_id, symbol))
        pnl = None
        if "marks" in tables:
            row = conn.execute("SELECT pnl FROM marks WHERE run_id = ? AND symbol = ? ORDER BY ts DESC, id DESC LIMIT 1",
                               (run_id, symbol)).fetchone()
            pnl = None if row is None or row[0] is None else float(row[0])
        out.append({
            "symbol": symbol,
            "trades": count("round_trips", symbol),
            "orders": count("orders", symbol),
            "fills": count("fills", symbol),
            "pnl_gross": None if pnl is None else _money(pnl + float(fees) - float(funding)),
            "fees": _money(fees),
            "funding": _money(funding),
            "pnl_net": _money(pnl),
        })
    return out


def _money(x: float | Decimal | None) -> float | None:
    return None if x is None else round(float(x), 8)


def _frac(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest (peak - value) / peak over the series; 0.0 for fewer than 2 points."""
    if equity.size < 2:
        return 0.0
    peak = np.maximum.accumulate(equity)
    valid = peak > 0
    if not valid.any():
        return 0.0
    dd = (peak[valid] - equity[valid]) / peak[valid]
    return max(float(dd.max()), 0.0)


def sharpe_ratio(equity: np.ndarray, equity_interval_s: float) -> float | None:
    """Annualized Sharpe of consecutive simple returns; None if undefined."""
    if equity.size < 3:
        return None
    prev = equity[:-1]
    if np.any(prev <= 0):
        return None  # returns are undefined through zero / negative equity
    returns = np.diff(equity) / prev
    std = float(returns.std(ddof=1))
    if not math.isfinite(std) or std <= 0.0:
        return None
    value = float(returns.mean()) / std * math.sqrt(SECONDS_PER_YEAR / equity_interval_s)
    return value if math.isfinite(value) else None


def _equity_interval(config: dict[str, Any]) -> tuple[float, bool]:
    try:
        value = float(config["store"]["equity_interval_s"])
        if value > 0:
            return value, True
    except (KeyError, TypeError, ValueError):
        pass
    return DEFAULT_EQUITY_INTERVAL_S, False


def _open(db_path: str | Path) -> sqlite_utils.Database:
    path = Path(db_path)
    if not path.is_file():
        raise LookupError(f"no database at {path} (file does not exist)")
    try:
        db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10))  # read-only: a report never writes
        tables = db.table_names()
    except sqlite3.DatabaseError as exc:
        raise LookupError(f"{path} is not an SQLite database ({exc})") from None
    if "runs" not in tables or "meta" not in tables:
        db.close()
        raise LookupError(f"{path} is not an imbalance-bot database (no 'runs' table)")
    return db


def summarize(db_path: str | Path, run_id: str | None = None) -> dict:
    """Summary of ``run_id`` (the latest run if None). Raises LookupError for a missing db or run."""
    path = Path(db_path)
    db = _open(path)
    try:
        conn = db.conn
        if run_id is None:
            row = conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise LookupError(f"no runs in database {path}")
            run_id = row[0]
        runs = list(db.query("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        if not runs:
            known = [r[0] for r in conn.execute("SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 5")]
            raise LookupError(
                f"run {run_id!r} not found in database {path}"
                + (f" (latest runs: {', '.join(known)})" if known else " (it has no runs)")
            )
        run = runs[0]
        config = json.loads(run["config_json"] or "{}")
        stats = json.loads(run["stats_json"]) if run["stats_json"] else {}
        initial_equity = float(run["initial_equity"])

        def count(table: str, where: str = "", params: tuple = ()) -> int:
            return conn.execute(f"SELECT COUNT(*) FROM [{table}] WHERE run_id = ?{where}", (run_id, *params)).fetchone()[0]

        trades = count("round_trips")
        wins = count("round_trips", " AND CAST(pnl_net AS REAL) > 0")
        fills = count("fills")
        orders = count("orders")
        rejects = count("risk_events", " AND kind = ?", ("reject",))
        value = "coalesce(fee_value, fee)" if "fee_value" in columns(conn, "fills") else "fee"
        fees = _decimal_sum(conn, f"SELECT {value} FROM fills WHERE run_id = ?", (run_id,))
        tables = db.table_names()
        funding = Decimal(0)
        if "funding" in tables:
            funding = _decimal_sum(conn, "SELECT amount FROM funding WHERE run_id = ?", (run_id,))

        n_eq = count("equity")
        cur = conn.execute("SELECT equity FROM equity WHERE run_id = ? ORDER BY ts, id", (run_id,))
        equity = np.fromiter(itertools.chain.from_iterable(cur), dtype=np.float64, count=n_eq)

        final_equity = float(equity[-1]) if equity.size else initial_equity
        pnl_net = final_equity - initial_equity
        interval, from_config = _equity_interval(config)
        sharpe = sharpe_ratio(equity, interval)
        annualization = (
            f"mean/std (ddof=1) of simple returns between consecutive equity rows sampled every "
            f"{interval:g}s ({'store.equity_interval_s' if from_config else 'default, not in the run config'}), "
            f"times sqrt(365*24*3600/{interval:g}) = {math.sqrt(SECONDS_PER_YEAR / interval):.2f} (24/7 market)"
        )

        events = stats.get("events")
        wall = stats.get("wall_time_s")
        events_per_s = 0.0
        if isinstance(events, (int, float)) and isinstance(wall, (int, float)) and wall > 0:
            events_per_s = round(events / wall, 1)

        summary = {
            "run_id": run_id,
            "db": str(path),
            "mode": run["mode"],
            "symbol": run["symbol"],
            "status": run["status"],
            "started_at": run["started_at"],
            "ended_at": run["ended_at"],
            "events": events,
            "wall_time_s": None if wall is None else round(float(wall), 3),
            "events_per_s": events_per_s,
            "trades": trades,
            "fills": fills,
            "orders": orders,
            "rejects": rejects,
            "pnl_gross": _money(pnl_net + float(fees) - float(funding)),
            "fees": _money(fees),
            "pnl_net": _money(pnl_net),
            "win_rate": _frac(wins / trades) if trades else None,
            "max_drawdown": _frac(max_drawdown(equity)),
            "sharpe": None if sharpe is None else round(sharpe, 4),
            "sharpe_annualization": annualization,
            "initial_equity": _money(initial_equity),
            "final_equity": _money(final_equity),
            "settle": settle_of(config),
            "funding": _money(funding),
            "carried": json.loads(run["carried_json"]) if run.get("carried_json") else None,
            "instruments": [],
            "stats": {k: v for k, v in stats.items() if k not in _OWN_STATS},
        }
        symbols = [s for s in str(run["symbol"] or "").split(",") if s]
        summary["instruments"] = _instruments(conn, run_id, symbols, summary, tables, value)
        return summary
    finally:
        db.close()


def _ts(value: float | None) -> str:
    if value is None:
        return "n/a"
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _value(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key in ("win_rate", "max_drawdown"):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        if key in ("pnl_gross", "fees", "pnl_net", "initial_equity", "final_equity"):
            return f"{value:.8f}".rstrip("0").rstrip(".")
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def format_summary(summary: dict) -> str:
    """Aligned ``key: value`` lines; a run still ``running`` is flagged as not finished."""
    lines: list[tuple[str, str]] = []
    for key, value in summary.items():
        if key in ("stats", "instruments"):
            continue
        if key == "status" and value == "running":
            text = "running (DID NOT FINISH: no finish_run was recorded; the process was killed or is still running)"
        elif key == "status" and value == "crashed":
            text = "crashed (the process died without closing the run; a later start found it and closed it)"
        elif key in ("started_at", "ended_at"):
            text = _ts(value)
        else:
            text = _value(key, value)
        lines.append((key, text))
    for key, value in sorted((summary.get("stats") or {}).items()):
        lines.append((f"stats.{key}", _value(key, value)))
    width = max((len(k) for k, _ in lines), default=0)
    text = "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)
    return text + "\n\n" + format_instruments(summary.get("instruments") or [], str(summary.get("settle") or ""))


def format_instruments(rows: list[dict[str, Any]], settle: str) -> str:
    """The per-instrument table and its total line (money in ``settle``)."""
    head = ("symbol", "trades", "orders", "fills", "pnl_gross", "fees", "funding", "pnl_net")
    table = [head] + [tuple(_value(k, r.get(k)) for k in head) for r in rows]
    if len(rows) > 1:
        total = ["total"] + [_value(k, sum(r.get(k) or 0 for r in rows) if k in ("trades", "orders", "fills")
                                    else float(sum(r.get(k) or 0 for r in rows))) for k in head[1:]]
        table.append(tuple(total))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    out = [f"instruments (money in {settle or 'the settle currency'}):"]
    out += ["  " + "  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))) for row in table]
    return "\n".join(out)
