"""Instruments and the account: linear and inverse perpetuals, funding, several instruments in one run.

Every backtest here runs the real engine, paper venue and store on synthetic books whose
imbalance is scripted (bid-heavy, then ask-heavy), so the strategy's entries and exits are known
and the results can be checked against hand computations from the stored fills.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import assume, given, settings as hsettings
from hypothesis import strategies as st

from bot.config.settings import ConfigError, load_settings
from bot.core.events import BookSnapshot, MarkPrice
from bot.core.market import Market
from bot.engine.runner import run_backtest
from bot.risk.liquidation import liquidation_price

SEC = 1_000_000_000
HOUR = 3600 * SEC
D = Decimal


def book_events(t0: int, seconds: float, mid0: float, mid1: float, tick: float, heavy: str, step_ms: int = 100, size: float = 50.0):
    """Snapshots every ``step_ms`` with the mid moving linearly from ``mid0`` to ``mid1`` and one
    side ``size`` times deeper than the other (``heavy`` = "bid" or "ask")."""
    n = int(seconds * 1000 / step_ms)
    for k in range(n):
        mid = mid0 + (mid1 - mid0) * k / max(n - 1, 1)
        best_bid = round(round(mid / tick) * tick - tick, 10)
        big, small = (size, 1.0) if heavy == "bid" else (1.0, size)
        bids = tuple((round(best_bid - i * tick, 10), big) for i in range(10))
        asks = tuple((round(best_bid + (i + 1) * tick, 10), small) for i in range(10))
        yield BookSnapshot(t0 + k * step_ms * 1_000_000, 0, bids, asks, 1000 + k)


def scripted(t0: int, mid: float, move: float, tick: float):
    """Bid-heavy for 3 s (enter long), still bid-heavy for 3 s while the price moves by ``move``,
    then ask-heavy for 1 s (exit)."""
    yield from book_events(t0, 3.0, mid, mid, tick, "bid")
    yield from book_events(t0 + 3 * SEC, 3.0, mid, mid + move, tick, "bid")
    yield from book_events(t0 + 6 * SEC, 1.0, mid + move, mid + move, tick, "ask")


COMMON = {
    "strategy": {"enter_threshold": 0.3, "exit_threshold": 0.0, "cooldown_s": 100.0, "max_holding_s": 600.0, "allow_short": False},
    "store": {"synchronous": "off"},
    "run": {"log_dir": "logs", "console_log_level": "error"},
}


def backtest(tmp_path, events, **sections):
    overrides = {**COMMON, **sections}
    s = load_settings(None, **overrides)
    db = tmp_path / "bt.db"
    summary = run_backtest(s, events, db_path=db, data_files=[])
    return summary, sqlite3.connect(db)


def test_inverse_pnl_whole_contracts_and_btc_settlement(tmp_path, monkeypatch):
    """COIN-M BTCUSD: 100 USD contracts, PnL contracts x 100 x (1/entry - 1/exit) in BTC, fees in BTC."""
    monkeypatch.chdir(tmp_path)
    market = {"symbol": "BTC/USD:BTC", "type": "inverse", "tick_size": "0.1", "lot_size": "1", "min_qty": "1",
              "min_notional": "0", "contract_size": "100", "leverage": 2}
    risk = {"initial_equity": 0.5, "max_position_notional": 0.05, "max_order_notional": 0.05, "risk_per_trade": 0.05,
            "stop_loss_bps": 500.0, "take_profit_bps": 5000.0, "max_depth_fraction": 1.0}
    summary, db = backtest(tmp_path, scripted(1_700_000_000 * SEC, 50_000.0, 500.0, 0.1), market=market, risk=risk,
                           execution={"taker_fee_bps": 5.0, "maker_fee_bps": 2.0, "latency_ms": 0.0})
    fills = db.execute("SELECT side, price, amount, fee, fee_currency, symbol FROM fills ORDER BY id").fetchall()
    assert len(fills) >= 2 and summary["trades"] >= 1
    gross = fees = D(0)
    for side, price, amount, fee, currency, symbol in fills:
        a, p = D(amount), D(price)
        assert a == a.to_integral_value() and a >= 1, "whole contracts"
        assert currency == "BTC" and symbol == "BTC/USD:BTC"
        # fee: 5 bps of the contracts' BTC value, rounded to 1e-8 BTC
        assert D(fee) == (a * 100 / p * D("0.0005")).quantize(D("1e-8"), rounding="ROUND_HALF_UP")
        gross += (a if side == "buy" else -a) * 100 / p  # telescopes to sum of n x 100 x (1/entry - 1/exit)
        fees += D(fee)
    assert summary["settle"] == "BTC"
    assert summary["fees"] == pytest.approx(float(fees), abs=1e-12)
    assert summary["pnl_net"] == pytest.approx(float(gross - fees), abs=1e-8)  # reported to the satoshi
    assert gross > 0, "the price rose while long: an inverse long gains BTC"
    trips = db.execute("SELECT pnl_gross FROM round_trips").fetchall()
    # realized PnL settles to the satoshi per closing fill (as COIN-M does): within half a satoshi each
    assert abs(sum(D(g) for (g,) in trips) - gross) <= D("0.000000005") * len(fills)
    [inst] = summary["instruments"]
    assert inst["symbol"] == "BTC/USD:BTC" and inst["pnl_net"] == summary["pnl_net"]


def test_linear_perpetual_pays_funding_across_the_funding_time(tmp_path, monkeypatch):
    """USD-M: a long held across 08:00 UTC pays qty x mark x rate (1 bp from config, no mark-price data)."""
    monkeypatch.chdir(tmp_path)
    t0 = (1_700_006_400 // 28_800 + 1) * 28_800 * SEC - 2 * SEC  # 2 s before a funding time
    market = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001",
              "min_notional": "5", "leverage": 5, "funding_rate_bps": 1.0}
    events = list(book_events(t0, 4.0, 50_000.0, 50_000.0, 0.1, "bid"))
    summary, db = backtest(tmp_path, events, market=market)
    rows = db.execute("SELECT ts, symbol, rate, mark, position, amount, currency FROM funding").fetchall()
    assert len(rows) == 1
    ts, symbol, rate, mark, position, amount, currency = rows[0]
    assert ts == t0 + 2 * SEC and symbol == "BTC/USDT:USDT" and currency == "USDT"
    assert D(rate) == D("0.0001") and D(position) > 0
    assert D(amount) == -(D(position) * D(mark) * D(rate)).quantize(D("1e-12"))
    assert summary["funding"] == pytest.approx(float(D(amount)), abs=1e-9)
    fills = db.execute("SELECT side, price, amount, fee FROM fills").fetchall()
    flows = sum(((-1 if s == "buy" else 1) * D(p) * D(a) - D(f)) for s, p, a, f in fills)  # flat at the end
    assert summary["pnl_net"] == pytest.approx(float(flows + D(amount)), abs=1e-6)


def test_funding_rate_and_time_come_from_mark_price_messages(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    due = t0 + 2 * SEC  # the exchange's own next funding time, not a multiple of 8 h
    market = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001",
              "min_notional": "5", "funding_rate_bps": 1.0}
    events = list(book_events(t0, 4.0, 50_000.0, 50_000.0, 0.1, "bid"))
    events.append(MarkPrice(t0 + 1, 0, 50_010.0, 50_000.0, -0.0003, due))
    # the exchange moves on to the next funding time: the one at ``due`` was paid at -3 bp
    events.append(MarkPrice(due + SEC // 2, 0, 50_020.0, 50_000.0, 0.0001, due + 8 * HOUR))
    events.sort(key=lambda e: e.ts_local)
    summary, db = backtest(tmp_path, events, market=market)
    [(ts, rate, mark, position, amount)] = db.execute("SELECT ts, rate, mark, position, amount FROM funding").fetchall()
    assert ts == due and D(rate) == D("-0.0003") and D(mark) == D("50020.0")
    assert D(amount) > 0, "a negative rate pays longs"


def test_funding_is_charged_on_the_position_held_at_the_funding_time(tmp_path, monkeypatch):
    """The message showing the funding time has passed comes after it; a position closed in
    between still pays the funding at that time (the position noted at the first event whose
    exchange time is at or past it), not the flat position the message finds."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    ahead = 1_300_000_000  # the exchange's clock runs 1.3 s ahead of the recorder's (as in the shared recordings)
    due = t0 + 4 * SEC  # exchange time: local t0 + 2.7 s, while long; the exit comes at local t0 + 3 s
    market = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001",
              "min_notional": "5", "funding_rate_bps": 1.0}
    books = [*book_events(t0, 3.0, 50_000.0, 50_000.0, 0.1, "bid"), *book_events(t0 + 3 * SEC, 1.0, 50_000.0, 50_000.0, 0.1, "ask")]
    events: list = [dataclasses.replace(e, ts_exchange=e.ts_local + ahead) for e in books]
    events.append(MarkPrice(t0 + 1, t0 + 1 + ahead, 50_000.0, 50_000.0, 0.0002, due))
    events.append(MarkPrice(t0 + 3_500_000_000, t0 + 3_500_000_000 + ahead, 50_000.0, 50_000.0, 0.0001, due + 8 * HOUR))
    events.sort(key=lambda e: e.ts_local)
    summary, db = backtest(tmp_path, events, market=market, execution={"latency_ms": 0.0})
    fills = db.execute("SELECT ts, side, amount FROM fills ORDER BY id").fetchall()
    assert [f[1] for f in fills] == ["buy", "sell"], fills
    assert t0 + 3 * SEC <= fills[1][0] < t0 + 3_500_000_000, "flat before the message that shows the funding time passed"
    [(ts, rate, position, amount)] = db.execute("SELECT ts, rate, position, amount FROM funding").fetchall()
    assert ts == due and D(rate) == D("0.0002") and D(position) == D(fills[0][2])
    assert D(amount) == -(D(position) * D("50000.0") * D("0.0002")).quantize(D("1e-12"))
    assert summary["funding"] == pytest.approx(float(D(amount)), abs=1e-9)


