"""Position and cash accounting, changed only by fills (and by setting dust aside).

Quantities and cash are Decimal: they come from fills the exchange (or the paper venue) rounded
to the market's precision, and summing them in floats would drift from the exchange's own
balances. Equity marks the position at a float mid because it is only ever reported.

Fees are booked in the asset the venue charged them in, so the portfolio holds what the
exchange holds:

* a fee in the quote currency comes out of ``cash``;
* a fee in the base asset comes out of the base received (Binance spot without BNB charges a
  buyer in the asset bought): the position is the net amount, ``amount - fee``, and the fee's
  value is ``fee * fill price``;
* a fee in any other asset (BNB) changes neither cash nor the position; it is kept per asset in
  ``other_fees`` (the exchange balance of that asset falls by it) and valued in quote at the
  asset's market price at the fill (``Fill.fee_value``), which equity subtracts
  (``other_fees_value``). Rebates are negative fees and work the same way.

``fees`` is the sum of every fee's quote value: what round trips and reports count.

Dust: what is left of a position after an exit when it is below the exchange's minimum order
(less than one lot, or below ``min_qty``/``min_notional``) cannot be sold. :meth:`set_aside_dust`
moves it out of the position (the round trip closes) into ``dust``, at its cost; equity keeps
counting it at the mark, and the next position opened in its direction takes it back, so it is
sold once it makes a tradable amount together with new size.

Derivatives (``kind`` ``linear`` or ``inverse``; amounts in contracts of ``contract_size``): a
trade moves no cash, only margin; ``cash`` is the wallet balance of the settle currency, which
realized PnL, fees in the settle asset and funding payments change. Realized PnL per contract
closed: linear ``contract_size * (exit - entry)``; inverse ``contract_size * (1/entry - 1/exit)``
in the settle (base) currency. Equity is the wallet plus unrealized PnL at the mark:
linear ``cash - cost_basis * cs + qty * cs * mark``; inverse ``cash + inv_basis - qty * cs / mark``
(``inv_basis`` = the signed sum of lot size x cs / lot price), i.e. ``equity_cash + equity_qty *
mark + equity_inv / mark``.

A round trip is a position going from flat back to flat (or flipping through zero, or ending in
dust); its PnL, net of the fees of every fill in it, is what ``trades`` and ``win rate`` count.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from bot.core.orders import Fill

ZERO = Decimal(0)
SATOSHI = Decimal("0.00000001")


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
    """Cash in quote currency, a signed base position and its cost (signed sum of lot price x size).

    ``equity_cash`` and ``equity_qty`` are the two numbers equity is made of (``cash`` less the
    value of fees paid in other assets; the position plus dust), kept up to date on every change
    so that ``equity(mark)`` is one float multiply-add (the fast replay computes it the same way).
    """

    cash: Decimal
    qty: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    initial_cash: Decimal = ZERO
    open_ts: int = 0
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    base: str = ""
    quote: str = ""
    dust: Decimal = ZERO
    dust_cost: Decimal = ZERO
    other_fees: dict[str, Decimal] = field(default_factory=dict)
    other_fees_value: Decimal = ZERO
    last_fill_ts: int = 0
    equity_cash: Decimal = ZERO
    equity_qty: Decimal = ZERO
    equity_inv: Decimal = ZERO
    kind: str = "spot"
    contract_size: Decimal = Decimal(1)
    settle: str = ""
    funding: Decimal = ZERO
    inv_basis: Decimal = ZERO
    closed: list[RoundTrip] = field(default_factory=list)
    _trip_gross: Decimal = ZERO
    _trip_fees: Decimal = ZERO
    _trip_max: Decimal = ZERO
    _lots: deque[list[Decimal]] = field(default_factory=deque)
    _dust_lots: list[list[Decimal]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sync_equity()

    @classmethod
    def start(cls, cash: Decimal | float | str, base: str = "", quote: str = "", market: Any = None) -> "Portfolio":
        """A portfolio holding ``cash``; ``market`` (a :class:`bot.core.market.Market`) sets the
        instrument kind and contract size (spot when None)."""
        cash = Decimal(str(cash))
        if market is None:
            return cls(cash=cash, initial_cash=cash, base=base, quote=quote)
        return cls(
            cash=cash, initial_cash=cash, base=base or market.base, quote=quote or market.quote,
            kind=market.kind, contract_size=market.contract_size, settle=market.settle_currency,
        )

    @property
    def is_derivative(self) -> bool:
        return self.kind != "spot"

    def apply(self, fill: Fill) -> RoundTrip | None:
        """Book one fill; return the round trip it closed, if any.

        Open lots are matched first-in first-out, so realized PnL is exact in Decimal (an average
        cost would need a division that does not terminate).
        """
        signed = fill.amount * fill.side.sign
        fee = fill.fee
        currency = fill.fee_currency
        received = signed
        if self.kind != "spot":
            currency = "" if currency == self.settle else currency
        else:
            self.cash -= signed * fill.price
        if not currency or currency == self.quote:
            self.cash -= fee
            fee_value = fee
        elif currency == self.base:
            fee_value = fill.fee_value if fill.fee_value is not None else fee * fill.price
            received = signed - fee
        else:
            fee_value = fill.fee_in_quote
            self.other_fees[currency] = self.other_fees.get(currency, ZERO) + fee
            self.other_fees_value += fee_value
        self.fees += fee_value
        self.last_fill_ts = fill.ts
        if self.qty == ZERO:
            self.open_ts = fill.ts
            self._trip_gross = ZERO
            self._trip_fees = ZERO
            self._trip_max = ZERO
            if self._dust_lots and (self.dust > 0) == (received > 0):
                self._take_back_dust()
        self._trip_fees += fee_value
        realized_before = self.realized_pnl
        closed = self._trade(received, fill.price, fill.ts) if received else None
        if fill.realized is not None and self.kind != "spot":
            gap = fill.realized - (self.realized_pnl - realized_before)
            if gap:  # the exchange's settlement is the truth (average entry, its rounding)
                self.realized_pnl += gap
                self.cash += gap
                if closed is not None:
                    closed.pnl_gross += gap
                else:
                    self._trip_gross += gap
        self._trip_max = max(self._trip_max, abs(self.qty))
        self._sync_equity()
        return closed

    def _trade(self, signed: Decimal, price: Decimal, ts: int) -> RoundTrip | None:
        closed: RoundTrip | None = None
        lots = self._lots
        inverse = self.kind == "inverse"
        cs = self.contract_size
        if self.qty == ZERO or (self.qty > 0) == (signed > 0):
            lots.append([price, abs(signed)])
            self.cost_basis += signed * price
            if inverse:
                self.inv_basis += signed * cs / price
            self.qty += signed
            return None
        direction = 1 if self.qty > 0 else -1
        left = abs(signed)
        pnl = ZERO
        while left > 0 and lots:
            lot = lots[0]
            take = min(left, lot[1])
            if inverse:
                pnl += take * cs * (1 / lot[0] - 1 / price) * direction
                self.inv_basis -= take * cs / lot[0] * direction
            else:
                pnl += (price - lot[0]) * take * direction * cs
            self.cost_basis -= lot[0] * take * direction
            lot[1] -= take
            left -= take
            if lot[1] == ZERO:
                lots.popleft()
        if inverse:
            # settled in the coin to 8 decimals per fill (Binance COIN-M balances, and the emulator's rounding)
            pnl = pnl.quantize(SATOSHI, rounding=ROUND_HALF_EVEN)
        self.realized_pnl += pnl
        if self.kind != "spot":
            self.cash += pnl  # realized PnL settles into the wallet
        self._trip_gross += pnl
        before = self.qty
        self.qty = before + signed
        if self.qty == ZERO or (self.qty > 0) != (before > 0):
            closed = self._close_trip(ts, direction, before)
            if self.qty != ZERO:  # flipped through zero: the rest opens a new trip
                self.open_ts = ts
                self._trip_gross = ZERO
                self._trip_fees = ZERO
                self._trip_max = ZERO
                lots.append([price, left])
                self.cost_basis = self.qty * price
                if inverse:
                    self.inv_basis = self.qty * cs / price
        return closed

    def _close_trip(self, ts: int, direction: int, size: Decimal) -> RoundTrip:
        trip = RoundTrip(
            open_ts=self.open_ts,
            close_ts=ts,
            side="long" if direction > 0 else "short",
            max_qty=max(self._trip_max, abs(size)),
            pnl_gross=self._trip_gross,
            fees=self._trip_fees,
        )
        self.closed.append(trip)
        self.stop_price = None
        self.take_profit_price = None
        self.cost_basis = ZERO
        self.inv_basis = ZERO
        return trip

    def set_aside_dust(self, ts: int) -> RoundTrip | None:
        """Move an untradable remainder of the position into ``dust``; close its round trip.

        Dust of the other direction (a short remainder while long dust is held, possible when
        shorting is allowed) is netted against the new remainder first, oldest lots first, and
        the PnL of that netting belongs to this trip: dust is always of one sign.
        """
        if self.qty == ZERO:
            return None
        direction = 1 if self.qty > 0 else -1
        new_lots = [[lot[0], lot[1]] for lot in self._lots]  # unsigned sizes, in this trip's direction
        self._lots.clear()
        size = self.qty
        if self._dust_lots and (self.dust > 0) != (direction > 0):
            pnl = ZERO
            while new_lots and self._dust_lots:
                price, left = new_lots[0]
                old = self._dust_lots[0]
                take = min(left, abs(old[1]))
                # a long lot bought at one price against a short lot sold at the other
                pnl += (price - old[0]) * take * -direction
                self.dust_cost -= old[0] * take * (1 if old[1] > 0 else -1)
                self.dust -= take if old[1] > 0 else -take
                old[1] -= take if old[1] > 0 else -take
                new_lots[0][1] -= take
                if old[1] == ZERO:
                    self._dust_lots.pop(0)
                if new_lots[0][1] == ZERO:
                    new_lots.pop(0)
            self.realized_pnl += pnl
            self._trip_gross += pnl
        self._dust_lots.extend([price, amount * direction] for price, amount in new_lots)
        remainder = sum((amount for _, amount in new_lots), ZERO) * direction
        self.dust += remainder
        self.dust_cost += sum((price * amount for price, amount in new_lots), ZERO) * direction
        self.qty = ZERO
        trip = self._close_trip(ts, direction, size)
        self._sync_equity()
        return trip

    def _take_back_dust(self) -> None:
        """A new position in the dust's direction starts from the dust's lots (FIFO: oldest first)."""
        for price, signed in self._dust_lots:
            self._lots.append([price, abs(signed)])
        self.qty += self.dust
        self.cost_basis += self.dust_cost
        self._dust_lots.clear()
        self.dust = ZERO
        self.dust_cost = ZERO

    def apply_funding(self, amount: Decimal, ts: int) -> None:
        """Book a funding payment in the settle currency (> 0 received, < 0 paid) into the wallet."""
        self.cash += amount
        self.funding += amount
        self._sync_equity()

    def apply_adjustment(self, amount: Decimal) -> None:
        """A wallet change no fill explains (the exchange's own settlement of a liquidation)."""
        self.cash += amount
        self.realized_pnl += amount
        self._sync_equity()

    def funding_due(self, rate: float, mark: float, qty: Decimal | None = None) -> Decimal:
        """The payment a funding ``rate`` (fraction per interval) at ``mark`` makes to a position of
        ``qty`` (default: this one's): ``-position value * rate`` (longs pay a positive rate).
        Binance: "Funding Amount = Nominal Value of Positions x Funding Rate", nominal linear
        ``qty * cs * mark``, inverse ``qty * cs / mark``."""
        qty = self.qty if qty is None else qty
        if qty == ZERO or not mark > 0:
            return ZERO
        rate_d = Decimal(repr(rate))
        mark_d = Decimal(repr(mark))
        value = qty * self.contract_size / mark_d if self.kind == "inverse" else qty * self.contract_size * mark_d
        return (-value * rate_d).quantize(Decimal("1e-12"))

    def _sync_equity(self) -> None:
        if self.kind == "spot":
            self.equity_cash = self.cash - self.other_fees_value
            self.equity_qty = self.qty + self.dust
        elif self.kind == "linear":
            cs = self.contract_size
            self.equity_cash = self.cash - self.other_fees_value - self.cost_basis * cs
            self.equity_qty = self.qty * cs
        else:
            self.equity_cash = self.cash - self.other_fees_value + self.inv_basis
            self.equity_qty = ZERO
            self.equity_inv = -self.qty * self.contract_size

    @property
    def avg_price(self) -> Decimal:
        """Average entry price of the open lots (0 when flat), for display and protective prices."""
        if self.qty == ZERO:
            return ZERO
        if self.kind == "inverse" and self.inv_basis:
            # the exchange's entry price of an inverse position is the harmonic mean: PnL is in 1/price
            return (self.qty * self.contract_size / self.inv_basis).quantize(Decimal("1e-12"))
        return (self.cost_basis / self.qty).quantize(Decimal("1e-12"))

    def equity(self, mark: float) -> float:
        """Cash less fees paid in other assets, plus the position and dust marked at ``mark``
        (derivatives: the wallet plus unrealized PnL), in the settle currency."""
        if self.kind == "inverse":
            return float(self.equity_cash) + (float(self.equity_inv) / mark if self.equity_inv else 0.0)
        return float(self.equity_cash) + float(self.equity_qty) * mark

    def unrealized(self, mark: float) -> float:
        if self.kind == "inverse":
            return float(self.inv_basis) - float(self.qty * self.contract_size) / mark if self.qty else 0.0
        return (float(self.qty) * mark - float(self.cost_basis)) * float(self.contract_size)

    @property
    def is_flat(self) -> bool:
        return self.qty == ZERO
