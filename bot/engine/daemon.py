"""The daemon: ``bot run`` trades one symbol in paper or live mode until it is told to stop.

Start-up order matters for money: take the instance lock (one daemon per database), load the
market's precision from the exchange, rebuild the position from stored fills, and in live mode
reconcile every order an earlier run left unfinished with the exchange (look it up by client
order id, book the fills it got, cancel it if still open) before the first new decision.

Running: market events from the feed go through the same :class:`Engine` as a backtest. A
watchdog invalidates the book when no update arrived for ``risk.max_book_age_s``, so trading
halts while the data is stale and resumes once the feed has rebuilt the book. Once a second the
live state (position, book age, halts) is written to the store for ``bot status``.

Stopping: SIGINT or SIGTERM ends the loop; open orders are cancelled or kept per
``run.cancel_open_orders_on_exit``, in-flight orders are followed to a final state (bounded); an
order whose request was cut mid-flight is looked up until the exchange has it or can no longer
accept it (``exchange.recv_window_ms``), so it ends with the exchange's state or REJECTED, never
guessed. Then the store is flushed and the run closed, and the process exits 0. The position is
kept: a restart resumes it. A restart after a crash applies the same rule to orders the dead run
left unconfirmed, counting the window from that run's last heartbeat.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.config.settings import Settings
from bot.core.events import MarketEvent
from bot.core.orders import Order, OrderStatus, Side
from bot.engine.engine import Engine
from bot.engine.restore import restore
from bot.engine.runner import git_revision, new_run_id
from bot.exchange.client import ExchangeClient
from bot.exchange.feed import LiveFeed
from bot.execution.live import FINAL, LiveVenue, OrderTracker
from bot.execution.paper import PaperVenue
from bot.log import bind_run, get_logger
from bot.store.store import Store, checkpoint


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class InstanceLock:
    """An exclusive ``flock`` on ``<db>.lock``: a second daemon on the same database refuses to start.

    The kernel drops the lock when the process dies (even by ``kill -9``), so a stale lock file
    never blocks a restart.
    """

    def __init__(self, db_path: Path):
        self.path = Path(str(db_path) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DaemonError(f"another bot instance (pid {holder}) is running on {self.path.with_suffix('')}; stop it first or use another run.db") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_live_allowed(settings: Settings, live_flag: bool) -> None:
    """Live trading needs three independent yeses: the config, the command line and the keys."""
    if settings.run.mode == "live" and not live_flag:
        raise DaemonError("config says mode = \"live\" but the command line lacks --live: refusing to trade real money")
    if live_flag and settings.run.mode != "live":
        raise DaemonError(f"--live given but the config says mode = {settings.run.mode!r}: set run.mode = \"live\"")
    if settings.run.mode == "live" and (settings.exchange.api_key is None or settings.exchange.api_secret is None):
        raise DaemonError("live mode needs BOT__EXCHANGE__API_KEY and BOT__EXCHANGE__API_SECRET in the environment or .env")
    if settings.run.mode == "backtest":
        raise DaemonError("run.mode is \"backtest\": use `bot backtest`, or a paper/live config for `bot run`")
    if settings.store.synchronous == "off":
        raise DaemonError('store.synchronous = "off" is for backtests: a power loss could corrupt the database of a running daemon; use "normal" or "full"')


LOOP_INTERVAL_S = 0.05  # housekeeping cadence; market events reach the engine directly from the feed
CHECKPOINT_INTERVAL_S = 30.0  # WAL checkpoints, in a worker thread (see Store.manual_checkpoints)
HEARTBEAT_INTERVAL_S = 1.0  # live state for ``bot status``; also bounds when a dead run last sent
SETTLE_EXTRA_S = 10.0  # shutdown: time for settling in-flight orders beyond their acceptance window


class Daemon:
    def __init__(self, settings: Settings, db_path: str | Path, live: bool = False):
        check_live_allowed(settings, live)
        self.settings = settings
        self.mode = settings.run.mode
        self.db_path = Path(db_path)
        self.lock = InstanceLock(self.db_path)
        self.log = get_logger("bot.daemon")
        self.stop_requested = asyncio.Event()
        self.stop_reason = ""
        self.engine_error: BaseException | None = None
        self.events_delivered = 0
        self.run_id = new_run_id()

    def request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.log.info("stop requested", reason=reason)
            self.stop_requested.set()

    async def run(self) -> int:
        self.lock.acquire()
        try:
            return await self._run_locked()
        finally:
            self.lock.release()

    async def _run_locked(self) -> int:
        settings = self.settings
        bind_run(self.run_id, self.mode)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        store = Store(self.db_path, batch_size=settings.store.batch_size, synchronous=settings.store.synchronous)
        store.manual_checkpoints()  # the housekeeping loop checkpoints in a worker thread, off the order path
        client = ExchangeClient(settings)
        status = "failed"
        engine: Engine | None = None
        feed: LiveFeed | None = None
        venue: Any = None
        started = time.monotonic()
        try:
            market = await client.load_market()
            initial_equity = settings.risk.initial_equity
            if self.mode == "live":
                # a live account's equity is what the exchange holds, not a config number: size from it
                balance = await client.fetch_balance()
                quote_total = (balance.get(market.quote) or {}).get("total")
                if quote_total:
                    initial_equity = float(quote_total)
            restored = restore(store, self.mode, market.symbol, initial_equity)
            store.start_run(
                self.run_id,
                mode=self.mode,
                config=settings.snapshot(),
                git_rev=git_revision(),
                data_files=[],
                initial_equity=float(restored.portfolio.initial_cash),
                symbol=market.symbol,
            )
            self.log.info("daemon started", db=str(self.db_path), symbol=market.symbol, tick=str(market.tick_size), lot=str(market.lot_size), position=str(restored.portfolio.qty), previous_runs=len(restored.previous_runs))
            if self.mode == "live":
                await self._reconcile(client, store, restored)
                venue = LiveVenue(client, market, store, self.run_id, settings.exchange.rest_poll_interval_s)
            else:
                venue = PaperVenue(settings.execution, market)
            engine = Engine(settings, market, venue, store, self.run_id, portfolio=restored.portfolio, peak_equity=restored.peak_equity)
            if not restored.portfolio.is_flat:
                pf = restored.portfolio
                pf.stop_price, pf.take_profit_price = engine.risk.protective_prices(pf.qty, pf.avg_price)
            feed = LiveFeed(client, self._deliver_to(engine))
            # Start-up built everything long-lived (ccxt's markets, config, engine): freezing it
            # keeps the garbage collector from re-scanning it in every full collection, which
            # otherwise lands as a multi-millisecond pause on whichever book update triggers it.
            gc.collect()
            gc.freeze()
            feed.start()
            await self._loop(engine, feed, venue, store, started)
            if self.engine_error is not None:
                raise self.engine_error
            status = "completed"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        finally:
            if feed is not None:
                await feed.stop()
            if isinstance(venue, LiveVenue):
                if settings.run.cancel_open_orders_on_exit:
                    cancelled = await venue.cancel_open()
                    self.log.info("open orders cancelled on exit", count=cancelled)
                await venue.drain(timeout_s=5.0)
                await venue.close()
                await venue.settle(
                    cancel_if_open=settings.run.cancel_open_orders_on_exit,
                    timeout_s=client.acceptance_window_ns / 1e9 + SETTLE_EXTRA_S,
                )
            if engine is not None:
                engine.poll(time.time_ns())
                engine.checkpoint()
            stats: dict[str, Any] = {"wall_time_s": round(time.monotonic() - started, 3), "stop_reason": self.stop_reason}
            if engine is not None:
                stats.update(engine.run_stats())
            if feed is not None:
                stats["source"] = {"source": "exchange", "feed_mode": feed.mode, "book_updates": feed.updates, "invalidations": feed.invalidations}
            stats["exchange_calls"], stats["exchange_retries"] = client.calls, client.retries
            try:
                store.finish_run(self.run_id, status=status, stats=stats)
            finally:
                store.close()
                await client.close()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            self.log.info("daemon stopped", status=status, reason=self.stop_reason)
        return 0

    def _deliver_to(self, engine: Engine) -> Callable[[MarketEvent], None]:
        """The feed's callback: the engine decides inside the coroutine that received the update.

        An engine error stops the daemon (the loop re-raises it, the run ends ``failed``) instead
        of killing the feed's task; later events are dropped meanwhile.
        """

        def deliver(event: MarketEvent) -> None:
            if self.engine_error is not None:
                return
            self.events_delivered += 1
            try:
                engine.on_event(event)
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which fails the run
                self.engine_error = exc
                self.request_stop(f"engine error: {type(exc).__name__}: {str(exc)[:200]}")

        return deliver

    async def _loop(self, engine: Engine, feed: LiveFeed, venue: Any, store: Store, started: float) -> None:
        """Housekeeping beside the feed: venue results without market events, staleness, the
        unsound-book cancel, heartbeats and the run's duration, every ``LOOP_INTERVAL_S``."""
        settings = self.settings
        max_age_ns = int(settings.risk.max_book_age_s * 1e9)
        duration = settings.run.duration_s
        next_heartbeat = 0.0
        next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
        stale_flagged = False
        was_sound = False
        seen = self.events_delivered
        while not self.stop_requested.is_set():
            try:
                await asyncio.wait_for(self.stop_requested.wait(), timeout=LOOP_INTERVAL_S)
            except TimeoutError:
                pass
            if self.stop_requested.is_set():
                break
            if self.events_delivered != seen:
                seen = self.events_delivered
                stale_flagged = False
            now = time.time_ns()
            engine.poll(now)
            book = engine.book
            if book.is_sound and book.age_ns(now) > max_age_ns and not stale_flagged:
                stale_flagged = True
                feed.invalidate(f"stale book: no update for {book.age_ns(now) / 1e9:.1f}s")
            if was_sound and not book.is_sound and isinstance(venue, LiveVenue) and settings.run.cancel_open_orders_on_unsound_book:
                await venue.cancel_open()
            was_sound = book.is_sound
            mono = time.monotonic()
            if mono >= next_heartbeat:
                next_heartbeat = mono + HEARTBEAT_INTERVAL_S
                store.record_heartbeat(self.run_id, self._state(engine, venue, feed, now, started))
            if mono >= next_checkpoint:
                next_checkpoint = mono + CHECKPOINT_INTERVAL_S
                try:
                    await asyncio.to_thread(checkpoint, self.db_path)
                except Exception as exc:  # noqa: BLE001 - the WAL just grows until the next try
                    self.log.warning("WAL checkpoint failed", error=f"{type(exc).__name__}: {exc}")
            if duration is not None and mono - started >= duration:
                self.request_stop(f"run.duration_s={duration} elapsed")

    def _state(self, engine: Engine, venue: Any, feed: LiveFeed, now: int, started: float) -> dict[str, Any]:
        pf = engine.portfolio
        mid = engine.last_mid
        equity = pf.equity(mid) if mid == mid else float(pf.cash)
        halt = engine.risk.halt
        return {
            "mode": self.mode,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - started, 1),
            "position": str(pf.qty),
            "avg_price": str(pf.avg_price),
            "cash": str(pf.cash),
            "equity": round(equity, 8),
            "pnl": round(equity - float(pf.initial_cash), 8),
            "mid": None if not math.isfinite(mid) else mid,
            "book_status": engine.book.status.value,
            "book_age_s": round(engine.book.age_ns(now) / 1e9, 3) if engine.book.last_update_ts else None,
            "feed_mode": feed.mode,
            "halt": None if halt is None else {"rule": halt.rule, "detail": halt.detail},
            "open_orders": [o.client_order_id for o in getattr(venue, "_inflight", {}).values()],
            "orders": engine.stats.orders,
            "fills": engine.stats.fills,
        }

    async def _reconcile(self, client: ExchangeClient, store: Store, restored: Any) -> None:
        """Resolve every order an earlier run left unfinished, before trading (live mode)."""
        market = client.market
        assert market is not None
        tracker = OrderTracker(client, market)
        for row in restored.open_orders:
            order = Order(row["client_order_id"], int(row["ts"]), Side(row["side"]), _dec(row["amount"]), reason=row["reason"] or "")
            order.exchange_order_id = row["exchange_order_id"]
            booked = {r[0] for r in store.db.execute("SELECT trade_id FROM fills WHERE run_id = ? AND client_order_id = ?", [row["run_id"], order.client_order_id]).fetchall()}
            tracker.booked_trades[order.client_order_id] = set(booked)
            order.filled = sum((_dec(r[0]) for r in store.db.execute("SELECT amount FROM fills WHERE run_id = ? AND client_order_id = ?", [row["run_id"], order.client_order_id]).fetchall()), _dec("0"))
            if order.exchange_order_id is None:  # a request may still be on its way: wait until it cannot be
                info = await client.lookup_settled(order.client_order_id, self._last_send_bound(store, row))
            else:
                info = await client.fetch_order(order.client_order_id)
            if info is None:
                order.status = OrderStatus.REJECTED
                detail = "never reached the exchange (not found after its acceptance window)"
                fills = []
            else:
                if info.get("status") == "open":
                    await client.cancel_order(order.client_order_id)
                    info = await client.fetch_order(order.client_order_id) or info
                fills = await tracker.refresh(order, info)
                if order.status not in FINAL:
                    order.status = OrderStatus.CANCELED
                detail = f"exchange status {info.get('status')}, {len(fills)} fill(s) recovered"
            for fill in fills:
                restored.portfolio.apply(fill)
                store.record_fill(row["run_id"], fill)
            store.record_order(row["run_id"], order)
            store.record_risk_event(self.run_id, time.time_ns(), "reconcile", order.status.value, f"{order.client_order_id}: {detail}")
            self.log.warning("reconciled order from an earlier run", client_order_id=order.client_order_id, status=order.status.value, fills=len(fills), detail=detail)
        restored.portfolio.closed.clear()
        if restored.open_orders:
            store.record_position(self.run_id, time.time_ns(), restored.portfolio.qty, restored.portfolio.avg_price, restored.portfolio.realized_pnl, restored.portfolio.cash, restored.portfolio.fees)
        store.flush()
        balance = await client.fetch_balance()
        base_total = (balance.get(market.base) or {}).get("total")
        self.log.info("exchange balances at start", base=market.base, base_total=base_total, quote=market.quote, quote_total=(balance.get(market.quote) or {}).get("total"), position=str(restored.portfolio.qty))
        if base_total is not None and restored.portfolio.qty > 0 and _dec(str(base_total)) < restored.portfolio.qty:
            store.record_risk_event(self.run_id, time.time_ns(), "reconcile", "balance_mismatch", f"stored position {restored.portfolio.qty} exceeds exchange {market.base} balance {base_total}")
            self.log.error("stored position exceeds the exchange balance", position=str(restored.portfolio.qty), balance=base_total)

    @staticmethod
    def _last_send_bound(store: Store, row: dict[str, Any]) -> int:
        """Wall-clock ns by which the run that wrote ``row`` had signed its last request.

        A run sends only while its loop runs, and its loop writes a heartbeat every
        ``HEARTBEAT_INTERVAL_S``: it was gone within about one interval after its last heartbeat
        (or its end, if it ended). One more interval of slack covers a slow last iteration.
        """
        heartbeat = store.heartbeat(row["run_id"]) or {}
        ended = store.db.execute("SELECT ended_at FROM runs WHERE run_id = ?", [row["run_id"]]).fetchone()
        last_alive_s = max(float(heartbeat.get("ts") or 0.0), float((ended or [None])[0] or 0.0))
        return max(int(row["ts"]), int((last_alive_s + 2 * HEARTBEAT_INTERVAL_S) * 1e9))


def _dec(value: Any):  # noqa: ANN202
    from decimal import Decimal

    return Decimal(str(value))
