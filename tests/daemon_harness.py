"""Real processes on 127.0.0.1: the exchange emulator and the bot daemon, for daemon tests."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from bot.emulator.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "itestKEY9f3a7c1e5b2d8a64"
API_SECRET = "itestSECRETq8w7e6r5t4y3u2i1o0p9"

FAST_CONFIG = """
[run]
mode = "{mode}"
db = "{db}"
log_dir = "{logs}"
console_log_level = "warning"
duration_s = {duration}
cancel_open_orders_on_exit = true

[signal]
ofi_scale = 0.3

[strategy]
enter_threshold = 0.3
exit_threshold = 0.0
cooldown_s = 0.2
max_holding_s = 1.5
allow_short = false

[risk]
max_book_age_s = {max_age}
max_order_notional = 500.0
daily_loss_limit = 0.5
max_drawdown = 0.5

[exchange]
rest_url = "{url}"
timeout_ms = 3000
rest_poll_interval_s = 0.2
retry_base_delay_s = 0.1
retry_max_delay_s = 1.0
retry_attempts = 6
"""


class Emulator(EmulatorProcess):
    """The simulated exchange for daemon tests: one account with the test keys and 10,000 USDT."""

    def __init__(self, tmp: Path, *extra: str):
        super().__init__(
            ["--sim", "--api-key", API_KEY, "--api-secret", API_SECRET, "--balances", "USDT=10000,BTC=0", *extra],
            cwd=tmp, stderr_path=tmp / "emulator.err",
        )


def write_config(tmp: Path, emu: Emulator, *, mode: str = "live", duration: float = 30.0, max_age: float = 2.0, name: str = "bot.toml") -> Path:
    path = tmp / name
    path.write_text(FAST_CONFIG.format(mode=mode, db=tmp / "bot.db", logs=tmp / "logs", duration=duration, max_age=max_age, url=emu.url))
    return path


def daemon_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    env["BOT__EXCHANGE__API_KEY"] = API_KEY
    env["BOT__EXCHANGE__API_SECRET"] = API_SECRET
    return env


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
