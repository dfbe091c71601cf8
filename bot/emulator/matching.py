"""Order validation, matching and the one account's balances.

Rules (Binance spot, as far as the bot can observe them):

* Filters are checked in Binance's order and answered with Binance's codes: PRICE_FILTER,
  LOT_SIZE (MARKET_LOT_SIZE for market orders), NOTIONAL (for market orders at the average
  price the order would get, or ``quoteOrderQty``), MAX_NUM_ORDERS, all ``-1013 Filter failure:
  NAME``.
* ``newClientOrderId`` must be unique among *open* orders (Binance: "Orders with the same
  newClientOrderID can be accepted only when the previous one is filled"), else ``-2010
  Duplicate order sent.``. A query by ``origClientOrderId`` returns the latest order with that id.
* MARKET orders (``quantity`` or ``quoteOrderQty``) walk the book; what the book cannot fill
  expires (status EXPIRED with the partial fill, like Binance). LIMIT GTC takes what is marketable
  up to its price and rests the remainder; IOC expires the remainder; FOK fills completely or
  expires with nothing; LIMIT_MAKER that would take is refused ``-2010 Order would immediately
  match and take.``.
* A resting order fills (as maker, at its own price) when the market's best opposite price
  crosses it - for the size available up to its price - or when a public trade trades *through*
  its price (a sell below a resting buy, a buy above a resting sell), up to the trade's size.
  A trade exactly at the order's price does not fill it (queue position is unknown). Resting
  orders are not shown in the public book.
* Fees: ``taker_fee`` / ``maker_fee`` (default 0.1 % each; negative = a rebate), charged in the
  asset :class:`~bot.emulator.commission.CommissionPolicy` says (default: the quote asset, of the
  fill's quote amount; ``base`` / ``bnb`` modes as Binance charges them). A LIMIT buy locks
  ``qty * price * (1 + max(fees, 0))`` of quote when quote pays the fee, else ``qty * price``; a
  sell locks ``qty`` of base; locks are released as the order fills or ends.
* ``--sim`` mode: orders that take liquidity (market orders, marketable limits, resting orders
  that get crossed) consume the simulator's book via ``SimMarket.take``, so they move the
  public book and show up as public trades. ``--data`` mode: the recording is authoritative,
  our fills do not change the replayed book; to avoid taking the same liquidity twice the
  engine remembers how much it took at each price level and treats only the rest as available
  until the recording removes that level.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Callable

from bot.config.settings import MarketSection
from bot.core.market import to_decimal
from bot.emulator import errors as E
from bot.emulator.commission import BNB, CommissionPolicy
from bot.emulator.errors import BinanceError
from bot.emulator.market import MarketState, PublicTrade, now_ms

ZERO = Decimal(0)
E8 = Decimal("0.00000001")
CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
NUM_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")


def fmt(x: Decimal | float | int) -> str:
    """Binance number format: fixed point with 8 decimals."""
    if not isinstance(x, Decimal):
        x = to_decimal(x) if isinstance(x, float) else Decimal(x)
    return format(x.quantize(E8), "f")


@dataclass(frozen=True)
class SymbolRules:
    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal | None = None
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    market_max_qty: Decimal = Decimal("100")
    max_num_orders: int = 200

    @classmethod
    def from_market(cls, market: MarketSection) -> "SymbolRules":
        base, quote = market.symbol.upper().split("/")
        return cls(
            symbol=base + quote, base=base, quote=quote, tick_size=market.tick_size, step_size=market.lot_size,
            min_qty=market.min_qty, min_notional=market.min_notional, min_price=market.tick_size,
        )


@dataclass
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def my_trade(self) -> dict:
        return {
            "symbol": self.symbol, "id": self.trade_id, "orderId": self.order_id, "orderListId": -1,
            "price": fmt(self.price), "qty": fmt(self.qty), "quoteQty": fmt(self.quote_qty),
            "commission": fmt(self.commission), "commissionAsset": self.commission_asset, "time": self.time,
            "isBuyer": self.is_buyer, "isMaker": self.is_maker, "isBestMatch": True,
        }

    def order_fill(self) -> dict:
        return {"price": fmt(self.price), "qty": fmt(self.qty), "commission": fmt(self.commission),
                "commissionAsset": self.commission_asset, "tradeId": self.trade_id}


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # MARKET / LIMIT / LIMIT_MAKER
    time_in_force: str  # GTC / IOC / FOK
    price: Decimal  # 0 for market orders
    orig_qty: Decimal  # 0 for a quoteOrderQty market order until it fills
    orig_quote_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    time: int = 0
    update_time: int = 0
    lock_asset: str = ""
    lock_left: Decimal = ZERO
    lock_per_unit: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)
    cancel_client_id: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    def _common(self) -> dict:
        return {
            "price": fmt(self.price), "origQty": fmt(self.orig_qty), "executedQty": fmt(self.executed_qty),
            "cummulativeQuoteQty": fmt(self.cum_quote), "status": self.status, "timeInForce": self.time_in_force,
            "type": self.type, "side": self.side,
        }

    def ack(self) -> dict:
        return {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_order_id, "transactTime": self.time}

    def result(self, full: bool, fills: list[Fill] | None = None) -> dict:
        out = self.ack()
        out.update(self._common())
        out["origQuoteOrderQty"] = fmt(self.orig_quote_qty)
        out["workingTime"] = self.time
        out["selfTradePreventionMode"] = "EXPIRE_MAKER"
        if full:
            out["fills"] = [f.order_fill() for f in (self.fills if fills is None else fills)]
        return out

    def query(self) -> dict:
        out = {"symbol": self.symbol, "orderId": self.order_id, "orderListId": -1, "clientOrderId": self.client_order_id}
        out.update(self._common())
        out.update({
            "stopPrice": fmt(0), "icebergQty": fmt(0), "time": self.time, "updateTime": self.update_time,
            "isWorking": True, "workingTime": self.time, "origQuoteOrderQty": fmt(self.orig_quote_qty),
            "selfTradePreventionMode": "EXPIRE_MAKER",
        })
        return out

    def canceled(self) -> dict:
        out = {"symbol": self.symbol, "origClientOrderId": self.client_order_id, "orderId": self.order_id,
               "orderListId": -1, "clientOrderId": self.cancel_client_id, "transactTime": self.update_time}
        out.update(self._common())
        out["origQuoteOrderQty"] = fmt(self.orig_quote_qty)
        out["selfTradePreventionMode"] = "EXPIRE_MAKER"
        return out


# (side of the order, quantity to take) -> fills [(price, size, public trade id)] (sim mode)
TakeFn = Callable[[str, Decimal], list[tuple[float, float, int]]]
ExecListener = Callable[[str, Order, "Fill | None"], None]


def _dec(params: dict[str, str], name: str, required: bool = False) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise E.missing(name)
        return None
    if not NUM_RE.match(raw):
        raise E.illegal(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise E.illegal(name) from None
    if value.normalize().as_tuple().exponent < -8:
        raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
    return value


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return step == 0 or (value % step) == 0


class Engine:
    """The account and its orders against the emulator's market."""

    def __init__(self, rules: SymbolRules, market: MarketState, balances: dict[str, Decimal],
                 taker_fee: Decimal = Decimal("0.001"), maker_fee: Decimal = Decimal("0.001"),
                 take: TakeFn | None = None, commission: CommissionPolicy | None = None,
                 account: "Engine | None" = None) -> None:
        self.rules = rules
        self.market = market
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.commission = commission or CommissionPolicy("quote", rules.base, rules.quote)
        self.lock_fee = max(taker_fee, maker_fee, ZERO) if self.commission.quote_pays_buys else ZERO
        self.take = take  # sim mode: consume the simulator's liquidity; None: replay mode
        # several symbols trade from one account: ``account`` (another symbol's engine) shares its
        # balances and its order id counter, so balances move together and order ids never repeat
        self.balances: dict[str, list[Decimal]] = account.balances if account is not None else {}
        self._ids: list[int] = account._ids if account is not None else [4_000_000_001]
        self.set_balances(balances)
        self.orders: dict[int, Order] = {}
        self.open: dict[int, Order] = {}
        self.by_client: dict[str, list[Order]] = {}
        self.fills: list[Fill] = []
        self.consumed: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}  # replay mode only
        self.listeners: list[ExecListener] = []
        self.balance_listeners: list[Callable[[list[str]], None]] = []
        self.update_time = now_ms()
        self._matching = False
        market.depth_listeners.append(self._on_depth)
        market.trade_listeners.append(self._on_trade)

    @property
    def next_order_id(self) -> int:
        return self._ids[0]

    @next_order_id.setter
    def next_order_id(self, value: int) -> None:
        self._ids[0] = value

    # ------------------------------------------------------------------ balances
    def set_balances(self, balances: dict[str, Decimal]) -> None:
        for asset, amount in balances.items():
            entry = self.balances.setdefault(asset.upper(), [ZERO, ZERO])
            entry[0] = Decimal(amount)
        for asset in self.balance_assets():
            self.balances.setdefault(asset, [ZERO, ZERO])
        self.update_time = now_ms()

    def balance_assets(self) -> list[str]:
        """The assets a fill can move: base, quote and the commission mode's extra ones (BNB)."""
        return [self.rules.base, self.rules.quote, *self.commission.extra_assets]

    def _bal(self, asset: str) -> list[Decimal]:
        return self.balances.setdefault(asset, [ZERO, ZERO])

    def account(self, omit_zero: bool = False) -> dict:
        rows = [{"asset": a, "free": fmt(f), "locked": fmt(l)} for a, (f, l) in sorted(self.balances.items())
                if not (omit_zero and f == 0 and l == 0)]
        maker_bp = int(self.maker_fee * 10000)
        taker_bp = int(self.taker_fee * 10000)
        return {
            "makerCommission": maker_bp, "takerCommission": taker_bp, "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(self.maker_fee), "taker": fmt(self.taker_fee), "buyer": fmt(0), "seller": fmt(0)},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self.update_time,
            "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 354937868,
        }

    # ------------------------------------------------------------------ lookups
    def find_required(self, params: dict) -> Order:
        """The order ``params`` name by ``orderId`` or ``origClientOrderId``, with Binance's errors
        when neither is given (-1102) or none matches (-2013)."""
        order_id, client_id = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.find(order_id, client_id)
        if order is None:
            raise BinanceError(-2013, "Order does not exist.")
        return order

    def find(self, order_id: str | None, client_id: str | None) -> Order | None:
        if order_id:
            try:
                order = self.orders.get(int(order_id))
            except ValueError:
                raise E.illegal("orderId", "^[0-9]{1,20}$") from None
            if order is not None and client_id and order.client_order_id != client_id:
                return None
            return order
        if client_id:
            orders = self.by_client.get(client_id)
            return orders[-1] if orders else None
        return None

    def check_symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise E.missing("symbol")
            return None
        if symbol.upper() != self.rules.symbol:
            raise BinanceError(*E.INVALID_SYMBOL)
        return symbol

    # ------------------------------------------------------------------ book walking
    def _levels(self, taken_side: str):
        """Yield (price float, available size float) on ``taken_side`` ("ask"/"bid"), best first."""
        book = self.market.book
        consumed = self.consumed[taken_side] if self.take is None else None
        n = 64
        seen = 0
        while True:
            levels = book.asks(n) if taken_side == "ask" else book.bids(n)
            for price, size in levels[seen:]:
                if consumed:
                    taken = consumed.get(price)
                    if taken:
                        size = round(size - taken, 8)
                yield price, size
            if len(levels) < n:
                return
            seen = len(levels)
            n *= 4

    def plan(self, side: str, qty: Decimal | None = None, quote: Decimal | None = None,
             limit: Decimal | None = None) -> list[tuple[Decimal, Decimal, float]]:
        """What an order taking liquidity would get now: [(price, qty, raw float price)]."""
        taken = "ask" if side == "BUY" else "bid"
        step = self.rules.step_size
        out: list[tuple[Decimal, Decimal, float]] = []
        left_qty = qty
        left_quote = quote
        for price_f, size_f in self._levels(taken):
            if size_f <= 1e-12:
                continue
            price = to_decimal(price_f)
            if limit is not None and ((side == "BUY" and price > limit) or (side == "SELL" and price < limit)):
                break
            avail = to_decimal(size_f).quantize(E8, rounding=ROUND_DOWN)
            if avail <= 0:
                continue
            if left_qty is not None:
                q = min(avail, left_qty)
                left_qty -= q
            else:
                assert left_quote is not None
                q = min(avail, left_quote / price)
                q = (q / step).to_integral_value(rounding=ROUND_DOWN) * step if step else q.quantize(E8, rounding=ROUND_DOWN)
                if q <= 0:
                    break
                left_quote -= q * price
            out.append((price, q, price_f))
            if (left_qty is not None and left_qty <= 0) or (left_quote is not None and left_quote <= 0):
                break
        return out

    # ------------------------------------------------------------------ new orders
    def validate(self, params: dict[str, str]) -> dict:
        """Parse and check a new-order request; return the normalized order fields or raise."""
        rules = self.rules
        self.check_symbol(params)
        side = params.get("side")
        if not side:
            raise E.missing("side")
        side = side.upper()
        if side not in ("BUY", "SELL"):
            raise BinanceError(-1117, "Invalid side.")
        otype = params.get("type")
        if not otype:
            raise E.missing("type")
        otype = otype.upper()
        if otype not in ("MARKET", "LIMIT", "LIMIT_MAKER"):
            raise BinanceError(-1116, "Invalid orderType.")
        tif = params.get("timeInForce")
        qty = _dec(params, "quantity")
        quote_qty = _dec(params, "quoteOrderQty")
        price = _dec(params, "price")
        if otype == "LIMIT":
            if not tif:
                raise E.missing("timeInForce")
            tif = tif.upper()
            if tif not in ("GTC", "IOC", "FOK"):
                raise BinanceError(-1115, "Invalid timeInForce.")
            if qty is None:
                raise E.missing("quantity")
            if price is None:
                raise E.missing("price")
        elif otype == "LIMIT_MAKER":
            if tif:
                raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
            tif = "GTC"
            if qty is None:
                raise E.missing("quantity")
            if price is None:
                raise E.missing("price")
        else:  # MARKET
            if tif:
                raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
            if price is not None:
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            tif = "GTC"
            if qty is None and quote_qty is None:
                raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
            if qty is not None and quote_qty is not None:
                raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if otype != "MARKET" and quote_qty is not None:
            raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        client_id = params.get("newClientOrderId")
        if client_id is not None and client_id != "":
            if not CLIENT_ID_RE.match(client_id):
                raise E.illegal("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
        else:
            client_id = "emu_" + uuid.uuid4().hex[:22]
        resp_type = (params.get("newOrderRespType") or ("FULL" if otype in ("MARKET", "LIMIT") else "ACK")).upper()
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.")

        # ---- filters, in Binance's order
        if price is not None:
            if price <= 0 or (rules.min_price is not None and price < rules.min_price) or price > rules.max_price \
                    or not _is_multiple(price, rules.tick_size):
                raise E.filter_failure("PRICE_FILTER")
        if qty is not None:
            if otype == "MARKET":
                if qty <= 0 or qty > rules.market_max_qty:
                    raise E.filter_failure("MARKET_LOT_SIZE")
            if qty < rules.min_qty or qty <= 0 or qty > rules.max_qty or not _is_multiple(qty, rules.step_size):
                raise E.filter_failure("LOT_SIZE")
        if otype == "MARKET":
            if quote_qty is not None:
                notional = quote_qty
            else:
                assert qty is not None
                plan = self.plan(side, qty=qty)
                filled = sum((q for _, q, _ in plan), ZERO)
                if filled > 0:
                    notional = sum((p * q for p, q, _ in plan), ZERO) / filled * qty
                else:
                    mid = self.market.book.mid
                    notional = qty * to_decimal(mid) if mid == mid else ZERO
        else:
            assert qty is not None and price is not None
            notional = qty * price
        if notional < rules.min_notional or notional > rules.max_notional:
            raise E.filter_failure("NOTIONAL")
        if otype != "MARKET" and len(self.open) >= rules.max_num_orders:
            raise E.filter_failure("MAX_NUM_ORDERS")
        if any(o.is_open for o in self.by_client.get(client_id, ())):
            raise BinanceError(-2010, E.DUPLICATE_ORDER)
        return {"side": side, "type": otype, "tif": tif, "qty": qty, "quote_qty": quote_qty, "price": price,
                "client_id": client_id, "resp_type": resp_type}

    def new_order(self, params: dict[str, str], test: bool = False, reject: bool = False) -> tuple[Order | None, dict]:
        """Place an order; return (order, response body). ``reject`` forces a -2010 refusal (fault)."""
        spec = self.validate(params)
        if self.market.book.level_count() == (0, 0) and spec["type"] == "MARKET":
            raise BinanceError(-1112, "No orders on book for symbol.")
        side, otype, price = spec["side"], spec["type"], spec["price"]
        qty, quote_qty = spec["qty"], spec["quote_qty"]
        rules = self.rules

        # ---- what would trade now, and can the account pay for it
        if otype == "MARKET":
            plan = self.plan(side, qty=qty, quote=quote_qty)
        else:
            plan = self.plan(side, qty=qty, limit=price)
            if otype == "LIMIT_MAKER" and plan:
                raise BinanceError(-2010, E.WOULD_TAKE)
        quote_bal = self._bal(rules.quote)
        base_bal = self._bal(rules.base)
        if side == "BUY":
            if otype == "MARKET":
                cost = sum((p * q for p, q, _ in plan), ZERO)
                need = cost + self.commission.charge(True, ZERO, cost, self.taker_fee).amount \
                    if self.commission.quote_pays_buys else cost
            else:
                need = (qty * price * (1 + self.lock_fee)).quantize(E8, rounding=ROUND_UP)
            if quote_bal[0] < need:
                raise BinanceError(-2010, E.INSUFFICIENT_BALANCE)
        else:
            need = qty if qty is not None else sum((q for _, q, _ in plan), ZERO)
            if base_bal[0] < need:
                raise BinanceError(-2010, E.INSUFFICIENT_BALANCE)
        if reject:
            raise BinanceError(-2010, "Order was rejected by the matching engine.")
        if test:
            return None, {}

        now = now_ms()
        order = Order(
            order_id=self.next_order_id, client_order_id=spec["client_id"], symbol=rules.symbol, side=side, type=otype,
            time_in_force=spec["tif"], price=price if price is not None else ZERO,
            orig_qty=qty if qty is not None else ZERO, orig_quote_qty=quote_qty if quote_qty is not None else ZERO,
            time=now, update_time=now,
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        self.by_client.setdefault(order.client_order_id, []).append(order)
        if otype != "MARKET":
            if side == "BUY":
                order.lock_asset = rules.quote
                order.lock_per_unit = price * (1 + self.lock_fee)
                order.lock_left = need
                quote_bal[0] -= need
                quote_bal[1] += need
            else:
                order.lock_asset = rules.base
                order.lock_per_unit = Decimal(1)
                order.lock_left = qty
                base_bal[0] -= qty
                base_bal[1] += qty
        self._emit("NEW", order, None)

        was_matching = self._matching
        self._matching = True
        try:
            fills: list[Fill] = []
            if otype == "MARKET" and quote_qty is not None:
                # quantity is what the quote amount buys; the order's origQty becomes the executed quantity
                order.orig_qty = sum((q for _, q, _ in plan), ZERO)
            if plan and not (spec["tif"] == "FOK" and sum((q for _, q, _ in plan), ZERO) < qty):
                fills = self._execute(order, plan, maker=False)
            if order.executed_qty >= order.orig_qty and order.orig_qty > 0:
                self._finish(order, "FILLED")
            elif otype == "MARKET" or spec["tif"] in ("IOC", "FOK"):
                self._finish(order, "EXPIRED")
            else:
                self.open[order.order_id] = order
        finally:
            self._matching = was_matching
        if not self._matching:
            self._match_resting()

        resp_type = spec["resp_type"]
        if resp_type == "ACK":
            body = order.ack()
        else:
            body = order.result(full=resp_type == "FULL", fills=fills)
        return order, body

    # ------------------------------------------------------------------ execution
    def _execute(self, order: Order, plan: list[tuple[Decimal, Decimal, float]], maker: bool) -> list[Fill]:
        """Trade ``plan`` for ``order``; maker fills trade at the order's own price."""
        taken = "ask" if order.side == "BUY" else "bid"
        total = sum((q for _, q, _ in plan), ZERO)
        if self.take is not None:
            got = self.take(order.side, total)
            trades = [(to_decimal(p), to_decimal(q).quantize(E8, rounding=ROUND_DOWN), tid) for p, q, tid in got]
        else:
            consumed = self.consumed[taken]
            trades = []
            for price, q, price_f in plan:
                consumed[price_f] = consumed.get(price_f, 0.0) + float(q)
                trades.append((price, q, self.market.next_trade_id))
                self.market.next_trade_id += 1
        fills = []
        for price, q, tid in trades:
            if q <= 0:
                continue
            q = min(q, order.remaining) if order.orig_qty > 0 else q
            if q <= 0:
                break
            fills.append(self._fill(order, order.price if maker else price, q, maker, tid))
        return fills

    def _fill(self, order: Order, price: Decimal, qty: Decimal, maker: bool, trade_id: int) -> Fill:
        rules = self.rules
        now = now_ms()
        quote_qty = (price * qty).quantize(E8, rounding=ROUND_DOWN) if (price * qty).as_tuple().exponent < -8 else price * qty
        policy = self.commission
        fee = policy.charge(order.side == "BUY", qty, quote_qty, self.maker_fee if maker else self.taker_fee,
                            self._bal(BNB)[0] if policy.mode == "bnb" else ZERO)
        fill = Fill(trade_id, order.order_id, rules.symbol, price, qty, quote_qty, fee.amount, fee.asset, now,
                    order.side == "BUY", maker)
        base_bal = self._bal(rules.base)
        quote_bal = self._bal(rules.quote)
        if order.side == "BUY":
            if order.lock_asset:
                release = min(order.lock_left, (qty * order.lock_per_unit).quantize(E8, rounding=ROUND_UP))
                order.lock_left -= release
                quote_bal[1] -= release
                quote_bal[0] += release
            quote_bal[0] -= quote_qty
            base_bal[0] += qty
        else:
            if order.lock_asset:
                release = min(order.lock_left, qty)
                order.lock_left -= release
                base_bal[1] -= release
                base_bal[0] += release
            base_bal[0] -= qty
            quote_bal[0] += quote_qty
        self._bal(fee.asset)[0] -= fee.amount
        order.executed_qty += qty
        order.cum_quote += quote_qty
        order.fills.append(fill)
        order.update_time = now
        self.update_time = now
        if order.orig_qty > 0 and order.executed_qty < order.orig_qty:
            order.status = "PARTIALLY_FILLED"
        elif order.type != "MARKET" or order.executed_qty >= order.orig_qty:
            order.status = "FILLED"
        self.fills.append(fill)
        self._emit("TRADE", order, fill)
        return fill

    def _finish(self, order: Order, status: str) -> None:
        order.status = status
        order.update_time = now_ms()
        if order.lock_left > 0:
            bal = self._bal(order.lock_asset)
            bal[1] -= order.lock_left
            bal[0] += order.lock_left
            order.lock_left = ZERO
        self.open.pop(order.order_id, None)
        if status != "FILLED":
            self._emit(status, order, None)
        self._emit_balances()

    # ------------------------------------------------------------------ cancel
    def cancel(self, params: dict[str, str]) -> dict:
        self.check_symbol(params)
        order_id = params.get("orderId")
        client_id = params.get("origClientOrderId")
        if not order_id and not client_id:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.find(order_id, client_id)
        if order is None or not order.is_open:
            raise BinanceError(-2011, E.UNKNOWN_ORDER)
        order.cancel_client_id = params.get("newClientOrderId") or ("emu_c_" + uuid.uuid4().hex[:20])
        self._finish(order, "CANCELED")
        return order.canceled()

    def cancel_all(self, params: dict[str, str]) -> list[dict]:
        self.check_symbol(params)
        orders = list(self.open.values())
        if not orders:
            raise BinanceError(-2011, E.UNKNOWN_ORDER)
        out = []
        for order in orders:
            order.cancel_client_id = "emu_c_" + uuid.uuid4().hex[:20]
            self._finish(order, "CANCELED")
            out.append(order.canceled())
        return out

    # ------------------------------------------------------------------ resting orders vs the market
    def _on_depth(self, bids, asks, update_id: int) -> None:
        if self.take is None:
            for side, levels in (("bid", bids), ("ask", asks)):
                consumed = self.consumed[side]
                if consumed:
                    for price, size in levels:
                        if price in consumed:
                            if size <= 0:
                                del consumed[price]
                            elif consumed[price] > size:
                                consumed[price] = size
        if self.open and not self._matching:
            self._match_resting()

    def _match_resting(self) -> None:
        if not self.open or self._matching:
            return
        self._matching = True
        try:
            for _ in range(20):
                progress = False
                book = self.market.book
                best_bid, best_ask = book.best_bid, book.best_ask
                for order in sorted(self.open.values(), key=lambda o: (o.side, -o.price if o.side == "BUY" else o.price)):
                    if not order.is_open:
                        continue
                    if order.side == "BUY":
                        crossed = best_ask == best_ask and to_decimal(best_ask) <= order.price
                    else:
                        crossed = best_bid == best_bid and to_decimal(best_bid) >= order.price
                    if not crossed:
                        continue
                    plan = self.plan(order.side, qty=order.remaining, limit=order.price)
                    if not plan:
                        continue
                    self._execute(order, plan, maker=True)
                    progress = True
                    if order.executed_qty >= order.orig_qty:
                        self._finish(order, "FILLED")
                    book = self.market.book
                    best_bid, best_ask = book.best_bid, book.best_ask
                if not progress:
                    break
        finally:
            self._matching = False

    def _on_trade(self, trade: PublicTrade) -> None:
        if trade.ours or not self.open:
            return
        price = to_decimal(trade.price)
        budget = to_decimal(trade.qty)
        if trade.buyer_is_maker:  # a seller took the bids: fills resting buys above the trade price
            orders = sorted((o for o in self.open.values() if o.side == "BUY" and o.price > price), key=lambda o: -o.price)
        else:
            orders = sorted((o for o in self.open.values() if o.side == "SELL" and o.price < price), key=lambda o: o.price)
        for order in orders:
            if budget <= 0:
                break
            q = min(order.remaining, budget)
            budget -= q
            tid = self.market.next_trade_id
            self.market.next_trade_id += 1
            self._fill(order, order.price, q, True, tid)
            if order.executed_qty >= order.orig_qty:
                self._finish(order, "FILLED")

    # ------------------------------------------------------------------ events for the user data stream
    def _emit(self, exec_type: str, order: Order, fill: Fill | None) -> None:
        for listener in self.listeners:
            listener(exec_type, order, fill)

    def _emit_balances(self) -> None:
        for listener in self.balance_listeners:
            listener(self.balance_assets())

    # ------------------------------------------------------------------ queries
    def open_orders(self) -> list[dict]:
        return [o.query() for o in self.open.values()]

    def all_orders(self, params: dict[str, str]) -> list[dict]:
        self.check_symbol(params)
        orders = sorted(self.orders.values(), key=lambda o: o.order_id)
        if params.get("orderId"):
            oid = int(params["orderId"])
            orders = [o for o in orders if o.order_id >= oid]
        if params.get("startTime"):
            orders = [o for o in orders if o.time >= int(params["startTime"])]
        if params.get("endTime"):
            orders = [o for o in orders if o.time <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        return [o.query() for o in (orders[:limit] if params.get("orderId") or params.get("startTime") else orders[-limit:])]

    def my_trades(self, params: dict[str, str]) -> list[dict]:
        self.check_symbol(params)
        fills = self.fills
        if params.get("orderId"):
            oid = int(params["orderId"])
            fills = [f for f in fills if f.order_id == oid]
        if params.get("fromId"):
            fid = int(params["fromId"])
            fills = [f for f in fills if f.trade_id >= fid]
        if params.get("startTime"):
            fills = [f for f in fills if f.time >= int(params["startTime"])]
        if params.get("endTime"):
            fills = [f for f in fills if f.time <= int(params["endTime"])]
        limit = min(int(params.get("limit") or 500), 1000)
        from_start = bool(params.get("fromId") or params.get("startTime"))
        fills = fills[:limit] if from_start else fills[-limit:]
        return [f.my_trade() for f in fills]

    def state(self) -> dict:
        return {
            "balances": {a: {"free": fmt(f), "locked": fmt(l)} for a, (f, l) in sorted(self.balances.items())},
            "orders": [o.query() for o in sorted(self.orders.values(), key=lambda o: o.order_id)],
            "open_orders": [o.order_id for o in self.open.values()],
            "trades": [f.my_trade() for f in self.fills],
        }
