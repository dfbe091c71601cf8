"""The spot REST handlers (``/api/v3``), routed by the request's ``symbol``.

:class:`SpotHandlers` is mixed into the server's request handler class
(:class:`bot.emulator.server._Api`), which brings the plumbing these use: ``json``, ``_params``,
``_signed``, ``_int``, ``_order_counters``, ``hold``, ``faults``, ``hub`` and the
:class:`~bot.emulator.listing.Listing` of the symbols served. Endpoints that take a ``symbol``
answer for that symbol's book, trades and orders (Binance's -1121 "Invalid symbol." for one that
is not listed, -1102 when a required one is missing); those where it is optional (tickers,
``exchangeInfo``, ``GET openOrders``) answer for every symbol. The USD-M / COIN-M handlers
(:mod:`bot.emulator.futures.rest`) reuse the trade lists, tickers and the order entry.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from bot.emulator import auth
from bot.emulator.commission import reference_row
from bot.emulator.errors import BinanceError, missing
from bot.emulator.market import now_ms
from bot.emulator.matching import SymbolRules, fmt

if TYPE_CHECKING:
    from bot.emulator.listing import Listing, SymbolState

__all__ = ["SpotHandlers"]


class SpotHandlers:
    listing: "Listing"
    references: dict[str, tuple[SymbolRules, Any]]

    async def ping(self, request: web.Request) -> web.Response:
        return self.json({})

    async def time(self, request: web.Request) -> web.Response:
        return self.json({"serverTime": now_ms()})

    def _state(self, params: dict[str, str], required: bool = True) -> "SymbolState":
        """The symbol the request names (the one served, when optional and absent)."""
        return self.listing.route(params, required) or self.listing.primary

    def symbol_info(self, rules: SymbolRules | None = None) -> dict:
        r = rules or self.listing.primary.rules
        return {
            "symbol": r.symbol, "status": "TRADING", "baseAsset": r.base, "baseAssetPrecision": 8,
            "quoteAsset": r.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False, "cancelReplaceAllowed": False, "amendAllowed": False, "pegInstructionsAllowed": False,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt(r.min_price or r.tick_size), "maxPrice": fmt(r.max_price),
                 "tickSize": fmt(r.tick_size)},
                {"filterType": "LOT_SIZE", "minQty": fmt(r.min_qty), "maxQty": fmt(r.max_qty), "stepSize": fmt(r.step_size)},
                {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(0), "maxQty": fmt(r.market_max_qty), "stepSize": fmt(0)},
                {"filterType": "NOTIONAL", "minNotional": fmt(r.min_notional), "applyMinToMarket": True,
                 "maxNotional": fmt(r.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": r.max_num_orders},
            ],
            "permissions": [], "permissionSets": [["SPOT"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    async def exchange_info(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        wanted: list[str] = []
        if params.get("symbol"):
            wanted = [params["symbol"]]
        elif params.get("symbols"):
            try:
                wanted = json.loads(params["symbols"])
            except ValueError:
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
        listed = {**{st.symbol: st.rules for st in self.listing}, **{name: ref for name, (ref, _) in self.references.items()}}
        for s in wanted:
            if s.upper() not in listed:
                raise BinanceError(-1121, "Invalid symbol.")
        shown = [listed[s.upper()] for s in wanted] if wanted else list(listed.values())
        return self.json({
            "timezone": "UTC", "serverTime": now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [], "symbols": [self.symbol_info(r) for r in shown],
        })

    async def depth(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        state = self._state(params)
        limit = self._int(params, "limit", 100, 1, 5000)
        bids, asks, uid = state.market.depth(limit)
        return self.json({"lastUpdateId": uid, "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                          "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]})

    def _trade_rows(self, params: dict[str, str], state: "SymbolState"):
        trades = list(state.market.trades)
        if params.get("fromId"):
            fid = self._int(params, "fromId", 0, 0)
            trades = [t for t in trades if t.id >= fid]
            return trades[: self._int(params, "limit", 500, 1, 1000)]
        return trades[-self._int(params, "limit", 500, 1, 1000):]

    async def trades(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        state = self._state(params)
        if request.path.endswith("historicalTrades"):
            auth.check_api_key(request.headers, self.api_key)
        rows = self._trade_rows(params, state)
        return self.json([{"id": t.id, "price": f"{t.price:.8f}", "qty": f"{t.qty:.8f}", "quoteQty": f"{t.price * t.qty:.8f}",
                           "time": t.time, "isBuyerMaker": t.buyer_is_maker, "isBestMatch": True} for t in rows])

    async def agg_trades(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        trades = list(self._state(params).market.trades)
        if params.get("startTime"):
            trades = [t for t in trades if t.time >= int(params["startTime"])]
        if params.get("endTime"):
            trades = [t for t in trades if t.time <= int(params["endTime"])]
        if params.get("fromId") or params.get("startTime"):
            if params.get("fromId"):
                fid = self._int(params, "fromId", 0, 0)
                trades = [t for t in trades if t.id >= fid]
            trades = trades[: self._int(params, "limit", 500, 1, 1000)]
        else:
            trades = trades[-self._int(params, "limit", 500, 1, 1000):]
        return self.json([{"a": t.id, "p": f"{t.price:.8f}", "q": f"{t.qty:.8f}", "f": t.id, "l": t.id, "T": t.time,
                           "m": t.buyer_is_maker, "M": True} for t in trades])

    def _book_ticker(self, state: "SymbolState | None" = None) -> dict:
        state = state or self.listing.primary
        book = state.market.book
        return {"symbol": state.symbol, "bidPrice": f"{book.best_bid:.8f}", "bidQty": f"{book.best_bid_size:.8f}",
                "askPrice": f"{book.best_ask:.8f}", "askQty": f"{book.best_ask_size:.8f}"}

    def _last_price(self, state: "SymbolState | None" = None) -> float:
        market = (state or self.listing.primary).market
        last = market.last_price()
        if last is None:
            mid = market.book.mid
            return mid if mid == mid else 0.0
        return last

    def _ticker_answer(self, params: dict[str, str], kind: str, row: Callable[["SymbolState"], dict]) -> web.Response:
        """One object when one symbol was asked for, else a list (all symbols, or those of ``symbols``);
        ``row`` builds an emulated symbol's row, reference symbols (bnb mode) answer at their fixed price."""
        def one(name: str) -> dict:
            ref = self.references.get(name.upper())
            if ref is not None:
                return reference_row(ref[0].symbol, ref[1], kind)
            return row(self._state({"symbol": name}))

        if params.get("symbol"):
            if params["symbol"].upper() not in self.references:
                self._state(params)
            return self.json(one(params["symbol"]))
        names = [*self.listing.names, *self.references]
        if params.get("symbols"):
            try:
                names = [str(s) for s in json.loads(params["symbols"])]
            except (ValueError, TypeError):
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from None
            for s in names:
                if self.listing.find(s) is None and s.upper() not in self.references:
                    raise BinanceError(-1121, "Invalid symbol.")
        return self.json([one(s) for s in names])

    async def book_ticker(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "book", self._book_ticker)

    async def ticker_price(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "price", lambda st: {"symbol": st.symbol, "price": f"{self._last_price(st):.8f}"})

    async def avg_price(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        state = self._state(params)
        return self.json({"mins": 5, "price": f"{self._last_price(state):.8f}", "closeTime": now_ms()})

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "24hr", self._ticker_24hr_row)

    def _ticker_24hr_row(self, state: "SymbolState | None" = None) -> dict:
        state = state or self.listing.primary
        st = state.market.day_stats()
        book = state.market.book
        change = st["last"] - st["open"]
        row = {
            "symbol": state.symbol, "priceChange": f"{change:.8f}",
            "priceChangePercent": f"{(change / st['open'] * 100 if st['open'] else 0.0):.3f}",
            "weightedAvgPrice": f"{st['vwap']:.8f}", "prevClosePrice": f"{st['open']:.8f}", "lastPrice": f"{st['last']:.8f}",
            "lastQty": f"{st['last_qty']:.8f}", "bidPrice": f"{book.best_bid:.8f}", "bidQty": f"{book.best_bid_size:.8f}",
            "askPrice": f"{book.best_ask:.8f}", "askQty": f"{book.best_ask_size:.8f}", "openPrice": f"{st['open']:.8f}",
            "highPrice": f"{st['high']:.8f}", "lowPrice": f"{st['low']:.8f}", "volume": f"{st['volume']:.8f}",
            "quoteVolume": f"{st['quote_volume']:.8f}", "openTime": st["open_time"], "closeTime": st["close_time"],
            "firstId": st["first_id"], "lastId": st["last_id"], "count": st["count"],
        }
        return row

    async def system_status(self, request: web.Request) -> web.Response:
        return self.json({"status": 0, "msg": "normal"})

    # ------------------------------------------------------------------ signed
    async def account(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.engine.account(omit_zero=params.get("omitZeroBalances", "").lower() == "true"))

    async def commission(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        e = self.listing.engine(params)
        rates = {"maker": fmt(e.maker_fee), "taker": fmt(e.taker_fee), "buyer": fmt(0), "seller": fmt(0)}
        zero = {"maker": fmt(0), "taker": fmt(0), "buyer": fmt(0), "seller": fmt(0)}
        return self.json({"symbol": e.rules.symbol, "standardCommission": rates, "specialCommission": zero,
                          "taxCommission": zero, "discount": {"enabledForAccount": False, "enabledForSymbol": False,
                                                              "discountAsset": "BNB", "discount": "0.75000000"}})

    def _order_counters(self) -> dict[str, str]:
        now = time.time()
        self.orders_10s = [t for t in self.orders_10s if t > now - 10] + [now]
        self.orders_day += 1
        return {"X-MBX-ORDER-COUNT-10S": str(len(self.orders_10s)), "X-MBX-ORDER-COUNT-1D": str(self.orders_day)}

    async def new_order(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        test = request.path.endswith("/test")
        spec = self.faults.spec
        reject = not test and self.faults.draw(spec.reject)
        if reject:
            self.faults.count("reject")
        counters = self._order_counters()
        try:
            order, body = self.listing.engine(params).new_order(params, test=test, reject=reject)
        except BinanceError as exc:
            exc.headers.update(counters)
            raise
        if not test and self.faults.draw(spec.timeout_after_accept):
            self.faults.count("timeout_after_accept")
            if spec.timeout_after_accept_seconds <= 0:
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError()
            await self.hold(spec.timeout_after_accept_seconds)
        return self.json(body, headers=counters)

    async def get_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.listing.engine(params).find_required(params).query())

    async def cancel_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.listing.engine(params).cancel(params))

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        state = self.listing.route(params, required=False)
        engines = [state.engine] if state is not None else self.listing.engines()
        return self.json([row for engine in engines if engine is not None for row in engine.open_orders()])

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.listing.engine(params).cancel_all(params))

    async def all_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.listing.engine(params).all_orders(params))

    async def my_trades(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.listing.engine(params).my_trades(params))

    async def user_data_stream(self, request: web.Request) -> web.Response:
        auth.check_api_key(request.headers, self.api_key)
        params, _, _ = await self._params(request)
        if request.method == "POST":
            return self.json({"listenKey": self.hub.new_listen_key()})
        key = params.get("listenKey")
        if not key:
            raise missing("listenKey")
        ok = self.hub.keepalive(key) if request.method == "PUT" else self.hub.close_listen_key(key)
        if not ok:
            raise BinanceError(-1125, "This listenKey does not exist.")
        return self.json({})

