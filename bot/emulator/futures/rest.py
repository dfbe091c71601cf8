"""Binance USD-M (``/fapi``) and COIN-M (``/dapi``) REST endpoints, as ccxt's ``binanceusdm`` /
``binancecoinm`` (4.5) call them. SIGNED ones are checked by :mod:`bot.emulator.auth`, exactly as
on spot; faults, overrides and weights apply as to every REST path (:mod:`bot.emulator.server`).

==============================================  ==============================  ==========================
endpoint (``P`` = ``/fapi`` or ``/dapi``)       ccxt method                     notes
==============================================  ==============================  ==========================
``GET P/v1/ping``, ``time``                     ``fetch_time``
``GET P/v1/exchangeInfo``                       ``load_markets``                contract rows
``GET P/v1/depth``                              ``fetch_order_book``,           ``lastUpdateId``, ``E``, ``T``
                                                ``watch_order_book`` snapshot
``GET P/v1/trades``, ``aggTrades``              ``fetch_trades``
``GET P/v1/ticker/24hr``, ``ticker/price``,     ``fetch_ticker``, ``fetch_bids_asks``
``ticker/bookTicker`` (and ``/fapi/v2/ticker/price``)
``GET P/v1/premiumIndex``                       ``fetch_funding_rate``,         mark, index, funding rate,
                                                ``fetch_mark_price``            next funding time
``GET P/v1/fundingRate``                        ``fetch_funding_rate_history``  the funding times passed
``GET /fapi/v2|v3/account``, ``/dapi/v1/account``  ``fetch_balance``
``GET /fapi/v2|v3/balance``, ``/dapi/v1/balance``
``GET /fapi/v2|v3/positionRisk``,               ``fetch_positions``             rows with entryPrice > 0
``/dapi/v1/positionRisk``                                                       are the open positions
``GET /fapi/v1/leverageBracket``,               ``fetch_positions`` (first)     one bracket: the config's
``/dapi/v1|v2/leverageBracket``                                                 maintenance rate / amount
``POST P/v1/leverage``                          ``set_leverage``
``POST P/v1/marginType``                        ``set_margin_mode``             -4046 when unchanged,
                                                                                -4048 with a position
``GET P/v1/positionSide/dual``                  ``fetch_position_mode``         always one-way
``POST P/v1/order`` (and ``order/test``)        ``create_order``                reduceOnly, newClientOrderId
``GET``/``DELETE P/v1/order``                   ``fetch_order`` / ``cancel_order``
``GET P/v1/openOrders``, ``allOrders``          ``fetch_open_orders`` / ``fetch_orders``
``DELETE P/v1/allOpenOrders``                   ``cancel_all_orders``
``GET P/v1/userTrades``                         ``fetch_my_trades``             fee in the settle asset
``GET P/v1/income``                             ``fetch_funding_history``,      FUNDING_FEE, REALIZED_PNL,
                                                ``fetch_ledger``                COMMISSION, INSURANCE_CLEAR
``GET P/v1/commissionRate``                     ``fetch_trading_fee``
``POST``/``PUT``/``DELETE P/v1/listenKey``      ccxt.pro ``watch_orders`` etc.  user data stream
==============================================  ==============================  ==========================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.emulator import auth
from bot.emulator.errors import BinanceError, missing
from bot.emulator.market import now_ms
from bot.emulator.matching import fmt

if TYPE_CHECKING:
    from bot.emulator.futures.venue import FuturesVenue

__all__ = ["FuturesRest"]

_SIGNED = {
    ("GET", "account"), ("GET", "balance"), ("GET", "positionRisk"), ("GET", "leverageBracket"), ("POST", "leverage"),
    ("POST", "marginType"), ("GET", "positionSide/dual"), ("POST", "order"), ("POST", "order/test"), ("GET", "order"),
    ("DELETE", "order"), ("GET", "openOrders"), ("GET", "allOrders"), ("DELETE", "allOpenOrders"), ("GET", "userTrades"),
    ("GET", "income"), ("GET", "commissionRate"),
}


class FuturesRest:
    """The handlers, bound to one :class:`~bot.emulator.futures.venue.FuturesVenue` and the server's plumbing."""

    def __init__(self, venue: "FuturesVenue", api: Any) -> None:
        self.venue = venue
        self.api = api  # bot.emulator.server._Api: params, signatures, JSON answers, order counters, faults
        self.engine = venue.engine
        self.contract = venue.contract
        self.account = venue.account
        self.prefix = "/dapi" if self.contract.inverse else "/fapi"

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[tuple[str, str, Any]]:
        P, inverse = self.prefix, self.contract.inverse
        v1 = P + "/v1/"
        out: list[tuple[str, str, Any]] = [
            ("GET", v1 + "ping", self.ping), ("GET", v1 + "time", self.time), ("GET", v1 + "exchangeInfo", self.exchange_info),
            ("GET", v1 + "depth", self.depth), ("GET", v1 + "trades", self.api.trades), ("GET", v1 + "aggTrades", self.api.agg_trades),
            ("GET", v1 + "historicalTrades", self.api.trades), ("GET", v1 + "ticker/24hr", self.ticker_24hr),
            ("GET", v1 + "ticker/price", self.ticker_price), ("GET", v1 + "ticker/bookTicker", self.book_ticker),
            ("GET", v1 + "premiumIndex", self.premium_index), ("GET", v1 + "fundingRate", self.funding_rates),
            ("POST", v1 + "leverage", self.leverage), ("POST", v1 + "marginType", self.margin_type),
            ("GET", v1 + "positionSide/dual", self.position_mode), ("POST", v1 + "order", self.new_order),
            ("POST", v1 + "order/test", self.new_order), ("GET", v1 + "order", self.get_order),
            ("DELETE", v1 + "order", self.cancel_order), ("GET", v1 + "openOrders", self.open_orders),
            ("GET", v1 + "allOrders", self.all_orders), ("DELETE", v1 + "allOpenOrders", self.cancel_all),
            ("GET", v1 + "userTrades", self.user_trades), ("GET", v1 + "income", self.income),
            ("GET", v1 + "commissionRate", self.commission_rate),
            ("POST", v1 + "listenKey", self.listen_key), ("PUT", v1 + "listenKey", self.listen_key),
            ("DELETE", v1 + "listenKey", self.listen_key),
        ]
        versions = ("v1",) if inverse else ("v2", "v3")
        for v in versions:
            out += [("GET", f"{P}/{v}/account", self.account_info), ("GET", f"{P}/{v}/balance", self.balance),
                    ("GET", f"{P}/{v}/positionRisk", self.position_risk)]
        for v in (("v1", "v2") if inverse else ("v1",)):
            out.append(("GET", f"{P}/{v}/leverageBracket", self.leverage_bracket))
        if not inverse:
            out.append(("GET", P + "/v2/ticker/price", self.ticker_price))
        # A generic ccxt ``binance`` client (defaultType "future", as the bot builds it) loads every
        # market type and, with keys, the SAPI currency list: answer those with nothing listed, so it
        # finds the one perpetual and nothing else.
        other = "/fapi" if inverse else "/dapi"
        out += [("GET", "/api/v3/exchangeInfo", self.empty_exchange_info), ("GET", other + "/v1/exchangeInfo", self.empty_exchange_info),
                ("GET", "/sapi/v1/capital/config/getall", self.nothing_signed), ("GET", "/sapi/v1/margin/allPairs", self.nothing),
                ("GET", "/sapi/v1/margin/isolated/allPairs", self.nothing_signed)]
        return out

    def install(self, router: web.UrlDispatcher) -> None:
        for method, path, handler in self.routes():
            router.add_route(method, path, handler)
            endpoint = path.split("/", 3)[3]
            if (method, endpoint) in _SIGNED or handler == self.nothing_signed:
                auth.ENDPOINT_AUTH[(method, path)] = "signed"
            elif endpoint == "listenKey":
                auth.ENDPOINT_AUTH[(method, path)] = "key"

    # ------------------------------------------------------------------ helpers
    async def _public(self, request: web.Request) -> dict[str, str]:
        params, _, _ = await self.api._params(request)
        return params

    def _rows(self, params: dict[str, str], row) -> web.Response:  # one object for one symbol, else a list
        if params.get("symbol"):
            self.engine.check_symbol(params)
            return self.api.json(row())
        return self.api.json([row()])

    async def empty_exchange_info(self, request: web.Request) -> web.Response:
        return self.api.json({"timezone": "UTC", "serverTime": now_ms(), "rateLimits": [], "exchangeFilters": [], "symbols": []})

    async def nothing(self, request: web.Request) -> web.Response:
        return self.api.json([])

    async def nothing_signed(self, request: web.Request) -> web.Response:
        await self.api._signed(request)
        return self.api.json([])

    # ------------------------------------------------------------------ public
    async def ping(self, request: web.Request) -> web.Response:
        return self.api.json({})

    async def time(self, request: web.Request) -> web.Response:
        return self.api.json({"serverTime": now_ms()})

    def symbol_info(self) -> dict:
        c = self.contract
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(c.tick_size), "maxPrice": fmt(10_000_000), "tickSize": fmt(c.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": fmt(c.min_qty), "maxQty": fmt(self.engine.rules.max_qty), "stepSize": fmt(c.step_size)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(c.min_qty), "maxQty": fmt(self.engine.rules.market_max_qty),
             "stepSize": fmt(c.step_size)},
            {"filterType": "MAX_NUM_ORDERS", "limit": self.engine.rules.max_num_orders},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ]
        if not c.inverse:
            filters.append({"filterType": "MIN_NOTIONAL", "notional": fmt(c.min_notional)})
        row = {
            "symbol": c.symbol, "pair": c.pair, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": fmt(c.maintenance_margin_rate * 100),
            "requiredMarginPercent": fmt(100 / c.max_leverage), "baseAsset": c.base, "quoteAsset": c.quote,
            "marginAsset": c.settle, "pricePrecision": _decimals(c.tick_size), "quantityPrecision": _decimals(c.step_size),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "filters": filters, "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        }
        if c.inverse:
            row.update({"contractSize": int(c.contract_size) if c.contract_size == int(c.contract_size) else float(c.contract_size),
                        "contractStatus": "TRADING", "equalQtyPrecision": 4})
            del row["status"]
        return row

    async def exchange_info(self, request: web.Request) -> web.Response:
        return self.api.json({
            "timezone": "UTC", "serverTime": now_ms(), "futuresType": "COIN_MARGINED" if self.contract.inverse else "U_MARGINED",
            "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                           {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200}],
            "exchangeFilters": [], "assets": [{"asset": self.contract.settle, "marginAvailable": True}],
            "symbols": [self.symbol_info()],
        })

    async def depth(self, request: web.Request) -> web.Response:
        params = await self._public(request)
        self.engine.check_symbol(params)
        limit = self.api._int(params, "limit", 500, 1, 1000)
        bids, asks, uid = self.api.market.depth(limit)
        now = now_ms()
        body = {"lastUpdateId": uid, "E": now, "T": now, "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]}
        if self.contract.inverse:
            body.update({"symbol": self.contract.symbol, "pair": self.contract.pair})
        return self.api.json(body)

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        params = await self._public(request)

        def row() -> dict:
            out = self.api._ticker_24hr_row()
            if self.contract.inverse:
                out["pair"] = self.contract.pair
            return out

        return self._rows(params, row)

    async def ticker_price(self, request: web.Request) -> web.Response:
        params = await self._public(request)
        return self._rows(params, lambda: {"symbol": self.contract.symbol, "price": f"{self.api._last_price():.8f}",
                                           "time": now_ms()})

    async def book_ticker(self, request: web.Request) -> web.Response:
        params = await self._public(request)
        return self._rows(params, lambda: {**self.api._book_ticker(), "time": now_ms()})

    async def premium_index(self, request: web.Request) -> web.Response:
        params = await self._public(request)
        row = self.venue.premium_row
        if self.contract.inverse:  # COIN-M answers a list even for one symbol
            if params.get("symbol"):
                self.engine.check_symbol(params)
            return self.api.json([row()])
        return self._rows(params, row)

    async def funding_rates(self, request: web.Request) -> web.Response:
        params = await self._public(request)
        self.engine.check_symbol(params, required=False)
        limit = self.api._int(params, "limit", 100, 1, 1000)
        return self.api.json(self.venue.funding_history[-limit:])

    # ------------------------------------------------------------------ account
    async def account_info(self, request: web.Request) -> web.Response:
        await self.api._signed(request)
        v = self.venue
        mark, order_margin = v.mark(), self.engine.open_order_margin()
        asset = self.account.asset_row(mark, order_margin)
        pos = self.account.position_row(mark, self.engine.kind)
        position = {k: pos[k] for k in ("symbol", "positionSide", "positionAmt", "unRealizedProfit", "isolatedMargin",
                                        "isolatedWallet", "updateTime", "entryPrice", "leverage") if k in pos}
        position.update({"unrealizedProfit": pos["unRealizedProfit"], "isolated": self.account.isolated,
                         "initialMargin": asset["positionInitialMargin"], "maintMargin": asset["maintMargin"],
                         "notional" if not self.contract.inverse else "notionalValue":
                             pos.get("notional", pos.get("notionalValue"))})
        body: dict[str, Any] = {"assets": [asset], "positions": [position], "canTrade": True, "canDeposit": True,
                                "canWithdraw": True, "feeTier": 0, "updateTime": self.account.update_time}
        if not self.contract.inverse:
            body.update({"totalInitialMargin": asset["initialMargin"], "totalMaintMargin": asset["maintMargin"],
                         "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
                         "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["positionInitialMargin"],
                         "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
                         "totalCrossWalletBalance": asset["crossWalletBalance"], "totalCrossUnPnl": asset["crossUnPnl"],
                         "availableBalance": asset["availableBalance"], "maxWithdrawAmount": asset["maxWithdrawAmount"]})
        return self.api.json(body)

    async def balance(self, request: web.Request) -> web.Response:
        await self.api._signed(request)
        a = self.account.asset_row(self.venue.mark(), self.engine.open_order_margin())
        return self.api.json([{"accountAlias": "emulator", "asset": a["asset"], "balance": a["walletBalance"],
                               "crossWalletBalance": a["crossWalletBalance"], "crossUnPnl": a["crossUnPnl"],
                               "availableBalance": a["availableBalance"], "maxWithdrawAmount": a["maxWithdrawAmount"],
                               "marginAvailable": True, "updateTime": a["updateTime"]}])

    async def position_risk(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params, required=False)
        return self.api.json([self.account.position_row(self.venue.mark(), self.engine.kind)])

    async def leverage_bracket(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params, required=False)
        c = self.contract
        cap, floor = ("qtyCap", "qtyFloor") if c.inverse else ("notionalCap", "notionalFloor")
        bracket = {"bracket": 1, "initialLeverage": c.max_leverage, cap: 10 ** 12, floor: 0,
                   "maintMarginRatio": float(c.maintenance_margin_rate), "cum": float(c.maintenance_amount)}
        row: dict[str, Any] = {"symbol": c.symbol, "brackets": [bracket]}
        if not c.inverse:
            row["notionalCoef"] = 1.0
        return self.api.json([row] if not params.get("symbol") or c.inverse else row)

    async def leverage(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        raw = params.get("leverage")
        if not raw:
            raise missing("leverage")
        try:
            lev = int(raw)
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'leverage'; legal range is '^[0-9]{1,20}$'.") from None
        if not 1 <= lev <= self.contract.max_leverage:
            raise BinanceError(-4028, f"Leverage {lev} is not valid")
        self.account.leverage = lev
        self.account.update_time = now_ms()
        body: dict[str, Any] = {"leverage": lev, "symbol": self.contract.symbol}
        body["maxQty" if self.contract.inverse else "maxNotionalValue"] = "1000000000"
        return self.api.json(body)

    async def margin_type(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        wanted = (params.get("marginType") or "").upper()
        if not wanted:
            raise missing("marginType")
        if wanted not in ("ISOLATED", "CROSSED"):
            raise BinanceError(-1116, "Invalid marginType.")
        if wanted == self.account.margin_type:
            raise BinanceError(-4046, "No need to change margin type.")
        if self.account.position.amt != 0:
            raise BinanceError(-4048, "Margin type cannot be changed if there exists position.")
        if self.engine.open:
            raise BinanceError(-4047, "Margin type cannot be changed if there exists open orders.")
        self.account.margin_type = wanted
        return self.api.json({"code": 200, "msg": "success"})

    async def position_mode(self, request: web.Request) -> web.Response:
        await self.api._signed(request)
        return self.api.json({"dualSidePosition": False})

    async def commission_rate(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        return self.api.json({"symbol": self.contract.symbol, "makerCommissionRate": fmt(self.engine.maker_fee),
                              "takerCommissionRate": fmt(self.engine.taker_fee)})

    # ------------------------------------------------------------------ orders
    async def new_order(self, request: web.Request) -> web.StreamResponse:
        # the spot handler does the faults (reject, timeout after accept) and the order counters; the
        # engine it calls is the FuturesEngine
        return await self.api.new_order(request)

    async def get_order(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        return self.api.json(self.engine.order_row(self.engine.find_required(params)))

    async def cancel_order(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.cancel(params)  # raises -2011 for an unknown or closed order
        order = self.engine.find(params.get("orderId"), params.get("origClientOrderId"))
        return self.api.json(self.engine.order_row(order))

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params, required=False)
        return self.api.json(self.engine.open_orders())

    async def all_orders(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        orders = sorted(self.engine.orders.values(), key=lambda o: o.order_id)
        limit = self.api._int(params, "limit", 500, 1, 1000)
        return self.api.json([self.engine.order_row(o) for o in orders[-limit:]])

    async def cancel_all(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params)
        if self.engine.open:
            self.engine.cancel_all(params)
        return self.api.json({"code": 200, "msg": "The operation of cancel all open order is done."})

    async def user_trades(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        return self.api.json(self.engine.my_trades(params))

    async def income(self, request: web.Request) -> web.Response:
        params = await self.api._signed(request)
        self.engine.check_symbol(params, required=False)
        rows = self.account.income
        if params.get("incomeType"):
            rows = [r for r in rows if r["incomeType"] == params["incomeType"].upper()]
        if params.get("startTime"):
            rows = [r for r in rows if r["time"] >= int(params["startTime"])]
        if params.get("endTime"):
            rows = [r for r in rows if r["time"] <= int(params["endTime"])]
        limit = self.api._int(params, "limit", 100, 1, 1000)
        return self.api.json(rows[:limit] if params.get("startTime") else rows[-limit:])

    async def listen_key(self, request: web.Request) -> web.Response:
        auth.check_api_key(request.headers, self.api.api_key)
        hub = self.api.hub
        if request.method == "POST":
            return self.api.json({"listenKey": hub.new_listen_key()})
        params = await self._public(request)
        key = params.get("listenKey") or next(iter(hub.listen_keys), None)  # futures: the key is optional
        if not key or not (hub.keepalive(key) if request.method == "PUT" else hub.close_listen_key(key)):
            raise BinanceError(-1125, "This listenKey does not exist.")
        return self.api.json({"listenKey": key} if request.method == "PUT" else {})


def _decimals(step) -> int:
    exp = step.normalize().as_tuple().exponent
    return max(0, -int(exp))
