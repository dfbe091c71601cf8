"""The store's SQLite schema, how a database file is opened, and how an older one is brought up to date.

Why a module of its own: opening is where a wrong ``--db`` must be caught before anything is
written. :func:`open_database` refuses, with one line naming the path, a path that cannot be
opened or created, a file that is not SQLite, and an SQLite file of another tool (tables but no
bot schema), which it never modifies (not even its journal mode). :func:`ensure_schema` creates
what is missing and migrates older schema versions in place (version 2 added columns only:
``fills.fee_currency``/``fee_value``, ``positions.dust``, ``runs.carried_json``, and the
``writer`` table of the one-writer lock; earlier rows read with their defaults; version 3 added
the ``symbol`` of every order, fill, position, round trip and risk event, the positions'
``funding``, and the ``funding``, ``adjustments`` and ``marks`` tables: an older file's rows have no symbol and
belong to their run's ``symbol``; version 4 added ``runs.replay_json``: what a replay of a
daemon's run needs beyond its config, read by ``bot compare``).
"""

from __future__ import annotations

import functools
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlite_utils

SCHEMA_VERSION = 4

# Buffered tables, in the order a flush writes them.
BUFFERED_TABLES = ("orders", "fills", "positions", "round_trips", "equity", "risk_events", "funding", "adjustments", "marks")


class StoreError(Exception):
    """A persistence problem: failed flush (batch rolled back), unknown run, wrong schema, ..."""


_FK = [("run_id", "runs", "run_id")]

# table -> (columns, pk, not_null, indexes)
_SCHEMA: dict[str, dict[str, Any]] = {
    "runs": {
        "columns": {
            "run_id": str,
            "mode": str,
            "symbol": str,
            "started_at": float,
            "ended_at": float,
            "status": str,
            "git_rev": str,
            "config_json": str,
            "data_files_json": str,
            "initial_equity": float,
            "stats_json": str,
            "carried_json": str,
            "replay_json": str,
        },
        "pk": "run_id",
        "not_null": ["mode", "started_at", "status", "config_json", "data_files_json", "initial_equity"],
        "indexes": [["started_at"]],
        "fk": None,
    },
    "orders": {
        "columns": {
            "run_id": str,
            "client_order_id": str,
            "ts": int,
            "side": str,
            "amount": str,
            "order_type": str,
            "price": str,
            "reason": str,
            "reduce_only": int,
            "stop_price": str,
            "take_profit_price": str,
            "status": str,
            "filled": str,
            "exchange_order_id": str,
            "symbol": str,
        },
        "pk": ("run_id", "client_order_id"),
        "not_null": ["run_id", "client_order_id", "ts", "side", "amount", "order_type", "status", "filled"],
        "indexes": [["run_id", "ts"]],
        "fk": _FK,
    },
    "fills": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "client_order_id": str,
            "side": str,
            "price": str,
            "amount": str,
            "fee": str,
            "liquidity": str,
            "trade_id": str,
            "fee_currency": str,
            "fee_value": str,
            "symbol": str,
            "realized": str,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "client_order_id", "side", "price", "amount", "fee"],
        "indexes": [["run_id", "ts"], ["run_id", "client_order_id"]],
        "fk": _FK,
    },
    "positions": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "qty": str,
            "avg_price": str,
            "realized_pnl": str,
            "cash": str,
            "fees": str,
            "dust": str,
            "symbol": str,
            "funding": str,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "qty", "avg_price", "realized_pnl", "cash", "fees"],
        "indexes": [["run_id", "ts"]],
        "fk": _FK,
    },
    "round_trips": {
        "columns": {
            "id": int,
            "run_id": str,
            "open_ts": int,
            "close_ts": int,
            "side": str,
            "max_qty": str,
            "pnl_gross": str,
            "fees": str,
            "pnl_net": str,
            "symbol": str,
        },
        "pk": "id",
        "not_null": ["run_id", "open_ts", "close_ts", "side", "max_qty", "pnl_gross", "fees", "pnl_net"],
        "indexes": [["run_id", "close_ts"]],
        "fk": _FK,
    },
    "equity": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "equity": float,
            "mid": float,
            "position_qty": float,
            "cash": float,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "equity"],
        "indexes": [["run_id", "ts"]],
        "fk": _FK,
    },
    "heartbeat": {
        "columns": {
            "run_id": str,
            "ts": float,
            "state_json": str,
        },
        "pk": "run_id",
        "not_null": ["run_id", "ts", "state_json"],
        "indexes": [],
        "fk": _FK,
    },
    "writer": {
        "columns": {
            "id": int,
            "pid": int,
            "host": str,
            "proc_start": str,
            "run_id": str,
            "ts": float,
        },
        "pk": "id",
        "not_null": ["pid", "host", "ts"],
        "indexes": [],
        "fk": None,
    },
    "funding": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "symbol": str,
            "rate": str,
            "mark": str,
            "position": str,
            "amount": str,
            "currency": str,
            "ref": str,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "symbol", "rate", "position", "amount"],
        "indexes": [["run_id", "ts"]],
        "fk": _FK,
    },
    "adjustments": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "symbol": str,
            "amount": str,
            "currency": str,
            "ref": str,
            "reason": str,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "symbol", "amount"],
        "indexes": [["run_id", "ts"]],
        "fk": _FK,
    },
    "marks": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "symbol": str,
            "mid": float,
            "qty": str,
            "pnl": float,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "symbol"],
        "indexes": [["run_id", "symbol", "ts"]],
        "fk": _FK,
    },
    "risk_events": {
        "columns": {
            "id": int,
            "run_id": str,
            "ts": int,
            "kind": str,
            "rule": str,
            "detail": str,
            "symbol": str,
        },
        "pk": "id",
        "not_null": ["run_id", "ts", "kind"],
        "indexes": [["run_id", "kind"], ["run_id", "ts"]],
        "fk": _FK,
    },
}


