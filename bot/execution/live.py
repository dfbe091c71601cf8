"""Real orders through the exchange client, behind the same synchronous venue interface as paper.

The engine is synchronous; the exchange is not. ``submit`` only registers the order (the engine
makes no new decision while it is in flight) and starts its task. The task first writes the
order to the store and commits (write-ahead: a crash after sending can never leave an order the
database does not know), then sends it and follows it to a final state, reading fills from the
exchange's own trade list. ``on_book`` hands finished work back to the engine on its next event.
Committing in the task rather than in ``submit`` keeps the commit (0.1-0.5 ms) off the path from
book update to decision; it still precedes the request, and an order whose record cannot be
written is never sent (it ends REJECTED).

Order state machine (exchange status -> ours): open -> NEW or PARTIALLY_FILLED (by filled
amount), closed -> FILLED, canceled -> CANCELED, expired -> EXPIRED, rejected or a refused
create -> REJECTED. Fills are keyed by exchange trade id, so polling twice never books one twice.

Every answer about an order is checked against what was sent before anything of it is booked
(:mod:`bot.exchange.validate`: symbol, client id, side, amount, executed amount within the order
and never decreasing, positive finite prices). An answer that fails is an exchange fault: it is
logged with the call and the field, counted in ``faults``, never booked, and the order is looked
up again by client id (as for an unknown outcome) until a sane answer comes.

Before an order is sent, the risk manager's last check (``guard``) refuses anything larger than
the caps, whatever state led to it. Exits are sized by the engine against ``available``: the
free balances the exchange reported after the last order finished (or was refused).

An order whose create may or may not have reached the exchange (the lookup failed, or shutdown
cancelled the request) is never guessed: it is looked up by client id until the exchange knows it
or the request's acceptance window has passed (:meth:`ExchangeClient.lookup_settled`); only then
is "not found" turned into REJECTED. :meth:`LiveVenue.settle` does this at shutdown, so a stopped
daemon leaves no order the database calls ``new`` while the exchange never saw it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import ccxt

from bot.book.book import OrderBook
from bot.core.events import MarketEvent
from bot.core.market import Market
from bot.core.orders import Fill, Order, OrderStatus, SentIds, Side
from bot.exchange.client import ExchangeClient, ExchangeFailure, OrderOutcomeUnknown, fills_from_trades
from bot.exchange.validate import ExchangeResponseError, check_fee_value, check_order_info, check_trades
from bot.log import get_logger, mask_secrets
from bot.store.store import Store, StoreError

FINAL = {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}


def status_from_exchange(info: dict[str, Any], filled: Decimal) -> OrderStatus:
    status = info.get("status")
    if status == "closed":
        return OrderStatus.FILLED
    if status == "canceled":
        return OrderStatus.CANCELED
    if status == "expired":
        return OrderStatus.EXPIRED
    if status == "rejected":
        return OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.NEW


class OrderTracker:
    """Follows one order on the exchange and turns the exchange's trades into new fills."""

    def __init__(self, client: ExchangeClient, market: Market):
        self.client = client
        self.market = market
        self.booked_trades: dict[str, set[str]] = {}
        self.seen_filled: dict[str, Decimal] = {}  # the executed amount the exchange last reported
        self.price_check: Callable[[float], str | None] | None = None  # the risk manager's fill-price rule

    def forget(self, client_order_id: str) -> None:
        self.booked_trades.pop(client_order_id, None)
        self.seen_filled.pop(client_order_id, None)

    async def refresh(self, order: Order, info: dict[str, Any] | None = None, call: str = "fetch_order") -> list[Fill]:
        """Update ``order`` from the exchange; return fills not booked before.

        Raises :class:`ExchangeResponseError` (nothing booked, ``order`` unchanged) when an
        answer contradicts the order."""
        if info is None:
            info = await self.client.fetch_order(order.client_order_id)
            if info is None:
                return []
        cid = order.client_order_id
        market = self.market
        filled = check_order_info(info, order, market.symbol, self.seen_filled.get(cid, Decimal(0)), call, market.exchange_symbol)
        exchange_id = str(info.get("id")) if info.get("id") is not None else order.exchange_order_id
        if order.exchange_order_id is not None and exchange_id != order.exchange_order_id:
            raise ExchangeResponseError(call, "id", f"order id changed from {order.exchange_order_id} to {exchange_id}")
        booked = self.booked_trades.setdefault(cid, set())
        new: list[Fill] = []
        if filled > order.filled and exchange_id:
            trades = check_trades(
                await self.client.fetch_order_trades(exchange_id), order, market.symbol, exchange_id, "fetch_my_trades",
                market.exchange_symbol, market.base, market.quote,
            )
            fresh = [t for t in trades if str(t.get("id")) not in booked]
            check = self.price_check
            if check is not None:
                for i, t in enumerate(fresh):
                    problem = check(float(t["price"]))
                    if problem is not None:
                        raise ExchangeResponseError("fetch_my_trades", f"trades[{i}].price", problem)
            prices = await self._fee_prices(fresh)
            new = fills_from_trades(fresh, cid, self.market, prices)
            for i, fill in enumerate(new):
                check_fee_value(fill.fee_in_quote, fill.price, fill.amount, "fetch_my_trades", f"trades[{i}].fee")
            total = order.filled + sum((f.amount for f in new), Decimal(0))
            if total > order.amount:
                raise ExchangeResponseError("fetch_my_trades", "amount", f"trades add up to {total}, beyond the order's {order.amount}")
            if len({f.trade_id for f in new}) != len(new):
                raise ExchangeResponseError("fetch_my_trades", "id", "the same trade id twice in one answer")
        order.exchange_order_id = exchange_id
        self.seen_filled[cid] = filled
        for fill in new:
            booked.add(fill.trade_id)
        order.filled += sum((f.amount for f in new), Decimal(0))
        status = status_from_exchange(info, filled)
        if status in FINAL and order.filled < filled:
            status = OrderStatus.PARTIALLY_FILLED  # trades not visible yet: poll again
        order.status = status
        if status is OrderStatus.REJECTED:
            order.reject_reason = order.reject_reason or "the exchange reports the order rejected"
        return new

    async def _fee_prices(self, trades: list[dict[str, Any]]) -> dict[str, Decimal]:
        """Market prices of the fee assets that are neither base nor quote (e.g. BNB)."""
        market = self.market
        assets = {((t.get("fee") or {}).get("currency")) for t in trades if (t.get("fee") or {}).get("cost") is not None}
        assets -= {market.base, market.quote, None}
        return {asset: await self.client.fee_asset_price(asset) for asset in sorted(assets)}


