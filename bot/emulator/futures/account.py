"""The futures account of the emulator: one wallet in the settle asset and one one-way position.

Binance's futures account rules as this module applies them (one-way mode, "positionSide BOTH",
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-Information-V3):

* ``wallet`` is the wallet balance in the settle asset (USDT on USD-M, BTC on COIN-M): deposits,
  plus realized PnL, minus commissions, plus funding, minus liquidation clearance.
* The position is ``amt`` contracts (long > 0, short < 0) at ``entry``; unrealized PnL is the
  contract's PnL from ``entry`` to the mark price.
* Initial margin of a position or an order = notional / leverage. *Isolated*: opening moves the
  initial margin at the fill price into ``isolated_wallet`` (part of ``wallet``, released pro rata
  when the position shrinks, and funding is booked to it too); *cross*: the whole wallet backs it.
* Available balance = wallet - isolated wallet (isolated) or position initial margin at the mark
  (cross) + cross unrealized PnL - open orders' initial margin. An order whose new exposure needs
  more initial margin (plus its taker fee) than that is refused -2019 "Margin is insufficient."
* Liquidation: when the margin balance (isolated: isolated wallet + unrealized; cross: wallet +
  unrealized) falls below the maintenance margin (notional * rate - amount,
  https://www.binance.com/en/support/faq/liquidation-f4d3b5b6ed0a4ed2a6b6a4a8a5a3d1a9), the
  position is closed at the mark price. Isolated: the whole isolated margin is gone (what is left
  after the realized loss is the clearance fee, ``INSURANCE_CLEAR``; a loss beyond it is covered
  by the insurance fund), so the wallet drops by exactly the isolated wallet. Cross: the realized
  loss, then a clearance fee of the maintenance margin at the liquidation (at most what is left),
  and the wallet never goes below zero (the insurance fund takes the rest).
* Funding at each funding time: ``payment = -signed notional * rate`` (linear ``amt * cs * mark``,
  inverse ``amt * cs / mark``), so longs pay a positive rate
  (https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031).

Every booking also appends an ``income`` row as ``GET /fapi/v1/income`` lists them
(REALIZED_PNL, COMMISSION, FUNDING_FEE, INSURANCE_CLEAR). Amounts are Decimals rounded to 8
decimals (a commission up, PnL and funding half-even), like Binance's answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal

from bot.emulator.futures.contract import Contract
from bot.emulator.market import now_ms
from bot.emulator.matching import fmt

__all__ = ["FuturesAccount", "Position", "q8"]

ZERO = Decimal(0)
E8 = Decimal("0.00000001")


def q8(x: Decimal) -> Decimal:
    return x.quantize(E8, rounding=ROUND_HALF_EVEN)


def fee8(x: Decimal) -> Decimal:
    return x.quantize(E8, rounding=ROUND_UP if x > 0 else ROUND_HALF_EVEN)


@dataclass
class Position:
    amt: Decimal = ZERO  # contracts, signed
    entry: Decimal = ZERO
    isolated_wallet: Decimal = ZERO
    update_time: int = 0


@dataclass
class FuturesAccount:
    contract: Contract
    wallet: Decimal
    leverage: int = 20
    margin_type: str = "CROSSED"  # or ISOLATED
    position: Position = field(default_factory=Position)
    income: list[dict] = field(default_factory=list)
    update_time: int = field(default_factory=now_ms)
    next_tran_id: int = 9_000_000_001

    @property
    def isolated(self) -> bool:
        return self.margin_type == "ISOLATED"

    # ------------------------------------------------------------------ reads
    def unrealized(self, mark: Decimal) -> Decimal:
        p = self.position
        return q8(self.contract.pnl(p.amt, p.entry, mark))

    def position_margin(self, mark: Decimal) -> Decimal:
        """Initial margin held by the position: the isolated wallet, or notional(mark) / leverage."""
        p = self.position
        if p.amt == 0:
            return ZERO
        if self.isolated:
            return p.isolated_wallet
        return q8(self.contract.notional(p.amt, mark) / self.leverage)

    def available(self, mark: Decimal, order_margin: Decimal = ZERO) -> Decimal:
        cross_unrealized = ZERO if self.isolated else self.unrealized(mark)
        return self.wallet - self.position_margin(mark) + cross_unrealized - order_margin

    def margin_balance(self, mark: Decimal) -> Decimal:
        """What backs the position against liquidation: isolated wallet or wallet, plus unrealized PnL."""
        base = self.position.isolated_wallet if self.isolated else self.wallet
        return base + self.unrealized(mark)

    def maintenance(self, mark: Decimal) -> Decimal:
        return q8(self.contract.maintenance(self.position.amt, mark))

    def liquidation_price(self) -> Decimal:
        p = self.position
        margin = p.isolated_wallet if self.isolated else self.wallet
        return self.contract.liquidation_price(p.amt, p.entry, margin)

    def must_liquidate(self, mark: Decimal) -> bool:
        return self.position.amt != 0 and mark > 0 and self.margin_balance(mark) < self.maintenance(mark)

    # ------------------------------------------------------------------ bookings
    def _income(self, kind: str, amount: Decimal, now: int, info: str = "", trade_id: object = "") -> None:
        self.income.append({"symbol": self.contract.symbol, "incomeType": kind, "income": fmt(amount),
                            "asset": self.contract.settle, "info": info, "time": now, "tranId": self.next_tran_id,
                            "tradeId": str(trade_id) if trade_id != "" else ""})
        self.next_tran_id += 1

    def fill(self, side: str, qty: Decimal, price: Decimal, fee: Decimal, trade_id: int, now: int) -> Decimal:
        """Book one fill of ``qty`` contracts at ``price`` with commission ``fee``; return its realized PnL."""
        c, p = self.contract, self.position
        signed = qty if side == "BUY" else -qty
        realized = ZERO
        if p.amt == 0 or (p.amt > 0) == (signed > 0):
            self._open(signed, price)
        else:
            closed = min(abs(signed), abs(p.amt))
            sign = Decimal(1) if p.amt > 0 else Decimal(-1)
            realized = q8(c.pnl(sign * closed, p.entry, price))
            if self.isolated:
                p.isolated_wallet -= q8(p.isolated_wallet * closed / abs(p.amt))
            p.amt -= sign * closed
            self.wallet += realized
            if p.amt == 0:
                p.entry = ZERO
                p.isolated_wallet = ZERO
            rest = abs(signed) - closed
            if rest > 0:  # the fill flipped the position: the rest opens the other side
                self._open(rest if signed > 0 else -rest, price)
            self._income("REALIZED_PNL", realized, now, trade_id=trade_id)
        if fee:
            self.wallet -= fee
            self._income("COMMISSION", -fee, now, trade_id=trade_id)
        p.update_time = self.update_time = now
        return realized

    def _open(self, signed: Decimal, price: Decimal) -> None:
        p = self.position
        p.entry = self.contract.entry_after(p.amt, p.entry, signed, price)
        p.amt += signed
        if self.isolated:
            p.isolated_wallet += q8(self.contract.notional(signed, price) / self.leverage)

    def funding(self, rate: Decimal, mark: Decimal, now: int) -> Decimal | None:
        """Book one funding payment at ``mark``; return it (None without a position)."""
        p = self.position
        if p.amt == 0 or mark <= 0:
            return None
        c = self.contract
        signed_notional = p.amt * c.contract_size / mark if c.inverse else p.amt * c.contract_size * mark
        payment = q8(-signed_notional * rate)
        self.wallet += payment
        if self.isolated:
            p.isolated_wallet += payment
        self._income("FUNDING_FEE", payment, now, info="FUNDING_FEE")
        self.update_time = now
        return payment

    def clear_liquidation(self, isolated_before: Decimal, maintenance: Decimal, realized: Decimal, now: int) -> Decimal:
        """After the liquidation fill (its realized PnL already booked): take the clearance fee, cap the
        loss as the insurance fund does; return the fee (negative = the fund's cover)."""
        if self.isolated:
            fee = isolated_before + realized  # what is left of the isolated margin
        else:
            fee = min(maintenance, max(self.wallet, ZERO)) if self.wallet > 0 else self.wallet
        fee = q8(fee)
        if fee:
            self.wallet -= fee
            self._income("INSURANCE_CLEAR", -fee, now, info="LIQUIDATION")
        self.update_time = now
        return fee

    # ------------------------------------------------------------------ answers
    def position_row(self, mark: Decimal, kind: str) -> dict:
        """One ``positionRisk`` row: ``kind`` "usdm" (``/fapi/v3``) or "coinm" (``/dapi/v1``)."""
        c, p = self.contract, self.position
        signed_notional = c.notional(p.amt, mark) * (1 if p.amt >= 0 else -1)
        upnl = self.unrealized(mark)
        iso = p.isolated_wallet if self.isolated else ZERO
        row = {
            "symbol": c.symbol, "positionSide": "BOTH", "positionAmt": fmt(p.amt), "entryPrice": fmt(p.entry),
            "breakEvenPrice": fmt(p.entry), "markPrice": fmt(mark), "unRealizedProfit": fmt(upnl),
            "liquidationPrice": fmt(self.liquidation_price()), "isolatedMargin": fmt(iso + upnl if self.isolated else ZERO),
            "isolatedWallet": fmt(iso), "marginAsset": c.settle, "updateTime": p.update_time,
            "leverage": str(self.leverage), "marginType": "isolated" if self.isolated else "cross",
        }
        if kind == "coinm":
            row.update({"notionalValue": fmt(signed_notional), "maxQty": "1000000", "isAutoAddMargin": "false",
                        "pair": c.pair})
        else:
            im = self.position_margin(mark)
            row.update({"notional": fmt(signed_notional), "initialMargin": fmt(im), "maintMargin": fmt(self.maintenance(mark)),
                        "positionInitialMargin": fmt(im), "openOrderInitialMargin": fmt(0), "adl": 0,
                        "bidNotional": fmt(0), "askNotional": fmt(0)})
        return row

    def asset_row(self, mark: Decimal, order_margin: Decimal) -> dict:
        upnl = self.unrealized(mark)
        im = self.position_margin(mark)
        available = self.available(mark, order_margin)
        cross_wallet = self.wallet - (self.position.isolated_wallet if self.isolated else ZERO)
        return {
            "asset": self.contract.settle, "walletBalance": fmt(self.wallet), "unrealizedProfit": fmt(upnl),
            "marginBalance": fmt(self.wallet + upnl), "maintMargin": fmt(self.maintenance(mark)),
            "initialMargin": fmt(im + order_margin), "positionInitialMargin": fmt(im),
            "openOrderInitialMargin": fmt(order_margin), "crossWalletBalance": fmt(cross_wallet),
            "crossUnPnl": fmt(ZERO if self.isolated else upnl), "availableBalance": fmt(available),
            "maxWithdrawAmount": fmt(max(available, ZERO)), "marginAvailable": True, "updateTime": self.update_time or 1,
        }
