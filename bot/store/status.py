"""``bot status``: a daemon's live state, read from the database it writes (never from the process)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any


def read_status(db_path: str | Path, run_id: str | None = None) -> dict[str, Any]:
    path = Path(db_path)
    if not path.is_file():
        raise LookupError(f"database not found: {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if run_id is None:
            row = conn.execute("SELECT run_id FROM runs WHERE mode IN ('paper', 'live') ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
            if row is None:
                raise LookupError(f"{path}: no paper or live run recorded yet (start one with `bot run`)")
            run_id = row[0]
        run = conn.execute("SELECT mode, symbol, status, started_at, ended_at, initial_equity FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if run is None:
            raise LookupError(f"{path}: no run {run_id!r}")
        mode, symbol, status, started_at, ended_at, initial_equity = run
        hb = conn.execute("SELECT ts, state_json FROM heartbeat WHERE run_id = ?", [run_id]).fetchone()
        state: dict[str, Any] = json.loads(hb[1]) if hb else {}
        halts = [
            {"ts": ts, "rule": rule, "detail": detail}
            for ts, rule, detail in conn.execute("SELECT ts, rule, detail FROM risk_events WHERE run_id = ? AND kind = 'halt' ORDER BY ts", [run_id])
        ]
        open_orders = [
            r[0] for r in conn.execute("SELECT client_order_id FROM orders WHERE run_id = ? AND status IN ('new', 'partially_filled')", [run_id])
        ]
    finally:
        conn.close()
    heartbeat_age = round(time.time() - hb[0], 1) if hb else None
    alive = status == "running" and heartbeat_age is not None and heartbeat_age < 10
    return {
        "run_id": run_id,
        "db": str(path),
        "mode": mode,
        "symbol": symbol,
        "status": status if alive or status != "running" else "running (no heartbeat for %ss: process gone?)" % heartbeat_age,
        "uptime_s": state.get("uptime_s"),
        "heartbeat_age_s": heartbeat_age,
        "position": state.get("position"),
        "avg_price": state.get("avg_price"),
        "equity": state.get("equity"),
        "pnl": state.get("pnl"),
        "initial_equity": initial_equity,
        "open_orders": state.get("open_orders", open_orders) if alive else open_orders,
        "book_status": state.get("book_status"),
        "last_book_age_s": state.get("book_age_s"),
        "feed_mode": state.get("feed_mode"),
        "halt": state.get("halt"),
        "halts": halts,
        "orders": state.get("orders"),
        "fills": state.get("fills"),
    }


def format_status(status: dict[str, Any]) -> str:
    width = max(len(k) for k in status) + 2
    lines = []
    for key, value in status.items():
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        lines.append(f"{key + ':':<{width}}{value}")
    return "\n".join(lines)
