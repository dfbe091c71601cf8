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
