"""The JSON the dashboard polls (``/api/...``): live state from memory, history from the database.

``live`` reads only what the engine holds (no database, no waiting). ``status`` is exactly what
``bot status --json`` computes (:func:`bot.store.status.read_status`); it, the recent fills and
the risk events are read from the database through a read-only connection in a separate
process (:class:`DbReader`): neither the event loop nor a thread of the daemon's process does
that work, so it never holds the GIL the decisions need (``read_status`` sums every fill's fee
in Python: on a long run that is real work, every second the dashboard is open).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.store.status import read_status

if TYPE_CHECKING:
    from bot.engine.observer import DaemonView

EQUITY_POINTS = 3600  # one an hour at a heartbeat a second
ROWS = 50


def _num(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def open_orders(venue: Any) -> list[dict[str, Any]]:
    """Orders a venue has in flight or resting (live: ``_inflight``; paper: pending and resting)."""
    if venue is None:
        return []
    if hasattr(venue, "_inflight"):
        orders = list(venue._inflight.values())
    else:
        orders = [o for _, o in getattr(venue, "_pending", [])] + [getattr(r, "order", r) for r in getattr(venue, "_resting", {}).values()]
    return [{
        "client_order_id": o.client_order_id, "symbol": o.symbol, "side": o.side.value, "type": o.order_type, "amount": str(o.amount),
        "price": None if o.price is None else str(o.price), "filled": str(o.filled), "status": o.status.value, "reason": o.reason,
    } for o in orders]


class Api:
    def __init__(self, view: "DaemonView", control: bool):
        self.view = view
        self.control = control
        self.equity: deque[tuple[float, float]] = deque(maxlen=EQUITY_POINTS)
        self.state: dict[str, Any] = {}
        self.reader = DbReader()

    def heartbeat(self, state: dict[str, Any]) -> None:
        self.state = state
        eq = _num(state.get("equity"))
        if eq is not None:
            self.equity.append((round(time.time(), 3), eq))

    def live(self) -> dict[str, Any]:
        view = self.view
        engine = view.engine
        now = time.time_ns()
        equity = engine.account.equity()
        lanes = []
        for lane in view.lanes:
            e = lane.engine
            if e is None:
                continue
            book, pf = e.book, e.portfolio
            has_book = book.last_update_ts and book.is_sound
            lanes.append({
                "symbol": lane.symbol,
                "position": str(pf.qty),
                "avg_price": str(pf.avg_price),
                "mid": _num(e.last_mid),
                "bid": _num(book.best_bid) if has_book else None,
                "bid_size": _num(book.best_bid_size) if has_book else None,
                "ask": _num(book.best_ask) if has_book else None,
                "ask_size": _num(book.best_ask_size) if has_book else None,
                "book_status": book.status.value,
                "book_age_s": round(book.age_ns(now) / 1e9, 3) if book.last_update_ts else None,
                "score": _num(getattr(e.signals.state, "score", None)),
                "orders": e.stats.orders,
                "fills": e.stats.fills,
                "open_orders": open_orders(lane.venue),
            })
        halt = engine.limits.halt
        peak = max((v for _, v in self.equity), default=equity)
        return {
            "run_id": view.run_id,
            "mode": view.mode,
            "ts": round(time.time(), 3),
            "equity": _num(equity),
            "pnl": _num(equity - view.initial_equity),
            "initial_equity": view.initial_equity,
            "drawdown": _num(1.0 - equity / peak) if peak > 0 else None,
            "halt": None if halt is None else {"rule": halt.rule, "detail": halt.detail, "flatten": halt.flatten},
            "paused": engine.limits.paused,
            "kill_switch": any(e.risk.kill_switch_on() for e in engine.lanes),
            "control": self.control,
            "uptime_s": self.state.get("uptime_s"),
            "instruments": lanes,
        }

    def equity_series(self) -> dict[str, Any]:
        return {"points": [[t, v] for t, v in self.equity]}

    # -- from the database (in the reader process) ---------------------------------------------
    async def status(self) -> dict[str, Any]:
        return await self.reader.call(read_status, str(self.view.db_path), self.view.run_id)

    async def fills(self) -> dict[str, Any]:
        return {"fills": await self.reader.call(recent_fills, str(self.view.db_path), self.view.run_id)}

    async def events(self) -> dict[str, Any]:
        return {"events": await self.reader.call(recent_events, str(self.view.db_path), self.view.run_id)}


def _rows(db_path: str, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True, timeout=5)
    try:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def recent_fills(db_path: str, run_id: str) -> list[dict[str, Any]]:
    return _rows(db_path, "SELECT ts, symbol, client_order_id, side, price, amount, fee, liquidity FROM fills WHERE run_id = ? ORDER BY ts DESC, id DESC LIMIT ?",
                 [run_id, ROWS])


def recent_events(db_path: str, run_id: str) -> list[dict[str, Any]]:
    """Risk events but rejections (those are many and counted in the report)."""
    return _rows(db_path, "SELECT ts, kind, rule, detail, symbol FROM risk_events WHERE run_id = ? AND kind != 'reject' ORDER BY ts DESC, id DESC LIMIT ?",
                 [run_id, ROWS])


class DbReader:
    """One worker process (``spawn``: safe beside the daemon's threads) for the database reads of the API."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except BrokenProcessPool:
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError("the database reader process died; the next request starts another") from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.wait_for(asyncio.to_thread(pool.shutdown, True, cancel_futures=True), timeout=10)
