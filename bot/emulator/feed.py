"""Market data sources of the emulator, paced on the wall clock.

* :class:`SimFeed` drives :class:`bot.data.sim.SimMarket`. Simulated time starts at the
  emulator's start (``start_ts_ns`` = wall clock then) and runs ``speed`` times as fast as the
  wall clock (default 1). Orders of the emulator's account that take liquidity call
  :meth:`SimFeed.take`, which runs ``SimMarket.take`` at the current simulated time and applies
  the resulting trades and book changes at once.
* :class:`ReplayFeed` replays recordings read by :func:`bot.data.binance.read_binance`, keeping
  their original inter-arrival gaps divided by ``speed``. Every event is stamped with the wall
  clock at the moment it is applied (so ``E``/``T`` in the streams and REST answers are "now",
  and clients' staleness checks behave). At the end of the recording the feed stops and the
  book stays frozen at its last state (``loop=False``, the default), or starts again from the
  beginning (``loop=True``; the recording's first snapshot then arrives as one large diff).
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Iterator, Sequence

from bot.config.settings import MarketSection, SimSection
from bot.core.events import MarketEvent
from bot.emulator.market import MarketState, now_ms

log = logging.getLogger("bot.emulator.feed")

_BATCH = 500  # events applied between yields to the event loop when behind schedule


class SimFeed:
    def __init__(self, market: MarketState, sim: SimSection, market_cfg: MarketSection, speed: float = 1.0) -> None:
        from bot.data.sim import SimMarket

        self.market = market
        self.speed = speed if speed > 0 else 1.0
        self.t0_wall = time.time_ns()
        self.t0_sim = self.t0_wall
        self.sim = SimMarket(sim, market_cfg, start_ts_ns=self.t0_sim)
        self.done = False
        market.apply_event(self.sim.snapshot(), now_ms())

    def sim_now_ns(self) -> int:
        return self.t0_sim + int((time.time_ns() - self.t0_wall) * self.speed)

    def _wall_of(self, sim_ns: int) -> float:
        return (self.t0_wall + (sim_ns - self.t0_sim) / self.speed) / 1e9

    def take(self, side: str, qty: Decimal) -> list[tuple[float, float, int]]:
        """Run a market order of ``qty`` in the simulator now; return [(price, size, public trade id)]."""
        fills = self.sim.take("buy" if side == "BUY" else "sell", float(qty), ts_ns=self.sim_now_ns())
        ids: list[int] = []
        ts = now_ms()
        for event in self.sim.pop_pending():
            trade = self.market.apply_event(event, ts, ours=True)
            if trade is not None:
                ids.append(trade.id)
        ids += [0] * (len(fills) - len(ids))
        return [(p, s, tid) for (p, s), tid in zip(fills, ids)]

    async def run(self) -> None:
        sim, market = self.sim, self.market
        while True:
            now = time.time()
            due = self._wall_of(sim.next_ts)
            if due > now:
                await asyncio.sleep(due - now)
                continue
            n = 0
            ts = now_ms()
            while self._wall_of(sim.next_ts) <= now and n < _BATCH:
                for event in sim.step():
                    market.apply_event(event, ts)
                n += 1
            if n >= _BATCH:
                await asyncio.sleep(0)


class ReplayFeed:
    def __init__(self, market: MarketState, paths: Sequence[str], speed: float = 1.0, loop: bool = False,
                 expect_symbol: str | None = None) -> None:
        self.market = market
        self.paths = list(paths)
        self.speed = speed if speed > 0 else 1.0
        self.loop = loop
        self.done = False
        self.passes = 0
        self.stats = None
        self._events = self._open(expect_symbol)

    def _open(self, expect_symbol: str | None) -> Iterator[MarketEvent]:
        """Open the recording and check it (raises RecordingError / ValueError before serving)."""
        from bot.data.binance import ReaderStats
        from bot.data.readers import read_events

        self.stats = ReaderStats()
        events = read_events(self.paths, None, self.stats)  # any format the readers detect
        first = next(events, None)
        if first is None:
            raise ValueError("the recording has no events")
        symbol = getattr(self.stats, "symbol", None)
        if expect_symbol and symbol and symbol.upper() != expect_symbol.upper():
            raise ValueError(f"recording is {symbol} but the emulator's symbol is {expect_symbol}: pass --symbol and the market rules that match the data")

        def chained() -> Iterator[MarketEvent]:
            yield first
            yield from events

        return chained()

    async def run(self) -> None:
        market = self.market
        while True:
            t0_wall: float | None = None
            t0_ev = 0
            n = 0
            for event in self._events:
                if t0_wall is None:
                    t0_wall = time.time()
                    t0_ev = event.ts_local
                due = t0_wall + (event.ts_local - t0_ev) / 1e9 / self.speed
                now = time.time()
                if due > now + 0.0005:
                    await asyncio.sleep(due - now)
                    n = 0
                market.apply_event(event, now_ms())
                n += 1
                if n >= _BATCH:
                    await asyncio.sleep(0)
                    n = 0
            self.passes += 1
            if not self.loop:
                self.done = True
                log.info("recording replayed to its end; the book stays at its last state")
                return
            self._events = self._open(None)

