"""Live derivatives: the exchange's position and funding are the truth, the database follows them.

At start and then every ``exchange.position_poll_interval_s`` while no order is in flight:

* funding payments the exchange made (income ``FUNDING_FEE``) since the last one stored are
  booked into the wallet and stored with the exchange's id (``funding.ref``), once each;
* the exchange's position is compared with the books. A difference is explained by trades of
  orders the bot did not send (a liquidation, a trade by hand): those are read from the
  account's trade list, booked as fills (``client_order_id`` the exchange's own, e.g.
  ``autoclose-...`` for a liquidation) with a risk event (``liquidation`` or ``external_fill``).
* what is still different afterwards halts trading without flattening: a position the bot did
  not open (the books flat, the exchange not) is ``foreign_position``, reported and left alone;
  any other gap is ``position_mismatch``.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from bot.engine.engine import Engine
from bot.exchange.client import fills_from_trades
from bot.exchange.derivatives import fetch_funding, fetch_position, fetch_trades_since
from bot.exchange.validate import number
from bot.risk.manager import Halt
from bot.store.store import Store

LOOKBACK_MS = 60_000  # trades and payments are read from a little before the last one booked (clock skew)


class PositionSync:
    """Keeps one derivative instrument's books equal to the exchange's account."""

    def __init__(self, client: Any, engine: Engine, store: Store, since_ms: int):
        self.client = client
        self.engine = engine
        self.store = store
        self.market = engine.market
        symbol = self.market.symbol
        db = store.db
        self.funding_refs = {r[0] for r in db.execute("SELECT ref FROM funding WHERE symbol = ? AND ref IS NOT NULL", [symbol])}
        self.funding_refs |= {r[0] for r in db.execute("SELECT ref FROM adjustments WHERE symbol = ? AND ref IS NOT NULL", [symbol])}
        last_funding = db.execute("SELECT max(ts) FROM funding WHERE symbol = ? AND ref IS NOT NULL", [symbol]).fetchone()[0]
        self.funding_since_ms = max(since_ms, int(last_funding) // 1_000_000 - LOOKBACK_MS) if last_funding else since_ms
        self.trade_ids = {r[0] for r in db.execute("SELECT trade_id FROM fills WHERE coalesce(symbol, ?) = ?", [symbol, symbol])}
        last_fill = db.execute("SELECT max(ts) FROM fills WHERE coalesce(symbol, ?) = ?", [symbol, symbol]).fetchone()[0]
        self.trades_since_ms = max(since_ms, int(last_fill) // 1_000_000 - LOOKBACK_MS) if last_fill else since_ms
        self.our_orders = {r[0] for r in db.execute("SELECT exchange_order_id FROM orders WHERE exchange_order_id IS NOT NULL")}
        self.exchange_position: Decimal | None = None

    async def sync(self) -> None:
        # the venue's finished work first, written: the books must hold every fill of our own
        # orders before anything else on the account is called foreign
        self.engine.poll(time.time_ns())
        self.store.flush()
        await self._funding()
        await self._position()
        self.store.flush()

    async def _funding(self) -> None:
        engine = self.engine
        for payment in await fetch_funding(self.client, self.market, self.funding_since_ms, "INSURANCE_CLEAR"):
            if payment.ref in self.funding_refs:
                continue
            self.funding_refs.add(payment.ref)
            engine.book_adjustment(payment.ts_ns, payment.amount, payment.ref, "liquidation clearance (INSURANCE_CLEAR): the loss capped at the margin")
        for payment in await fetch_funding(self.client, self.market, self.funding_since_ms):
            if payment.ref in self.funding_refs:
                continue
            self.funding_refs.add(payment.ref)
            engine.book_funding(payment.ts_ns, payment.amount, payment.currency, payment.ref)
            self.funding_since_ms = max(self.funding_since_ms, payment.ts_ns // 1_000_000 - LOOKBACK_MS)

    def _activity(self) -> tuple[int, int, bool]:
        engine = self.engine
        return engine.stats.orders, engine.stats.fills, engine.venue.has_pending

    async def _position(self) -> None:
        engine = self.engine
        pf = engine.portfolio
        before = self._activity()
        if before[2]:
            return
        position = await fetch_position(self.client, self.market)
        self.exchange_position = position.contracts
        if position.contracts == pf.qty or self._activity() != before:
            return  # equal, or our own order moved the position meanwhile: compare next time
        trades = await fetch_trades_since(self.client, self.market, self.trades_since_ms)
        if self._activity() != before:
            return
        self.store.flush()
        db = self.store.db
        self.our_orders |= {r[0] for r in db.execute("SELECT exchange_order_id FROM orders WHERE exchange_order_id IS NOT NULL")}
        symbol = self.market.symbol
        self.trade_ids |= {r[0] for r in db.execute("SELECT trade_id FROM fills WHERE coalesce(symbol, ?) = ? AND ts >= ?",
                                                     [symbol, symbol, self.trades_since_ms * 1_000_000])}
        foreign = [t for t in trades if isinstance(t, dict) and str(t.get("id")) not in self.trade_ids and str(t.get("order")) not in self.our_orders]
        for order_id in sorted({str(t.get("order")) for t in foreign}):
            group = [t for t in foreign if str(t.get("order")) == order_id]
            for t in group:
                number(t.get("price"), "fetch_my_trades", "price", positive=True)
                number(t.get("amount"), "fetch_my_trades", "amount", positive=True)
            cid = await self._client_id(order_id)
            fills = fills_from_trades(group, cid, self.market)
            kind = "liquidation" if cid.startswith("autoclose") or "liquidation" in cid else "external_fill"
            amount = sum((f.amount for f in fills), Decimal(0))
            now = time.time_ns()
            engine.book_external(fills, now, kind, f"order {order_id} ({cid}): {len(fills)} trade(s), {fills[0].side.value} {amount}")
            self.trade_ids |= {f.trade_id for f in fills}
        if position.contracts == pf.qty:
            return
        halt = engine.risk.halt
        if halt is not None and halt.rule in ("foreign_position", "position_mismatch"):
            return
        rule = "foreign_position" if pf.qty == 0 else "position_mismatch"
        detail = (f"the exchange holds {position.contracts} contracts of {self.market.symbol} that the bot did not open: left alone, no trading until an operator has looked"
                  if rule == "foreign_position" else
                  f"the books say {pf.qty} contracts, the exchange {position.contracts}, and no trade explains it: not traded, check the account")
        engine.risk.halt = Halt(rule, detail, None, flatten=False)
        engine._halt_changed(time.time_ns())

    async def _client_id(self, order_id: str) -> str:
        """The exchange's client id of an order the bot did not send (``autoclose-...``: a liquidation)."""
        try:
            info = await self.client.call("fetch_order", lambda: self.client.ccxt.fetch_order(order_id, self.market.symbol))
        except Exception:  # noqa: BLE001 - the trades are booked whatever the order lookup says
            return f"exchange-{order_id}"
        cid = (info or {}).get("clientOrderId") if isinstance(info, dict) else None
        return str(cid) if cid else f"exchange-{order_id}"
