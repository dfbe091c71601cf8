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
* ``sharpe``: of daily returns, annualized by sqrt(365), once the run holds at least 30 of them;
  else None and ``sharpe_reason`` says why (:mod:`bot.store.ratios`, which also gives Sortino,
  CAGR and Calmar under ``ratios``). A 10-minute run has no Sharpe: the mean/std of 1-second
  returns times sqrt(seconds per year) is noise (-4,000 on the shared recording).
  :func:`sharpe_ratio` (per equity row, annualized by ``sqrt(365*24*3600 / equity_interval_s)``)
  is kept for ranking tuning trials against each other, never for the report.
* ``trade_stats``: the trade figures of :mod:`bot.store.trades` (win rate before and after fees,
  average win and loss, profit factor, exposure, results per exit reason).
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

from bot.store.ratios import MIN_RETURNS, RETURN_PERIOD_S, risk_ratios, too_short
from bot.store.schema import columns
from bot.store.trades import format_trade_stats, load_trades, open_positions, text_table, trade_stats

SECONDS_PER_YEAR = 365 * 24 * 3600
SHARPE_DEFINITION = (
    f"mean/std (ddof=1) of daily returns (equity at every whole {RETURN_PERIOD_S // 3600} h of market time since the first "
    f"equity row), times sqrt(365) (24/7 market); null with sharpe_reason below {MIN_RETURNS} daily returns"
)
_OWN_STATS = ("events", "wall_time_s")

