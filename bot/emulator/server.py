"""The emulator's HTTP server: Binance spot REST under ``/api/v3``, websockets, admin endpoints.

With ``EmulatorConfig.venue`` ``usdm`` / ``coinm`` (``--market``) the spot ``/api/v3`` routes are
left out and :class:`bot.emulator.futures.FuturesVenue` installs the USD-M ``/fapi`` or COIN-M
``/dapi`` endpoints, the futures streams and ``/admin/mark`` / ``/admin/funding`` /
``/admin/futures`` instead (see :mod:`bot.emulator.futures`); the plumbing below (faults,
overrides, weights, signatures, the admin endpoints of this table) serves both.

One emulator serves one symbol, or several spot symbols from one account
(``EmulatorConfig.markets``, see :mod:`bot.emulator.listing`); the spot handlers
(:mod:`bot.emulator.spot_rest`) route each request by its ``symbol``.

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
account's trades (of every symbol), the first symbol's book (best prices, update id; ``books``:
every symbol's), the faults in force and how many were
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
import logging
import os
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from bot.config.settings import MarketSection, SimSection
from bot.emulator.commission import BNB, CommissionPolicy, bnb_rules
from bot.emulator.admin import AdminHandlers
from bot.emulator.plumbing import RestPlumbing
from bot.emulator.faults import FaultState
from bot.emulator.listing import (  # parse_balances: also imported from here
    TRADE_ID_STRIDE, Listing, SymbolState, build_feeds, parse_balances, shared_balances, spot_rules,
)
from bot.emulator.market import MarketState
from bot.emulator.matching import Engine, SymbolRules
from bot.emulator.override import Overrides, add_admin_routes
from bot.emulator.spot_rest import SpotHandlers
from bot.emulator.ws import Hub

log = logging.getLogger("bot.emulator")

DEFAULT_API_KEY = "emulator-test-api-key"
DEFAULT_API_SECRET = "emulator-test-api-secret"

def default_credentials() -> tuple[str, str]:
    return (os.environ.get("BOT_EMULATOR_API_KEY") or DEFAULT_API_KEY,
            os.environ.get("BOT_EMULATOR_API_SECRET") or DEFAULT_API_SECRET)


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
    # several symbols (spot): every one served, the first is ``market``; empty: ``market`` alone
    markets: list[MarketSection] = field(default_factory=list)

    @property
    def mode(self) -> str:
        return "data" if self.data else "sim"

    @property
    def served(self) -> list[MarketSection]:
        """The markets served, first (primary) one first."""
        return list(self.markets) if self.markets else [self.market]


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
        self.listing: Listing | None = None  # every symbol served (market/engine/feed above: the first one's)
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


class _Api(RestPlumbing, SpotHandlers, AdminHandlers):
    """Request handlers bound to one emulator's state (faults, weights, overrides and signatures: :mod:`bot.emulator.plumbing`; the spot REST ones:
    :mod:`bot.emulator.spot_rest`; the admin ones: :mod:`bot.emulator.admin`)."""

    def __init__(self, config: EmulatorConfig, listing: Listing, hub: Hub, faults: FaultState,
                 stopping: asyncio.Event) -> None:
        self.config = config
        self.listing = listing
        # the first symbol's state, as a one-symbol emulator (and the futures handlers) use it
        self.market = listing.primary.market
        self.engine = listing.engines()[0]
        self.rules = self.engine.rules
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
        policy = self.engine.commission
        # symbols listed and priced but not traded: BNB<QUOTE> in bnb mode, so a client can value BNB
        self.references: dict[str, tuple[SymbolRules, Decimal]] = {}
        if policy.mode == "bnb":
            for state in listing:
                ref = bnb_rules(state.rules.quote, policy.bnb_price)
                if listing.find(ref.symbol) is None:
                    self.references[ref.symbol] = (ref, policy.bnb_price)


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
    served = config.served
    if futures:
        from bot.emulator.futures import FuturesVenue

        if len(served) > 1:
            raise ValueError(f"--market {config.venue} serves one symbol, got {len(served)} "
                             f"({', '.join(m.symbol for m in served)}); several symbols are served on spot only")
        all_rules = [FuturesVenue.rules_for(config.venue, config.market)]  # ValueError for a market of another type
    else:
        all_rules = spot_rules(served)  # ValueError for a perpetual symbol or one given twice
    rules = all_rules[0]
    policy = CommissionPolicy(config.commission_asset, rules.base, rules.quote, config.bnb_price)  # ValueError
    given = parse_balances(config.balances) if config.balances is not None else None
    balances = shared_balances(all_rules, given)
    if config.balances is None and policy.mode == "bnb":
        balances[BNB] = Decimal(1)
    faults = FaultState(config.faults, seed=config.fault_seed)  # raises FaultError (a ValueError)

    listing = Listing([SymbolState(i, r, m, MarketState(first_trade_id=i * TRADE_ID_STRIDE + 1))
                       for i, (r, m) in enumerate(zip(all_rules, served))])
    build_feeds(listing, config.data, config.sim, config.speed, config.loop)  # ValueError, RecordingError
    venue: Any = None
    first = listing.primary
    if futures:
        take = None if config.data else first.feed.take
        venue = FuturesVenue.from_config(config, first.market, take, given)
        first.engine = venue.engine
    else:
        account: Engine | None = None
        for state in listing:
            state_policy = CommissionPolicy(config.commission_asset, state.rules.base, state.rules.quote, config.bnb_price)
            state.engine = Engine(state.rules, state.market, balances if account is None else {},
                                  taker_fee=config.taker_fee, maker_fee=config.maker_fee,
                                  take=None if config.data else state.feed.take, commission=state_policy, account=account)
            account = account or state.engine
    engine = listing.engines()[0]
    market, feed = first.market, first.feed
    hub = Hub(listing, faults)
    hub.api_key, hub.api_secret = config.api_key, config.api_secret
    stopping = asyncio.Event()
    api = _Api(config, listing, hub, faults, stopping)
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
    feeds = [loop.create_task(st.feed.run(), name=f"emulator-feed-{st.symbol}") for st in listing]
    tasks = [*feeds, loop.create_task(hub.run(), name="emulator-streams")]
    if venue is not None:
        tasks.append(loop.create_task(venue.run(stopping), name="emulator-futures"))
    emu = RunningEmulator(config, runner, port, market, engine, hub, faults, feed, tasks, stopping)
    emu.overrides = api.overrides
    emu.futures = venue
    emu.listing = listing
    deadline = time.monotonic() + config.ready_timeout
    while not listing.all_ready() and time.monotonic() < deadline:
        if any(t.done() for t in feeds):
            break
        await asyncio.sleep(0.01)
    failed = next((t for t in feeds if t.done() and t.exception() is not None), None)
    if failed is not None:
        await emu.stop()
        raise failed.exception()  # type: ignore[misc]
    return emu
