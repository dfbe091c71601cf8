"""Portfolio accounting: cash, position and realized PnL stay consistent whatever the fills."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.orders import Fill, Side
from bot.core.portfolio import Portfolio

fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(90_00, 110_00).map(lambda c: Decimal(c) / 100),
        st.integers(1, 500).map(lambda n: Decimal(n) / 100),
        st.integers(0, 50).map(lambda n: Decimal(n) / 1000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fills)
def test_equity_identity_and_round_trips(seq):
    pf = Portfolio.start(Decimal(100_000))
    total_fees = Decimal(0)
    for i, (side, price, amount, fee) in enumerate(seq):
        pf.apply(Fill(i, f"o{i}", side, price, amount, fee))
        total_fees += fee
        mark = price
        # equity = initial + realized + unrealized - fees, exactly, in Decimal
        unreal = mark * pf.qty - pf.cost_basis
        assert pf.cash + pf.qty * mark == pf.initial_cash + pf.realized_pnl + unreal - total_fees
        assert pf.fees == total_fees
        if pf.qty == 0:
            assert pf.avg_price == 0
    closed_gross = sum((t.pnl_gross for t in pf.closed), Decimal(0))
    if pf.qty == 0:
        assert closed_gross == pf.realized_pnl
        assert sum((t.fees for t in pf.closed), Decimal(0)) == total_fees


def test_flip_through_zero_opens_new_trip():
    pf = Portfolio.start(1000)
    pf.apply(Fill(1, "a", Side.BUY, Decimal("10"), Decimal("2"), Decimal("0.02")))
    trip = pf.apply(Fill(2, "b", Side.SELL, Decimal("11"), Decimal("3"), Decimal("0.03")))
    assert trip is not None and trip.side == "long" and trip.pnl_gross == Decimal("2")
    assert pf.qty == Decimal("-1") and pf.avg_price == Decimal("11")
    trip2 = pf.apply(Fill(3, "c", Side.BUY, Decimal("12"), Decimal("1"), Decimal("0.01")))
    assert trip2 is not None and trip2.side == "short" and trip2.pnl_gross == Decimal("-1")
    assert pf.is_flat and len(pf.closed) == 2


fee_fills = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(90_00, 110_00).map(lambda c: Decimal(c) / 100),
        st.integers(1, 500).map(lambda n: Decimal(n) / 100),
        st.sampled_from(["USDT", "BTC", "BNB"]),
        st.integers(-5, 50).map(lambda n: Decimal(n) / 10_000),  # negative: a rebate
        st.booleans(),  # set the remainder aside as dust after this fill
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(fee_fills, st.integers(90_00, 110_00).map(lambda c: Decimal(c) / 100))
def test_fees_in_the_asset_charged_and_dust_keep_every_balance(seq, bnb_price):
    """Whatever the fee assets and dust set-asides: the position plus dust is the base the fills
    moved net of base fees, cash is the quote they moved net of quote fees, BNB fees are kept apart
    and valued at their price, fees sum the quote values, and equity is those balances marked."""
    pf = Portfolio.start(Decimal(100_000), "BTC", "USDT")
    base = quote = bnb = value = Decimal(0)
    for i, (side, price, amount, currency, fee, dust) in enumerate(seq):
        fee_value = fee if currency == "USDT" else fee * price if currency == "BTC" else fee * bnb_price
        pf.apply(Fill(i, f"c{i}", side, price, amount, fee, fee_currency=currency, fee_value=fee_value))
        sign = 1 if side is Side.BUY else -1
        base += sign * amount - (fee if currency == "BTC" else 0)
        quote += -sign * amount * price - (fee if currency == "USDT" else 0)
        bnb -= fee if currency == "BNB" else 0
        value += fee_value
        if dust:
            pf.set_aside_dust(i)
            assert pf.is_flat
        assert pf.qty + pf.dust == base
        assert pf.cash == Decimal(100_000) + quote
        assert -pf.other_fees.get("BNB", Decimal(0)) == bnb
        assert pf.fees == value
        assert pf.other_fees_value == -bnb * bnb_price
        mark = 101.5
        assert pf.equity(mark) == float(pf.cash - pf.other_fees_value) + float(pf.qty + pf.dust) * mark


def test_a_base_fee_leaves_dust_the_next_position_takes_back():
    pf = Portfolio.start(Decimal(10_000), "BTC", "USDT")
    pf.apply(Fill(1, "a", Side.BUY, Decimal(100), Decimal("0.01666"), Decimal("0.00001666"), fee_currency="BTC"))
    assert pf.qty == Decimal("0.01664334")
    trip = None
    pf.apply(Fill(2, "b", Side.SELL, Decimal(101), Decimal("0.01664"), Decimal("1.68"), fee_currency="USDT"))
    assert pf.qty == Decimal("0.00000334")
    trip = pf.set_aside_dust(3)
    assert trip is not None and pf.is_flat and pf.dust == Decimal("0.00000334")
    assert trip.pnl_gross == Decimal("0.01664") * 1  # (101 - 100) x the amount sold
    pf.apply(Fill(4, "c", Side.BUY, Decimal(100), Decimal("0.01666"), Decimal("0.00001666"), fee_currency="BTC"))
    assert pf.dust == 0 and pf.qty == Decimal("0.00000334") + Decimal("0.01664334"), "the dust joins the new position"
