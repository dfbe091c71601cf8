"""The emulator's HTTP server: Binance spot REST under ``/api/v3``, websockets, admin endpoints.

With ``EmulatorConfig.venue`` ``usdm`` / ``coinm`` (``--market``) the spot ``/api/v3`` routes are
left out and :class:`bot.emulator.futures.FuturesVenue` installs the USD-M ``/fapi`` or COIN-M
``/dapi`` endpoints, the futures streams and ``/admin/mark`` / ``/admin/funding`` /
``/admin/futures`` instead (see :mod:`bot.emulator.futures`); the plumbing below (faults,
overrides, weights, signatures, the admin endpoints of this table) serves both.

REST endpoints (as ccxt's ``binance`` calls them; SIGNED ones are checked by
:mod:`bot.emulator.auth`):

=========================================  ================================================
public                                     ``GET /api/v3/ping``, ``time``, ``exchangeInfo``,
                                           ``depth``, ``trades``, ``historicalTrades``,
                                           ``aggTrades``, ``avgPrice``, ``ticker/24hr``,
                                           ``ticker/price``, ``ticker/bookTicker``;
                                           ``GET /sapi/v1/system/status``
signed                                     ``GET /api/v3/account``, ``account/commission``;
                                           ``POST /api/v3/order`` (and ``order/test``),
                                           ``GET``/``DELETE /api/v3/order``,
                                           ``GET``/``DELETE /api/v3/openOrders``,
                                           ``GET /api/v3/allOrders``, ``myTrades``
API key only                               ``POST``/``PUT``/``DELETE /api/v3/userDataStream``
admin (never faulted, no auth)             ``GET /admin/state``, ``GET``/``POST /admin/faults``,
                                           ``POST /admin/ws_drop``, ``POST /admin/gap``,
                                           ``POST /admin/balances``; ``GET``/``POST``/
                                           ``DELETE /admin/override``, ``POST /admin/ws_inject``
                                           (see :mod:`bot.emulator.override`)
websockets (see :mod:`bot.emulator.ws`)    ``/ws``, ``/ws/<stream or listenKey or index>``,
                                           ``/stream?streams=...``, ``/ws-api/v3``
=========================================  ================================================

Admin endpoints: ``GET /admin/state`` returns balances, every order (Binance query shape), the
account's trades, the book's best prices and update id, the faults in force and how many were
injected, request counts by HTTP status and websocket stats. ``POST /admin/faults`` takes a
fault SPEC as the plain-text body (or JSON ``{"spec": "..."}``; empty turns faults off) and
answers 400 ``{"error": ...}`` for a bad SPEC. ``POST /admin/ws_drop`` closes every websocket
now, ``POST /admin/gap`` drops the next needed diff message of every diff stream now, and
``POST /admin/balances`` sets free balances (``USDT=100,BTC=1``).

Every REST answer carries ``X-MBX-USED-WEIGHT-1M`` (Binance's weights, per minute); order
requests also ``X-MBX-ORDER-COUNT-10S`` / ``-1D``. Errors are ``{"code": -NNNN, "msg": ...}``
with Binance's HTTP status (400; 401 for API-key problems; 429 / 418 for limits and bans).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from bot.config.settings import MarketSection, SimSection
from bot.emulator import auth
from bot.emulator.commission import BNB, CommissionPolicy, bnb_rules, reference_row
from bot.emulator.errors import BinanceError, missing
from bot.emulator.faults import FaultError, FaultState
from bot.emulator.market import MarketState, now_ms
from bot.emulator.matching import Engine, SymbolRules, fmt
from bot.emulator.override import Overrides, add_admin_routes
from bot.emulator.ws import Hub

log = logging.getLogger("bot.emulator")

DEFAULT_API_KEY = "emulator-test-api-key"
DEFAULT_API_SECRET = "emulator-test-api-secret"

_WEIGHTS = {
    ("GET", "/api/v3/ping"): 1, ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/trades"): 25, ("GET", "/api/v3/historicalTrades"): 25, ("GET", "/api/v3/aggTrades"): 2,
    ("GET", "/api/v3/avgPrice"): 2, ("GET", "/api/v3/ticker/24hr"): 2, ("GET", "/api/v3/ticker/price"): 2,
    ("GET", "/api/v3/ticker/bookTicker"): 2, ("GET", "/api/v3/account"): 20, ("GET", "/api/v3/account/commission"): 20,
    ("POST", "/api/v3/order"): 1, ("POST", "/api/v3/order/test"): 1, ("GET", "/api/v3/order"): 4,
    ("DELETE", "/api/v3/order"): 1, ("GET", "/api/v3/openOrders"): 6, ("DELETE", "/api/v3/openOrders"): 1,
    ("GET", "/api/v3/allOrders"): 20, ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/api/v3/userDataStream"): 2, ("PUT", "/api/v3/userDataStream"): 2, ("DELETE", "/api/v3/userDataStream"): 2,
}

def default_credentials() -> tuple[str, str]:
    return (os.environ.get("BOT_EMULATOR_API_KEY") or DEFAULT_API_KEY,
            os.environ.get("BOT_EMULATOR_API_SECRET") or DEFAULT_API_SECRET)


def parse_balances(text: str | dict | None) -> dict[str, Decimal]:
    """``"USDT=10000,BTC=0.5"`` (or a dict) -> {asset: Decimal}."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return {str(k).upper(): Decimal(str(v)) for k, v in text.items()}
    out: dict[str, Decimal] = {}
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"balance {item!r} is not ASSET=AMOUNT")
        asset, amount = item.split("=", 1)
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"balance {item!r}: {amount!r} is not a number") from None
        if value < 0:
            raise ValueError(f"balance {item!r} is negative")
        out[asset.upper()] = value
    return out