# Buffered rows are tuples in this column order (the schema's, without the autoincrement id).
ROW_COLUMNS: dict[str, tuple[str, ...]] = {t: tuple(c for c in _SCHEMA[t]["columns"] if c != "id") for t in BUFFERED_TABLES}


@functools.lru_cache(maxsize=1)
def schema_script() -> tuple[str, ...]:
    """The schema as ``CREATE ... IF NOT EXISTS`` statements, in creation order.

    sqlite-utils builds the tables from ``_SCHEMA`` once, in memory; the statements SQLite
    recorded for them are then replayed on every store.
    """
    mem = sqlite_utils.Database(memory=True)
    mem.table("meta").create({"key": str, "value": str}, pk="key")
    for name, spec in _SCHEMA.items():
        kwargs: dict[str, Any] = {"pk": spec["pk"], "not_null": spec["not_null"]}
        if spec["fk"]:
            kwargs["foreign_keys"] = spec["fk"]
        table = mem.table(name)
        table.create(spec["columns"], **kwargs)
        for cols in spec["indexes"]:
            table.create_index(cols, index_name=f"idx_{name}_{'_'.join(cols)}")
    out = []
    for (sql,) in mem.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall():
        for kind in ("CREATE TABLE ", "CREATE INDEX "):
            if sql.startswith(kind):
                sql = kind + "IF NOT EXISTS " + sql[len(kind):]
                break
        else:
            raise AssertionError(f"unexpected schema statement: {sql}")
        out.append(sql)
    mem.close()
    return tuple(out)



_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "FLOAT"}


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The columns ``table`` has in this file (a file written by an older version may lack some)."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")}


def check_bot_database(conn: sqlite3.Connection, path: Path) -> int | None:
    """The file's schema version, None for an empty database; StoreError for a foreign one.

    Read-only: nothing is written, so another tool's database is left exactly as it was.
    """
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not an SQLite database ({exc}); give another --db path") from None
    if not tables:
        return None
    version = None
    if "meta" in tables:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row is not None else None
        except (sqlite3.DatabaseError, ValueError, TypeError):
            version = None
    if version is None or "runs" not in tables:
        shown = ", ".join(sorted(tables)[:6]) + (" ..." if len(tables) > 6 else "")
        raise StoreError(f"{path} is not an imbalance-bot database (it holds other tables: {shown}); it was not modified: give another --db path")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: schema version {version} is newer than this code supports ({SCHEMA_VERSION}); upgrade the bot")
    return version


def check_file(path: Path) -> None:
    """Refuse (StoreError) an existing file at ``path`` that is not the bot's database, reading it
    only: callers that create files beside it (a lock file) check first."""
    if not path.exists():
        return
    if not path.is_file():
        raise StoreError(f"database path {path} is not a file")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None
    try:
        check_bot_database(conn, path)
    finally:
        conn.close()


def open_database(path: Path) -> sqlite_utils.Database:
    """Open (or create) the database at ``path`` for writing, after checking it is the bot's own.

    Raises :class:`StoreError` with one line naming the path and what is wrong.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of database {path}: {exc.strerror or exc}") from None
    if path.exists() and not path.is_file():
        raise StoreError(f"database path {path} is not a file")
    try:
        conn = sqlite3.connect(str(path), timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None
    try:
        check_bot_database(conn, path)
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open database {path} for writing: {exc}") from None
    return sqlite_utils.Database(conn)


def ensure_schema(db: sqlite_utils.Database, path: Path) -> None:
    """Create what is missing of the schema and migrate an older version, in one transaction.

    The statements come from :func:`schema_script` (built once per process): creating the tables
    one by one through sqlite-utils took ~150 statements and 10-15 ms per store, a large part of
    a short backtest. Columns added since a file's version are added with ALTER TABLE.
    """
    conn = db.conn
    version = check_bot_database(conn, path)
    try:
        with db.atomic():
            for statement in schema_script():
                conn.execute(statement)
            if version is not None and version < SCHEMA_VERSION:
                for table, spec in _SCHEMA.items():
                    have = columns(conn, table)
                    for column, kind in spec["columns"].items():
                        if column not in have:
                            conn.execute(f"ALTER TABLE [{table}] ADD COLUMN [{column}] {_SQL_TYPES[kind]}")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])
            if version is None:
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
                conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", [repr(time.time())])
    except sqlite3.Error as exc:
        raise StoreError(f"cannot write the schema of database {path}: {exc}") from None


def schema_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])
