"""Hostile websocket frames on demand: ``POST /admin/ws_inject`` (JSON body).

* ``{"kind": "raw", "text": "<frame>"}``: sends ``text`` verbatim, once, as a text frame on every
  open market-data connection (``/ws...`` and ``/stream...``; not user-data-stream connections,
  nor ``/ws-api/v3`` ones), e.g. a truncated ``{"stream":"btcusdt@depth@100ms","data":``.
* ``{"kind": "depth_price", "price": "NaN", "side": "bid"}``: the next diff message of each diff
  stream that has subscribers now carries an extra first bid (``side`` ``"ask"``: ask) level,
  ``[price, "1.00000000"]`` (``price`` a string, sent as a JSON string). The real levels stay as
  they were, so the book is not corrupted by a lost update, and the quantity is never zero: a
  zero-quantity level is a deletion a client may rightly skip, and then nothing would ever refuse
  it. Its ``U``/``u`` stay valid. A message dropped by the ``gap`` fault does not count: the next
  one sent carries the price.

Both answer ``{"connections": n}`` (the connections the frame was pushed to / that are subscribed
to an armed diff stream); a bad body answers 400 ``{"error": ...}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.emulator.ws import Hub

__all__ = ["admin_ws_inject", "inject", "poison_levels"]

EXTRA_QTY = "1.00000000"


def poison_levels(message: dict, side: str, price: str) -> None:
    """Add ``[price, EXTRA_QTY]`` as the first level on ``side`` ("bid"/"ask") of a depthUpdate message."""
    message["b" if side == "bid" else "a"].insert(0, [price, EXTRA_QTY])


def market_connections(hub: "Hub") -> list:
    return [c for c in hub.conns if not c.dead and not c.api and c.listen_key is None and c.user_sub is None]


def inject(hub: "Hub", spec: object) -> int:
    """Apply one injection (see the module docstring); ValueError on a bad spec."""
    if not isinstance(spec, dict):
        raise ValueError("the body must be a JSON object with a kind")
    kind = spec.get("kind")
    if kind == "raw":
        text = spec.get("text")
        if not isinstance(text, str):
            raise ValueError("kind raw needs text (a string, the frame verbatim)")
        conns = market_connections(hub)
        for conn in conns:
            conn.push(text)
        return len(conns)
    if kind == "depth_price":
        price = spec.get("price")
        side = spec.get("side", "bid")
        if not isinstance(price, str):
            raise ValueError("kind depth_price needs price (a string, e.g. \"NaN\")")
        if side not in ("bid", "ask"):
            raise ValueError(f"side must be bid or ask, got {side!r}")
        reached: set = set()
        for streams in hub.symbol_streams:  # every symbol's diff streams
            for acc, suffixes in streams.accumulators():  # futures have more diff speeds
                subscribers = set().union(*(hub.subs.get(streams.s + x, set()) for x in suffixes))
                if subscribers:
                    acc.poison = (side, price)
                    reached |= subscribers
        return len(reached)
    raise ValueError(f"kind must be raw or depth_price, got {kind!r}")


async def admin_ws_inject(request: web.Request, hub: "Hub") -> web.Response:
    try:
        n = inject(hub, json.loads(await request.text() or "null"))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"connections": n})
