"""Futures orders: the spot matching engine's book walking and resting-order matching, with futures rules.

:class:`FuturesEngine` reuses :class:`~bot.emulator.matching.Engine` for what is the same on every
Binance market (walking the book, consuming the simulator's liquidity, resting orders filled when
the market crosses them, lookups and cancels) and replaces what differs (USD-M / COIN-M "New Order",
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order):

* types MARKET and LIMIT (``timeInForce`` GTC, IOC, FOK, GTX = post only); amounts in contracts;
  one-way mode only (``positionSide`` BOTH);
* ``reduceOnly=true`` that would open, increase or flip the position: -2022 "ReduceOnly Order is
  rejected."; a resting reduce-only order never fills more than the position;
* the margin check (:mod:`bot.emulator.futures.account`): -2019 "Margin is insufficient.";
* filters: tick -4014, step -1111, minQty / maxQty -1013 LOT_SIZE, USD-M minimum notional -4164
  (not for reduce-only orders); GTX that would take -5022, FOK that cannot fill -5021; a client
  order id already used by an open order -4116;
* fills move the position and the wallet instead of balances; commissions are in the settle asset:
  ``notional * rate`` (linear ``qty * cs * price`` USDT, inverse ``qty * cs / price`` BTC).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable

from bot.core.market import to_decimal
from bot.emulator import errors as E
from bot.emulator.commission import CommissionPolicy
from bot.emulator.errors import BinanceError
from bot.emulator.futures.account import ZERO, FuturesAccount, fee8
from bot.emulator.futures.contract import Contract
from bot.emulator.market import MarketState, PublicTrade, now_ms
from bot.emulator.matching import CLIENT_ID_RE, Engine, Fill, Order, TakeFn, _dec, _is_multiple, fmt

__all__ = ["FuturesEngine", "FuturesFill", "FuturesOrder"]

REDUCE_ONLY_REJECTED = (-2022, "ReduceOnly Order is rejected.")
MARGIN_INSUFFICIENT = (-2019, "Margin is insufficient.")


@dataclass
class FuturesOrder(Order):
    reduce_only: bool = False
    liquidation: bool = False


@dataclass
class FuturesFill(Fill):
    realized_pnl: Decimal = ZERO
    settle_qty: Decimal = ZERO  # the fill's notional in the settle asset (USD-M quoteQty, COIN-M baseQty)


class FuturesEngine(Engine):
    """Orders and fills of the one futures account (see the module docstring)."""

    def __init__(self, contract: Contract, market: MarketState, account: FuturesAccount, mark: Callable[[], Decimal],
                 taker_fee: Decimal, maker_fee: Decimal, take: TakeFn | None = None) -> None:
        self.contract = contract
        self.futures = account
        self.mark = mark
        self.kind = "coinm" if contract.inverse else "usdm"
        super().__init__(contract.rules(), market, {}, taker_fee=taker_fee, maker_fee=maker_fee, take=take,
                         commission=CommissionPolicy("quote", contract.base, contract.quote))
        self.balances = {}

    def balance_assets(self) -> list[str]:
        return [self.contract.settle]

    # ------------------------------------------------------------------ margin
    def open_order_margin(self, mark: Decimal | None = None) -> Decimal:
        """Initial margin of the open orders that would add exposure (reduce-only ones need none)."""
        lev = self.futures.leverage
        return sum((self.contract.notional(o.remaining, o.price) / lev for o in self.open.values()
                    if isinstance(o, FuturesOrder) and not o.reduce_only), ZERO)

    # ------------------------------------------------------------------ new orders
    def validate(self, params: dict[str, str]) -> dict:
        c = self.contract
        self.check_symbol(params)
        side = (params.get("side") or "").upper()
        if not side:
            raise E.missing("side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        otype = (params.get("type") or "").upper()
        if not otype:
            raise E.missing("type")
        if otype not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        if (params.get("positionSide") or "BOTH").upper() != "BOTH":
            raise BinanceError(-4061, "Order's position side does not match user's setting.")
        reduce_only = (params.get("reduceOnly") or "false").lower()
        if reduce_only not in ("true", "false"):
            raise E.illegal("reduceOnly", "true, false")
        qty = _dec(params, "quantity", required=True)
        price = _dec(params, "price")
        tif = (params.get("timeInForce") or "").upper()
        if otype == "LIMIT":
            if not tif:
                raise E.missing("timeInForce")
            if tif not in ("GTC", "IOC", "FOK", "GTX"):
                raise BinanceError(-1115, "Invalid timeInForce.")
            if price is None:
                raise E.missing("price")
        else:
            if price is not None:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            tif = "GTC"
        client_id = params.get("newClientOrderId") or ""
        if client_id:
            if not CLIENT_ID_RE.match(client_id):
                raise E.illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        else:
            client_id = "emu_" + uuid.uuid4().hex[:22]
        resp_type = (params.get("newOrderRespType") or "ACK").upper()
        if resp_type not in ("ACK", "RESULT"):
            raise E.illegal("newOrderRespType", "ACK, RESULT")
        assert qty is not None
        if price is not None and (price <= 0 or not _is_multiple(price, c.tick_size)):
            raise BinanceError(-4014, "Price not increased by tick size.")
        if qty <= 0:
            raise BinanceError(-4003, "Quantity less than or equal to zero.")
        if not _is_multiple(qty, c.step_size):
            raise BinanceError(-1111, "Precision is over the maximum defined for this asset.")
        if qty < c.min_qty or qty > self.rules.max_qty:
            raise E.filter_failure("LOT_SIZE")
        if any(o.is_open for o in self.by_client.get(client_id, ())):
            raise BinanceError(-4116, "ClientOrderId is duplicated.")
        if otype != "MARKET" and len(self.open) >= self.rules.max_num_orders:
            raise BinanceError(-4015, "Maximum number of open orders reached.")  # MAX_NUM_ORDERS
        return {"side": side, "type": otype, "tif": tif, "qty": qty, "price": price, "client_id": client_id,
                "resp_type": resp_type, "reduce_only": reduce_only == "true"}

    def _reducible(self, side: str) -> Decimal:
        """How many contracts an order on ``side`` can reduce the position by (0: it would increase it)."""
        amt = self.futures.position.amt
        if (side == "SELL" and amt > 0) or (side == "BUY" and amt < 0):
            return abs(amt)
        return ZERO

    def new_order(self, params: dict[str, str], test: bool = False, reject: bool = False) -> tuple[Order | None, dict]:
        spec = self.validate(params)
        c, acct = self.contract, self.futures
        side, otype, qty, price, tif = spec["side"], spec["type"], spec["qty"], spec["price"], spec["tif"]
        if self.market.book.level_count() == (0, 0) and otype == "MARKET":
            raise BinanceError(-1112, "No orders on book for symbol.")
        plan = self.plan(side, qty=qty) if otype == "MARKET" else self.plan(side, qty=qty, limit=price)
        planned = sum((q for _, q, _ in plan), ZERO)
        mark = self.mark()
        est = (sum((p * q for p, q, _ in plan), ZERO) / planned if planned else (price or mark))
        if not c.inverse and c.min_notional > 0 and not spec["reduce_only"]:
            if c.notional(qty, price if price is not None else est) < c.min_notional:
                raise BinanceError(-4164, f"Order's notional must be no smaller than {c.min_notional.normalize():f} "
                                          "(unless you choose reduce only).")
        reducible = self._reducible(side)
        if spec["reduce_only"] and (reducible == 0 or qty > reducible):
            raise BinanceError(*REDUCE_ONLY_REJECTED)
        if not spec["reduce_only"]:
            adds = max(ZERO, qty - reducible)
            need = c.notional(adds, price if price is not None else est) / acct.leverage
            need += c.notional(qty, est) * max(self.taker_fee, ZERO)
            if need > 0 and need > acct.available(mark, self.open_order_margin()):
                raise BinanceError(*MARGIN_INSUFFICIENT)
        if tif == "GTX" and plan:
            raise BinanceError(-5022, "Due to the order could not be executed as maker, the Post Only order will be "
                                      "rejected. The order will not be recorded in the order history")
        if tif == "FOK" and planned < qty:
            raise BinanceError(-5021, "Due to the order could not be filled immediately, the FOK order has been rejected. "
                                      "The order will not be recorded in the order history")
        if reject:
            raise BinanceError(-2010, "Order was rejected by the matching engine.")
        if test:
            return None, {}
        now = now_ms()
        order = FuturesOrder(order_id=self.next_order_id, client_order_id=spec["client_id"], symbol=c.symbol, side=side,
                             type=otype, time_in_force=tif, price=price if price is not None else ZERO, orig_qty=qty,
                             time=now, update_time=now, reduce_only=spec["reduce_only"])
        self._register(order)
        was_matching = self._matching
        self._matching = True
        try:
            if plan:
                self._execute(order, plan, maker=False)
            if order.executed_qty >= order.orig_qty:
                self._finish(order, "FILLED")
            elif otype == "MARKET" or tif in ("IOC", "FOK"):
                self._finish(order, "EXPIRED")
            else:
                self.open[order.order_id] = order
        finally:
            self._matching = was_matching
        if not self._matching:
            self._match_resting()
        return order, self.order_row(order)

    def _register(self, order: FuturesOrder) -> None:
        self.next_order_id += 1
        self.orders[order.order_id] = order
        self.by_client.setdefault(order.client_order_id, []).append(order)
        self._emit("NEW", order, None)

    # ------------------------------------------------------------------ execution
    def _execute(self, order: Order, plan, maker: bool) -> list[Fill]:
        if isinstance(order, FuturesOrder) and order.reduce_only:
            cap = min(self._reducible(order.side), order.remaining)
            trimmed, left = [], cap
            for price, q, raw in plan:
                if left <= 0:
                    break
                trimmed.append((price, min(q, left), raw))
                left -= min(q, left)
            if not trimmed:
                if order.is_open:
                    self._finish(order, "EXPIRED")  # nothing left to reduce: Binance expires it
                return []
            plan = trimmed
        fills = super()._execute(order, plan, maker)
        if isinstance(order, FuturesOrder) and order.reduce_only and order.is_open and self._reducible(order.side) == 0:
            self._finish(order, "EXPIRED")
        return fills

    def _fill(self, order: Order, price: Decimal, qty: Decimal, maker: bool, trade_id: int,
              rate: Decimal | None = None) -> Fill:
        c = self.contract
        now = now_ms()
        notional = c.notional(qty, price)
        fee = fee8(notional * (rate if rate is not None else self.maker_fee if maker else self.taker_fee))
        realized = self.futures.fill(order.side, qty, price, fee, trade_id, now)
        fill = FuturesFill(trade_id, order.order_id, c.symbol, price, qty, price * qty * c.contract_size, fee, c.settle,
                           now, order.side == "BUY", maker, realized_pnl=realized, settle_qty=notional)
        order.executed_qty += qty
        order.cum_quote += notional
        order.fills.append(fill)
        order.update_time = self.update_time = now
        if order.executed_qty < order.orig_qty:
            order.status = "PARTIALLY_FILLED"
        else:
            order.status = "FILLED"
        self.fills.append(fill)
        self._emit("TRADE", order, fill)
        return fill

    def _on_trade(self, trade: PublicTrade) -> None:
        """A public trade through a resting order's price fills it (as the spot engine does), a reduce-only
        one never beyond the position."""
        if trade.ours or not self.open:
            return
        price, budget = to_decimal(trade.price), to_decimal(trade.qty)
        if trade.buyer_is_maker:
            orders = sorted((o for o in self.open.values() if o.side == "BUY" and o.price > price), key=lambda o: -o.price)
        else:
            orders = sorted((o for o in self.open.values() if o.side == "SELL" and o.price < price), key=lambda o: o.price)
        for order in orders:
            if budget <= 0:
                break
            q = min(order.remaining, budget)
            if isinstance(order, FuturesOrder) and order.reduce_only:
                q = min(q, self._reducible(order.side))
                if q <= 0:
                    self._finish(order, "EXPIRED")
                    continue
            budget -= q
            tid = self.market.next_trade_id
            self.market.next_trade_id += 1
            self._fill(order, order.price, q, True, tid)
            if order.executed_qty >= order.orig_qty:
                self._finish(order, "FILLED")

    def liquidate(self, mark: Decimal) -> tuple[FuturesOrder, FuturesFill, Decimal]:
        """Close the whole position at ``mark`` (to the tick) as Binance's liquidation engine does: an
        order whose client id starts ``autoclose-``; return (order, fill, clearance fee)."""
        acct = self.futures
        amt = acct.position.amt
        price = (mark / self.contract.tick_size).to_integral_value(rounding=ROUND_HALF_UP) * self.contract.tick_size
        isolated_before, maintenance = acct.position.isolated_wallet, acct.maintenance(mark)
        now = now_ms()
        order = FuturesOrder(order_id=self.next_order_id, client_order_id=f"autoclose-{now}",
                             symbol=self.contract.symbol, side="SELL" if amt > 0 else "BUY", type="LIMIT",
                             time_in_force="IOC", price=price, orig_qty=abs(amt), time=now, update_time=now,
                             liquidation=True)
        self._register(order)
        tid = self.market.next_trade_id
        self.market.next_trade_id += 1
        fill = self._fill(order, price, abs(amt), False, tid, rate=ZERO)
        assert isinstance(fill, FuturesFill)
        fee = acct.clear_liquidation(isolated_before, maintenance, fill.realized_pnl, now)
        self._finish(order, "FILLED")
        for other in list(self.open.values()):  # Binance cancels the account's open orders of the symbol first
            other.cancel_client_id = "emu_c_" + uuid.uuid4().hex[:20]
            self._finish(other, "CANCELED")
        return order, fill, fee

    # ------------------------------------------------------------------ answers
    def order_row(self, order: Order) -> dict:
        c = self.contract
        executed = order.executed_qty
        avg = ZERO
        if executed > 0 and order.cum_quote > 0:
            avg = executed * c.contract_size / order.cum_quote if c.inverse else order.cum_quote / (executed * c.contract_size)
            avg = avg.quantize(c.tick_size / 1000)
        row = {
            "orderId": order.order_id, "symbol": order.symbol, "status": order.status, "clientOrderId": order.client_order_id,
            "price": fmt(order.price), "avgPrice": fmt(avg), "origQty": fmt(order.orig_qty), "executedQty": fmt(executed),
            "cumQty": fmt(executed), "timeInForce": order.time_in_force, "type": order.type,
            "reduceOnly": bool(getattr(order, "reduce_only", False)), "closePosition": False, "side": order.side,
            "positionSide": "BOTH", "stopPrice": fmt(0), "workingType": "CONTRACT_PRICE", "priceProtect": False,
            "origType": order.type, "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0,
            "time": order.time, "updateTime": order.update_time,
        }
        if c.inverse:
            row.update({"pair": c.pair, "cumBase": fmt(order.cum_quote)})
        else:
            row["cumQuote"] = fmt(order.cum_quote)
        return row

    def trade_row(self, fill: Fill) -> dict:
        c = self.contract
        f = fill if isinstance(fill, FuturesFill) else None
        row = {
            "symbol": fill.symbol, "id": fill.trade_id, "orderId": fill.order_id, "side": "BUY" if fill.is_buyer else "SELL",
            "price": fmt(fill.price), "qty": fmt(fill.qty), "realizedPnl": fmt(f.realized_pnl if f else 0),
            "marginAsset": c.settle, "commission": fmt(fill.commission), "commissionAsset": fill.commission_asset,
            "time": fill.time, "positionSide": "BOTH", "buyer": fill.is_buyer, "maker": fill.is_maker,
        }
        if c.inverse:
            row.update({"pair": c.pair, "baseQty": fmt(f.settle_qty if f else 0)})
        else:
            row["quoteQty"] = fmt(fill.quote_qty)
        return row

    def open_orders(self) -> list[dict]:
        return [self.order_row(o) for o in self.open.values()]

    def my_trades(self, params: dict[str, str]) -> list[dict]:
        self.check_symbol(params)
        fills = self.fills
        for key, pick in (("orderId", lambda f, v: f.order_id == v), ("fromId", lambda f, v: f.trade_id >= v),
                          ("startTime", lambda f, v: f.time >= v), ("endTime", lambda f, v: f.time <= v)):
            if params.get(key):
                value = int(params[key])
                fills = [f for f in fills if pick(f, value)]
        limit = min(int(params.get("limit") or 500), 1000)
        fills = fills[:limit] if (params.get("fromId") or params.get("startTime")) else fills[-limit:]
        return [self.trade_row(f) for f in fills]

    def state(self) -> dict:
        mark = self.mark()
        acct = self.futures
        return {
            "balances": {self.contract.settle: {"free": fmt(acct.available(mark, self.open_order_margin())),
                                                "locked": fmt(0), "wallet": fmt(acct.wallet)}},
            "orders": [self.order_row(o) for o in sorted(self.orders.values(), key=lambda o: o.order_id)],
            "open_orders": [o.order_id for o in self.open.values()],
            "trades": [self.trade_row(f) for f in self.fills],
            "position": acct.position_row(mark, self.kind), "income": list(acct.income),
            "leverage": acct.leverage, "margin_type": acct.margin_type, "mark_price": fmt(mark),
        }

    def set_balances(self, balances: dict[str, Decimal]) -> None:
        """``POST /admin/balances``: the settle asset's entry sets the wallet balance."""
        if hasattr(self, "futures"):
            for asset, amount in balances.items():
                if asset.upper() == self.contract.settle:
                    self.futures.wallet = Decimal(amount)
        self.update_time = now_ms()

