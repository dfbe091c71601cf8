"""How a daemon stops (part of :class:`~bot.engine.daemon.Daemon`): feeds first, then every
instrument's in-flight orders settled with the exchange, the last position sync, the final
checkpoint, and the run closed with its stats, whatever failed before."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.engine.account_engine import AccountEngine
from bot.engine.lanes import Lane, sum_faults
from bot.exchange.client import ExchangeClient
from bot.execution.live import LiveVenue
from bot.log import mask_secrets
from bot.store.store import Store, StoreError

SETTLE_EXTRA_S = 10.0  # shutdown: time for settling in-flight orders beyond their acceptance window


class DaemonStop:
    settings: Any
    log: Any
    mode: str
    run_id: str
    stop_reason: str
    recorder: Any

    async def _shutdown(self, store: Store, client: ExchangeClient, engine: AccountEngine | None, lanes: list[Lane],
                        status: str, reason: str, started: float, started_run: bool) -> None:
        """Stop the feeds, settle orders, checkpoint and close the run (only if it was started)."""
        try:
            for lane in lanes:
                if lane.feed is not None:
                    await lane.feed.stop()
            if self.recorder is not None:
                self.recorder.close()  # every event is delivered by now; never raises
            # every instrument's in-flight orders settle at once: each may wait out its acceptance window
            settled = await asyncio.gather(*(self._settle(lane, client) for lane in lanes if isinstance(lane.venue, LiveVenue)), return_exceptions=True)
            failed = next((r for r in settled if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
            if engine is not None:
                now = time.time_ns()
                for lane in lanes:
                    assert lane.engine is not None
                    lane.engine.poll(now)
                    if lane.sync is not None and not lane.venue.has_pending:
                        await lane.sync.sync()  # the last funding and any liquidation, before the run closes
                    lane.engine.abandon_orders()  # paper orders still in flight end with the run
                engine.checkpoint()
        except Exception as exc:  # noqa: BLE001 - the run must still be closed
            reason = reason or f"shutdown: {type(exc).__name__}: {mask_secrets(str(exc))[:200]}"
            status = "failed" if status == "completed" else status
            self.log.error("shutdown step failed", error=f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}")
        if not started_run:
            self.log.info("daemon stopped before its run started", reason=reason or self.stop_reason)
            return
        stats: dict[str, Any] = {"wall_time_s": round(time.monotonic() - started, 3), "stop_reason": reason or self.stop_reason}
        if engine is not None:
            stats.update(engine.run_stats())
        feeds = [lane.feed for lane in lanes if lane.feed is not None]
        if feeds:
            stats["source"] = {
                "source": "exchange", "feed_mode": ",".join(sorted({f.mode for f in feeds})),
                "book_updates": sum(f.updates for f in feeds), "invalidations": sum(f.invalidations for f in feeds),
                "teardowns": sum(f.teardowns for f in feeds),
            }
        if self.recorder is not None:
            self.recorder.close()  # (a shutdown step failed before the feeds stopped)
            stats["recording"] = self.recorder.stats()
        if self.mode == "live":
            stats["exchange_faults"] = sum_faults(lanes)
        clients = [lane.client for lane in lanes] or [client]
        stats["exchange_calls"], stats["exchange_retries"] = sum(c.calls for c in clients), sum(c.retries for c in clients)
        try:
            store.finish_run(self.run_id, status=status, stats=stats)
        except StoreError as exc:
            self.log.error("the run could not be closed", error=str(exc)[:300])
            store.discard_pending()
            try:
                store.mark_crashed(self.run_id, time.time(), f"the run could not be closed: {exc}")
            except Exception as again:  # noqa: BLE001 - the next start marks it crashed
                self.log.error("the run could not be marked crashed either; the next start will", error=str(again)[:200])
        self.log.info("daemon stopped", status=status, reason=reason or self.stop_reason)

    async def _settle(self, lane: Lane, client: ExchangeClient) -> None:
        venue, settings = lane.venue, self.settings
        if settings.run.cancel_open_orders_on_exit:
            cancelled = await venue.cancel_open()
            self.log.info("open orders cancelled on exit", symbol=lane.symbol, count=cancelled)
        await venue.drain(timeout_s=5.0)
        await venue.close()
        await venue.settle(
            cancel_if_open=settings.run.cancel_open_orders_on_exit,
            timeout_s=client.acceptance_window_ns / 1e9 + SETTLE_EXTRA_S,
        )
