"""The WebSocket API subset ccxt.pro uses (``/ws-api/v3``) and the websocket connection object.

:class:`WsApi` is mixed into :class:`bot.emulator.ws.Hub` (which brings ``conns``, ``listing``,
``engine``, ``api_key`` / ``api_secret``, ``max_queue``); the methods and their answers are
described in :mod:`bot.emulator.ws`. Orders are routed by their ``symbol``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from bot.emulator import auth
from bot.emulator.errors import BinanceError
from bot.emulator.market import now_ms

if TYPE_CHECKING:
    from bot.emulator.listing import Listing
    from bot.emulator.matching import Engine

log = logging.getLogger("bot.emulator.ws")

__all__ = ["WsApi", "WsConn"]


class WsConn:
    def __init__(self, ws: web.WebSocketResponse, combined: bool, max_queue: int) -> None:
        self.ws = ws
        self.combined = combined
        self.streams: set[str] = set()
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=max_queue)
        self.listen_key: str | None = None
        self.user_sub: int | None = None  # WebSocket API user data subscription id
        self.api = False  # a /ws-api/v3 connection
        self.dead = False

    def push(self, text: str) -> None:
        if self.dead:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dead = True
            log.warning("websocket client too slow: disconnecting")
            asyncio.ensure_future(self.ws.close(code=1008, message=b"slow consumer"))

    async def writer(self) -> None:
        ws = self.ws
        try:
            while True:
                text = await self.queue.get()
                await ws.send_str(text)
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            pass
        except Exception:  # pragma: no cover - transport specific
            log.debug("websocket writer stopped", exc_info=True)


class WsApi:
    conns: set[WsConn]
    listing: "Listing"
    engine: "Engine"
    api_key: str
    api_secret: str
    max_queue: int
    _next_sub: int

    async def handle_api(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="websocket upgrade expected")
        await ws.prepare(request)
        conn = WsConn(ws, False, self.max_queue)
        conn.api = True
        self.conns.add(conn)
        writer = asyncio.ensure_future(conn.writer())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.push(json.dumps(self._api_call(conn, msg.data), separators=(",", ":")))
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.dead = True
            self.conns.discard(conn)
            writer.cancel()
        return ws

    def _api_call(self, conn: WsConn, text: str) -> dict:
        try:
            req = json.loads(text)
            if not isinstance(req, dict):
                raise ValueError
        except ValueError:
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Malformed request."}}
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params") or {}
        if not isinstance(params, dict):
            return {"id": rid, "status": 400, "error": {"code": -1000, "msg": "Malformed request: params must be an object."}}
        try:
            result = self._api_method(conn, method, params)
        except BinanceError as exc:
            return {"id": rid, "status": exc.status, "error": exc.body()}
        return {"id": rid, "status": 200, "result": result,
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                                "limit": 6000, "count": 1}]}

    def _api_method(self, conn: WsConn, method: object, params: dict) -> object:
        listing = self.listing
        flat = {k: auth.ws_value(v) for k, v in params.items()}
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": now_ms()}
        if method == "userDataStream.unsubscribe":
            conn.user_sub = None
            return {}
        signed = {"userDataStream.subscribe.signature", "order.place", "order.test", "order.status", "order.cancel",
                  "openOrders.status", "openOrders.cancelAll", "account.status"}
        if method not in signed:
            raise BinanceError(-1020, "This operation is not supported.")
        auth.verify_ws(params, self.api_key, self.api_secret)
        if method == "userDataStream.subscribe.signature":
            if conn.user_sub is None:
                conn.user_sub = self._next_sub
                self._next_sub += 1
            return {"subscriptionId": conn.user_sub}
        if method in ("order.place", "order.test"):
            order, body = listing.engine(flat).new_order(flat, test=method == "order.test")
            return body
        if method == "order.status":
            order = listing.engine(flat).find(flat.get("orderId"), flat.get("origClientOrderId"))
            if order is None:
                raise BinanceError(-2013, "Order does not exist.")
            return order.query()
        if method == "order.cancel":
            return listing.engine(flat).cancel(flat)
        if method == "openOrders.status":
            state = listing.route(flat, required=False)
            engines = [state.engine] if state is not None else listing.engines()
            return [row for engine in engines if engine is not None for row in engine.open_orders()]
        if method == "openOrders.cancelAll":
            return listing.engine(flat).cancel_all(flat)
        return self.engine.account(omit_zero=flat.get("omitZeroBalances") == "true")
