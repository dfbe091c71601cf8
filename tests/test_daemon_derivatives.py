"""Paper and live daemons on perpetuals of the emulator (``bot emulator --market usdm|coinm``),
through the real ccxt client: leverage and margin mode set, positions opened and closed
reduce-only, funding paid and stored, a liquidation seen and booked, and kill -9 restarts that
lose and duplicate nothing (the exchange's position and wallet equal the database's)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from daemon_harness import Emulator, count, kill_restart_rounds, query, run_until, set_keys, start_daemon, stop, wait_for, write_config

D = Decimal
MARKETS = {
    "usdm": ('symbol = "BTC/USDT:USDT"\ntype = "linear"\ntick_size = "0.1"\nlot_size = "0.001"\nmin_qty = "0.001"\n'
             'min_notional = "5"\n', "USDT=10000", "USDT"),
    "coinm": ('symbol = "BTC/USD:BTC"\ntype = "inverse"\ntick_size = "0.1"\nlot_size = "1"\nmin_qty = "1"\nmin_notional = "0"\n'
              'contract_size = "100"\n', "BTC=1", "BTC"),
}


@contextlib.contextmanager
def emulator(tmp: Path, market: str, *extra: str) -> Iterator[Emulator]:
    """A futures emulator with funding every second, stopped when the test ends."""
    emu = Emulator(tmp, "--market", market, "--funding-interval-s", "1", "--funding-rate", "0.0001", *extra, balances=MARKETS[market][1])
    try:
        yield emu
    finally:
        emu.stop()


def config(tmp: Path, emu: Emulator, market: str, *, mode: str = "live", duration: float = 600, leverage: int = 5,
           extra_risk: str = "", strategy: str = "", name: str = "bot.toml") -> Path:
    path = write_config(tmp, emu, mode=mode, duration=duration, name=name)
    text = path.read_text()
    text = set_keys(text, "exchange", "position_poll_interval_s = 0.3\nmark_poll_interval_s = 0.3")
    text = set_keys(text, "strategy", "max_holding_s = 2.5\n" + strategy)
    if market == "coinm":  # money in BTC: caps of about 500 USD at 30,000
        extra_risk = "max_order_notional = 0.017\nmax_position_notional = 0.05\ninitial_equity = 1.0\n" + extra_risk
    text = set_keys(text, "risk", extra_risk)
    path.write_text(text + f"\n[market]\n{MARKETS[market][0]}leverage = {leverage}\n")
    return path


def books_match_exchange(db: Path, state: dict, start_wallet: Decimal) -> dict[str, int]:
    """Every exchange order of ours known with the same executed amount, every trade booked once,
    the position and the wallet equal to the exchange's to the unit."""
    ours = {o["clientOrderId"]: o for o in state["orders"] if not o["clientOrderId"].startswith("autoclose")}
    db_orders = {cid: (status, filled) for cid, status, filled in query(db, "select client_order_id, status, filled from orders")}
    assert not set(ours) - set(db_orders), "orders on the exchange that the database does not know"
    for cid, (status, filled) in db_orders.items():
        if cid not in ours:
            assert status == "rejected", f"{cid} is {status} in the database but unknown to the exchange"
            continue
        assert D(filled) == D(ours[cid]["executedQty"]), cid
        assert status in ("filled", "canceled", "expired", "rejected"), f"{cid} left {status}"
    trade_ids = [t for (t,) in query(db, "select trade_id from fills")]
    assert len(trade_ids) == len(set(trade_ids)), "a fill was booked twice"
    assert sorted(trade_ids) == sorted(str(t["id"]) for t in state["trades"]), "fills differ from the exchange's trades"
    qty, cash = query(db, "select qty, cash from positions order by id desc limit 1")[0]
    assert D(qty) == D(state["position"]["positionAmt"]), "position"
    (settle,) = state["balances"]
    wallet = D(state["balances"][settle]["wallet"])
    # the exchange keeps paying funding on a position left open after the daemon's last look
    stored = {ref for (ref,) in query(db, "select ref from funding where ref is not null")}
    last = max((int(ts) for (ts,) in query(db, "select ts from funding where ref is not null")), default=0)
    later = [i for i in state["income"] if i["incomeType"] == "FUNDING_FEE" and str(i["tranId"]) not in stored]
    assert all(i["time"] * 1_000_000 > last for i in later), "a funding payment before the last stored one was missed"
    unbooked = sum((D(i["income"]) for i in later), D(0))
    assert D(cash) + unbooked == wallet, f"database wallet {cash} + later funding {unbooked} != exchange wallet {wallet} (start {start_wallet})"
    return {"orders": len(db_orders), "trades": len(trade_ids)}


