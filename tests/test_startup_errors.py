"""Every way a start can go wrong ends in one clear line and exit 1: never a traceback, never a
modified file that is not the bot's.

The daemon cases run ``bot run`` as a process against the emulator (wrong secret, empty key,
unreachable exchange, a futures market type); the database cases run ``backtest``, ``run``,
``status`` and ``report`` on paths that cannot be a bot database (not writable, not SQLite,
another tool's SQLite file) and check the file is byte for byte what it was.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_harness import API_SECRET, Emulator, daemon_env, query, write_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"


def bot(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd, env=env or daemon_env(), timeout=120)


def one_error_line(out: subprocess.CompletedProcess, *fragments: str) -> str:
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def test_wrong_secret_is_one_line_naming_the_key(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=30)
    env = daemon_env()
    env["BOT__EXCHANGE__API_SECRET"] = API_SECRET[::-1]
    line = one_error_line(bot("run", "--config", str(config), "--live", cwd=tmp_path, env=env), "refused the API key", "BOT__EXCHANGE__API_SECRET")
    assert API_SECRET[::-1] not in line and API_SECRET not in line
    assert "StoreError" not in line
    assert query(tmp_path / "bot.db", "select status from runs where status = 'running'") == []
    assert emulator.state()["orders"] == []


def test_empty_keys_are_refused(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=30)
    for name in ("API_KEY", "API_SECRET"):
        env = daemon_env()
        env[f"BOT__EXCHANGE__{name}"] = "  "
        one_error_line(bot("run", "--config", str(config), "--live", cwd=tmp_path, env=env), f"non-empty exchange.{name.lower()}")
    assert emulator.state()["requests"] == 0, "an empty key must be refused before anything is sent"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["live", "paper"])
def test_unreachable_exchange_is_one_line(tmp_path, mode):
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[run]\nmode = "{mode}"\ndb = "{tmp_path / "bot.db"}"\nlog_dir = "{tmp_path / "logs"}"\n'
        f'[exchange]\nrest_url = "http://127.0.0.1:{_closed_port()}"\ntimeout_ms = 1000\nretry_attempts = 2\nretry_base_delay_s = 0.05\n'
    )
    args = ["--live"] if mode == "live" else []
    one_error_line(bot("run", "--config", str(config), *args, cwd=tmp_path), "cannot reach the exchange", "exchange.rest_url")


def test_a_perpetual_with_a_spot_symbol_is_refused_naming_the_symbol_to_use(tmp_path, emulator):
    """``type = "future"`` (read as linear) on ``BTC/USDT``: the unified perpetual symbol is named."""
    config = write_config(tmp_path, emulator, mode="paper", duration=30)
    config.write_text(config.read_text() + '\n[market]\ntype = "future"\n')
    proc = bot("run", "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert 'market: Value error, a linear perpetual settles in its quote: use symbol = "BTC/USDT:USDT"' in proc.stderr


def test_an_instrument_of_several_that_the_exchange_does_not_list_is_one_line(tmp_path, emulator):
    """The daemon trades every [[markets]] entry; one the exchange does not list stops the start, named."""
    config = write_config(tmp_path, emulator, mode="paper", duration=30)
    config.write_text(config.read_text() + '\n[[markets]]\nsymbol = "BTC/USDT"\n\n[[markets]]\nsymbol = "DOGE/USDT"\n')
    one_error_line(bot("run", "--config", str(config), cwd=tmp_path), "load_markets", "'DOGE/USDT' is not listed")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_sqlite(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('alice')")
    conn.commit()
    conn.close()
    return path


def _not_sqlite(path: Path) -> Path:
    path.write_text("these are someone's notes, not a database\n" * 20)
    return path


@pytest.mark.parametrize("make, fragment", [(_foreign_sqlite, "not an imbalance-bot database"), (_not_sqlite, "not an SQLite database")])
def test_a_database_that_is_not_the_bots_is_refused_and_left_untouched(tmp_path, make, fragment):
    db = make(tmp_path / "other.db")
    before = _digest(db)
    one_error_line(bot("backtest", "--config", str(DEMO), "--sim", "--db", str(db), cwd=tmp_path), fragment, str(db))
    one_error_line(bot("status", "--db", str(db), cwd=tmp_path), str(db))
    one_error_line(bot("report", "--db", str(db), cwd=tmp_path), str(db))
    config = tmp_path / "paper.toml"
    config.write_text(f'[run]\nmode = "paper"\nlog_dir = "{tmp_path / "logs"}"\n[exchange]\nrest_url = "http://127.0.0.1:{_closed_port()}"\n')
    one_error_line(bot("run", "--config", str(config), "--db", str(db), cwd=tmp_path), fragment)
    assert _digest(db) == before, "the file was modified"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("other.db")) == ["other.db"], "journal files were left beside it"


def test_a_database_path_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    db = blocker / "bot.db"  # its folder is a file
    one_error_line(bot("backtest", "--config", str(DEMO), "--sim", "--db", str(db), cwd=tmp_path), str(blocker))
    config = tmp_path / "paper.toml"
    config.write_text(f'[run]\nmode = "paper"\nlog_dir = "{tmp_path / "logs"}"\n[exchange]\nrest_url = "http://127.0.0.1:{_closed_port()}"\n')
    one_error_line(bot("run", "--config", str(config), "--db", str(db), cwd=tmp_path), str(blocker))


def test_a_started_run_that_must_stop_is_marked_failed_with_the_reason(tmp_path):
    """A dead run left an order the exchange now answers garbage about: the restart cannot know
    the position, so it stops with one line, and its run (already started) is marked failed with
    that reason instead of staying 'running'."""
    import json

    from bot.core.orders import Order, Side
    from bot.store.store import Store

    cid = "deadrun-1"
    store = Store(tmp_path / "bot.db")
    store.start_run("deadrun", mode="live", config={}, git_rev=None, data_files=[], initial_equity=10_000.0, symbol="BTC/USDT")
    order = Order(cid, 1, Side.BUY, __import__("decimal").Decimal("0.01"), reason="signal")
    order.exchange_order_id = "4000000999"
    store.record_order("deadrun", order)
    store.flush()
    store.close()
    garbage = {"symbol": "BTCUSDT", "orderId": 4000000999, "orderListId": -1, "clientOrderId": cid, "price": "0.00000000",
               "origQty": "0.01000000", "executedQty": "1000000.00000000", "cummulativeQuoteQty": "30000000000.00000000",
               "status": "FILLED", "timeInForce": "GTC", "type": "MARKET", "side": "BUY", "time": 1, "updateTime": 1}
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps([{"method": "GET", "path": "/api/v3/order", "mode": "replace", "body": garbage, "times": 0}]))
    emu = Emulator(tmp_path, "--override", str(overrides))
    try:
        config = write_config(tmp_path, emu, duration=60)
        line = one_error_line(bot("run", "--config", str(config), "--live", cwd=tmp_path), f"reconciling order {cid}", "filled")
        assert emu.state()["orders"] == []
    finally:
        emu.stop()
    rows = query(tmp_path / "bot.db", "select run_id, status, stats_json from runs where run_id != 'deadrun'")
    assert len(rows) == 1 and rows[0][1] == "failed", rows
    assert "reconciling order" in json.loads(rows[0][2])["stop_reason"] and line.endswith(json.loads(rows[0][2])["stop_reason"][-40:])
    assert query(tmp_path / "bot.db", "select status from runs where run_id = 'deadrun'") == [("crashed",)]
    assert query(tmp_path / "bot.db", "select count(*) from fills") == [(0,)], "nothing of the garbage was booked"


@pytest.mark.parametrize("argv", [["backtest", "--config", str(DEMO), "--sim"], ["run", "--config", str(DEMO)]])
def test_an_unwritable_log_directory_is_one_line(tmp_path, argv):
    """Every command configures its log from run.log_dir: one line naming it when it cannot be written."""
    env = {**daemon_env(), "BOT__RUN__LOG_DIR": "/proc/no-such-log-dir"}
    out = bot(*argv, "--db", str(tmp_path / "bot.db"), cwd=tmp_path, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr, out.stdout + out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.strip()]
    assert line.startswith("error: cannot write the log in '/proc/no-such-log-dir'") and "run.log_dir" in line, line
