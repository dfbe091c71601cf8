"""Persistence of runs, orders, fills, positions, round trips, equity and risk events in SQLite.

One :class:`Store` owns one sqlite-utils :class:`~sqlite_utils.Database` (WAL mode). ``start_run``
and ``finish_run`` write immediately; every other ``record_*`` call only appends to an in-memory
buffer, and :meth:`Store.flush` writes the whole buffer in ONE transaction: either every buffered
row of every table lands, or none does. A flush happens automatically once ``batch_size`` rows
are buffered. A process killed between flushes therefore leaves a consistent database: all
earlier batches complete, nothing of the unflushed one, and the run row still ``running``.

Exact quantities (``Decimal`` prices, amounts, fees, cash, PnL) are stored as TEXT in plain
positional notation so they read back exactly with ``Decimal(text)``; enums are stored as their
value; the equity curve (reported only) is REAL.

If a flush fails, the transaction is rolled back, a :class:`StoreError` naming the table is raised
and the batch stays buffered, so a later ``flush`` retries it (``discard_pending`` drops it).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import asdict, is_dataclass
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from bot.core.orders import Fill, Order
from bot.core.portfolio import RoundTrip
from bot.store.jsonout import finite_or_none
from bot.store.order_counts import OrderCounts
from bot.store.schema import BUFFERED_TABLES, ROW_COLUMNS, SCHEMA_VERSION, StoreError, ensure_schema, open_database, schema_version

if TYPE_CHECKING:
    from bot.store.writer import WriterLock

__all__ = ["BUFFERED_TABLES", "SCHEMA_VERSION", "Store", "StoreError", "checkpoint", "to_json"]

log = logging.getLogger(__name__)

RUN_STATUSES_FINAL = ("completed", "interrupted", "failed", "crashed")
RUN_STATUS_RUNNING = "running"

def _dec(value: Any) -> str | None:
    """Exact TEXT for a quantity: Decimal in plain notation, ints as is, floats via repr."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        # str() is 5x faster than format(, "f") and gives the same text unless it chooses
        # scientific notation (exponent > 0 or more than 6 leading zeros), which says "E"
        text = str(value)
        return text if "E" not in text else format(value, "f")
    if isinstance(value, bool):
        raise TypeError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str):
        return format(Decimal(value), "f")
    return format(Decimal(str(value)), "f")


def _enum(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    item = getattr(obj, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def to_json(value: Any) -> str:
    """Strict JSON for what the store keeps as text (config, stats, heartbeat): an undefined float
    is ``null``, never ``NaN``, so every stored document parses anywhere."""
    return json.dumps(finite_or_none(value), default=_json_default, sort_keys=True, allow_nan=False)


# ---------------------------------------------------------------------------------------------


def checkpoint(path: str | Path) -> tuple[int, int, int]:
    """Copy committed WAL pages into the database file without blocking writers (PASSIVE).

    Opens its own connection, so it may run in a worker thread beside a :class:`Store` that
    called :meth:`Store.manual_checkpoints`. Returns SQLite's (busy, WAL pages, pages copied).
    """
    conn = sqlite3.connect(str(path), timeout=5.0)
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])
    finally:
        conn.close()


