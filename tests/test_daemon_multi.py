"""Paper and live daemons trading two instruments (``[[markets]]`` BTC/USDT and ETH/USDT) against one
emulator serving both (``bot emulator --symbol BTC/USDT --symbol ETH/USDT``), through the real ccxt
client: both instruments get orders and fills, every stored row names its instrument, client
order ids are unique across instruments, and a SIGTERM and restart resumes with both positions.

USD-M is not parametrized: the futures emulator serves one perpetual per process (its account
has one position), so several perpetuals are refused by ``bot emulator`` (see
tests/test_emulator_multi.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from daemon_harness import Emulator, query, run_until, set_keys, write_config
from waiting import HANG_GUARD_S

D = Decimal
SYMBOLS = ("BTC/USDT", "ETH/USDT")
MARKETS = "".join(f'\n[[markets]]\nsymbol = "{s}"\n' for s in SYMBOLS)


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator(tmp_path, "--symbol", ",".join(SYMBOLS), balances="USDT=10000,BTC=0,ETH=0")
    yield emu
    emu.stop()


def two_market_config(tmp: Path, emu: Emulator, mode: str) -> Path:
    """Enter on the signal and hold (no exit signal, far stops), so each instrument ends up holding a position."""
    path = write_config(tmp, emu, mode=mode, duration=600)
    text = set_keys(path.read_text(), "strategy", "exit_threshold = -1.0\nmax_holding_s = 600.0")
    text = set_keys(text, "risk", "stop_loss_bps = 5000.0\ntake_profit_bps = 5000.0")
    path.write_text(text + MARKETS)
    return path


def positions(db: Path) -> dict[str, D]:
    """Each instrument's latest stored position."""
    rows = query(db, "select symbol, qty from positions where id in (select max(id) from positions group by symbol)")
    return {symbol: D(qty) for symbol, qty in rows}


def both_hold(db: Path) -> bool:
    held = positions(db)
    return all(held.get(s, D(0)) > 0 for s in SYMBOLS)


def status(db: Path, cwd: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(db), "--json"], capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("mode", ["paper", "live"])
def test_two_instruments_trade_stop_and_resume_with_both_positions(tmp_path, emulator, mode):
    db = tmp_path / "bot.db"
    config = two_market_config(tmp_path, emulator, mode)
    args = ("--live",) if mode == "live" else ()
    run_until(tmp_path, config, lambda: both_hold(db), "a filled entry and a held position on both instruments", *args,
              timeout=HANG_GUARD_S)

    # every stored order and fill names its instrument; client order ids never repeat across them
    orders = query(db, "select symbol, client_order_id, status from orders")
    assert {s for s, _, _ in orders} == set(SYMBOLS), orders
    ids = [cid for _, cid, _ in orders]
    assert len(ids) == len(set(ids)), "a client order id was used twice"
    fills = query(db, "select symbol, count(*) from fills group by symbol")
    assert {s for s, n in fills if n > 0} == set(SYMBOLS)
    assert query(db, "select count(*) from fills where symbol is null or symbol not in (?, ?)", *SYMBOLS) == [(0,)]
    held = positions(db)

    first = status(db, tmp_path)
    assert first["mode"] == mode and first["status"] == "completed" and first["open_orders"] == []
    per = {p["symbol"]: p for p in first["instruments"]}
    assert set(per) == set(SYMBOLS)
    for symbol in SYMBOLS:
        assert per[symbol]["orders"] >= 1 and per[symbol]["fills"] >= 1
        assert D(per[symbol]["position"]) == held[symbol] > 0

    state = emulator.state()
    if mode == "live":
        # the exchange saw orders on both symbols, each client id once, and holds what the database holds
        ours = state["orders"]
        assert {o["symbol"] for o in ours} == {"BTCUSDT", "ETHUSDT"}
        assert len({o["clientOrderId"] for o in ours}) == len(ours)
        assert {o["clientOrderId"] for o in ours} <= set(ids)
        for symbol in SYMBOLS:
            base = symbol.split("/")[0]
            bal = state["balances"][base]
            assert D(bal["free"]) + D(bal["locked"]) == held[symbol], f"{base}: exchange and database differ"
    else:
        assert state["orders"] == [], "paper never reaches the exchange's order book"

    # a restart takes over both positions, valued at the mid, and trades both instruments on
    run_ids = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]

    def restarted_and_trading() -> bool:
        runs = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]
        return len(runs) == 2 and bool(query(db, "select 1 from heartbeat where run_id = ?", runs[-1]))

    run_until(tmp_path, config, restarted_and_trading, "the restarted daemon to trade", *args, tag="restart")
    second_id = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")][-1]
    assert second_id not in run_ids
    carried = json.loads(query(db, "select carried_json from runs where run_id = ?", second_id)[0][0])
    took = {c["symbol"]: D(c["qty"]) for c in carried["instruments"]}
    assert took == held, f"the restart carried {took}, the first run held {held}"
    second = status(db, tmp_path)
    assert second["run_id"] == second_id and second["status"] == "completed"
    assert {p["symbol"]: D(p["position"]) for p in second["instruments"]}.keys() == set(SYMBOLS)
    assert all(D(p["position"]) > 0 for p in second["instruments"])