def test_live_usdm_sets_leverage_trades_reduce_only_and_books_funding(tmp_path):
    with emulator(tmp_path, "usdm") as emu:
        db = tmp_path / "bot.db"
        cfg = config(tmp_path, emu, "usdm")
        run_until(tmp_path, cfg, lambda: count(db, "select count(*) from orders where status = 'filled'") >= 6
                  and count(db, "select count(*) from funding") >= 1, "six filled orders and a funding payment", "--live")
        state = emu.futures_state()
        assert state["leverage"] == 5 and state["margin_type"] == "ISOLATED"
        exits = {cid for (cid,) in query(db, "select client_order_id from orders where reduce_only = 1 and status = 'filled'")}
        assert exits and all(o["reduceOnly"] for o in state["orders"] if o["clientOrderId"] in exits), "exits went reduce-only"
        income = {str(i["tranId"]): D(i["income"]) for i in state["income"] if i["incomeType"] == "FUNDING_FEE"}
        stored = {ref: D(a) for ref, a in query(db, "select ref, amount from funding")}
        assert stored and stored.items() <= income.items(), "each payment stored once, as the exchange made it"
        assert {c for (c,) in query(db, "select distinct fee_currency from fills")} == {"USDT"}
        books_match_exchange(db, state, D(10000))


def test_live_coinm_trades_whole_contracts_in_btc(tmp_path):
    with emulator(tmp_path, "coinm") as emu:
        db = tmp_path / "bot.db"
        cfg = config(tmp_path, emu, "coinm")
        run_until(tmp_path, cfg, lambda: count(db, "select count(*) from orders where status = 'filled'") >= 4, "four filled orders", "--live")
        amounts = [D(a) for (a,) in query(db, "select amount from fills")]
        assert amounts and all(a == a.to_integral_value() for a in amounts), "whole contracts"
        assert {c for (c,) in query(db, "select distinct fee_currency from fills")} == {"BTC"}
        books_match_exchange(db, emu.futures_state(), D(1))
        summary = query(db, "select symbol from runs")[0][0]
        assert summary == "BTC/USD:BTC"


def test_live_liquidation_by_the_exchange_is_seen_and_stored(tmp_path):
    """20x long held (no signal exit, far stops); the emulator's mark falls through the
    liquidation price: the daemon books the exchange's liquidation fills and stays consistent."""
    with emulator(tmp_path, "usdm") as emu:
        db = tmp_path / "bot.db"
        cfg = config(tmp_path, emu, "usdm", leverage=20, extra_risk="stop_loss_bps = 5000.0\ntake_profit_bps = 5000.0\nliquidation_buffer_stops = 0.0\nrisk_per_trade = 0.05\n",
                     strategy="exit_threshold = -1.0\nmax_holding_s = 600.0\ncooldown_s = 600.0\n")
        proc = start_daemon(tmp_path, cfg, "--live")
        try:
            wait_for(lambda: D(emu.futures_state()["position"]["positionAmt"]) > 0 and count(db, "select count(*) from fills") >= 1, 120, "a long position")
            entry = D(emu.futures_state()["position"]["entryPrice"])
            emu.mark(price=str(entry * D("0.9")))  # 10 % below a 20x long's entry: past its liquidation price
            wait_for(lambda: count(db, "select count(*) from risk_events where kind = 'liquidation'") >= 1, 60, "the liquidation booked")
        finally:
            code = stop(proc)
        assert code == 0, (tmp_path / "daemon.out").read_text()[-3000:]
        state = emu.futures_state()
        assert state["liquidations"], "the emulator liquidated"
        assert query(db, "select count(*) from fills where client_order_id like 'autoclose%'")[0][0] >= 1
        books_match_exchange(db, state, D(10000))


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_paper_perpetual_pays_funding_at_the_exchange_times(tmp_path, market):
    """Paper USD-M and COIN-M: positions opened and closed on the emulator's live data, funding
    paid at the exchange's times and rates on the position's value in the settle currency
    (linear qty x mark, inverse contracts x 100 USD / mark, in BTC)."""
    with emulator(tmp_path, market, "--funding-rate", "0.0005") as emu:
        db = tmp_path / "bot.db"
        cfg = config(tmp_path, emu, market, mode="paper", strategy="exit_threshold = -1.0\nmax_holding_s = 600.0\n",
                     extra_risk="take_profit_bps = 5000.0\nstop_loss_bps = 5000.0\nliquidation_buffer_stops = 0.0\nrisk_per_trade = 0.05\n")
        run_until(tmp_path, cfg, lambda: count(db, "select count(*) from funding") >= 2, "two paper funding payments")
        rows = query(db, "select rate, mark, position, amount, currency from funding")
        for rate, mark, position, amount, currency in rows:
            assert D(rate) == D("0.0005") and currency == MARKETS[market][2]
            value = D(position) * 100 / D(mark) if market == "coinm" else D(position) * D(mark)
            assert D(amount) == -(value * D(rate)).quantize(D("1e-12"))
        if market == "coinm":
            amounts = [D(a) for (a,) in query(db, "select amount from fills")]
            assert amounts and all(a == a.to_integral_value() for a in amounts), "whole contracts"
        assert count(db, "select count(*) from fills") >= 1
        assert emu.futures_state()["trades"] == [], "paper never reaches the exchange's order book"


def test_kill_9_in_usdm_live_mode_loses_and_duplicates_nothing(tmp_path):
    with emulator(tmp_path, "usdm") as emu:
        db = tmp_path / "bot.db"
        kill_restart_rounds(tmp_path, lambda name: config(tmp_path, emu, "usdm", name=name), rounds=3, seed=7)
        counts = books_match_exchange(db, emu.futures_state(), D(10000))
        assert counts["orders"] > 0
        assert count(db, "select count(*) from risk_events where rule in ('position_mismatch', 'foreign_position')") == 0
        assert count(db, "select count(*) from runs where status = 'crashed'") == 3
