"""Futures websocket streams on top of the spot :class:`~bot.emulator.ws.Hub`.

What differs from spot, as Binance's futures streams send it
(https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams):

* URLs: ccxt.pro's USD-M client splits its base URL into ``/public/ws`` (depth, bookTicker,
  trade), ``/market/ws`` (aggTrade, markPrice, forceOrder, tickers) and ``/private/ws?listenKey=``
  (user data); COIN-M uses ``/ws/<index>`` and ``/ws/<listenKey>``. All are served by the one hub.
* Diff depth messages carry ``pu`` (the previous message's ``u``) and ``T``; besides the spot
  speeds, ``@depth@0ms``, ``@depth@250ms`` and ``@depth@500ms`` are accepted (sent every 100 ms).
* ``<s>@markPrice@1s`` every second and ``<s>@markPrice`` every 3 s (also ``!markPrice@arr``):
  ``{"e": "markPriceUpdate", "E", "s", "p": mark, "i": index, "P": estimated settle, "r":
  funding rate, "T": next funding time}``; sent at once when a test moves the mark.
* ``<s>@forceOrder`` / ``!forceOrder@arr``: ``{"e": "forceOrder", "E", "o": {...}}`` for every
  liquidation of the emulator's account (the only liquidations it has).
* User data stream: ``ORDER_TRADE_UPDATE`` for every order event, ``ACCOUNT_UPDATE`` (balance and
  position) after every fill, funding payment and liquidation (reasons ORDER, FUNDING_FEE).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from bot.emulator.market import now_ms
from bot.emulator.matching import Fill, Order, fmt

if TYPE_CHECKING:
    from bot.emulator.futures.venue import FuturesVenue
    from bot.emulator.ws import Hub

__all__ = ["FuturesStreams"]

FUTURES_DIFF_100 = ("@depth@100ms", "@depth@0ms", "@depth@250ms", "@depth@500ms")


class FuturesStreams:
    def __init__(self, venue: "FuturesVenue", hub: "Hub") -> None:
        self.venue = venue
        self.hub = hub
        self.s = venue.contract.symbol.lower()
        self.ticks = 0
        hub.diff100 = FUTURES_DIFF_100
        hub.diff_hook = self._diff_fields
        # the spot user data events (executionReport, outboundAccountPosition) make no sense here
        venue.engine.listeners[:] = [self.on_execution]
        venue.engine.balance_listeners[:] = []

    def install(self, router: web.UrlDispatcher) -> None:
        for root in ("/public", "/market", "/private"):
            router.add_get(root + "/ws", self.hub.handle)
            router.add_get(root + "/ws/{tail:.*}", self.hub.handle)
            router.add_get(root + "/stream", self.hub.handle)

    @staticmethod
    def _diff_fields(message: dict) -> None:
        message["pu"] = message["U"] - 1  # every update is in some message: the previous one ended at U - 1
        message["T"] = message["E"]

    # ------------------------------------------------------------------ market streams
    def clock(self) -> None:
        """Called every 100 ms by the venue's clock."""
        self.ticks += 1
        if self.ticks % 10 == 0:
            self.mark_price(slow=self.ticks % 30 == 0)

    def mark_price(self, force: bool = False, slow: bool = False) -> None:
        hub, s = self.hub, self.s
        fast_names = [n for n in (s + "@markPrice@1s", "!markPrice@arr@1s") if hub.subs.get(n)]
        slow_names = [n for n in (s + "@markPrice", "!markPrice@arr") if hub.subs.get(n)] if (slow or force) else []
        if not fast_names and not slow_names:
            return
        v = self.venue
        row = v.premium_row()
        event = {"e": "markPriceUpdate", "E": now_ms(), "s": v.contract.symbol, "p": row["markPrice"],
                 "i": row["indexPrice"], "P": row["estimatedSettlePrice"], "r": row["lastFundingRate"],
                 "T": row["nextFundingTime"]}
        for name in fast_names + slow_names:
            hub.publish(name, [event] if name.startswith("!") else event)

    def force_order(self, order: Order, fill: Fill) -> None:
        now = now_ms()
        event = {"e": "forceOrder", "E": now, "o": {
            "s": order.symbol, "S": order.side, "o": order.type, "f": order.time_in_force, "q": fmt(order.orig_qty),
            "p": fmt(order.price), "ap": fmt(fill.price), "X": "FILLED", "l": fmt(fill.qty), "z": fmt(order.executed_qty),
            "T": fill.time}}
        for name in (self.s + "@forceOrder", "!forceOrder@arr"):
            self.hub.publish(name, event)

    # ------------------------------------------------------------------ user data stream
    def _push(self, event: dict) -> None:
        conns = self.hub._user_conns()
        if conns:
            self.hub._push_user(conns, json.dumps(event, separators=(",", ":")))

    def on_execution(self, exec_type: str, order: Order, fill: Fill | None) -> None:
        if not self.hub._user_conns():
            return
        engine = self.venue.engine
        row = engine.order_row(order)
        now = now_ms()
        self._push({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": {
            "s": order.symbol, "c": order.client_order_id, "S": order.side, "o": order.type, "f": order.time_in_force,
            "q": row["origQty"], "p": row["price"], "ap": row["avgPrice"], "sp": "0", "x": exec_type,
            "X": order.status, "i": order.order_id, "l": fmt(fill.qty if fill else 0), "z": row["executedQty"],
            "L": fmt(fill.price if fill else 0), "N": fill.commission_asset if fill else None,
            "n": fmt(fill.commission if fill else 0), "T": fill.time if fill else order.update_time,
            "t": fill.trade_id if fill else 0, "b": "0", "a": "0", "m": fill.is_maker if fill else False,
            "R": row["reduceOnly"], "wt": "CONTRACT_PRICE", "ot": order.type, "ps": "BOTH", "cp": False,
            "rp": fmt(getattr(fill, "realized_pnl", 0) if fill else 0), "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0}})
        if exec_type == "TRADE":
            self.account_update("ORDER")

    def account_update(self, reason: str) -> None:
        if not self.hub._user_conns():
            return
        v = self.venue
        acct, mark = v.account, v.mark()
        pos = acct.position_row(mark, v.kind)
        now = now_ms()
        cross_wallet = acct.wallet - (acct.position.isolated_wallet if acct.isolated else 0)
        self._push({"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": {
            "m": reason, "B": [{"a": v.contract.settle, "wb": fmt(acct.wallet), "cw": fmt(cross_wallet), "bc": "0"}],
            "P": [{"s": v.contract.symbol, "pa": pos["positionAmt"], "ep": pos["entryPrice"], "bep": pos["breakEvenPrice"],
                   "cr": "0", "up": pos["unRealizedProfit"], "mt": pos["marginType"], "iw": pos["isolatedWallet"],
                   "ps": "BOTH"}]}})
