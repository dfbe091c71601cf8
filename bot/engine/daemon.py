"""The daemon: ``bot run`` trades the config's instruments in paper or live mode until it is told to stop.

Every instrument (``[market]``, or each of ``[[markets]]``) is a :class:`~bot.engine.lanes.Lane`
with its own feed, book, engine and venue; they share one account and its limits
(:class:`~bot.engine.account_engine.AccountEngine`), exactly as in a backtest.

Start-up order matters for money: take the instance locks (one daemon per database: a file
lock on the resolved path and a writer row inside the database), close earlier runs that died
without closing (``crashed``), load the market's precision from the exchange, rebuild the
positions from stored fills and the risk marks of today (:mod:`bot.engine.restore`), value a
carried position at the mid now (this run's ``initial_equity``; what it carried is stored with
the run), and in live mode reconcile every order an earlier run left unfinished with the
exchange (look it up by client order id, book the fills it got, cancel it if still open) and
read the free balances, before the first new decision. Any failure there is one line naming
its cause (:mod:`bot.engine.startup`); a run that was started and then fails is marked
``failed`` with the reason.

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
import gc
import os
import signal
import socket
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.config.settings import Settings
from bot.core.events import MarketEvent
from bot.engine.account_engine import AccountEngine
from bot.engine.engine import Engine
from bot.engine.daemon_stop import DaemonStop
from bot.engine.lanes import Lane, LaneError, account_state
from bot.engine.observer import Observer, ObserverHooks
from bot.engine.positions import PositionSync
from bot.engine.recording import RunRecorder
from bot.engine.restore import AccountMismatch, account_key, market_json, restore_account, restore_marks
from bot.engine.runner import git_revision, new_run_id
from bot.engine.startup import (
    HEARTBEAT_INTERVAL_S, DaemonError, InstanceLock, check_account, check_live_allowed, close_dead_runs, reconcile, startup_error,
)
from bot.exchange.client import ExchangeClient
from bot.exchange.derivatives import setup_market
from bot.exchange.feed import LiveFeed, callback_error, read_mark_price
from bot.execution.live import LiveVenue
from bot.execution.paper import PaperVenue
from bot.log import bind_run, get_logger, mask_secrets
from bot.store.schema import check_file
from bot.store.store import Store, StoreError, checkpoint

__all__ = ["Daemon", "DaemonError", "InstanceLock", "check_live_allowed"]

LOOP_INTERVAL_S = 0.05  # housekeeping cadence; market events reach the engine directly from the feed
CHECKPOINT_INTERVAL_S = 30.0  # WAL checkpoints, in a worker thread (see Store.manual_checkpoints)


class Daemon(DaemonStop, ObserverHooks):
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
        self.run_id = new_run_id()
        self.initial_equity = 0.0  # this run's own starting equity (carried position valued at the start)
        self.lanes: list[Lane] = []
        self.writer_lost = False
        self.host = socket.gethostname()
        self.observer: Observer | None = None  # bot.ops when [http] or [alerts] is set (the CLI attaches it)
        self.latencies: list[int] | None = None
        self.recorder: RunRecorder | None = None  # run.record_dir
        self.restored_at_ns = 0  # the wall clock the account was restored at (today's risk marks)

    def request_stop(self, reason: str) -> None:
        if not self.stop_requested.is_set():
            self.stop_reason = reason
            self.log.info("stop requested", reason=reason)
            self.stop_requested.set()

    async def run(self) -> int:
        """Trade until stopped; 0 on a clean stop. Raises :class:`DaemonError` (one line) when it
        cannot start or must stop; the run, if it was started, is then marked ``failed`` with the
        reason."""
        try:
            check_file(self.lock.db_path)  # before the lock file is made beside it
        except StoreError as exc:
            raise DaemonError(str(exc)) from None
        links = self.lock.db_path.stat().st_nlink if self.lock.db_path.exists() else 1
        if links > 1:
            # SQLite names its WAL after the path: under two names one file has two WALs, and a
            # writer under one name cannot see (or lock out) a writer under the other
            raise DaemonError(f"{self.lock.db_path} has {links} hard links: a daemon needs its database under one name only (remove the other links)")
        self.lock.acquire()
        try:
            return await self._run_locked()
        finally:
            self.lock.release()

    async def _run_locked(self) -> int:
        settings = self.settings
        bind_run(self.run_id, self.mode)
        loop = asyncio.get_running_loop()
        try:
            store = Store(self.lock.db_path, batch_size=settings.store.batch_size, synchronous=settings.store.synchronous)
        except StoreError as exc:
            raise DaemonError(str(exc)) from None
        try:
            client = ExchangeClient(settings)
        except Exception as exc:  # noqa: BLE001 - e.g. an exchange id ccxt does not know
            store.close()
            raise startup_error(exc, settings, "the exchange client") from None
        writer = store.writer_lock()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, signal.Signals(sig).name)
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        try:
            try:
                writer.acquire(self.run_id)
            except StoreError as exc:
                raise DaemonError(str(exc)) from None
            close_dead_runs(store, self.log)
            await self._session(store, client, writer)
        finally:
            writer.release()
            store.close()
            await client.close()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            loop.set_exception_handler(previous_handler)
        return 0

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Errors raised in event-loop callbacks: one log line, and the feeds resubscribe when it was
        a websocket frame the reader could not decode (:func:`bot.exchange.feed.callback_error`)."""
        callback_error(self.log, context, [lane.feed for lane in self.lanes])

    async def _start(self, store: Store, client: ExchangeClient) -> tuple[list[Lane], float, dict[str, Any] | None]:
        """Everything exchange-facing before the run row exists: every instrument's market, the
        account, the carried positions valued at the mid now. Failures become one DaemonError line."""
        settings = self.settings
        call = "load_markets"
        try:
            clients = [client] + [client.for_instrument(i) for i in range(1, len(settings.instruments))]
            markets = [await c.load_market() for c in clients]
            initial_equity = settings.risk.initial_equity
            if self.mode == "live":
                call = "set_leverage"
                for c, market in zip(clients, markets):
                    if market.is_derivative:
                        await setup_market(c, market)
                call = "fetch_balance"
                # a live account's equity is what the exchange holds, not a config number: size from it
                settle_free = (await client.free_balances()).get(markets[0].settle_currency)
                if settle_free:
                    initial_equity = float(settle_free)
            self.restored_at_ns = time.time_ns()
            try:
                account = restore_account(store, self.mode, markets, initial_equity, now_ns=self.restored_at_ns)
            except AccountMismatch as exc:
                raise DaemonError(f"{self.lock.db_path}: {exc}") from None
            lanes = [Lane(c, m, r) for c, m, r in zip(clients, markets, account.lanes)]
            start_equity = float(sum((lane.restored.portfolio.initial_cash for lane in lanes), Decimal(0)))
            carried: dict[str, Any] | None = None
            if account.previous_runs:
                call = "fetch_order_book"
                valued = [await lane.carried() for lane in lanes]
                start_equity = sum(equity for equity, _ in valued)
                held = [c for _, c in valued if c is not None]
                if len(lanes) == 1:
                    carried = {k: v for k, v in held[0].items() if k != "symbol"} if held else None
                elif held:
                    carried = {"instruments": held, "value": round(sum(c["value"] for c in held), 8)}
        except DaemonError:
            raise
        except LaneError as exc:
            raise DaemonError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - every start-up failure is one line with its cause
            raise startup_error(exc, settings, call) from None
        return lanes, start_equity, carried

    async def _session(self, store: Store, client: ExchangeClient, writer: Any) -> None:
        settings = self.settings
        status = "failed"
        reason = ""
        engine: AccountEngine | None = None
        lanes: list[Lane] = []
        started_run = False
        started = time.monotonic()
        try:
            lanes, start_equity, carried = await self._start(store, client)
            self.lanes = lanes
            key = account_key([lane.symbol for lane in lanes])
            if settings.run.record_dir:
                self.recorder = RunRecorder(settings.run.record_dir, self.run_id, f"bot run ({self.mode})")
                for lane in lanes:
                    self.recorder.add(lane.client.instrument.exchange, lane.market)
            store.start_run(
                self.run_id,
                mode=self.mode,
                config=settings.snapshot(),
                git_rev=git_revision(),
                data_files=[],
                initial_equity=start_equity,
                symbol=key,
                carried=carried,
                replay=self._replay_info(lanes),
            )
            started_run = True
            self.initial_equity = start_equity
            for lane in lanes:
                m = lane.market
                self.log.info("daemon started", db=str(self.db_path), symbol=m.symbol, tick=str(m.tick_size), lot=str(m.lot_size), position=str(lane.restored.portfolio.qty),
                              previous_runs=len(lane.restored.previous_runs), initial_equity=start_equity)
            for lane in lanes:
                if self.mode == "live":
                    try:
                        await reconcile(lane.client, store, lane.restored, self.run_id, self.log)
                        free = await check_account(lane.client, store, lane.restored.portfolio, self.run_id, self.log)
                    except DaemonError:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        raise startup_error(exc, settings, "reconcile") from None
                    lane.venue = LiveVenue(lane.client, lane.market, store, self.run_id, settings.exchange.rest_poll_interval_s)
                    lane.venue.take_balance(free)  # the answer check_account just read, after reconcile
                else:
                    lane.venue = PaperVenue(settings.execution, lane.market)
            # ``Engine`` looked up here, at call time: a benchmark instruments the daemon by replacing it
            engine = AccountEngine(settings, lambda i, _: lanes[i].venue, store, self.run_id,
                                   markets=[lane.market for lane in lanes], portfolios=[lane.restored.portfolio for lane in lanes],
                                   engine_class=Engine)
            for lane, lane_engine in zip(lanes, engine.lanes):
                lane.engine = lane_engine
            for lane in lanes:
                await self._prepare_lane(lane, store, key)
            restore_marks(engine, [lane.restored for lane in lanes])  # as a replay of the run does (bot compare)
            for i, lane in enumerate(lanes):
                lane.feed = LiveFeed(lane.client, self._deliver_to(lane, i))
            # Start-up built everything long-lived (ccxt's markets, config, engine): freezing it
            # keeps the garbage collector from re-scanning it in every full collection, which
            # otherwise lands as a multi-millisecond pause on whichever book update triggers it.
            await self._start_observer(engine, lanes)
            gc.collect()
            gc.freeze()
            loop = asyncio.get_running_loop()
            pollers = []
            for lane in lanes:
                assert lane.feed is not None
                lane.feed.start()
                if lane.market.is_derivative:
                    pollers.append(loop.create_task(self._poll_marks(lane), name=f"mark-price {lane.symbol}"))
                if lane.sync is not None:
                    pollers.append(loop.create_task(self._poll_positions(lane), name=f"positions {lane.symbol}"))
            try:
                await self._loop(engine, lanes, store, writer, started)
            finally:
                for task in pollers:
                    task.cancel()
                await asyncio.gather(*pollers, return_exceptions=True)
            if self.writer_lost:
                raise DaemonError(f"{self.lock.db_path}: another writer took the database over; this daemon stopped")
            if self.engine_error is not None:
                raise DaemonError(f"stopped by an engine error: {type(self.engine_error).__name__}: {mask_secrets(str(self.engine_error))[:300]}")
            status = "completed"
        except asyncio.CancelledError:
            status = "interrupted"
            raise
        except DaemonError as exc:
            reason = str(exc)
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {mask_secrets(str(exc))[:300]}"
            self.log.error("daemon failed", error=reason, exc_info=True)
            raise DaemonError(f"the daemon stopped on an unexpected error: {reason} (traceback in the log file)") from None
        finally:
            try:
                await self._shutdown(store, client, engine, lanes, status, reason, started, started_run)
            finally:
                await self._stop_observer(status, reason)

    def _replay_info(self, lanes: list[Lane]) -> dict[str, Any]:
        """What a replay of this run needs beyond its config (``runs.replay_json``): the exchange's
        markets, the earlier runs the account was restored from and when, the recording's place."""
        return {
            "markets": [market_json(lane.market) for lane in lanes],
            "previous_runs": lanes[0].restored.previous_runs,
            "restored_at_ns": self.restored_at_ns,
            "recording": None if self.recorder is None else {"dir": str(self.recorder.dir)},
        }

    async def _prepare_lane(self, lane: Lane, store: Store, key: str) -> None:
        """Live: the exchange pays funding and liquidates, so the engine models neither; on
        derivatives the exchange's position is compared with the books before trading. The
        venue's last check before a send is the risk manager's."""
        engine, venue = lane.engine, lane.venue
        assert engine is not None
        if self.mode != "live":
            return
        engine.funding = None  # the exchange pays funding: it is read from the account, never modelled
        engine.simulate_liquidation = False  # and liquidates: PositionSync books what it did
        if lane.market.is_derivative:
            first_start = store.db.execute("SELECT min(started_at) FROM runs WHERE mode = ? AND symbol = ?", [self.mode, key]).fetchone()[0]
            lane.sync = PositionSync(lane.client, engine, store, int((first_start or time.time()) * 1000))
            try:
                await lane.sync.sync()
            except DaemonError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise startup_error(exc, self.settings, "fetch_positions") from None
        if isinstance(venue, LiveVenue):
            risk, book = engine.risk, engine.book
            venue.guard = lambda order: risk.last_check(order, book)
            venue.tracker.price_check = lambda price: risk.fill_price_problem(price, book)

    async def _poll_marks(self, lane: Lane) -> None:
        """Derivatives: the mark price and funding schedule (premiumIndex) as MarkPrice events, so
        a paper account pays funding at the exchange's funding times and rates."""
        deliver = self._deliver_to(lane, self.lanes.index(lane))
        interval = self.settings.exchange.mark_poll_interval_s
        while not self.stop_requested.is_set():
            event = await read_mark_price(lane.client, lane.symbol, self.log)
            if event is not None:
                deliver(event)
            await asyncio.sleep(interval)

    async def _poll_positions(self, lane: Lane) -> None:
        """Live derivatives: compare the exchange's position and funding with the books (PositionSync)."""
        interval = self.settings.exchange.position_poll_interval_s
        sync, venue = lane.sync, lane.venue
        assert sync is not None
        while not self.stop_requested.is_set():
            await asyncio.sleep(interval)
            if venue.has_pending or self.engine_error is not None:
                continue  # an order in flight moves the position: compare once it is booked
            try:
                await sync.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - compared again next time
                self.log.warning("position check failed", symbol=lane.symbol, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])

    def _deliver_to(self, lane: Lane, index: int) -> Callable[[MarketEvent], None]:
        """The feed's callback: the engine decides inside the coroutine that received the update.

        An engine error stops the daemon (the loop re-raises it, the run ends ``failed``) instead
        of killing the feed's task; later events are dropped meanwhile. With ``run.record_dir``
        the event is recorded after the engine handled it (the decision does not wait for it).
        """
        engine, watch, recorder = lane.engine, lane.watch, self.recorder
        assert engine is not None

        def deliver(event: MarketEvent) -> None:
            if self.engine_error is not None:
                return
            watch.delivered += 1
            try:
                engine.on_event(event)
                latencies = self.latencies
                if latencies is not None:
                    latencies.append(time.time_ns() - event.ts_local)
            except Exception as exc:  # noqa: BLE001 - handed to the loop, which fails the run
                self.engine_error = exc
                self.request_stop(f"engine error: {type(exc).__name__}: {str(exc)[:200]}")
            if recorder is not None:
                recorder.write(index, event)  # never raises: a failure stops the recording, not the trading

        return deliver

    async def _loop(self, engine: AccountEngine, lanes: list[Lane], store: Store, writer: Any, started: float) -> None:
        """Housekeeping beside the feeds: venue results without market events, staleness, the
        unsound-book cancel, heartbeats and the run's duration, every ``LOOP_INTERVAL_S``."""
        settings = self.settings
        max_age_s = settings.risk.max_book_age_s
        max_age_ns = int(max_age_s * 1e9)
        duration = settings.run.duration_s
        cancel_on_unsound = settings.run.cancel_open_orders_on_unsound_book
        next_heartbeat = 0.0
        next_checkpoint = time.monotonic() + CHECKPOINT_INTERVAL_S
        while not self.stop_requested.is_set():
            try:
                await asyncio.wait_for(self.stop_requested.wait(), timeout=LOOP_INTERVAL_S)
            except TimeoutError:
                pass
            if self.stop_requested.is_set():
                break
            now = time.time_ns()
            for lane in lanes:
                assert lane.engine is not None
                lane.engine.poll(now)
                if lane.check_book(now, max_age_ns, max_age_s) and isinstance(lane.venue, LiveVenue) and cancel_on_unsound:
                    await lane.venue.cancel_open()
            mono = time.monotonic()
            if mono >= next_heartbeat:
                next_heartbeat = mono + HEARTBEAT_INTERVAL_S
                state = self._state(engine, lanes, now, started)
                store.record_heartbeat(self.run_id, state)
                if self.recorder is not None:
                    self.recorder.flush()
                self._observe(state, now)
                if not writer.refresh():
                    self.writer_lost = True
                    self.request_stop("another writer took the database over (its writer row is not ours): stopping")
            if mono >= next_checkpoint:
                next_checkpoint = mono + CHECKPOINT_INTERVAL_S
                try:
                    await asyncio.to_thread(checkpoint, self.db_path)
                except Exception as exc:  # noqa: BLE001 - the WAL just grows until the next try
                    self.log.warning("WAL checkpoint failed", error=f"{type(exc).__name__}: {exc}")
            if duration is not None and mono - started >= duration:
                self.request_stop(f"run.duration_s={duration} elapsed")

    def _state(self, engine: AccountEngine, lanes: list[Lane], now: int, started: float) -> dict[str, Any]:
        account = engine.account
        equity = account.equity()
        halt = engine.limits.halt
        state = {
            "mode": self.mode,
            "pid": os.getpid(),
            "host": self.host,
            "uptime_s": round(time.monotonic() - started, 1),
            "cash": str(account.cash),
            "equity": round(equity, 8),
            "pnl": round(equity - self.initial_equity, 8),
            "halt": None if halt is None else {"rule": halt.rule, "detail": halt.detail},
        }
        state.update(account_state(lanes, now))
        return state
