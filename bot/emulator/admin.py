"""The emulator's admin endpoints (never faulted, no auth): state, faults, websocket drops and gaps, balances.

:class:`AdminHandlers` is mixed into the server's request handler class
(:class:`bot.emulator.server._Api`), which brings ``config``, ``listing``, ``engine``, ``market``,
``rules``, ``faults``, ``hub``, the request counters and ``json``; the endpoints are described in
:mod:`bot.emulator.server`.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.emulator.faults import FaultError
from bot.emulator.listing import parse_balances
from bot.emulator.market import MarketState

__all__ = ["AdminHandlers"]


class AdminHandlers:
    @staticmethod
    def _book_state(market: MarketState) -> dict:
        book = market.book
        return {"best_bid": book.best_bid, "best_ask": book.best_ask, "update_id": market.update_id,
                "levels": list(book.level_count()), "events": market.events}

    async def admin_state(self, request: web.Request) -> web.Response:
        state = self.engine.state()
        if len(self.listing) > 1:  # the account's orders and trades on every symbol
            parts = [e.state() for e in self.listing.engines()]
            state["orders"] = sorted((o for p in parts for o in p["orders"]), key=lambda o: o["orderId"])
            state["open_orders"] = sorted(i for p in parts for i in p["open_orders"])
            state["trades"] = sorted((t for p in parts for t in p["trades"]), key=lambda t: (t["time"], t["id"]))
        state.update({
            "mode": self.config.mode, "symbol": self.rules.symbol, "symbols": self.listing.names,
            "book": self._book_state(self.market),
            "books": {st.symbol: self._book_state(st.market) for st in self.listing},
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
