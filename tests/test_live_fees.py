"""Fees in the asset the exchange charges them in: the live daemon against the emulator charging
commission as Binance spot does (``--commission-asset quote|base|bnb``).

With ``base``, a buy's fee comes out of the BTC received, so the account holds less than the
amount bought; an exit sized to the gross amount is refused for insufficient balance, again and
again. With ``bnb`` the fee comes out of a BNB balance and must be valued at BNB's market price,
not booked as that many USDT. Each case trades until several round trips are closed and checks
that every exit executed (no refusal, nothing left but dust below one lot), and that every
balance the database's fills imply equals the exchange's, to the unit: USDT, BTC and BNB.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from daemon_harness import Emulator, check_books_match, count, query, run_until, write_config

ROUND_TRIPS = 3
CASES = {
    "quote": ("USDT=10000,BTC=0", []),
    "base": ("USDT=10000,BTC=0", []),
    "bnb": ("USDT=10000,BTC=0,BNB=1", ["--bnb-price", "400"]),
}


@pytest.mark.parametrize("asset", list(CASES))
def test_every_exit_executes_and_the_books_equal_the_exchange(tmp_path, asset):
    balances, extra = CASES[asset]
    emu = Emulator(tmp_path, "--commission-asset", asset, *extra, balances=balances)
    try:
        config = write_config(tmp_path, emu, duration=600)
        db = tmp_path / "bot.db"

        exits_filled = "select count(*) from orders where reduce_only = 1 and status = 'filled'"
        run_until(tmp_path, config, lambda: count(db, exits_filled) >= ROUND_TRIPS, f"{ROUND_TRIPS} exits filled", "--live")
        state = emu.state()
    finally:
        emu.stop()

    start = {k: Decimal(v) for k, v in (item.split("=") for item in balances.split(","))}
    check_books_match(db, state, start)

    fee_assets = {c for (c,) in query(db, "select distinct fee_currency from fills")}
    expected = {"quote": {"USDT"}, "base": {"BTC", "USDT"}, "bnb": {"BNB"}}[asset]
    assert fee_assets == expected, f"fees were charged in {fee_assets}"

    # every exit reached the exchange and traded: none refused, none left open
    exits = query(db, "select client_order_id, status from orders where reduce_only = 1")
    assert exits and all(status == "filled" for _, status in exits), exits
    assert query(db, "select count(*) from risk_events where kind in ('venue_reject', 'stuck_exit')") == [(0,)]

    # what is left of the position is what the exchange holds, and it is dust: less than one lot
    (qty, dust), = query(db, "select qty, coalesce(dust, '0') from positions order by ts desc, id desc limit 1")
    held = Decimal(state["balances"]["BTC"]["free"]) + Decimal(state["balances"]["BTC"]["locked"])
    assert Decimal(qty) + Decimal(dust) == held
    if Decimal(qty) == 0:
        assert held < Decimal("0.00001"), f"more than dust left: {held}"

    # fees are valued in USDT: a BNB fee at 400 USDT per BNB, a BTC fee at the fill price
    for fee, currency, value, price in query(db, "select fee, fee_currency, fee_value, price from fills"):
        if currency == "BNB":
            assert Decimal(value) == Decimal(fee) * 400
        elif currency == "BTC":
            assert Decimal(value) == Decimal(fee) * Decimal(price)
        else:
            assert Decimal(value) == Decimal(fee)
