"""Real processes on 127.0.0.1: the exchange emulator and the bot daemon, for daemon tests."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bot.emulator.process import EmulatorProcess, write_daemon_config
from bot.emulator.process import daemon_env as _daemon_env

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "itestKEY9f3a7c1e5b2d8a64"
API_SECRET = "itestSECRETq8w7e6r5t4y3u2i1o0p9"


class Emulator(EmulatorProcess):
    """The simulated exchange for daemon tests: one account with the test keys and 10,000 USDT."""

    def __init__(self, tmp: Path, *extra: str):
        super().__init__(
            ["--sim", "--api-key", API_KEY, "--api-secret", API_SECRET, "--balances", "USDT=10000,BTC=0", *extra],
            cwd=tmp, stderr_path=tmp / "emulator.err",
        )


def write_config(tmp: Path, emu: Emulator, *, mode: str = "live", duration: float = 30.0, max_age: float = 2.0, name: str = "bot.toml") -> Path:
    return write_daemon_config(tmp / name, emu.url, mode=mode, duration=duration, max_book_age_s=max_age)


def daemon_env() -> dict[str, str]:
    return _daemon_env(API_KEY, API_SECRET)


def start_daemon(tmp: Path, config: Path, *args: str, tag: str = "daemon") -> subprocess.Popen:
    out = open(tmp / f"{tag}.out", "a")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config), *args],
        stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=daemon_env(), text=True,
    )


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def check_books_match(db: Path, emu_state: dict) -> dict[str, int]:
    """Zero lost, zero duplicated orders; fills and balances agree with the exchange to the unit."""
    from decimal import Decimal

    exchange_orders = {o["clientOrderId"]: o for o in emu_state["orders"]}
    assert len(exchange_orders) == len(emu_state["orders"]), "two exchange orders share a client order id"
    db_orders = {cid: (status, filled) for cid, status, filled in query(db, "select client_order_id, status, filled from orders")}
    lost = set(exchange_orders) - set(db_orders)
    assert not lost, f"orders on the exchange that the database does not know: {sorted(lost)}"
    for cid, (status, filled) in db_orders.items():
        ex = exchange_orders.get(cid)
        if ex is None:
            assert status == "rejected", f"{cid} is {status} in the database but unknown to the exchange"
            continue
        assert Decimal(filled) == Decimal(ex["executedQty"]), f"{cid}: filled {filled} != exchange {ex['executedQty']}"
        assert status in ("filled", "canceled", "expired", "rejected"), f"{cid} left {status}"
    trade_ids = [t for (t,) in query(db, "select trade_id from fills")]
    assert len(trade_ids) == len(set(trade_ids)), "a fill was booked twice"
    assert len(trade_ids) == len(emu_state["trades"]), "fills in the database differ from the exchange's trades"
    base = sum((Decimal(a) * (1 if s == "buy" else -1) for s, a in query(db, "select side, amount from fills")), Decimal(0))
    assert base == Decimal(emu_state["balances"].get("BTC", {"free": "0"})["free"]) + Decimal(emu_state["balances"].get("BTC", {"locked": "0"})["locked"])
    quote = sum((-(Decimal(p) * Decimal(a)) * (1 if s == "buy" else -1) - Decimal(f) for s, p, a, f in query(db, "select side, price, amount, fee from fills")), Decimal(0))
    usdt = emu_state["balances"]["USDT"]
    assert Decimal("10000") + quote == Decimal(usdt["free"]) + Decimal(usdt["locked"])
    return {"orders": len(db_orders), "exchange_orders": len(exchange_orders), "fills": len(trade_ids)}