SUMMARY_KEYS = (
    "run_id", "db", "mode", "symbol", "status", "started_at", "ended_at",
    "events", "wall_time_s", "events_per_s",
    "trades", "fills", "orders", "rejects",
    "pnl_gross", "fees", "pnl_net", "win_rate", "max_drawdown",
    "sharpe", "sharpe_annualization", "initial_equity", "final_equity", "settle", "funding", "carried",
    "instruments", "stats", "sharpe_reason", "ratios", "trade_stats",
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


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """(running peak - value) / running peak at every row; 0 where the peak is not positive."""
    peak = np.maximum.accumulate(equity) if equity.size else equity
    out = np.zeros_like(equity)
    valid = peak > 0
    out[valid] = (peak[valid] - equity[valid]) / peak[valid]
    return out


def max_drawdown(equity: np.ndarray) -> float:
    """Largest value of :func:`drawdown_series`; 0.0 for fewer than 2 points."""
    if equity.size < 2:
        return 0.0
    return max(float(drawdown_series(equity).max()), 0.0)


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


def fee_expression(conn: sqlite3.Connection) -> str:
    """The SQL of a fill's fee in the settle currency: its ``fee_value``, or ``fee`` in files
    written before fees were valued (every fee sum of a report uses it)."""
    return "coalesce(fee_value, fee)" if "fee_value" in columns(conn, "fills") else "fee"


def equity_rows(conn: sqlite3.Connection, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The run's equity rows in time order: (ts in ns as int64, equity as float64)."""
    n = conn.execute("SELECT COUNT(*) FROM equity WHERE run_id = ?", (run_id,)).fetchone()[0]
    cur = conn.execute("SELECT ts, equity FROM equity WHERE run_id = ? ORDER BY ts, id", (run_id,))
    rows = np.fromiter(cur, dtype=[("ts", np.int64), ("equity", np.float64)], count=n)  # ns do not fit a float64
    return rows["ts"].copy(), rows["equity"].copy()


def equity_values(conn: sqlite3.Connection, run_id: str) -> np.ndarray:
    """The run's equity column in time order (a third faster to read than with the timestamps)."""
    n = conn.execute("SELECT COUNT(*) FROM equity WHERE run_id = ?", (run_id,)).fetchone()[0]
    cur = conn.execute("SELECT equity FROM equity WHERE run_id = ? ORDER BY ts, id", (run_id,))
    return np.fromiter(itertools.chain.from_iterable(cur), dtype=np.float64, count=n)


def open_run(db_path: str | Path) -> sqlite_utils.Database:
    """The database opened read-only, after checking it is the bot's (LookupError naming the path)."""
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
    # one read transaction for everything read through it (ended by ``db.close()``): a report of a
    # run a daemon is still writing sums rows of one commit, not counts from one flush and
    # equity from the next
    db.conn.execute("BEGIN")
    return db


def find_run(db: sqlite_utils.Database, path: Path, run_id: str | None) -> dict[str, Any]:
    """The ``runs`` row of ``run_id`` (the latest run if None); LookupError naming the latest runs."""
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
    return runs[0]


def money_floats(obj: Any) -> Any:
    """``obj`` with every Decimal as a float rounded like the summary's money (8 decimals), for JSON."""
    if isinstance(obj, Decimal):
        return _money(obj)
    if isinstance(obj, dict):
        return {k: money_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [money_floats(v) for v in obj]
    return obj


def summarize(db_path: str | Path, run_id: str | None = None) -> dict:
    """Summary of ``run_id`` (the latest run if None). Raises LookupError for a missing db or run."""
    path = Path(db_path)
    db = open_run(path)
    try:
        conn = db.conn
        run = find_run(db, path, run_id)
        run_id = run["run_id"]
        config = json.loads(run["config_json"] or "{}")
        stats = json.loads(run["stats_json"]) if run["stats_json"] else {}
        initial_equity = float(run["initial_equity"])

        def count(table: str, where: str = "", params: tuple = ()) -> int:
            return conn.execute(f"SELECT COUNT(*) FROM [{table}] WHERE run_id = ?{where}", (run_id, *params)).fetchone()[0]

        fills = count("fills")
        orders = count("orders")
        rejects = count("risk_events", " AND kind = ?", ("reject",))
        value = fee_expression(conn)
        fees = _decimal_sum(conn, f"SELECT {value} FROM fills WHERE run_id = ?", (run_id,))
        tables = db.table_names()
        funding = Decimal(0)
        if "funding" in tables:
            funding = _decimal_sum(conn, "SELECT amount FROM funding WHERE run_id = ?", (run_id,))

        # one aggregate each: SQLite answers a lone min() or max() from the (run_id, ts) index
        start, end = (conn.execute(f"SELECT {f}(ts) FROM equity WHERE run_id = ?", (run_id,)).fetchone()[0] for f in ("min", "max"))
        ratios = too_short(start, end)  # a short run (every backtest of minutes) needs no timestamps
        if ratios is None:
            ts, equity = equity_rows(conn, run_id)
            drawdown = max_drawdown(equity)
            ratios = risk_ratios(ts, equity, drawdown)
        else:
            equity = equity_values(conn, run_id)
            drawdown = max_drawdown(equity)
        final_equity = float(equity[-1]) if equity.size else initial_equity
        pnl_net = final_equity - initial_equity
        symbols = [s for s in str(run["symbol"] or "").split(",") if s]
        first = symbols[0] if symbols else str(run["symbol"] or "")
        carried = json.loads(run["carried_json"]) if run.get("carried_json") else None
        start, end = (int(start), int(end)) if equity.size else (0, 0)
        trade_list = load_trades(conn, run_id, first)
        figures = trade_stats(trade_list, open_positions(conn, run_id, first, start, carried), start, end)

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
            "trades": figures["trades"],
            "fills": fills,
            "orders": orders,
            "rejects": rejects,
            "pnl_gross": _money(pnl_net + float(fees) - float(funding)),
            "fees": _money(fees),
            "pnl_net": _money(pnl_net),
            "win_rate": figures["win_rate"],
            "max_drawdown": _frac(drawdown),
            "sharpe": ratios["sharpe"],
            "sharpe_annualization": SHARPE_DEFINITION,
            "initial_equity": _money(initial_equity),
            "final_equity": _money(final_equity),
            "settle": settle_of(config),
            "funding": _money(funding),
            "carried": carried,
            "instruments": [],
            "stats": {k: v for k, v in stats.items() if k not in _OWN_STATS},
            "sharpe_reason": None if ratios["sharpe"] is not None else ratios["reason"],
            "ratios": ratios,
            "trade_stats": money_floats(figures),
        }
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
        if key in ("stats", "instruments", "ratios", "trade_stats", "sharpe_reason"):
            continue
        if key == "sharpe" and value is None and summary.get("sharpe_reason"):
            lines.append((key, f"n/a ({summary['sharpe_reason']})"))
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
    settle = str(summary.get("settle") or "")
    text += "\n\n" + format_instruments(summary.get("instruments") or [], settle)
    if summary.get("trade_stats"):
        text += "\n\n" + format_trade_stats(summary["trade_stats"], settle)
    return text


def format_instruments(rows: list[dict[str, Any]], settle: str) -> str:
    """The per-instrument table and its total line (money in ``settle``)."""
    head = ("symbol", "trades", "orders", "fills", "pnl_gross", "fees", "funding", "pnl_net")
    table = [[_value(k, r.get(k)) for k in head] for r in rows]
    if len(rows) > 1:
        table.append(["total"] + [_value(k, sum(r.get(k) or 0 for r in rows) if k in ("trades", "orders", "fills")
                                         else float(sum(r.get(k) or 0 for r in rows))) for k in head[1:]])
    return f"instruments (money in {settle or 'the settle currency'}):\n" + text_table(head, table)