class LiveVenue:
    """Sends orders to the exchange; the engine sees results on its next event."""

    def __init__(self, client: ExchangeClient, market: Market, store: Store, run_id: str, poll_interval_s: float):
        self.client = client
        self.market = market
        self.store = store
        self.run_id = run_id
        self.poll_interval_s = poll_interval_s
        self.tracker = OrderTracker(client, market)
        self.log = get_logger("bot.venue.live")
        self._inflight: dict[str, Order] = {}
        self._done: list[tuple[Order, list[Fill]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent = SentIds()
        self._cancelling: set[str] = set()
        self.failures = 0
        self.faults = 0  # exchange answers that failed validation
        self.guard: Callable[[Order], str | None] | None = None
        self._free: dict[str, Decimal] | None = None
        self.balance_generation = 0  # +1 with every balance answer taken (the risk manager compares them)
        self._balance_asked = 0
        self._balance_taken = 0
        self._recheck: asyncio.Task[None] | None = None

    def available(self, asset: str) -> Decimal | None:
        """Free ``asset`` as the exchange last reported it (None: not known)."""
        free = self._free
        return None if free is None else free.get(asset)

    async def refresh_balance(self) -> None:
        """Ask the exchange what is free now. Answers are taken in the order they were asked for:
        one that arrives after a newer one is dropped (two orders finishing together). On failure
        the last answer is dropped too (no cap known: exits are sized to the position, and the
        exchange still refuses excess)."""
        self._balance_asked += 1
        asked = self._balance_asked
        try:
            free: dict[str, Decimal] | None = await self.client.free_balances()
        except Exception as exc:  # noqa: BLE001
            free = None
            self.log.warning("balance refresh failed", error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
        if asked > self._balance_taken:
            self._balance_taken = asked
            self.take_balance(free)

    def take_balance(self, free: dict[str, Decimal] | None) -> None:
        """Use ``free`` (an answer of :meth:`ExchangeClient.free_balances`) for exit sizing."""
        self._free = free
        self.balance_generation += 1

    def abandon(self) -> list[Order]:
        """None: the exchange's orders outlive the process (the daemon settles them at shutdown)."""
        return []

    def bind_position(self, position) -> None:  # type: ignore[no-untyped-def]
        """Nothing to enforce here: the exchange checks reduce-only against its own position."""

    def recheck_balance(self) -> None:
        """Read the balance again in the background (the risk manager doubts the one it has)."""
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.get_running_loop().create_task(self.refresh_balance(), name="balance-recheck")
            self._tasks.add(self._recheck)
            self._recheck.add_done_callback(self._tasks.discard)

    async def _finish_after_balance(self, order: Order, fills: list[Fill]) -> None:
        """Hand a final order to the engine once the balance it moved or unlocked is known (the
        next exit is sized by it). The hand-over happens even if this task is cancelled while it
        waits (shutdown): fills already taken from the exchange are never dropped."""
        try:
            await self.refresh_balance()
        finally:
            self._finish(order, fills)

    def _is_resting(self, order: Order) -> bool:
        return (
            order.order_type != "market"
            and order.exchange_order_id is not None
            and order.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)
            and order.client_order_id not in self._cancelling
        )

    @property
    def has_pending(self) -> bool:
        """Orders or cancels in flight, or results the engine has not collected yet."""
        return bool(self._done) or any(not self._is_resting(o) for o in self._inflight.values())

    @property
    def active(self) -> bool:
        return bool(self._inflight) or bool(self._done)

    def resting(self, side: Side) -> Order | None:
        for order in self._inflight.values():
            if order.side is side and self._is_resting(order):
                return order
        return None

    def cancel(self, client_order_id: str, now: int) -> None:
        """Cancel by client id in the background; the order's own task reports the final state."""
        if client_order_id not in self._inflight or client_order_id in self._cancelling:
            return
        self._cancelling.add(client_order_id)

        async def send_cancel() -> None:
            try:
                await self.client.cancel_order(client_order_id)
            except Exception as exc:  # noqa: BLE001 - the order task keeps polling; retry on the next decision
                self._cancelling.discard(client_order_id)
                self.log.warning("cancel failed", client_order_id=client_order_id, error=type(exc).__name__, detail=str(exc)[:200])

        task = asyncio.get_running_loop().create_task(send_cancel(), name=f"cancel-{client_order_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def submit(self, order: Order, now: int) -> None:
        if order.client_order_id in self._sent:
            raise ValueError(f"duplicate client order id {order.client_order_id}: refusing to send it twice")
        self._sent.add(order.client_order_id)
        self._inflight[order.client_order_id] = order
        problem = self.guard(order) if self.guard is not None else None
        if problem is not None:  # never sent: the engine sees it REJECTED on its next event
            order.status = OrderStatus.REJECTED
            order.reject_reason = f"refused before sending by the risk manager's last check: {problem}"
            self.log.error("order refused by the last check", client_order_id=order.client_order_id, amount=str(order.amount), detail=problem)
            self._finish(order, [])
            return
        task = asyncio.get_running_loop().create_task(self._drive(order), name=f"order-{order.client_order_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_book(self, book: OrderBook, now: int, event: MarketEvent | None = None) -> list[tuple[Order, list[Fill]]]:
        if not self._done:
            return []
        done, self._done = self._done, []
        return done

    async def _drive(self, order: Order) -> None:
        try:
            try:
                self.store.record_order(self.run_id, order)
                self.store.flush()  # write-ahead: the order is on disk before it can reach the exchange
            except StoreError as exc:
                self.failures += 1
                order.status = OrderStatus.REJECTED
                self.log.error("order not sent: its write-ahead record failed", client_order_id=order.client_order_id, error=str(exc)[:300])
                self._finish(order, [])
                return
            try:
                info = await self.client.create_order(order)
            except OrderOutcomeUnknown as exc:
                self.failures += 1
                self.log.error("order outcome unknown; looking it up until settled", client_order_id=order.client_order_id, detail=mask_secrets(str(exc))[:300])
                self._resume_later(order)
                return
            except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest, ExchangeFailure) as exc:
                self.failures += 1
                order.status = OrderStatus.REJECTED
                order.reject_reason = f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}"
                self.log.warning("order refused by the exchange", client_order_id=order.client_order_id, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
                await self._finish_after_balance(order, [])
                return
            call = "create_order"
            while True:
                fills = await self.tracker.refresh(order, info, call)
                if order.status in FINAL:
                    await self._finish_after_balance(order, fills)
                    return
                if fills:
                    self._done.append((order, fills))
                await asyncio.sleep(self.poll_interval_s)
                info, call = None, "fetch_order"
        except asyncio.CancelledError:
            raise
        except ExchangeResponseError as exc:
            self._fault(order, exc)
            self._resume_later(order)
        except Exception as exc:  # noqa: BLE001 - the order stays pending; reconciliation resolves it
            self.failures += 1
            self.log.error("lost track of order; it stays open until reconciled", client_order_id=order.client_order_id, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
            self._resume_later(order)

    def _fault(self, order: Order, exc: ExchangeResponseError) -> None:
        """An answer that contradicts the order: nothing of it was booked; look the order up again."""
        self.faults += 1
        self.failures += 1
        self.log.error(
            "exchange answer refused: not booked, the order is looked up again",
            client_order_id=order.client_order_id, call=exc.call, field=exc.field, detail=mask_secrets(str(exc))[:300],
        )

    async def _look_up(self, order: Order) -> list[Fill]:
        """One refresh of an order; one never confirmed by the exchange is looked up until settled,
        and ends REJECTED if the exchange cannot have it."""
        info = None
        if order.exchange_order_id is None:
            info = await self.client.lookup_settled(order.client_order_id, order.sent_ns)
            if info is None:
                order.status = OrderStatus.REJECTED
                order.reject_reason = "never reached the exchange (not found after its acceptance window)"
                self.log.warning("order never reached the exchange (not found after its acceptance window)", client_order_id=order.client_order_id)
                return []
        return await self.tracker.refresh(order, info)

    def _resume_later(self, order: Order) -> None:
        async def again() -> None:
            await asyncio.sleep(max(self.poll_interval_s, 1.0))
            try:
                fills = await self._look_up(order)
            except ExchangeResponseError as exc:
                self._fault(order, exc)
                self._resume_later(order)
                return
            except Exception as exc:  # noqa: BLE001
                self.log.warning("order lookup failed", client_order_id=order.client_order_id, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
                self._resume_later(order)
                return
            if order.status in FINAL:
                await self._finish_after_balance(order, fills)
            else:
                if fills:
                    self._done.append((order, fills))
                self._resume_later(order)

        task = asyncio.get_running_loop().create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finish(self, order: Order, fills: list[Fill]) -> None:
        self._inflight.pop(order.client_order_id, None)
        self.tracker.forget(order.client_order_id)  # final: no trade of it can come again
        self._cancelling.discard(order.client_order_id)
        self._done.append((order, fills))

    async def cancel_open(self) -> int:
        """Cancel every order still open on the exchange; return how many were cancelled."""
        n = 0
        for order in list(self._inflight.values()):
            try:
                if await self.client.cancel_order(order.client_order_id) is not None:
                    n += 1
            except Exception as exc:  # noqa: BLE001
                self.log.warning("cancel failed", client_order_id=order.client_order_id, error=type(exc).__name__)
        return n

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) for in-flight orders to reach a final state."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def settle(self, *, cancel_if_open: bool, timeout_s: float) -> list[str]:
        """After :meth:`close`: resolve every order still in flight; return the ids left unresolved.

        An order the exchange never confirmed is looked up until settled (REJECTED if it cannot be
        there; its state and fills if it is). One found open is cancelled when ``cancel_if_open``,
        else kept (the next start reconciles it). Lookup failures leave the order to the next
        start's reconcile, as does running out of ``timeout_s``; both are logged.
        """

        async def one(order: Order) -> None:
            try:
                fills = await self._look_up(order)
                if cancel_if_open and order.status not in FINAL:
                    await self.client.cancel_order(order.client_order_id)
                    fills += await self.tracker.refresh(order)
            except Exception as exc:  # noqa: BLE001 - the next start reconciles it
                self.log.error("order unresolved at shutdown; the next start reconciles it", client_order_id=order.client_order_id, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
                return
            if order.status in FINAL:
                self._finish(order, fills)
            elif fills:
                self._done.append((order, fills))

        pending = list(self._inflight.values())
        if pending:
            tasks = [asyncio.ensure_future(one(order)) for order in pending]
            _, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        unresolved = [o.client_order_id for o in self._inflight.values() if o.exchange_order_id is None]
        kept = [o.client_order_id for o in self._inflight.values() if o.exchange_order_id is not None]
        if unresolved:
            self.log.error("orders of unknown outcome left for the next start's reconcile", client_order_ids=unresolved)
        if kept:
            self.log.info("orders left open on the exchange; the next start reconciles them", client_order_ids=kept)
        return unresolved