@dataclass
class EmulatorConfig:
    """Everything :func:`start_emulator` needs. ``data`` set means replay mode, else simulator."""

    data: list[str] = field(default_factory=list)
    speed: float = 1.0
    loop: bool = False
    seed: int | None = None
    host: str = "127.0.0.1"
    port: int = 0
    api_key: str | None = None
    api_secret: str | None = None
    balances: dict[str, Decimal] | str | None = None
    faults: str = ""
    fault_seed: int = 0
    market: MarketSection = field(default_factory=MarketSection)
    sim: SimSection = field(default_factory=SimSection)
    taker_fee: Decimal | None = None  # None: Binance's default of the market (spot 0.001, futures 0.0005)
    maker_fee: Decimal | None = None  # None: spot 0.001, futures 0.0002
    commission_asset: str = "quote"  # quote | base | bnb (see bot.emulator.commission)
    bnb_price: Decimal = Decimal(500)  # bnb mode: the BNB price in the quote asset
    overrides: list[dict] = field(default_factory=list)  # REST overrides active from the start (bot.emulator.override)
    ready_timeout: float = 10.0
    # which Binance API is served: spot (/api/v3), usdm (/fapi, linear perpetual) or coinm (/dapi, inverse)
    venue: str = "spot"
    funding_interval_s: float | None = None  # futures: funding every N s (tests); None: market.funding_interval_h
    funding_rate: Decimal | None = None  # futures: rate per funding; None: market.funding_rate_bps / 10000
    mark_offset: Decimal = Decimal(0)  # futures: mark price = book mid + this, until POST /admin/mark

    @property
    def mode(self) -> str:
        return "data" if self.data else "sim"