class Store:
    """Runs and their records in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, batch_size: int = 500, synchronous: str = "normal"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        if synchronous not in ("off", "normal", "full"):
            raise ValueError(f"synchronous must be 'off', 'normal' or 'full', got {synchronous!r}")
        self.db = open_database(self.path)  # StoreError: not openable, not SQLite, another tool's database
        self._closed = False
        try:
            # WAL + NORMAL: a committed transaction survives the process being killed (it is in the
            # WAL, which the OS keeps); FULL also fsyncs each commit against power loss; OFF never
            # fsyncs (still safe against a killed process, not against power loss): backtests,
            # whose results a rerun rebuilds, save the checkpoint's fsyncs (~5-10 ms per run).
            self.db.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self.db.conn.execute("PRAGMA foreign_keys = ON")
            ensure_schema(self.db, self.path)
        except BaseException:
            self.db.close()
            self._closed = True
            raise
        # rows as tuples in ROW_COLUMNS order; orders keyed so a later snapshot replaces an earlier one
        self._orders: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.order_counts = OrderCounts()  # this process's orders by latest status (the daemon's metrics)
        self._rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in BUFFERED_TABLES if t != "orders"}
        self._n_rows = 0  # rows in self._rows (orders are counted by len(self._orders))
        self._known_runs: set[str] = set()
        self._sql: dict[str, str] = {}

    def schema_version(self) -> int:
        return schema_version(self.db.conn)

    def writer_lock(self) -> "WriterLock":
        """The one-writer lock inside this database (see :mod:`bot.store.writer`)."""
        from bot.store.writer import WriterLock

        return WriterLock(self.db.conn, self.path)

    # -- helpers ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.path} is closed")

    def _check_record(self, run_id: str) -> None:
        """Before buffering a record: the store is open and the run was started (one set lookup
        on the hot path; the slow checks only when it fails)."""
        if self._closed or run_id not in self._known_runs:
            self._check_open()
            self._check_run(run_id)

    def _check_run(self, run_id: str) -> None:
        """Refuse records for a run that was never started (they would poison a whole batch)."""
        if run_id in self._known_runs:
            return
        if self.db.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
            raise StoreError(f"unknown run_id {run_id!r}: call start_run first")
        self._known_runs.add(run_id)

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return len(self._orders) + self._n_rows

    def _buffer(self, table: str, row: tuple[Any, ...]) -> None:
        self._rows[table].append(row)
        self._n_rows += 1
        if len(self._orders) + self._n_rows >= self.batch_size:
            self.flush()

    def _maybe_flush(self) -> None:
        if len(self._orders) + self._n_rows >= self.batch_size:
            self.flush()

    # -- runs ------------------------------------------------------------------------------

    def start_run(
        self,
        run_id: str,
        *,
        mode: str,
        config: dict,
        git_rev: str | None,
        data_files: list[str],
        initial_equity: float,
        started_at: float | None = None,
        symbol: str = "",
        carried: dict[str, Any] | None = None,
        replay: dict[str, Any] | None = None,
    ) -> None:
        """Insert the run row (status ``running``) in its own, immediately committed transaction.

        ``carried``: the position taken over from earlier runs and how it was valued at this
        run's start (part of ``initial_equity``), for the report. ``replay``: what a replay of a
        daemon's run needs beyond its config (the exchange's markets, the earlier runs its
        account was restored from, where its recording is), for ``bot compare``."""
        self._check_open()
        row = {
            "run_id": run_id,
            "mode": str(_enum(mode)),
            "symbol": symbol,
            "started_at": float(started_at if started_at is not None else time.time()),
            "ended_at": None,
            "status": RUN_STATUS_RUNNING,
            "git_rev": git_rev,
            "config_json": to_json(config),
            "data_files_json": to_json([str(f) for f in data_files]),
            "initial_equity": float(initial_equity),
            "stats_json": None,
            "carried_json": to_json(carried) if carried else None,
            "replay_json": to_json(replay) if replay else None,
        }
        try:
            with self.db.atomic():
                self.db.conn.execute(f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"cannot start run {run_id!r}: {exc} (run ids must be unique)") from exc
        self._known_runs.add(run_id)

    def finish_run(self, run_id: str, *, status: str, stats: dict, ended_at: float | None = None) -> None:
        """Flush the buffer and close the run row (status, ended_at, stats) in one transaction."""
        self._check_open()
        if status not in RUN_STATUSES_FINAL:
            raise ValueError(f"status must be one of {RUN_STATUSES_FINAL}, got {status!r}")
        stats_json = to_json(stats)
        ended = float(ended_at if ended_at is not None else time.time())
        self._write_batch(
            extra=lambda: self._close_run_row(run_id, status, ended, stats_json),
            what=f"finish_run({run_id!r})",
        )

    def mark_crashed(self, run_id: str, ended_at: float | None, reason: str) -> None:
        """A run found ``running`` whose process is gone (killed, power loss): close it as ``crashed``."""
        self._check_open()
        stats_json = to_json({"crash": reason})
        with self.db.atomic():
            self.db.execute(
                "UPDATE runs SET status = 'crashed', ended_at = ?, stats_json = coalesce(stats_json, ?) WHERE run_id = ? AND status = 'running'",
                [ended_at, stats_json, run_id],
            )

    def _close_run_row(self, run_id: str, status: str, ended_at: float, stats_json: str) -> None:
        cur = self.db.execute(
            "UPDATE runs SET status = ?, ended_at = ?, stats_json = ? WHERE run_id = ?",
            [status, ended_at, stats_json, run_id],
        )
        if cur.rowcount != 1:
            raise StoreError(f"unknown run_id {run_id!r}: nothing to finish")

    # -- buffered records ------------------------------------------------------------------

    def record_order(self, run_id: str, order: Order) -> None:
        """Buffer a snapshot of ``order``; a later record of the same client_order_id replaces it."""
        self._check_record(run_id)
        row = (
            run_id,
            order.client_order_id,
            int(order.ts),
            _enum(order.side),
            _dec(order.amount),
            order.order_type,
            _dec(order.price),
            order.reason,
            int(bool(order.reduce_only)),
            _dec(order.stop_price),
            _dec(order.take_profit_price),
            _enum(order.status),
            _dec(order.filled),
            order.exchange_order_id,
            order.symbol or None,
        )
        self._orders[(run_id, order.client_order_id)] = row
        self.order_counts.record(run_id, order.client_order_id, row[11])
        self._maybe_flush()

    def record_fill(self, run_id: str, fill: Fill) -> None:
        self._check_record(run_id)
        self._buffer(
            "fills",
            (
                run_id,
                int(fill.ts),
                fill.client_order_id,
                _enum(fill.side),
                _dec(fill.price),
                _dec(fill.amount),
                _dec(fill.fee),
                fill.liquidity,
                fill.trade_id,
                fill.fee_currency or None,
                _dec(fill.fee_in_quote),
                fill.symbol or None,
                _dec(fill.realized),
            ),
        )

    def record_position(self, run_id: str, ts: int, qty, avg_price, realized_pnl, cash, fees, dust=None, symbol: str = "", funding=None) -> None:
        """The position of ``symbol`` after a fill (exact values, normally the Portfolio's Decimals);
        ``cash`` is the account's balance of the settle currency."""
        self._check_record(run_id)
        self._buffer(
            "positions",
            (run_id, int(ts), _dec(qty), _dec(avg_price), _dec(realized_pnl), _dec(cash), _dec(fees), _dec(dust) if dust else None,
             symbol or None, _dec(funding) if funding else None),
        )

    def record_funding(self, run_id: str, ts: int, symbol: str, rate: float | None, mark: float | None, position, amount, currency: str, ref: str = "") -> None:
        """One funding payment (``amount`` > 0 received, < 0 paid, in ``currency``) at ``ts``;
        ``ref`` is the exchange's id of a live payment (rate and mark None when it gives none)."""
        self._check_record(run_id)
        self._buffer("funding", (run_id, int(ts), symbol, _dec(rate) if rate is not None else "", _dec(mark), _dec(position), _dec(amount),
                                 currency or None, ref or None))

    def record_adjustment(self, run_id: str, ts: int, symbol: str, amount, currency: str, ref: str, reason: str) -> None:
        """A wallet change the exchange made that no fill explains (a liquidation's loss capped at the
        isolated margin): replayed on restore like funding."""
        self._check_record(run_id)
        self._buffer("adjustments", (run_id, int(ts), symbol, _dec(amount), currency or None, ref or None, reason))

    def record_mark(self, run_id: str, ts: int, symbol: str, mid: float, qty, pnl: float) -> None:
        """An instrument's mid, position and PnL contribution at a checkpoint (the per-instrument report)."""
        self._check_record(run_id)
        self._buffer("marks", (run_id, int(ts), symbol, finite_or_none(mid), _dec(qty), finite_or_none(pnl)))

    def record_round_trip(self, run_id: str, trip: RoundTrip, symbol: str = "") -> None:
        self._check_record(run_id)
        self._buffer(
            "round_trips",
            (
                run_id,
                int(trip.open_ts),
                int(trip.close_ts),
                trip.side,
                _dec(trip.max_qty),
                _dec(trip.pnl_gross),
                _dec(trip.fees),
                _dec(trip.pnl_net),
                symbol or None,
            ),
        )

    def record_equity(self, run_id: str, ts: int, equity: float, mid: float, position_qty: float, cash: float) -> None:
        self._check_record(run_id)
        self._buffer(
            "equity",
            (
                run_id,
                int(ts),
                float(equity),
                None if mid is None else float(mid),
                None if position_qty is None else float(position_qty),
                None if cash is None else float(cash),
            ),
        )

    def record_equity_many(self, run_id: str, points: list[tuple[int, float, float, float, float]]) -> None:
        """Several equity points at once: ``(ts, equity, mid, position_qty, cash)`` each (the fast replay)."""
        self._check_record(run_id)
        rows = self._rows["equity"]
        rows.extend((run_id, int(ts), float(eq), float(mid), float(qty), float(cash)) for ts, eq, mid, qty, cash in points)
        self._n_rows += len(points)
        self._maybe_flush()

    def record_risk_event(self, run_id: str, ts: int, kind: str, rule: str, detail: str, symbol: str = "") -> None:
        """``kind``: reject, halt, flatten, book_unsound, resume, ...; ``symbol`` empty for the account."""
        self._check_record(run_id)
        self._buffer(
            "risk_events",
            (run_id, int(ts), str(_enum(kind)), rule, detail, symbol or None),
        )

    def record_heartbeat(self, run_id: str, state: dict[str, Any], ts: float | None = None) -> None:
        """Replace the run's live state (read by ``bot status``); written at once, with the buffer.

        The daemon calls it about once a second, so flushing the buffer here bounds how much a
        crash can lose to one heartbeat interval.
        """
        self._check_record(run_id)
        row = {"run_id": run_id, "ts": float(ts if ts is not None else time.time()), "state_json": to_json(state)}
        self._write_batch(extra=lambda: self.db.table("heartbeat").upsert(row, pk="run_id"), what="heartbeat")

    def heartbeat(self, run_id: str) -> dict[str, Any] | None:
        self._check_open()
        row = self.db.execute("SELECT ts, state_json FROM heartbeat WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            return None
        return {"ts": row[0], **json.loads(row[1])}

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every buffered row of every table in ONE transaction (all or nothing)."""
        self._check_open()
        if self.pending == 0:
            return
        self._write_batch(extra=None, what="flush")

    def _write_table(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        """Write one table's part of a batch (inside the batch transaction).

        Plain ``executemany`` with a statement built once per table: sqlite-utils' ``insert_all``
        inspects the table on every call, which cost more than the insert itself on the live path
        (one order per commit). Orders are upserted by (run_id, client_order_id).
        """
        sql = self._sql.get(table)
        if sql is None:
            columns = ROW_COLUMNS[table]
            names = ", ".join(f"[{c}]" for c in columns)
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO [{table}] ({names}) VALUES ({marks})"
            if table == "orders":
                updates = ", ".join(f"[{c}] = excluded.[{c}]" for c in columns if c not in ("run_id", "client_order_id"))
                sql += f" ON CONFLICT(run_id, client_order_id) DO UPDATE SET {updates}"
            self._sql[table] = sql
        self.db.conn.executemany(sql, rows)

    def time_writes(self, add: Callable[[float], None]) -> None:
        """Call ``add(seconds)`` with the duration of every batched write of this store (benchmarks and
        ``bot backtest``'s phases measure SQLite this way; nothing else changes)."""
        write_batch = self._write_batch

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return write_batch(*a, **kw)
            finally:
                add(time.perf_counter() - t)

        self._write_batch = timed  # type: ignore[method-assign]

    def _write_batch(self, extra, what: str) -> None:
        n = self.pending
        current = "?"
        try:
            with self.db.atomic():
                for table in BUFFERED_TABLES:
                    rows = list(self._orders.values()) if table == "orders" else self._rows[table]
                    if rows:
                        current = table
                        self._write_table(table, rows)
                if extra is not None:
                    current = "runs"
                    extra()
        except StoreError as exc:
            raise StoreError(f"{what} failed; the transaction was rolled back: {exc}") from exc
        except Exception as exc:
            raise StoreError(
                f"{what} of {n} buffered rows failed while writing table {current!r} "
                f"({type(exc).__name__}: {exc}); the whole batch was rolled back and is still "
                "buffered (flush() retries, discard_pending() drops it)"
            ) from exc
        self._orders.clear()
        for rows in self._rows.values():
            rows.clear()
        self._n_rows = 0

    def discard_pending(self) -> int:
        """Drop the buffered rows without writing them; return how many were dropped."""
        n = self.pending
        self._orders.clear()
        for rows in self._rows.values():
            rows.clear()
        self._n_rows = 0
        if n:
            log.warning("store: discarded %d buffered rows", n)
        return n

    def manual_checkpoints(self) -> None:
        """Stop SQLite from checkpointing the WAL inside a commit; call :func:`checkpoint` instead.

        An automatic checkpoint (every 1000 WAL pages) copies pages into the database and, with
        ``synchronous = normal``, fsyncs: several milliseconds added to whichever commit crosses
        the mark, which in the daemon can be an order's write-ahead commit.
        """
        self._check_open()
        self.db.conn.execute("PRAGMA wal_autocheckpoint = 0")

    def close(self) -> None:
        """Flush what is buffered and close the database (idempotent)."""
        if self._closed:
            return
        try:
            if self.pending:
                self._write_batch(extra=None, what="flush on close")
        finally:
            self._closed = True
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # Already failing: keep what can be kept, but never mask the original exception.
        try:
            self.close()
        except Exception as close_exc:  # pragma: no cover - logged, original re-raised
            log.error("store: could not flush on close after %s: %s", exc_type.__name__, close_exc)

    # -- read side -------------------------------------------------------------------------

    def _run_dict(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["config"] = json.loads(out.pop("config_json") or "{}")
        out["data_files"] = json.loads(out.pop("data_files_json") or "[]")
        stats = out.pop("stats_json")
        out["stats"] = json.loads(stats) if stats else {}
        carried = out.pop("carried_json", None)
        out["carried"] = json.loads(carried) if carried else None
        replay = out.pop("replay_json", None)
        out["replay"] = json.loads(replay) if replay else None
        return out

    def runs(self) -> list[dict]:
        """Every run, oldest first, with config/data_files/stats decoded."""
        self._check_open()
        rows = self.db.query("SELECT * FROM runs ORDER BY started_at, rowid")
        return [self._run_dict(r) for r in rows]

    def run(self, run_id: str) -> dict | None:
        self._check_open()
        rows = list(self.db.query("SELECT * FROM runs WHERE run_id = ?", [run_id]))
        return self._run_dict(rows[0]) if rows else None

    def latest_run_id(self) -> str | None:
        self._check_open()
        row = self.db.execute("SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def rows(self, table: str, run_id: str) -> Iterator[dict[str, Any]]:
        """The stored rows of one buffered table for a run (flushed rows only)."""
        self._check_open()
        if table not in BUFFERED_TABLES:
            raise ValueError(f"unknown table {table!r}")
        order = "ts, client_order_id" if table == "orders" else ("close_ts, id" if table == "round_trips" else "ts, id")
        return self.db.query(f"SELECT * FROM [{table}] WHERE run_id = ? ORDER BY {order}", [run_id])
