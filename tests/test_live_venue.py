"""Orders whose create request is still on its way: never sent twice, never guessed REJECTED.

The bot's own :class:`ExchangeClient` and :class:`LiveVenue` against the in-process emulator,
through the real ccxt client over HTTP. The emulator's ``slow`` fault holds a request before
handling it, so the client times out while the request can still be executed: exactly the case
where an early "not found" lookup followed by a re-send would trade twice.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from bot.config.settings import load_settings
from bot.core.orders import Order, OrderStatus, Side
from bot.exchange.client import ExchangeClient
from bot.execution.live import LiveVenue
from bot.store.store import Store
from emulator_helpers import admin, emulator, wait_for

TIMEOUT_MS = 500
RECV_WINDOW_MS = 2_000  # the client settles a "not found" 3 s (window + 1 s margin) after signing


def _settings(emu, **exchange):
    cfg = {
        "rest_url": emu.base_url,
        "timeout_ms": TIMEOUT_MS,
        "recv_window_ms": RECV_WINDOW_MS,
        "retry_attempts": 3,
        "retry_base_delay_s": 0.05,
        "rest_poll_interval_s": 0.1,
        "api_key": emu.api_key,
        "api_secret": emu.api_secret,
        **exchange,
    }
    return load_settings(None, exchange=cfg, market={"exchange": "binance", "symbol": "BTC/USDT"}, run={"mode": "live"})


def _client(emu, **exchange) -> ExchangeClient:
    return ExchangeClient(_settings(emu, **exchange))


def _order(cid: str) -> Order:
    return Order(cid, time.time_ns(), Side.BUY, Decimal("0.002"), reason="test")


async def _hold_next_request(emu, seconds: float) -> None:
    """Hold the next REST request ``seconds`` before it is handled; later requests are served at once."""
    emu.set_faults(f"slow=1@{seconds}")

    async def clear_once_held() -> None:
        await wait_for(lambda: emu.faults.injected.get("slow", 0) >= 1, timeout=60.0, interval=0.005)
        emu.set_faults("")

    asyncio.get_running_loop().create_task(clear_once_held())


async def _state(emu) -> dict:
    status, state = await admin(emu, "GET", "/admin/state")
    assert status == 200
    return state


async def _orders_with(emu, cid: str) -> list[dict]:
    return [o for o in (await _state(emu))["orders"] if o["clientOrderId"] == cid]


async def _all_requests_answered(emu) -> None:
    """Wait until the emulator has answered every REST request it received (the held one too)."""

    async def done() -> bool:
        state = await _state(emu)
        return state["requests"] == sum(state["statuses"].values())  # admin calls are not counted

    deadline = 60.0
    while deadline > 0:
        if await done():
            return
        await asyncio.sleep(0.05)
        deadline -= 0.05
    raise AssertionError("the emulator never answered the held request")


async def _create_through_a_hold(cid: str, hold_s: float) -> tuple[dict, Order, list[dict]]:
    """``create_order`` whose first request the emulator holds ``hold_s``: (the answer, the order,
    the exchange's orders with that id once the held request has been handled)."""
    async with emulator() as emu:
        client = _client(emu)
        try:
            await client.load_market()
            order = _order(cid)
            await _hold_next_request(emu, hold_s)
            info = await client.create_order(order)
            assert emu.faults.injected.get("slow") == 1
            await _all_requests_answered(emu)
            return info, order, await _orders_with(emu, cid)
        finally:
            await client.close()


async def test_a_late_create_is_found_not_sent_again():
    """Held 1.2 s (inside the 2 s recvWindow): the client times out after 0.5 s, the exchange still
    executes it. The client must find it rather than send the same order again."""
    info, _, orders = await _create_through_a_hold("late-but-accepted", 1.2)
    assert info["status"] == "closed" and info["clientOrderId"] == "late-but-accepted", info
    assert len(orders) == 1, f"sent twice: {orders}"


async def test_a_create_that_can_no_longer_arrive_is_sent_again_once():
    """Held 2.5 s (outside the 2 s recvWindow): the exchange refuses it when it finally handles it.
    Only after the window has passed is "not found" final, and the order is sent again, once."""
    signed_first = time.time_ns()  # the first request is signed after this
    info, order, orders = await _create_through_a_hold("refused-then-resent", 2.5)
    assert info["status"] == "closed", info
    assert len(orders) == 1, f"sent twice: {orders}"
    # the order the exchange holds is the re-send, and it was accepted only after the first
    # request's acceptance window (recvWindow + the 1 s margin) had passed: the protocol's rule,
    # whatever the machine's speed
    assert orders[0]["time"] * 1_000_000 >= signed_first + (RECV_WINDOW_MS + 1000) * 1_000_000


@pytest.mark.parametrize("hold_s, expected", [(1.2, OrderStatus.FILLED), (2.5, OrderStatus.REJECTED)])
async def test_shutdown_settles_an_order_whose_request_is_in_flight(tmp_path, hold_s, expected):
    """Shutdown cancels the order's task mid-request. ``settle`` must find out what the exchange
    did: FILLED (with its fills) when the request got through, REJECTED only once it cannot."""
    async with emulator() as emu:
        client = _client(emu, timeout_ms=5_000)  # the request is cut by the shutdown, not a timeout
        store = Store(tmp_path / "bot.db")
        try:
            market = await client.load_market()
            store.start_run("run-1", mode="live", config={}, git_rev=None, data_files=[], initial_equity=10_000.0, symbol=market.symbol)
            venue = LiveVenue(client, market, store, "run-1", poll_interval_s=0.1)
            order = _order("in-flight-at-shutdown")
            await _hold_next_request(emu, hold_s)
            venue.submit(order, order.ts)
            assert await wait_for(lambda: emu.faults.injected.get("slow", 0) >= 1, timeout=60.0)
            await venue.close()  # the daemon's shutdown: the order's task is cancelled mid-request
            assert order.status is OrderStatus.NEW and order.exchange_order_id is None
            unresolved = await venue.settle(cancel_if_open=True, timeout_s=15.0)
            assert unresolved == []
            done = venue.on_book(None, time.time_ns())  # type: ignore[arg-type]
            assert [(o.client_order_id, o.status) for o, _ in done] == [(order.client_order_id, expected)]
            on_exchange = await _orders_with(emu, order.client_order_id)
            if expected is OrderStatus.FILLED:
                fills = done[0][1]
                assert len(on_exchange) == 1 and on_exchange[0]["status"] == "FILLED"
                assert sum(f.amount for f in fills) == order.amount == Decimal(on_exchange[0]["executedQty"])
            else:
                assert on_exchange == [], "refused by recvWindow: the exchange must not have it"
            assert not venue.active or venue.on_book(None, 0) == []  # type: ignore[arg-type]
            # the write-ahead row exists; the engine records the final state from ``done``
            assert store.db.execute("SELECT status FROM orders WHERE client_order_id = ?", [order.client_order_id]).fetchone()[0] == "new"
        finally:
            store.close()
            await client.close()


async def test_restart_waits_for_a_request_the_dead_run_left_in_flight(tmp_path):
    """A run died (kill -9) while its create request was still on the way. The restart's
    reconcile must not call the order REJECTED because a first lookup finds nothing: the request
    executes 1.5 s later, and the order, its fills and the position must be taken over."""
    from bot.engine.daemon import Daemon
    from bot.engine.restore import restore
    from bot.engine.startup import reconcile

    async with emulator() as emu:
        settings = _settings(emu, timeout_ms=5_000)
        dead_client = ExchangeClient(settings)
        client = ExchangeClient(settings)
        store = Store(tmp_path / "bot.db")
        try:
            market = await client.load_market()
            await dead_client.load_market()
            # the dead run: its order was written ahead, sent, and the process died mid-request
            store.start_run("dead-run", mode="live", config={}, git_rev=None, data_files=[], initial_equity=10_000.0, symbol=market.symbol)
            order = _order("dead-run-1")
            store.record_order("dead-run", order)
            store.record_heartbeat("dead-run", {})
            store.flush()
            await _hold_next_request(emu, 1.5)
            in_flight = asyncio.ensure_future(dead_client.create_order(order))
            assert await wait_for(lambda: emu.faults.injected.get("slow", 0) >= 1, timeout=60.0)
            in_flight.cancel()  # the process is gone; its request is not
            await asyncio.gather(in_flight, return_exceptions=True)

            daemon = Daemon(settings, tmp_path / "bot.db", live=True)
            restored = restore(store, "live", market, 10_000.0)
            assert [r["client_order_id"] for r in restored.open_orders] == [order.client_order_id]
            store.start_run(daemon.run_id, mode="live", config={}, git_rev=None, data_files=[], initial_equity=10_000.0, symbol=market.symbol)
            await reconcile(client, store, restored, daemon.run_id, daemon.log)
            await _all_requests_answered(emu)

            status, filled = store.db.execute(
                "SELECT status, filled FROM orders WHERE client_order_id = ?", [order.client_order_id]
            ).fetchone()
            on_exchange = await _orders_with(emu, order.client_order_id)
            assert len(on_exchange) == 1 and on_exchange[0]["status"] == "FILLED", on_exchange
            assert status == "filled" and Decimal(filled) == Decimal(on_exchange[0]["executedQty"]), (status, filled)
            fills = store.db.execute("SELECT amount FROM fills WHERE client_order_id = ?", [order.client_order_id]).fetchall()
            assert sum(Decimal(a) for (a,) in fills) == order.amount
            assert restored.portfolio.qty == order.amount
        finally:
            store.close()
            await client.close()
            await dead_client.close()