class RunningEmulator:
    """A started emulator: its addresses, credentials and live state (for in-process tests)."""

    def __init__(self, config: EmulatorConfig, runner: web.AppRunner, port: int, market: MarketState, engine: Engine,
                 hub: Hub, faults: FaultState, feed: Any, tasks: list[asyncio.Task], stopping: asyncio.Event) -> None:
        self.config = config
        self.host = config.host
        self.port = port
        self.base_url = f"http://{config.host}:{port}"
        self.ws_url = f"ws://{config.host}:{port}/ws"
        self.api_key = config.api_key or ""
        self.api_secret = config.api_secret or ""
        self.market = market
        self.engine = engine
        self.hub = hub
        self.faults = faults
        self.feed = feed
        self.overrides: Overrides | None = None  # set by start_emulator
        self.futures: Any = None  # the FuturesVenue (bot.emulator.futures) on --market usdm|coinm
        self._runner = runner
        self._tasks = tasks
        self._stopping = stopping
        self.stopped = False

    def set_faults(self, spec: str) -> None:
        self.faults.set(spec)

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        await self.hub.close_all()
        await self._runner.cleanup()

    async def __aenter__(self) -> "RunningEmulator":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _Api:
    """Request handlers bound to one emulator's state."""

    def __init__(self, config: EmulatorConfig, market: MarketState, engine: Engine, hub: Hub, faults: FaultState,
                 stopping: asyncio.Event) -> None:
        self.config = config
        self.market = market
        self.engine = engine
        self.rules = engine.rules
        self.hub = hub
        self.faults = faults
        self.stopping = stopping
        self.api_key = config.api_key or ""
        self.api_secret = config.api_secret or ""
        self.weight_minute = 0
        self.weight_used = 0
        self.orders_10s: list[float] = []
        self.orders_day = 0
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.overrides = Overrides()
        policy = engine.commission
        # symbols listed and priced but not traded: BNB<QUOTE> in bnb mode, so a client can value BNB
        self.references: dict[str, tuple[SymbolRules, Decimal]] = {}
        if policy.mode == "bnb":
            ref = bnb_rules(self.rules.quote, policy.bnb_price)
            self.references[ref.symbol] = (ref, policy.bnb_price)

    # ------------------------------------------------------------------ plumbing
    async def hold(self, seconds: float) -> None:
        """Sleep, but wake up when the emulator stops."""
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    @staticmethod
    def json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(text=json.dumps(data, separators=(",", ":")), status=status,
                            content_type="application/json", headers=headers)

    def _weight(self, request: web.Request) -> int:
        w = _WEIGHTS.get((request.method, request.path), 1)
        if request.path == "/api/v3/depth":
            try:
                limit = int(request.query.get("limit", "100"))
            except ValueError:
                limit = 100
            w = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        elif request.path == "/api/v3/openOrders" and request.method == "GET" and "symbol" not in request.rel_url.raw_query_string:
            w = 80
        return w

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        path = request.path
        if not path.startswith(("/api/", "/sapi/", "/fapi/", "/dapi/")):
            return await handler(request)
        self.requests += 1
        resp = await self._rest(request, handler)
        self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
        return resp

    async def _rest(self, request: web.Request, handler) -> web.StreamResponse:
        faults = self.faults
        spec = faults.spec
        if spec.latency_ms > 0:
            await self.hold(spec.latency_ms / 1000)
        now = time.time()
        if faults.ban_active(now):
            faults.count("ban")
            return self._banned(int(faults.banned_until * 1000))
        if faults.draw(spec.ban):
            faults.count("ban")
            until = now + (spec.ban_seconds or 60.0)
            if spec.ban_seconds > 0:
                faults.banned_until = until
            return self._banned(int(until * 1000))
        if faults.draw(spec.rate_limit):
            faults.count("rate_limit")
            return self._rate_limited()
        minute = int(now // 60)
        if minute != self.weight_minute:
            self.weight_minute = minute
            self.weight_used = 0
        self.weight_used += self._weight(request)
        if spec.weight_limit and self.weight_used > spec.weight_limit:
            faults.count("weight_limit")
            return self._rate_limited(retry_after=max(1, int(60 - now % 60)))
        if faults.draw(spec.server_error):
            faults.count("server_error")
            status = spec.server_error_status
            reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Server Error")
            return web.Response(status=status, text=reason + ".", content_type="text/plain")
        if faults.draw(spec.internal_error):
            faults.count("internal_error")
            return self.json({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, status=500)
        if faults.draw(spec.slow):
            faults.count("slow")
            # An exchange holds a request it has fully received: read the body first, so a client
            # that gives up (timeout, shutdown) during the hold does not stop it being executed.
            await request.read()
            await self.hold(spec.slow_seconds)
        # overrides (bot.emulator.override) act around the handler, once the request's auth passed
        resp = await self.overrides.dispatch(request, lambda: self._guarded(request, handler),
                                             lambda: self._guarded(request, self._authorize))
        if not resp.prepared:
            resp.headers["X-MBX-USED-WEIGHT-1M"] = str(self.weight_used)
        return resp

    async def _guarded(self, request: web.Request, fn: Callable[[web.Request], Awaitable[Any]]) -> Any:
        """``fn(request)``, with a :class:`BinanceError` (or an emulator bug) turned into Binance's error answer."""
        try:
            return await fn(request)
        except BinanceError as exc:
            return self.json(exc.body(), status=exc.status, headers=exc.headers)
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug in the emulator: answer like Binance's unknown error
            log.exception("request %s %s failed", request.method, request.path)
            return self.json({"code": -1000, "msg": f"An unknown error occurred while processing the request. ({type(exc).__name__})"}, status=500)

    async def _authorize(self, request: web.Request) -> None:
        """Only the auth check of the endpoint (raises :class:`BinanceError`), for an overridden request."""
        need = auth.ENDPOINT_AUTH.get((request.method, request.path))
        if need == "signed":
            await self._signed(request)
        elif need == "key":
            auth.check_api_key(request.headers, self.api_key)

    def _rate_limited(self, retry_after: int = 1) -> web.Response:
        return self.json({"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                                                "Please use WebSocket Streams for live updates to avoid polling the API."},
                         status=429, headers={"Retry-After": str(retry_after)})

    def _banned(self, until_ms: int) -> web.Response:
        retry = max(1, int((until_ms - now_ms()) / 1000))
        return self.json({"code": -1003, "msg": f"Way too much request weight used; IP banned until {until_ms}. "
                                                "Please use WebSocket Streams for live updates to avoid bans."},
                         status=418, headers={"Retry-After": str(retry)})

    async def _params(self, request: web.Request) -> tuple[dict[str, str], str, str]:
        raw_query = request.rel_url.raw_query_string
        raw_body = ""
        if request.body_exists:  # not can_read_body: a body read before (see the slow fault) is cached
            raw_body = await request.text()
        params: dict[str, str] = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            params[k] = v
        if raw_body and "json" not in (request.content_type or ""):
            for k, v in parse_qsl(raw_body, keep_blank_values=True):
                params[k] = v
        return params, raw_query, raw_body

    async def _signed(self, request: web.Request) -> dict[str, str]:
        params, raw_query, raw_body = await self._params(request)
        auth.verify(request.headers, raw_query, raw_body, params, self.api_key, self.api_secret)
        return params

    def _symbol(self, params: dict[str, str], required: bool = True) -> str | None:
        return self.engine.check_symbol(params, required)

    @staticmethod
    def _int(params: dict[str, str], name: str, default: int, lo: int = 1, hi: int | None = None) -> int:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.") from None
        if value < lo:
            raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
        return min(value, hi) if hi is not None else value

    # ------------------------------------------------------------------ public
    async def ping(self, request: web.Request) -> web.Response:
        return self.json({})

    async def time(self, request: web.Request) -> web.Response:
        return self.json({"serverTime": now_ms()})

    def symbol_info(self, rules: SymbolRules | None = None) -> dict:
        r = rules or self.rules
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
        listed = {self.rules.symbol: self.rules, **{name: ref for name, (ref, _) in self.references.items()}}
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
        self._symbol(params)
        limit = self._int(params, "limit", 100, 1, 5000)
        bids, asks, uid = self.market.depth(limit)
        return self.json({"lastUpdateId": uid, "bids": [[f"{p:.8f}", f"{q:.8f}"] for p, q in bids],
                          "asks": [[f"{p:.8f}", f"{q:.8f}"] for p, q in asks]})

    def _trade_rows(self, params: dict[str, str]):
        trades = list(self.market.trades)
        if params.get("fromId"):
            fid = self._int(params, "fromId", 0, 0)
            trades = [t for t in trades if t.id >= fid]
            return trades[: self._int(params, "limit", 500, 1, 1000)]
        return trades[-self._int(params, "limit", 500, 1, 1000):]

    async def trades(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        self._symbol(params)
        if request.path.endswith("historicalTrades"):
            auth.check_api_key(request.headers, self.api_key)
        rows = self._trade_rows(params)
        return self.json([{"id": t.id, "price": f"{t.price:.8f}", "qty": f"{t.qty:.8f}", "quoteQty": f"{t.price * t.qty:.8f}",
                           "time": t.time, "isBuyerMaker": t.buyer_is_maker, "isBestMatch": True} for t in rows])

    async def agg_trades(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        self._symbol(params)
        trades = list(self.market.trades)
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

    def _book_ticker(self) -> dict:
        book = self.market.book
        return {"symbol": self.rules.symbol, "bidPrice": f"{book.best_bid:.8f}", "bidQty": f"{book.best_bid_size:.8f}",
                "askPrice": f"{book.best_ask:.8f}", "askQty": f"{book.best_ask_size:.8f}"}

    def _last_price(self) -> float:
        last = self.market.last_price()
        if last is None:
            mid = self.market.book.mid
            return mid if mid == mid else 0.0
        return last

    def _ticker_answer(self, params: dict[str, str], kind: str, row: Callable[[], dict]) -> web.Response:
        """One object when one symbol was asked for, else a list (all symbols, or those of ``symbols``);
        ``row`` builds the emulated symbol's row, reference symbols (bnb mode) answer at their fixed price."""
        def one(name: str) -> dict:
            ref = self.references.get(name.upper())
            return reference_row(ref[0].symbol, ref[1], kind) if ref is not None else row()

        if params.get("symbol"):
            if params["symbol"].upper() not in self.references:
                self._symbol(params)
            return self.json(one(params["symbol"]))
        names = [self.rules.symbol, *self.references]
        if params.get("symbols"):
            try:
                names = [str(s) for s in json.loads(params["symbols"])]
            except (ValueError, TypeError):
                raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.") from None
            for s in names:
                if s.upper() != self.rules.symbol and s.upper() not in self.references:
                    raise BinanceError(-1121, "Invalid symbol.")
        return self.json([one(s) for s in names])

    async def book_ticker(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "book", self._book_ticker)

    async def ticker_price(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "price", lambda: {"symbol": self.rules.symbol, "price": f"{self._last_price():.8f}"})

    async def avg_price(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        self._symbol(params)
        return self.json({"mins": 5, "price": f"{self._last_price():.8f}", "closeTime": now_ms()})

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        params, _, _ = await self._params(request)
        return self._ticker_answer(params, "24hr", self._ticker_24hr_row)

    def _ticker_24hr_row(self) -> dict:
        st = self.market.day_stats()
        book = self.market.book
        change = st["last"] - st["open"]
        row = {
            "symbol": self.rules.symbol, "priceChange": f"{change:.8f}",
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
        self._symbol(params)
        e = self.engine
        rates = {"maker": fmt(e.maker_fee), "taker": fmt(e.taker_fee), "buyer": fmt(0), "seller": fmt(0)}
        zero = {"maker": fmt(0), "taker": fmt(0), "buyer": fmt(0), "seller": fmt(0)}
        return self.json({"symbol": self.rules.symbol, "standardCommission": rates, "specialCommission": zero,
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
            order, body = self.engine.new_order(params, test=test, reject=reject)
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
        self._symbol(params)
        return self.json(self.engine.find_required(params).query())

    async def cancel_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.engine.cancel(params))

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        self._symbol(params, required=False)
        return self.json(self.engine.open_orders())

    async def cancel_open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.engine.cancel_all(params))

    async def all_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.engine.all_orders(params))

    async def my_trades(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        return self.json(self.engine.my_trades(params))

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

    # ------------------------------------------------------------------ admin
    async def admin_state(self, request: web.Request) -> web.Response:
        book = self.market.book
        state = self.engine.state()
        state.update({
            "mode": self.config.mode, "symbol": self.rules.symbol,
            "book": {"best_bid": book.best_bid, "best_ask": book.best_ask, "update_id": self.market.update_id,
                     "levels": list(book.level_count()), "events": self.market.events},
            "faults": self.faults.spec.to_dict(), "faults_injected": dict(self.faults.injected),
            "requests": self.requests, "statuses": {str(k): v for k, v in self.statuses.items()},
            "ws": {"connections": len(self.hub.conns), "streams": sorted(self.hub.subs),
                   "gaps_injected": self.hub.gaps_injected, "drops_injected": self.hub.drops_injected},
        })
        return self.json(state)

    async def _admin_text(self, request: web.Request, key: str) -> str:
        text = await request.text() if request.can_read_body else ""
        if "json" in (request.content_type or "") and text:
            data = json.loads(text)
            if isinstance(data, dict):
                value = data.get(key, "")
                return value if isinstance(value, str) else json.dumps(value)
            return str(data)
        return text or request.query.get(key, "")

    async def admin_faults(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            spec = await self._admin_text(request, "spec")
            try:
                self.faults.set(spec)
            except FaultError as exc:
                return self.json({"error": str(exc)}, status=400)
        return self.json({"faults": self.faults.spec.to_dict()})

    async def admin_ws_drop(self, request: web.Request) -> web.Response:
        return self.json({"dropped": await self.hub.drop_all()})

    async def admin_gap(self, request: web.Request) -> web.Response:
        self.hub.inject_gap()
        return self.json({"ok": True})

    async def admin_balances(self, request: web.Request) -> web.Response:
        text = await request.text() if request.can_read_body else ""
        try:
            balances = parse_balances(json.loads(text) if "json" in (request.content_type or "") else text)
        except ValueError as exc:
            return self.json({"error": str(exc)}, status=400)
        self.engine.set_balances(balances)
        return self.json({"balances": self.engine.state()["balances"]})


def build_app(api: _Api, hub: Hub, spot: bool = True) -> web.Application:
    """The routes; ``spot=False`` leaves out ``/api/v3`` (a futures emulator registers ``/fapi`` or ``/dapi``)."""
    app = web.Application(middlewares=[api.middleware])
    r = app.router
    if spot:
        _spot_routes(r, api)
    r.add_get("/admin/state", api.admin_state)
    r.add_get("/admin/faults", api.admin_faults)
    r.add_post("/admin/faults", api.admin_faults)
    r.add_post("/admin/ws_drop", api.admin_ws_drop)
    r.add_post("/admin/gap", api.admin_gap)
    r.add_post("/admin/balances", api.admin_balances)
    add_admin_routes(r, api.overrides, hub)
    r.add_get("/ws", hub.handle)
    r.add_get("/ws/{tail:.*}", hub.handle)
    r.add_get("/stream", hub.handle)
    r.add_get("/stream/{tail:.*}", hub.handle)
    r.add_get("/ws-api/v3", hub.handle_api)
    return app


def _spot_routes(r: web.UrlDispatcher, api: _Api) -> None:
    v3 = "/api/v3"
    r.add_get(v3 + "/ping", api.ping)
    r.add_get(v3 + "/time", api.time)
    r.add_get(v3 + "/exchangeInfo", api.exchange_info)
    r.add_get(v3 + "/depth", api.depth)
    r.add_get(v3 + "/trades", api.trades)
    r.add_get(v3 + "/historicalTrades", api.trades)
    r.add_get(v3 + "/aggTrades", api.agg_trades)
    r.add_get(v3 + "/avgPrice", api.avg_price)
    r.add_get(v3 + "/ticker/24hr", api.ticker_24hr)
    r.add_get(v3 + "/ticker/price", api.ticker_price)
    r.add_get(v3 + "/ticker/bookTicker", api.book_ticker)
    r.add_get("/sapi/v1/system/status", api.system_status)
    r.add_get(v3 + "/account", api.account)
    r.add_get(v3 + "/account/commission", api.commission)
    r.add_post(v3 + "/order", api.new_order)
    r.add_post(v3 + "/order/test", api.new_order)
    r.add_get(v3 + "/order", api.get_order)
    r.add_delete(v3 + "/order", api.cancel_order)
    r.add_get(v3 + "/openOrders", api.open_orders)
    r.add_delete(v3 + "/openOrders", api.cancel_open_orders)
    r.add_get(v3 + "/allOrders", api.all_orders)
    r.add_get(v3 + "/myTrades", api.my_trades)
    r.add_post(v3 + "/userDataStream", api.user_data_stream)
    r.add_put(v3 + "/userDataStream", api.user_data_stream)
    r.add_delete(v3 + "/userDataStream", api.user_data_stream)


async def start_emulator(config: EmulatorConfig) -> RunningEmulator:
    """Start the emulator in the running event loop; it serves until :meth:`RunningEmulator.stop`.

    Raises ``ValueError`` (bad balances / faults / recording of another symbol) and
    ``bot.data.binance.RecordingError`` before anything listens.
    """
    key, secret = default_credentials()
    config.api_key = config.api_key or key
    config.api_secret = config.api_secret or secret
    if config.seed is not None:
        config.sim = config.sim.model_copy(update={"seed": config.seed})
    if config.venue not in ("spot", "usdm", "coinm"):
        raise ValueError(f"market must be spot, usdm or coinm, got {config.venue!r}")
    futures = config.venue != "spot"
    if config.taker_fee is None:
        config.taker_fee = Decimal("0.0005") if futures else Decimal("0.001")
    if config.maker_fee is None:
        config.maker_fee = Decimal("0.0002") if futures else Decimal("0.001")
    if futures:
        from bot.emulator.futures import FuturesVenue

        rules = FuturesVenue.rules_for(config.venue, config.market)  # ValueError for a market of another type
    else:
        rules = SymbolRules.from_market(config.market)
    policy = CommissionPolicy(config.commission_asset, rules.base, rules.quote, config.bnb_price)  # ValueError
    balances = parse_balances(config.balances) if config.balances is not None else {rules.quote: Decimal(10000), rules.base: Decimal("0.5")}
    if config.balances is None and policy.mode == "bnb":
        balances[BNB] = Decimal(1)
    faults = FaultState(config.faults, seed=config.fault_seed)  # raises FaultError (a ValueError)

    market = MarketState()
    feed: Any
    if config.data:
        from bot.emulator.feed import ReplayFeed

        feed = ReplayFeed(market, config.data, speed=config.speed, loop=config.loop, expect_symbol=rules.symbol)
        take = None
    else:
        from bot.emulator.feed import SimFeed

        feed = SimFeed(market, config.sim, config.market, speed=config.speed)
        take = feed.take
    venue: Any = None
    if futures:
        venue = FuturesVenue.from_config(config, market, take, balances if config.balances is not None else None)
        engine: Engine = venue.engine
    else:
        engine = Engine(rules, market, balances, taker_fee=config.taker_fee, maker_fee=config.maker_fee, take=take,
                        commission=policy)
    hub = Hub(market, engine, rules.symbol, faults)
    hub.api_key, hub.api_secret = config.api_key, config.api_secret
    stopping = asyncio.Event()
    api = _Api(config, market, engine, hub, faults, stopping)
    for spec in config.overrides:
        api.overrides.add(spec)  # OverrideError (a ValueError)
    app = build_app(api, hub, spot=venue is None)
    if venue is not None:
        venue.install(app, api, hub)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(feed.run(), name="emulator-feed"), loop.create_task(hub.run(), name="emulator-streams")]
    if venue is not None:
        tasks.append(loop.create_task(venue.run(stopping), name="emulator-futures"))
    emu = RunningEmulator(config, runner, port, market, engine, hub, faults, feed, tasks, stopping)
    emu.overrides = api.overrides
    emu.futures = venue
    deadline = time.monotonic() + config.ready_timeout
    while not market.ready and time.monotonic() < deadline:
        if tasks[0].done():
            break
        await asyncio.sleep(0.01)
    if tasks[0].done() and tasks[0].exception() is not None:
        await emu.stop()
        raise tasks[0].exception()  # type: ignore[misc]
    return emu
