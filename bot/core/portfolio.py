"""Position and cash accounting, changed only by fills.

Quantities and cash are Decimal: they come from fills the exchange (or the paper venue) rounded
to the market's precision, and summing them in floats would drift from the exchange's own
balances. Equity marks the position at a float mid because it is only ever reported.

A round trip is a position going from flat back to flat (or flipping through zero); its PnL,
net of the fees of every fill in it, is what ``trades`` and ``win rate`` count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from bot.core.orders import Fill

ZERO = Decimal(0)


@dataclass(slots=True)
class RoundTrip:
    """A closed position: from the fill that opened it to the one that made it flat."""

    open_ts: int
    close_ts: int
    side: str
    max_qty: Decimal
    pnl_gross: Decimal
    fees: Decimal

    @property
    def pnl_net(self) -> Decimal:
        return self.pnl_gross - self.fees


@dataclass(slots=True)
class Portfolio:
    """Cash in quote currency, a signed base position and its cost (signed sum of lot price x size)."""

    cash: Decimal
    qty: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    initial_cash: Decimal = ZERO
    open_ts: int = 0
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    closed: list[RoundTrip] = field(default_factory=list)
    _trip_gross: Decimal = ZERO
    _trip_fees: Decimal = ZERO
    _trip_max: Decimal = ZERO
    _lots: deque[list[Decimal]] = field(default_factory=deque)

    @classmethod
    def start(cls, cash: Decimal | float | str) -> "Portfolio":
        cash = Decimal(str(cash))
        return cls(cash=cash, initial_cash=cash)

    def apply(self, fill: Fill) -> RoundTrip | None:
        """Book one fill; return the round trip it closed, if any.

        Open lots are matched first-in first-out, so realized PnL is exact in Decimal (an average
        cost would need a division that does not terminate).
        """
        signed = fill.amount * fill.side.sign
        self.cash -= signed * fill.price + fill.fee
        self.fees += fill.fee
        if self.qty == ZERO:
            self.open_ts = fill.ts
            self._trip_gross = ZERO
            self._trip_fees = ZERO
            self._trip_max = ZERO
        self._trip_fees += fill.fee
        closed: RoundTrip | None = None
        lots = self._lots
        if self.qty == ZERO or (self.qty > 0) == (signed > 0):
            lots.append([fill.price, abs(signed)])
            self.cost_basis += signed * fill.price
            self.qty += signed
        else:
            direction = 1 if self.qty > 0 else -1
            left = abs(signed)
            pnl = ZERO
            while left > 0 and lots:
                lot = lots[0]
                take = min(left, lot[1])
                pnl += (fill.price - lot[0]) * take * direction
                self.cost_basis -= lot[0] * take * direction
                lot[1] -= take
                left -= take
                if lot[1] == ZERO:
                    lots.popleft()
            self.realized_pnl += pnl
            self._trip_gross += pnl
            before = self.qty
            self.qty = before + signed
            if self.qty == ZERO or (self.qty > 0) != (before > 0):
                closed = RoundTrip(
                    open_ts=self.open_ts,
                    close_ts=fill.ts,
                    side="long" if direction > 0 else "short",
                    max_qty=max(self._trip_max, abs(before)),
                    pnl_gross=self._trip_gross,
                    fees=self._trip_fees,
                )
                self.closed.append(closed)
                self.stop_price = None
                self.take_profit_price = None
                self.cost_basis = ZERO
                if self.qty != ZERO:  # flipped through zero: the rest opens a new trip
                    self.open_ts = fill.ts
                    self._trip_gross = ZERO
                    self._trip_fees = ZERO
                    self._trip_max = ZERO
                    lots.append([fill.price, left])
                    self.cost_basis = self.qty * fill.price
        self._trip_max = max(self._trip_max, abs(self.qty))
        return closed

    @property
    def avg_price(self) -> Decimal:
        """Average entry price of the open lots (0 when flat), for display and protective prices."""
        if self.qty == ZERO:
            return ZERO
        return (self.cost_basis / self.qty).quantize(Decimal("1e-12"))

    def equity(self, mark: float) -> float:
        """Cash plus the position marked at ``mark`` (normally the mid)."""
        return float(self.cash) + float(self.qty) * mark

    def unrealized(self, mark: float) -> float:
        return float(self.qty) * mark - float(self.cost_basis)

    @property
    def is_flat(self) -> bool:
        return self.qty == ZERO
