"""Binance spot websocket market streams (and the spot user data stream) on aiohttp.

Endpoints (all on the emulator's one port):

* ``/ws`` and ``/ws/<anything>``: raw streams. ``/ws/<streamName>`` (e.g. ``/ws/btcusdt@depth``)
  subscribes to that stream at connect; any other tail (ccxt appends a stream index, ``/ws/0``)
  starts with no subscription. Payloads are sent bare.
* ``/stream?streams=a/b`` and ``/stream/<anything>``: combined streams, payloads wrapped as
  ``{"stream": name, "data": payload}``.
* Live subscription control, as Binance: ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params":
  [...], "id": N}`` -> ``{"result": null, "id": N}``; ``LIST_SUBSCRIPTIONS`` -> ``{"result":
  [...], "id": N}``; a bad request -> ``{"error": {"code": 2, "msg": ...}, "id": N}``.
* ``/ws/<listenKey>``: the user data stream of a key from ``POST /api/v3/userDataStream``
  (``executionReport`` and ``outboundAccountPosition`` events).
* ``/ws-api/v3``: the WebSocket API subset ccxt.pro uses for spot private streams and orders:
  ``userDataStream.subscribe.signature`` (then events arrive as ``{"subscriptionId": N,
  "event": {...}}``: this is how ccxt.pro's ``watch_orders`` / ``watch_balance`` /
  ``watch_my_trades`` get ``executionReport`` / ``outboundAccountPosition``),
  ``userDataStream.unsubscribe``, ``ping``, ``time``, ``order.place``, ``order.test``,
  ``order.status``, ``order.cancel``, ``openOrders.status``, ``openOrders.cancelAll``,
  ``account.status`` (orders are routed by their ``symbol``). Signed requests are checked like REST (payload = params sorted by key).
  Answers: ``{"id", "status": 200, "result": ...}`` or ``{"id", "status": 4xx, "error":
  {"code", "msg"}}``.

Streams of each emulated symbol ``s`` (lower case; several symbols are served side by side, on
one connection or many, raw or combined, as Binance does; see :mod:`bot.emulator.ws_market`): ``s@depth`` / ``s@depth@1000ms`` (diffs every
1 s), ``s@depth@100ms`` (diffs every 100 ms), ``s@depth5|10|20[@100ms|@1000ms]`` (partial book),
``s@trade``, ``s@aggTrade`` (one aggregate per trade), ``s@bookTicker`` (real time, on every
change of the best levels), ``s@ticker`` and ``s@miniTicker`` (every 1 s). Other names are
accepted and never send anything (as Binance does for an unknown symbol).

Futures (:mod:`bot.emulator.futures.ws`) reuse this hub: they set ``diff100`` (more diff speeds),
``diff_hook`` (adds ``pu`` / ``T`` to every diff message) and serve ``/public/ws``, ``/market/ws``
and ``/private/ws?listenKey=KEY`` through :meth:`Hub.handle`.

Diff messages are ``{"e": "depthUpdate", "E", "s", "U", "u", "b", "a"}`` whose ``U``..``u`` are
the update ids of :class:`~bot.emulator.market.MarketState` merged since the previous message of
that stream; a 100 ms / 1 s window without change sends nothing. The server sends a ping frame
every 20 s (the client's pong is handled by aiohttp). A client whose send queue grows beyond
``max_queue`` messages is disconnected (slow consumer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import TYPE_CHECKING, Callable

from aiohttp import WSMsgType, web

from bot.emulator.market import MarketState, now_ms
from bot.emulator.matching import Engine, Fill, Order, fmt
from bot.emulator.ws_api import WsApi, WsConn
from bot.emulator.ws_market import SymbolStreams

if TYPE_CHECKING:
    from bot.emulator.faults import FaultState
    from bot.emulator.listing import Listing

log = logging.getLogger("bot.emulator.ws")

DIFF_1000 = ("@depth", "@depth@1000ms")
DIFF_100 = ("@depth@100ms",)
PARTIAL = tuple(f"@depth{n}{suffix}" for n in (5, 10, 20) for suffix in ("", "@100ms", "@1000ms"))


class Hub(WsApi):
    """All websocket connections, their subscriptions and the stream publishers."""

    def __init__(self, listing: "Listing", faults: "FaultState", max_queue: int = 20_000) -> None:
        self.listing = listing
        self.faults = faults
        self.max_queue = max_queue
        self.conns: set[WsConn] = set()
        self.subs: dict[str, set[WsConn]] = {}
        # stream names of each diff clock, and a hook that adds market-specific fields to every diff
        # message (futures: ``pu`` and ``T``, see bot.emulator.futures.ws)
        self.diff100: tuple[str, ...] = DIFF_100
        self.diff1000: tuple[str, ...] = DIFF_1000
        self.diff_hook: Callable[[dict], None] | None = None
        self.listen_keys: dict[str, float] = {}
        self.api_key = ""
        self.api_secret = ""
        self._next_sub = 0
        self.gaps_injected = 0
        self.drops_injected = 0
        self.messages_sent = 0
        self.symbol_streams: list[SymbolStreams] = []
        for state in listing:
            state.streams = SymbolStreams(self, state.market, state.symbol)
            self.symbol_streams.append(state.streams)
            assert state.engine is not None
            state.engine.listeners.append(self._on_execution)
            state.engine.balance_listeners.append(self._on_balances)

    # the primary (first) symbol's state, as a one-symbol emulator has it
    @property
    def market(self) -> MarketState:
        return self.listing.primary.market

    @property
    def engine(self) -> Engine:
        engine = self.listing.primary.engine
        assert engine is not None
        return engine

    @property
    def symbol(self) -> str:
        return self.listing.primary.symbol

    @property
    def s(self) -> str:
        return self.symbol.lower()

    @property
    def acc100(self):
        return self.symbol_streams[0].acc100

    @property
    def acc1000(self):
        return self.symbol_streams[0].acc1000

    # ------------------------------------------------------------------ publishing
    def publish(self, stream: str, data: dict | str) -> None:
        subs = self.subs.get(stream)
        if not subs:
            return
        raw = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        combined = None
        for conn in subs:
            if conn.combined:
                if combined is None:
                    combined = '{"stream":"%s","data":%s}' % (stream, raw)
                conn.push(combined)
            else:
                conn.push(raw)
            self.messages_sent += 1

    async def run(self) -> None:
        """The 100 ms publishing clock, plus the ws_drop and gap faults."""
        tick = 0
        start = time.monotonic()
        next_gap = next_drop = None
        last_ping = time.monotonic()
        while True:
            tick += 1
            delay = start + tick * 0.1 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            spec = self.faults.spec
            now = time.monotonic()
            if spec.gap > 0:
                if next_gap is None:
                    next_gap = now + spec.gap
                elif now >= next_gap:
                    self.inject_gap()
                    next_gap = now + spec.gap
            else:
                next_gap = None
            if spec.ws_drop > 0:
                if next_drop is None:
                    next_drop = now + spec.ws_drop
                elif now >= next_drop:
                    await self.drop_all()
                    next_drop = now + spec.ws_drop
            else:
                next_drop = None
            try:
                for streams in self.symbol_streams:
                    streams.tick(tick)
            except Exception:  # pragma: no cover - keep the clock alive whatever happens
                log.exception("stream publisher failed")
            if now - last_ping >= 20.0:
                last_ping = now
                for conn in list(self.conns):
                    if not conn.ws.closed:
                        try:
                            await conn.ws.ping()
                        except Exception:
                            pass

    def inject_gap(self) -> None:
        """Make the next diff message of every diff stream that has an update newer than now go missing.

        (A message whose updates are all older is not needed by a client synced now, so
        dropping it would not make a gap for that client.)
        """
        for streams in self.symbol_streams:
            streams.inject_gap()

    async def drop_all(self, code: int = 1001) -> int:
        conns = list(self.conns)
        for conn in conns:
            conn.dead = True
            try:
                await conn.ws.close(code=code, message=b"emulator: connection dropped (fault)")
            except Exception:
                pass
        self.drops_injected += 1
        return len(conns)

    async def close_all(self) -> None:
        for conn in list(self.conns):
            conn.dead = True
            try:
                await conn.ws.close(code=1001, message=b"server shutdown")
            except Exception:
                pass

    # ------------------------------------------------------------------ connections
    def _subscribe(self, conn: WsConn, streams: list[str]) -> None:
        for name in streams:
            conn.streams.add(name)
            self.subs.setdefault(name, set()).add(conn)

    def _unsubscribe(self, conn: WsConn, streams: list[str] | None = None) -> None:
        for name in list(conn.streams) if streams is None else streams:
            conn.streams.discard(name)
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        tail = request.match_info.get("tail", "")
        combined = path.startswith(("/stream", "/public/stream", "/market/stream", "/private/stream"))
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="websocket upgrade expected")
        await ws.prepare(request)
        conn = WsConn(ws, combined, self.max_queue)
        self.conns.add(conn)
        writer = asyncio.ensure_future(conn.writer())
        try:
            if combined:
                streams = [x for x in request.query.get("streams", "").split("/") if x]
                self._subscribe(conn, streams)
            if request.query.get("listenKey") in self.listen_keys:  # futures: /private/ws?listenKey=KEY
                conn.listen_key = request.query["listenKey"]
            elif not combined and tail:
                if tail in self.listen_keys:
                    conn.listen_key = tail
                elif "@" in tail:
                    self._subscribe(conn, [tail])
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._control(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            conn.dead = True
            self._unsubscribe(conn)
            self.conns.discard(conn)
            writer.cancel()
        return ws

    def _control(self, conn: WsConn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError:
            conn.push(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}, "id": None}))
            return
        if not isinstance(req, dict):
            conn.push(json.dumps({"error": {"code": 2, "msg": "Invalid request: request must be an object"}, "id": None}))
            return
        rid = req.get("id")
        method = req.get("method")
        params = req.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                conn.push(json.dumps({"error": {"code": 2, "msg": "Invalid request: invalid params"}, "id": rid}))
                return
            if method == "SUBSCRIBE":
                self._subscribe(conn, params)
            else:
                self._unsubscribe(conn, params)
            conn.push(json.dumps({"result": None, "id": rid}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.push(json.dumps({"result": sorted(conn.streams), "id": rid}))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            conn.push(json.dumps({"result": None if method == "SET_PROPERTY" else False, "id": rid}))
        else:
            conn.push(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown variant '{method}'"}, "id": rid}))

    # ------------------------------------------------------------------ user data stream
    def new_listen_key(self) -> str:
        key = secrets.token_urlsafe(45).replace("-", "a").replace("_", "b")[:60]
        self.listen_keys[key] = time.time()
        return key

    def keepalive(self, key: str) -> bool:
        if key in self.listen_keys:
            self.listen_keys[key] = time.time()
            return True
        return False

    def close_listen_key(self, key: str) -> bool:
        if self.listen_keys.pop(key, None) is None:
            return False
        for conn in list(self.conns):
            if conn.listen_key == key:
                asyncio.ensure_future(conn.ws.close(code=1000, message=b"listenKey closed"))
        return True

    def _user_conns(self) -> list[WsConn]:
        return [c for c in self.conns if (c.listen_key is not None or c.user_sub is not None) and not c.dead]

    @staticmethod
    def _push_user(conns: list[WsConn], text: str) -> None:
        for conn in conns:
            if conn.user_sub is not None:
                conn.push('{"subscriptionId":%d,"event":%s}' % (conn.user_sub, text))
            else:
                conn.push(text)

    def _on_execution(self, exec_type: str, order: Order, fill: Fill | None) -> None:
        conns = self._user_conns()
        if not conns:
            return
        now = now_ms()
        event = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": order.cancel_client_id if exec_type == "CANCELED" else order.client_order_id,
            "S": order.side, "o": order.type, "f": order.time_in_force, "q": fmt(order.orig_qty), "p": fmt(order.price),
            "P": fmt(0), "F": fmt(0), "g": -1, "C": order.client_order_id if exec_type == "CANCELED" else "",
            "x": exec_type, "X": order.status, "r": "NONE", "i": order.order_id,
            "l": fmt(fill.qty if fill else 0), "z": fmt(order.executed_qty), "L": fmt(fill.price if fill else 0),
            "n": fmt(fill.commission if fill else 0), "N": fill.commission_asset if fill else None,
            "T": fill.time if fill else order.update_time, "t": fill.trade_id if fill else -1, "v": 0, "I": 0,
            "w": order.is_open, "m": fill.is_maker if fill else False, "M": False, "O": order.time,
            "Z": fmt(order.cum_quote), "Y": fmt(fill.quote_qty if fill else 0), "Q": fmt(order.orig_quote_qty),
            "W": order.time, "V": "EXPIRE_MAKER",
        }
        self._push_user(conns, json.dumps(event, separators=(",", ":")))
        if exec_type in ("NEW", "TRADE"):
            state = self.listing.find(order.symbol)
            engine = state.engine if state is not None and state.engine is not None else self.engine
            self._on_balances(engine.balance_assets())

    def _on_balances(self, assets: list[str]) -> None:
        conns = self._user_conns()
        if not conns:
            return
        now = now_ms()
        rows = []
        for asset in assets:
            free, locked = self.engine.balances.get(asset, (0, 0))
            rows.append({"a": asset, "f": fmt(free), "l": fmt(locked)})
        self._push_user(conns, json.dumps({"e": "outboundAccountPosition", "E": now, "u": now, "B": rows},
                                          separators=(",", ":")))
