"""What every REST request of the emulator goes through: faults, request weights, overrides, signatures.

:class:`RestPlumbing` is mixed into the server's request handler class
(:class:`bot.emulator.server._Api`), which brings ``faults``, ``overrides``, ``stopping``, the
credentials and the counters. Faults (:mod:`bot.emulator.faults`) act before the handler, REST
overrides (:mod:`bot.emulator.override`) around it once the request's auth passed; every answer
carries ``X-MBX-USED-WEIGHT-1M`` (Binance's weights, per minute).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from bot.emulator import auth
from bot.emulator.errors import BinanceError
from bot.emulator.market import now_ms

log = logging.getLogger("bot.emulator")

__all__ = ["RestPlumbing"]

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


class RestPlumbing:
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
