"""``bot status``: a daemon's state, read from the database it writes (never from the process).

Every figure about money comes from the rows themselves, so status always equals the database:
``position``/``avg_price``/``cash``/``dust`` are the account's latest ``positions`` row (the
position is carried across runs of the same mode and instruments, so that row may belong to an
earlier run; ``carried`` says what this run took over); with several instruments (``[[markets]]``)
each has its own row under ``instruments`` (with its own orders, fills, fees and, while the
daemon lives, book status), ``cash`` is the account's (their sum) and ``position`` is null, ``orders``/``fills``/``open_orders``/``fees`` are
this run's rows, ``equity`` is this run's latest equity point and ``pnl`` its difference to the
run's own ``initial_equity``. Only what has no row is taken from the heartbeat the daemon writes
every second (uptime, book status and age, feed mode, the halt in force), and only while the
daemon is alive. The database is opened read-only: status never changes it, and it reads all of
this in one read transaction, so every figure comes from the same commit.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.store.schema import columns
from bot.store.writer import pid_alive

ALIVE_HEARTBEAT_S = 10.0


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise LookupError(f"{path} is not an SQLite database ({exc})") from None
    if not {"runs", "meta", "positions", "orders"} <= tables:
        conn.close()
        raise LookupError(f"{path} is not an imbalance-bot database (no bot tables in it)")
    return conn


def _process_alive(state: dict[str, Any]) -> bool:
    """The daemon that wrote the heartbeat still runs (checked when it ran on this host)."""
    pid, host = state.get("pid"), state.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another host (or an old heartbeat without them): the heartbeat's age decides
    return pid_alive(pid)


def _col(conn: sqlite3.Connection, table: str, column: str) -> str:
    """``column``, or NULL for a database written before the column existed (read-only: no migration)."""
    return column if column in columns(conn, table) else "NULL"


def read_status(db_path: str | Path, run_id: str | None = None) -> dict[str, Any]:
    path = Path(db_path)
    if not path.is_file():
        raise LookupError(f"database not found: {path}")
    conn = _connect(path)
    try:
        # one read transaction: every SELECT below sees the same commit (WAL: the first one fixes
        # the snapshot). In autocommit each would see the latest flush at its own moment, and a
        # daemon flushing meanwhile could pair one flush's position with the next one's equity,
        # a state the database never held. Closing the connection ends it; nothing is written.
        conn.execute("BEGIN")
        if run_id is None:
            row = conn.execute("SELECT run_id FROM runs WHERE mode IN ('paper', 'live') ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise LookupError(f"{path}: no paper or live run recorded yet (start one with `bot run`)")
            run_id = row[0]
        run = conn.execute(f"SELECT mode, symbol, status, started_at, ended_at, initial_equity, {_col(conn, 'runs', 'carried_json')} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if run is None:
            raise LookupError(f"{path}: no run {run_id!r}")
        mode, symbol, status, started_at, ended_at, initial_equity, carried = run
        hb = conn.execute("SELECT ts, state_json FROM heartbeat WHERE run_id = ?", [run_id]).fetchone()
        state: dict[str, Any] = json.loads(hb[1]) if hb else {}
        account_runs = [r[0] for r in conn.execute(
            "SELECT run_id FROM runs WHERE mode = ? AND symbol = ? AND (started_at < ? OR run_id = ?)", [mode, symbol, started_at, run_id]
        )]
        marks = ",".join("?" * len(account_runs))
        symbols = [x for x in str(symbol or "").split(",") if x] or [""]
        per: list[dict[str, Any]] = []
        for sym in symbols:
            # rows written before rows named their instrument (NULL) belong to the run's one symbol
            mine, args = "coalesce(symbol, ?) = ?", [sym, sym]
            pos = conn.execute(
                f"SELECT qty, avg_price, cash, {_col(conn, 'positions', 'dust')} FROM positions WHERE run_id IN ({marks}) AND {mine} ORDER BY ts DESC, id DESC LIMIT 1",
                [*account_runs, *args],
            ).fetchone()
            fees_of = sum((Decimal(v if v is not None else f) for f, v in conn.execute(
                f"SELECT fee, {_col(conn, 'fills', 'fee_value')} FROM fills WHERE run_id = ? AND {mine}", [run_id, *args])), Decimal(0))
            per.append({
                "symbol": sym,
                "position": pos[0] if pos else "0",
                "avg_price": pos[1] if pos else "0",
                "cash": pos[2] if pos else None,
                "dust": (pos[3] or "0") if pos else "0",
                "orders": conn.execute(f"SELECT count(*) FROM orders WHERE run_id = ? AND {mine}", [run_id, *args]).fetchone()[0],
                "fills": conn.execute(f"SELECT count(*) FROM fills WHERE run_id = ? AND {mine}", [run_id, *args]).fetchone()[0],
                "fees": fees_of,
                "open_orders": [r[0] for r in conn.execute(
                    f"SELECT client_order_id FROM orders WHERE run_id = ? AND {mine} AND status IN ('new', 'partially_filled') ORDER BY ts", [run_id, *args]
                )],
            })
        orders = conn.execute("SELECT count(*) FROM orders WHERE run_id = ?", [run_id]).fetchone()[0]
        fills = conn.execute("SELECT count(*) FROM fills WHERE run_id = ?", [run_id]).fetchone()[0]
        fees = sum((p["fees"] for p in per), Decimal(0))
        open_orders = [r[0] for r in conn.execute(
            "SELECT client_order_id FROM orders WHERE run_id = ? AND status IN ('new', 'partially_filled') ORDER BY ts", [run_id]
        )]
        eq = conn.execute("SELECT equity, ts FROM equity WHERE run_id = ? ORDER BY ts DESC, id DESC LIMIT 1", [run_id]).fetchone()
        halts = [
            {"ts": ts, "rule": rule, "detail": detail}
            for ts, rule, detail in conn.execute("SELECT ts, rule, detail FROM risk_events WHERE run_id = ? AND kind = 'halt' ORDER BY ts, id", [run_id])
        ]
    finally:
        conn.close()
    heartbeat_age = round(time.time() - hb[0], 1) if hb else None
    process_alive = _process_alive(state)
    alive = status == "running" and heartbeat_age is not None and heartbeat_age < ALIVE_HEARTBEAT_S and process_alive
    if status == "running" and not alive:
        # a process known to be gone is the stronger fact: say it whatever the heartbeat's age
        why = f"its process (pid {state.get('pid')}) is gone" if not process_alive else f"no heartbeat for {heartbeat_age}s"
        status = f"running (DID NOT FINISH: {why}; the next start marks it crashed)"
    equity = float(eq[0]) if eq else float(initial_equity)
    live = {p.get("symbol"): p for p in state.get("instruments") or []} if alive else {}
    for p in per:
        seen = live.get(p["symbol"], {})
        p["fees"] = round(float(p["fees"]), 8)
        p["book_status"], p["last_book_age_s"], p["mid"] = seen.get("book_status"), seen.get("book_age_s"), seen.get("mid")
    one = per[0] if len(per) == 1 else None
    cashes = [Decimal(p["cash"]) for p in per if p["cash"] is not None]
    return {
        "run_id": run_id,
        "db": str(path),
        "mode": mode,
        "symbol": symbol,
        "status": status,
        "started_at": started_at,
        "ended_at": ended_at,
        "uptime_s": state.get("uptime_s") if alive else (round(ended_at - started_at, 1) if ended_at else None),
        "heartbeat_age_s": heartbeat_age,
        # one instrument: its position; several: see ``instruments`` (a sum of positions means nothing)
        "position": one["position"] if one else None,
        "avg_price": one["avg_price"] if one else None,
        "cash": (one["cash"] if one else (str(sum(cashes, Decimal(0))) if cashes else None)),
        "dust": one["dust"] if one else None,
        "carried": json.loads(carried) if carried else None,
        "equity": round(equity, 8),
        "equity_ts": eq[1] if eq else None,
        "pnl": round(equity - float(initial_equity), 8),
        "initial_equity": initial_equity,
        "fees": round(float(fees), 8),
        "orders": orders,
        "fills": fills,
        "open_orders": open_orders,
        "book_status": state.get("book_status"),  # as of the last heartbeat
        "last_book_age_s": state.get("book_age_s"),
        "feed_mode": state.get("feed_mode"),
        "halt": state.get("halt") if alive else None,
        "halts": halts,
        "instruments": per,
    }


INSTRUMENT_COLUMNS = ("symbol", "position", "avg_price", "orders", "fills", "fees", "book_status")


def format_status(status: dict[str, Any]) -> str:
    """``key: value`` lines, then (with several instruments) one table row per instrument."""
    shown = {k: v for k, v in status.items() if k != "instruments"}
    width = max(len(k) for k in shown) + 2
    lines = []
    for key, value in shown.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        lines.append(f"{key + ':':<{width}}{value}")
    per = status.get("instruments") or []
    if len(per) > 1:
        rows = [INSTRUMENT_COLUMNS] + [tuple(str(p.get(c)) for c in INSTRUMENT_COLUMNS) for p in per]
        widths = [max(len(r[j]) for r in rows) for j in range(len(INSTRUMENT_COLUMNS))]
        lines.append("instruments:")
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
