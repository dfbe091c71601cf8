"""The futures side of the emulator: mark price, funding clock, liquidation watch and admin controls.

:class:`FuturesVenue` owns the :class:`~bot.emulator.futures.contract.Contract`, the
:class:`~bot.emulator.futures.account.FuturesAccount` and the
:class:`~bot.emulator.futures.orders.FuturesEngine`; :func:`bot.emulator.server.start_emulator`
builds it for ``--market usdm|coinm`` and calls :meth:`install` (REST, websockets, admin routes)
and :meth:`run` (a 100 ms clock).

Mark price: the book's mid price, plus ``mark_offset``, unless a test pinned it. Tests move it
with ``POST /admin/mark`` (JSON ``{"price": "45000"}`` pins the mark, ``{"offset": "-250"}`` makes
it mid + offset, ``{}`` or ``{"price": null, "offset": "0"}`` goes back to the mid); the answer is
``{"mark_price", "offset", "pinned", "liquidations"}``, given after the liquidation check at the
new mark. Orders still fill at book prices; margin, unrealized PnL, funding and liquidation use
the mark (as Binance's do).

Funding: at every funding time, ``rate`` is paid or received on the open position (see
:meth:`FuturesAccount.funding`). Funding times are 00:00 UTC and every ``funding_interval_h``
hours after it (8 h: 00:00, 08:00, 16:00), or every ``funding_interval_s`` seconds of the Unix
clock when that is set (``--funding-interval-s``, for tests). ``POST /admin/funding`` takes JSON
``{"rate": "0.0001", "interval_s": 2, "settle": true}`` (every key optional; ``settle`` books one
funding payment now) and answers ``{"rate", "interval_s", "next_funding_time", "payments"}``.

Liquidation is checked on every clock tick and after every admin change of the mark or funding.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from bot.config.settings import MarketSection
from bot.core.market import to_decimal
from bot.emulator.futures.account import FuturesAccount
from bot.emulator.futures.contract import Contract
from bot.emulator.futures.orders import FuturesEngine
from bot.emulator.futures.rest import FuturesRest
from bot.emulator.futures.ws import FuturesStreams
from bot.emulator.market import MarketState, now_ms
from bot.emulator.matching import SymbolRules, TakeFn, fmt

log = logging.getLogger("bot.emulator.futures")

__all__ = ["FuturesVenue"]


class FuturesVenue:
    def __init__(self, market_cfg: MarketSection, market: MarketState, wallet: Decimal, taker_fee: Decimal,
                 maker_fee: Decimal, take: TakeFn | None, funding_rate: Decimal | None = None,
                 funding_interval_s: float | None = None, mark_offset: Decimal = Decimal(0)) -> None:
        self.contract = Contract.from_market(market_cfg)
        self.kind = "coinm" if self.contract.inverse else "usdm"
        self.market = market
        self.account = FuturesAccount(self.contract, wallet, leverage=market_cfg.leverage,
                                      margin_type="ISOLATED" if market_cfg.margin_mode == "isolated" else "CROSSED")
        self.engine = FuturesEngine(self.contract, market, self.account, self.mark, taker_fee, maker_fee, take=take)
        self.funding_rate = funding_rate if funding_rate is not None else Decimal(str(market_cfg.funding_rate_bps)) / 10000
        self.funding_interval_s = funding_interval_s if funding_interval_s else market_cfg.funding_interval_h * 3600.0
        self.mark_offset = mark_offset
        self.pinned: Decimal | None = None
        self.funding_history: list[dict] = []
        self.payments = 0
        self.liquidations: list[dict] = []
        self.next_funding_ms = self._next_funding_after(time.time())
        self.streams: FuturesStreams | None = None

    @staticmethod
    def rules_for(venue: str, market_cfg: MarketSection) -> SymbolRules:
        """The matching rules of ``--market venue``; ValueError when the config's market is of another type."""
        want = "linear" if venue == "usdm" else "inverse"
        if market_cfg.type != want:
            raise ValueError(f"--market {venue} serves market.type {want!r}, the config's is {market_cfg.type!r}")
        return Contract.from_market(market_cfg).rules()

    @classmethod
    def from_config(cls, config: Any, market: MarketState, take: TakeFn | None,
                    balances: dict[str, Decimal] | None) -> "FuturesVenue":
        """Built from an :class:`~bot.emulator.server.EmulatorConfig`; the wallet is the settle asset's
        entry of ``balances`` (default 10000 USDT on USD-M, 1 BTC on COIN-M)."""
        settle = config.market.settle
        wallet = (balances or {}).get(settle, Decimal(1) if config.market.type == "inverse" else Decimal(10000))
        return cls(config.market, market, wallet, config.taker_fee, config.maker_fee, take,
                   funding_rate=config.funding_rate, funding_interval_s=config.funding_interval_s,
                   mark_offset=config.mark_offset)

    # ------------------------------------------------------------------ prices
    def mark(self) -> Decimal:
        if self.pinned is not None:
            return self.pinned
        mid = self.market.book.mid
        if mid != mid:  # NaN: no book yet
            last = self.market.last_price()
            return to_decimal(last) if last else Decimal(0)
        return to_decimal(mid) + self.mark_offset

    def index(self) -> Decimal:
        mid = self.market.book.mid
        return to_decimal(mid) if mid == mid else self.mark()

    def _next_funding_after(self, t: float) -> int:
        step = self.funding_interval_s
        return int((math.floor(t / step) + 1) * step * 1000)

    def premium_row(self) -> dict:
        c = self.contract
        row = {"symbol": c.symbol, "markPrice": fmt(self.mark()), "indexPrice": fmt(self.index()),
               "estimatedSettlePrice": fmt(self.mark()), "lastFundingRate": fmt(self.funding_rate),
               "interestRate": "0.00010000", "nextFundingTime": self.next_funding_ms, "time": now_ms()}
        if c.inverse:
            row["pair"] = c.pair
        return row

    # ------------------------------------------------------------------ clock
    def tick(self) -> None:
        """Funding when its time has come, then the liquidation check."""
        now = now_ms()
        if now >= self.next_funding_ms:
            self.settle_funding(self.next_funding_ms)
            self.next_funding_ms = self._next_funding_after(now / 1000)
        self.check_liquidation()

    def settle_funding(self, funding_time: int | None = None) -> Decimal | None:
        when = funding_time or now_ms()
        mark = self.mark()
        self.funding_history.append({"symbol": self.contract.symbol, "fundingRate": fmt(self.funding_rate),
                                     "fundingTime": when, "markPrice": fmt(mark)})
        payment = self.account.funding(self.funding_rate, mark, now_ms())
        if payment is not None:
            self.payments += 1
            log.info("funding at %s: rate %s, payment %s %s", when, self.funding_rate, payment, self.contract.settle)
            if self.streams:
                self.streams.account_update("FUNDING_FEE")
        return payment

    def check_liquidation(self) -> None:
        mark = self.mark()
        if not self.account.must_liquidate(mark):
            return
        wallet_before = self.account.wallet
        order, fill, fee = self.engine.liquidate(mark)
        record = {"orderId": order.order_id, "clientOrderId": order.client_order_id, "side": order.side,
                  "qty": fmt(fill.qty), "price": fmt(fill.price), "mark": fmt(mark), "realizedPnl": fmt(fill.realized_pnl),
                  "clearanceFee": fmt(fee), "walletBefore": fmt(wallet_before), "walletAfter": fmt(self.account.wallet),
                  "time": fill.time}
        self.liquidations.append(record)
        log.warning("liquidated: %s", record)
        if self.streams:
            self.streams.force_order(order, fill)
            self.streams.account_update("ORDER")

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                self.tick()
                if self.streams:
                    self.streams.clock()
            except Exception:  # pragma: no cover - keep the clock alive
                log.exception("futures clock failed")
            try:
                await asyncio.wait_for(stopping.wait(), timeout=0.1)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ wiring
    def install(self, app: web.Application, api: Any, hub: Any) -> None:
        FuturesRest(self, api).install(app.router)
        self.streams = FuturesStreams(self, hub)
        self.streams.install(app.router)
        app.router.add_post("/admin/mark", self.admin_mark)
        app.router.add_post("/admin/funding", self.admin_funding)
        app.router.add_get("/admin/futures", self.admin_state)

    # ------------------------------------------------------------------ admin
    @staticmethod
    async def _body(request: web.Request) -> dict:
        text = await request.text() if request.can_read_body else ""
        data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data

    @staticmethod
    def _decimal(value: object, name: str) -> Decimal:
        try:
            out = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if not out.is_finite():
            raise ValueError(f"{name} must be finite")
        return out

    def _mark_answer(self) -> dict:
        return {"mark_price": fmt(self.mark()), "offset": fmt(self.mark_offset), "pinned": self.pinned is not None,
                "liquidations": self.liquidations}

    async def admin_mark(self, request: web.Request) -> web.Response:
        try:
            data = await self._body(request)
            price = data.get("price")
            offset = data.get("offset")
            pinned = self._decimal(price, "price") if price is not None else None
            if pinned is not None and pinned <= 0:
                raise ValueError("price must be > 0")
            self.mark_offset = self._decimal(offset, "offset") if offset is not None else Decimal(0)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.pinned = pinned
        self.check_liquidation()
        if self.streams:
            self.streams.mark_price(force=True)
        return web.json_response(self._mark_answer())

    async def admin_funding(self, request: web.Request) -> web.Response:
        try:
            data = await self._body(request)
            if data.get("rate") is not None:
                self.funding_rate = self._decimal(data["rate"], "rate")
            if data.get("interval_s") is not None:
                interval = float(data["interval_s"])
                if not interval > 0:
                    raise ValueError("interval_s must be > 0")
                self.funding_interval_s = interval
                self.next_funding_ms = self._next_funding_after(time.time())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if data.get("settle"):
            self.settle_funding()
            self.check_liquidation()
        return web.json_response({"rate": fmt(self.funding_rate), "interval_s": self.funding_interval_s,
                                  "next_funding_time": self.next_funding_ms, "payments": self.payments})

    async def admin_state(self, request: web.Request) -> web.Response:
        state = self.engine.state()
        state.update({"funding_rate": fmt(self.funding_rate), "funding_interval_s": self.funding_interval_s,
                      "next_funding_time": self.next_funding_ms, "funding_payments": self.payments,
                      "liquidations": self.liquidations, "market": self.kind, "symbol": self.contract.symbol})
        return web.json_response(state)