def two_instruments(t0: int):
    btc = list(scripted(t0, 50_000.0, 100.0, 0.01))
    eth = list(scripted(t0 + 37_000_000, 3_000.0, -12.0, 0.01))
    merged = sorted([(0, e) for e in btc] + [(1, e) for e in eth], key=lambda x: (x[1].ts_local, x[0]))
    return merged


MARKETS = [
    {"symbol": "BTC/USDT", "type": "spot", "tick_size": "0.01", "lot_size": "0.00001", "min_qty": "0.00001", "min_notional": "5"},
    {"symbol": "ETH/USDT", "type": "spot", "tick_size": "0.01", "lot_size": "0.0001", "min_qty": "0.0001", "min_notional": "5"},
]


def test_two_instruments_share_one_account_and_add_up(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary, db = backtest(tmp_path, two_instruments(1_700_000_000 * SEC), markets=MARKETS)
    inst = {i["symbol"]: i for i in summary["instruments"]}
    assert set(inst) == {"BTC/USDT", "ETH/USDT"} and summary["symbol"] == "BTC/USDT,ETH/USDT"
    assert all(i["fills"] > 0 for i in inst.values()), "both instruments traded"
    for key in ("trades", "orders", "fills"):
        assert sum(i[key] for i in inst.values()) == summary[key]
    for key in ("pnl_gross", "fees", "funding", "pnl_net"):
        assert sum(i[key] for i in inst.values()) == pytest.approx(summary[key], abs=1e-6)
    assert inst["BTC/USDT"]["pnl_gross"] > 0 > inst["ETH/USDT"]["pnl_gross"], "BTC rose and ETH fell while both were long"
    ids = [r[0] for r in db.execute("SELECT client_order_id FROM orders")]
    assert len(ids) == len(set(ids)), "client order ids are unique across instruments"
    for table in ("orders", "fills", "positions", "round_trips"):
        assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE symbol IS NULL OR symbol = ''").fetchone()[0] == 0, table
    # per-instrument PnL from the fills alone (both flat at the end): what the report shows
    for symbol, i in inst.items():
        fills = db.execute("SELECT side, price, amount, fee FROM fills WHERE symbol = ?", [symbol]).fetchall()
        flows = sum(((-1 if s == "buy" else 1) * D(p) * D(a) - D(f)) for s, p, a, f in fills)
        assert i["pnl_net"] == pytest.approx(float(flows), abs=1e-6)


def test_account_drawdown_flattens_every_instrument(tmp_path, monkeypatch):
    """Both long; BTC falls far enough to breach the account's drawdown: both are flattened, one halt."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    btc = list(book_events(t0, 3.0, 50_000.0, 50_000.0, 0.01, "bid")) + list(book_events(t0 + 3 * SEC, 3.0, 50_000.0, 47_000.0, 0.01, "bid"))
    eth = list(book_events(t0 + SEC // 3, 5.5, 3_000.0, 3_000.0, 0.01, "bid"))
    merged = sorted([(0, e) for e in btc] + [(1, e) for e in eth], key=lambda x: (x[1].ts_local, x[0]))
    risk = {"max_drawdown": 0.01, "risk_per_trade": 0.05, "stop_loss_bps": 2000.0, "max_position_notional": 5000.0,
            "max_order_notional": 5000.0, "max_depth_fraction": 1.0}
    summary, db = backtest(tmp_path, merged, markets=MARKETS, risk=risk)
    halts = db.execute("SELECT rule, symbol FROM risk_events WHERE kind = 'halt'").fetchall()
    assert halts == [("max_drawdown", None)], "one account-wide halt"
    exits = db.execute("SELECT symbol FROM orders WHERE reason = 'max_drawdown'").fetchall()
    assert sorted(s for (s,) in exits) == ["BTC/USDT", "ETH/USDT"]


def test_markets_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="settle in BTC, USDT"):
        load_settings(None, markets=[MARKETS[0], {"symbol": "BTC/USD:BTC", "type": "inverse", "contract_size": "100"}])
    with pytest.raises(ConfigError, match="listed twice"):
        load_settings(None, markets=[MARKETS[0], MARKETS[0]])
    with pytest.raises(ConfigError, match='use symbol = "BTC/USDT:USDT"'):
        load_settings(None, market={"symbol": "BTC/USDT", "type": "linear"})
    assert load_settings(None, market={"symbol": "BTC/USDT:USDT", "type": "future"}).market.type == "linear"


@hsettings(max_examples=300, deadline=None)
@given(
    inverse=st.booleans(),
    long=st.booleans(),
    entry=st.floats(100.0, 200_000.0),
    contracts=st.integers(1, 10_000),
    leverage=st.integers(2, 125),
    mmr=st.floats(0.001, 0.05),
)
def test_liquidation_price_is_where_margin_meets_maintenance(inverse, long, entry, contracts, leverage, mmr):
    """At the estimate, margin balance (wallet + unrealized) equals the maintenance margin."""
    assume(1 / leverage > mmr * 1.01)  # the exchange offers no leverage whose initial margin is below maintenance
    cs = D(100) if inverse else D("0.001")
    market = Market("X/USD:X" if inverse else "X/USDT:USDT", D("0.1"), D(1), kind="inverse" if inverse else "linear",
                    contract_size=cs, leverage=leverage, maintenance_margin_rate=D(repr(mmr)))
    signed = contracts if long else -contracts
    wallet = market.value(contracts, entry) / leverage
    liq = liquidation_price(market, signed, entry, wallet)
    if liq is None:
        return
    s = 1 if long else -1
    n = contracts * float(cs)
    if inverse:
        balance = wallet + s * n * (1 / entry - 1 / liq)
        maintenance = n / liq * mmr
    else:
        balance = wallet + s * n * (liq - entry)
        maintenance = n * liq * mmr
    assert balance == pytest.approx(maintenance, rel=1e-6, abs=1e-9)
    assert (liq < entry) == long, "a long is liquidated below its entry, a short above"


def test_entry_too_close_to_liquidation_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    market = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001",
              "min_notional": "5", "leverage": 100}
    risk = {"liquidation_buffer_stops": 10.0, "stop_loss_bps": 10.0}
    summary, db = backtest(tmp_path, book_events(1_700_000_000 * SEC, 2.0, 50_000.0, 50_000.0, 0.1, "bid"), market=market, risk=risk)
    rules = {r for (r,) in db.execute("SELECT rule FROM risk_events WHERE kind = 'reject'")}
    assert rules == {"liquidation_buffer"} and summary["orders"] == 0
    detail = db.execute("SELECT detail FROM risk_events WHERE rule = 'liquidation_buffer'").fetchone()[0]
    assert "estimated liquidation price" in detail and "market.leverage" in detail


def test_backtest_liquidates_a_leveraged_position_the_price_runs_through(tmp_path, monkeypatch):
    """20x long, the price falls 10 % in a gap past the stop: liquidated at the estimate, stored."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    market = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001",
              "min_notional": "5", "leverage": 20, "maintenance_margin_rate": "0.004"}
    risk = {"liquidation_buffer_stops": 1.0, "stop_loss_bps": 10.0, "max_book_age_s": 5.0}
    events = list(book_events(t0, 3.0, 50_000.0, 50_000.0, 0.1, "bid"))
    events += list(book_events(t0 + 3 * SEC, 1.0, 45_000.0, 45_000.0, 0.1, "bid"))  # a gap down through stop and liquidation
    summary, db = backtest(tmp_path, events, market=market, risk=risk)
    [(detail,)] = db.execute("SELECT detail FROM risk_events WHERE kind = 'liquidation'").fetchall()
    [(price, amount, cid)] = db.execute("SELECT price, amount, client_order_id FROM fills WHERE client_order_id LIKE 'liquidation-%'").fetchall()
    entry = db.execute("SELECT avg_price FROM positions ORDER BY id LIMIT 1").fetchone()[0]
    e, q = float(entry), float(amount)
    # isolated 20x: wallet = q * e / 20; p = (wb - q*e) / (q*mmr - q)
    expected = (q * e / 20 - q * e) / (q * 0.004 - q)
    assert float(price) == pytest.approx(expected, abs=0.1)
    assert D(db.execute("SELECT qty FROM positions ORDER BY id DESC LIMIT 1").fetchone()[0]) == 0
    assert summary["trades"] >= 1 and str(price) in detail


