"""A daemon's account of several instruments, rebuilt from the database, and `bot status` on it.

The restart rule is the daemon's money safety: every instrument's position and the account's
cash must come back exactly as the fills left them, and an instrument must never be booked by two
accounts. Status must show what the rows hold, per instrument and in total.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from bot.core.account import Account
from bot.core.market import Market
from bot.core.orders import Fill, Side
from bot.engine.restore import AccountMismatch, account_key, restore_account
from bot.store.status import format_status, read_status
from bot.store.store import Store

D = Decimal
SEC = 1_000_000_000


def linear(symbol: str, base: str) -> Market:
    return Market(symbol=symbol, tick_size=D("0.1"), lot_size=D("0.001"), base=base, quote="USDT", kind="linear", settle="USDT")


def spot(symbol: str, base: str) -> Market:
    return Market(symbol=symbol, tick_size=D("0.01"), lot_size=D("0.0001"), base=base, quote="USDT")


fill_strategy = st.lists(
    st.tuples(
        st.integers(0, 1),  # which instrument
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(1, 50),  # lots
        st.integers(-200, 200),  # price offset in ticks
        st.integers(0, 30),  # fee in 1e-4
    ),
    min_size=1, max_size=30,
)


@hsettings(max_examples=40, deadline=None)
@given(fills=fill_strategy, funding=st.lists(st.tuples(st.integers(0, 1), st.integers(-5000, 5000)), max_size=4))
def test_restored_account_equals_the_fills_applied_in_order(tmp_path_factory, fills, funding):
    """Any sequence of fills and funding on two perpetuals, stored by one run, comes back as the
    same positions, wallet and fees per instrument as an account that booked them live."""
    tmp = tmp_path_factory.mktemp("acct")
    markets = [linear("BTC/USDT:USDT", "BTC"), linear("ETH/USDT:USDT", "ETH")]
    base_price = [D(50_000), D(3_000)]
    live = Account.start(markets, D(10_000))
    store = Store(tmp / "bot.db")
    store.start_run("r1", mode="live", config={}, git_rev=None, data_files=[], initial_equity=10_000.0, symbol=account_key([m.symbol for m in markets]))
    ts = SEC
    for n, (lane, side, lots, offset, fee) in enumerate(fills):
        ts += SEC
        market = markets[lane]
        fill = Fill(ts, f"r1.{lane}-{n}", side, base_price[lane] + offset * market.tick_size, lots * market.lot_size, D(fee) / 10_000,
                    trade_id=f"t{n}", fee_currency="USDT", symbol=market.symbol)
        live.portfolios[lane].apply(fill)
        store.record_fill("r1", fill)
    for k, (lane, amount) in enumerate(funding):
        ts += SEC
        live.portfolios[lane].apply_funding(D(amount) / 1000, ts)
        store.record_funding("r1", ts, markets[lane].symbol, 0.0001, 1.0, live.portfolios[lane].qty, D(amount) / 1000, "USDT", f"f{k}")
    store.flush()
    restored = restore_account(store, "live", markets, 99.0, now_ns=ts)
    store.close()
    assert restored.previous_runs == ["r1"]
    for lane, p in zip(restored.lanes, live.portfolios):
        q = lane.portfolio
        assert (q.qty, q.avg_price, q.cash, q.fees, q.realized_pnl, q.funding) == (p.qty, p.avg_price, p.cash, p.fees, p.realized_pnl, p.funding)
    assert sum(lane.portfolio.cash for lane in restored.lanes) == live.cash
    assert restored.lanes[0].portfolio.initial_cash == D(10_000), "the first run's equity, not the caller's"


def test_an_instrument_belongs_to_one_account(tmp_path):
    store = Store(tmp_path / "bot.db")
    store.start_run("solo", mode="paper", config={}, git_rev=None, data_files=[], initial_equity=1000.0, symbol="BTC/USDT")
    store.flush()
    with pytest.raises(AccountMismatch, match="share BTC/USDT"):
        restore_account(store, "paper", [spot("BTC/USDT", "BTC"), spot("ETH/USDT", "ETH")], 1000.0)
    # other modes and disjoint instruments are other accounts
    assert restore_account(store, "live", [spot("BTC/USDT", "BTC"), spot("ETH/USDT", "ETH")], 1000.0).previous_runs == []
    assert restore_account(store, "paper", [spot("ETH/USDT", "ETH")], 1000.0).previous_runs == []
    assert restore_account(store, "paper", [spot("BTC/USDT", "BTC")], 1000.0).previous_runs == ["solo"]
    store.close()


def test_status_shows_each_instrument_and_the_total_as_stored(tmp_path):
    markets = [spot("BTC/USDT", "BTC"), spot("ETH/USDT", "ETH")]
    store = Store(tmp_path / "bot.db")
    store.start_run("r1", mode="paper", config={}, git_rev=None, data_files=[], initial_equity=1000.0, symbol="BTC/USDT,ETH/USDT")
    account = Account.start(markets, D(1000))
    trades = [(0, Side.BUY, D("0.002"), D(50_000), D("0.1")), (1, Side.BUY, D("0.05"), D(3_000), D("0.15")), (0, Side.SELL, D("0.001"), D(50_100), D("0.05"))]
    for n, (lane, side, amount, price, fee) in enumerate(trades):
        fill = Fill((n + 1) * SEC, f"r1.{lane}-{n}" if lane else f"r1-{n}", side, price, amount, fee, symbol=markets[lane].symbol)
        pf = account.portfolios[lane]
        pf.apply(fill)
        store.record_fill("r1", fill)
        store.record_position("r1", fill.ts, pf.qty, pf.avg_price, pf.realized_pnl, pf.cash, pf.fees, pf.dust, symbol=markets[lane].symbol)
    store.record_equity("r1", 4 * SEC, 999.0, float("nan"), D(0), account.cash)
    store.flush()
    store.close()
    status = read_status(tmp_path / "bot.db", "r1")
    per = {i["symbol"]: i for i in status["instruments"]}
    assert list(per) == ["BTC/USDT", "ETH/USDT"]
    assert per["BTC/USDT"]["position"] == str(account.portfolios[0].qty) and per["ETH/USDT"]["position"] == str(account.portfolios[1].qty)
    assert status["position"] is None, "several instruments: a sum of positions means nothing"
    assert D(status["cash"]) == account.cash
    assert (per["BTC/USDT"]["fills"], per["ETH/USDT"]["fills"]) == (2, 1) and status["fills"] == 3
    assert sum(i["fees"] for i in per.values()) == pytest.approx(status["fees"]) == pytest.approx(0.3)
    assert status["equity"] == 999.0
    text = format_status(status)
    assert "instruments:" in text and "ETH/USDT" in text.split("instruments:")[1]
    db = sqlite3.connect(tmp_path / "bot.db")
    assert db.execute("SELECT count(*) FROM fills").fetchone()[0] == status["fills"]
