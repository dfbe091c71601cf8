"""The live feed's websocket failure count, with the real ccxt client against the emulator.

Failures count as consecutive (``ws_failures_before_rest`` of them switch to REST polling) only
when the websocket never stayed healthy for ``ws_healthy_reset_s`` in between: three drops
minutes apart must not end the websocket, two drops in a row must.
"""

from __future__ import annotations

import time

from bot.config.settings import load_settings
from bot.core.events import BookInvalidated, BookSnapshot
from bot.exchange.client import ExchangeClient
from bot.exchange.feed import LiveFeed
from emulator_helpers import admin, emulator
from waiting import eventually


def _settings(emu, healthy_reset_s: float):
    return load_settings(None, run={"mode": "paper"}, exchange={
        "rest_url": emu.base_url, "ws_failures_before_rest": 2, "ws_healthy_reset_s": healthy_reset_s,
        "retry_base_delay_s": 0.05, "retry_max_delay_s": 0.2, "rest_poll_interval_s": 0.1,
    })


async def _session(emu, healthy_reset_s: float, drops: int, wait_healthy: bool) -> LiveFeed:
    client = ExchangeClient(_settings(emu, healthy_reset_s))
    await client.load_market()
    events: list = []
    feed = LiveFeed(client, events.append)
    feed.start()
    try:
        def snapshots() -> int:
            return sum(isinstance(e, BookSnapshot) for e in events)

        await eventually(lambda: snapshots() >= 1, "the first book")
        for _ in range(drops):
            if wait_healthy:
                await eventually(lambda: feed._healthy_since and time.monotonic() - feed._healthy_since > healthy_reset_s * 1.5,
                                 "the websocket to stay healthy past ws_healthy_reset_s")
            invalid, books = sum(isinstance(e, BookInvalidated) for e in events), snapshots()
            status, _ = await admin(emu, "POST", "/admin/ws_drop")
            assert status == 200
            await eventually(lambda: sum(isinstance(e, BookInvalidated) for e in events) > invalid, "the drop to invalidate the book")
            await eventually(lambda: snapshots() > books, "a book again after the drop")
        return feed
    finally:
        await feed.stop()
        await client.close()


async def test_drops_apart_keep_the_websocket_drops_in_a_row_fall_back_to_rest():
    async with emulator() as emu:
        apart = await _session(emu, healthy_reset_s=0.3, drops=3, wait_healthy=True)
        assert apart.mode == "websocket", "three drops with healthy periods between are not consecutive failures"
        in_a_row = await _session(emu, healthy_reset_s=60.0, drops=2, wait_healthy=False)
        assert in_a_row.mode == "rest", "two drops in a row reach ws_failures_before_rest"