# ------------------------------------------------------------------ the shipped configs on the real recordings
from conftest import shared_data_dir  # noqa: E402

HFT = shared_data_dir() / "hftbacktest-binance"
SPOT_FILES = [HFT / "spot" / f"{s}_2024080{d}.gz" for s in ("btcusdt", "ethusdt") for d in (8, 9)]
USDM_JULY = [HFT / "usdm" / "btcusdt_20240718.gz", HFT / "usdm" / "btcusdt_20240719.gz"]
ROOT = Path(__file__).resolve().parents[1]


def cli(tmp_path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    proc = subprocess.run([sys.executable, "-m", "bot", *args, "--json"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.skipif(not all(f.exists() for f in SPOT_FILES), reason=f"../shared/data not present ({HFT}): the spot recordings are needed")
def test_spot_btc_eth_config_trades_both_symbols_from_one_account(tmp_path):
    """The four spot files, given in any order, grouped by symbol and merged by time into one run."""
    db = tmp_path / "multi.db"
    summary = cli(tmp_path, "backtest", "--config", str(ROOT / "config" / "backtest-spot-btc-eth.toml"),
                  "--data", *map(str, reversed(SPOT_FILES)), "--db", str(db))
    assert summary["status"] == "completed" and summary["settle"] == "USDT"
    inst = {i["symbol"]: i for i in summary["instruments"]}
    assert set(inst) == {"BTC/USDT", "ETH/USDT"} and all(i["trades"] > 0 for i in inst.values())
    for key in ("trades", "orders", "fills"):
        assert sum(i[key] for i in inst.values()) == summary[key]
    for key in ("pnl_gross", "fees", "funding", "pnl_net"):
        assert sum(i[key] for i in inst.values()) == pytest.approx(summary[key], abs=1e-6)
    source = summary["stats"]["source"]["instruments"]
    assert source["BTC/USDT"]["gaps"] == 0 and source["ETH/USDT"]["gaps"] == 0
    assert summary == cli(tmp_path, "report", "--db", str(db)), "the report is rebuilt from the database alone"
    con = sqlite3.connect(db)
    ts = [r[0] for r in con.execute("SELECT ts FROM fills ORDER BY id")]
    assert ts == sorted(ts), "one stream in receive-time order"


@pytest.mark.skipif(not all(f.exists() for f in USDM_JULY), reason=f"../shared/data not present ({HFT}): the USD-M recordings are needed")
def test_usdm_config_backtests_a_linear_perpetual(tmp_path):
    db = tmp_path / "usdm.db"
    summary = cli(tmp_path, "backtest", "--config", str(ROOT / "config" / "backtest-usdm-btcusdt.toml"), "--data", *map(str, USDM_JULY), "--db", str(db))
    assert summary["status"] == "completed" and summary["symbol"] == "BTC/USDT:USDT" and summary["settle"] == "USDT"
    con = sqlite3.connect(db)
    assert {r[0] for r in con.execute("SELECT DISTINCT symbol FROM fills")} == {"BTC/USDT:USDT"}
    assert {r[0] for r in con.execute("SELECT DISTINCT fee_currency FROM fills")} == {"USDT"}
    # a linear perpetual moves no cash on a trade: the wallet changes by realized PnL, fees and funding only
    last = con.execute("SELECT cash, realized_pnl, fees, funding FROM positions ORDER BY id DESC LIMIT 1").fetchone()
    cash, realized, fees, funding = (D(x or 0) for x in last)
    assert cash == D("10000") + realized - fees + funding
