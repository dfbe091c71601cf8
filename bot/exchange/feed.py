"""Live market data as the engine's normalized events.

ccxt.pro's ``watch_order_book`` keeps the exchange book in sync itself (REST snapshot plus diffs,
checking update ids) and raises when the chain breaks. Each update is handed to the engine as a
:class:`BookSnapshot` of the top ``exchange.book_levels`` levels: a few dozen levels ten times
per second is cheap, and it keeps one code path for websocket and REST data.

Integrity checks on top of ccxt's: every level the bot uses must be a positive finite price and
a finite size (:func:`bot.exchange.validate.check_book`), the update id (``nonce``) must not go
backwards, and any watch error becomes a :class:`BookInvalidated` so the engine stops trading
until the book is rebuilt. A book that fails the checks is also dropped from ccxt's cache and
the websocket torn down: ccxt would otherwise keep applying diffs to the broken copy.

A websocket can also go quiet without an error: ccxt reads frames in an event-loop callback,
and a frame it cannot decode raises there, which ends its read loop while the connection stays
open (every watcher then waits forever). So :meth:`LiveFeed.websocket_broken` (called by the
daemon's loop exception handler) and :meth:`LiveFeed.invalidate` (called by the daemon's
staleness watchdog after ``risk.max_book_age_s`` without an update) fail every pending watch,
and the feed closes the connections and subscribes again.

After ``ws_failures_before_rest`` consecutive websocket failures the feed falls back to REST
polling and retries the websocket every 30 s; failures count as consecutive only while the
websocket never stayed healthy for ``exchange.ws_healthy_reset_s`` in between.

Events are handed to ``deliver`` (the daemon passes the engine's ``on_event``) inside the
coroutine that received them from ccxt, without a queue in between: a queue put a hop through
the event loop between the update and the decision (0.3 ms at the median, several ms behind a
burst of websocket messages), while the engine is synchronous and takes well under a millisecond.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import math

import ccxt

from bot.core.events import BookInvalidated, BookSnapshot, MarkPrice, MarketEvent, Trade
from bot.exchange.client import ExchangeClient
from bot.exchange.derivatives import mark_price_event
from bot.exchange.errors import backoff_s
from bot.exchange.validate import ExchangeResponseError, check_book
from bot.log import get_logger, mask_secrets

WS_RETRY_AFTER_REST_S = 30.0

_last_receive_ns = 0


def receive_ns() -> int:
    """The ``ts_local`` of a market event received now: the wall clock in ns, but strictly
    increasing across every feed of the process.

    The engine's clock is the events' ``ts_local``, and a recording (``run.record_dir``) is replayed
    in ``ts_local`` order: a wall clock stepped back (NTP) would otherwise reorder the replay or make
    the reader skip events, and two instruments' events stamped in the same nanosecond would
    merge in an order the run may not have seen. With every stamp distinct and taken just before
    its synchronous delivery, stamp order is delivery order.
    """
    global _last_receive_ns
    now = time.time_ns()
    if now <= _last_receive_ns:
        now = _last_receive_ns + 1
    _last_receive_ns = now
    return now


def callback_error(log: Any, context: dict[str, Any], feeds: Iterable["LiveFeed | None"]) -> None:
    """The event-loop exception handler's work, for the daemon and ``bot record`` alike.

    An error raised in an event-loop callback (a library's: ccxt's websocket reader on a frame it
    cannot decode raises in its read callback) ends that reader while the connection stays open,
    so the stream goes silent: log one line (no traceback on the console), and when it was such a
    decode error make every feed subscribe afresh (the instruments share the connections)."""
    exc = context.get("exception")
    what = f"{type(exc).__name__}: {exc}" if exc is not None else context.get("message", "")
    detail = mask_secrets(" ".join(str(what).split()))[:300]
    log.warning("error in an event-loop callback", detail=detail, where=str(context.get("message", ""))[:120])
    if "handle" in context and isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        for feed in feeds:
            if feed is not None:
                feed.websocket_broken(detail[:160])


async def read_mark_price(client: ExchangeClient, symbol: str, log: Any, level: str = "warning") -> MarkPrice | None:
    """One REST read of the mark price and funding (``fetch_funding_rate``: Binance premiumIndex)
    as a :class:`MarkPrice` stamped on receipt, for the daemon's mark poll and ``bot record``'s
    fallback while its stream fails. One attempt: the caller reads again at its next poll, so a
    failure is one log line at ``level`` and None, as is an answer without a usable mark."""
    try:
        info = await client.call("fetch_funding_rate", lambda: client.ccxt.fetch_funding_rate(symbol), attempts=1)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - read again next time
        getattr(log, level)("mark price read failed", symbol=symbol, error=type(exc).__name__, detail=mask_secrets(str(exc))[:200])
        return None
    return mark_price_event(info, receive_ns())


def snapshot_from_ccxt(book: dict[str, Any], levels: int, now_ns: int) -> BookSnapshot:
    ts = book.get("timestamp")
    return BookSnapshot(
        ts_local=now_ns,
        ts_exchange=int(ts) * 1_000_000 if ts else 0,
        bids=tuple((float(p), float(q)) for p, q, *_ in book["bids"][:levels]),
        asks=tuple((float(p), float(q)) for p, q, *_ in book["asks"][:levels]),
        sequence=int(book.get("nonce") or 0),
    )


class LiveFeed:
    """Hands market events to ``deliver`` as they arrive, until :meth:`stop`."""

    def __init__(self, client: ExchangeClient, deliver: Callable[[MarketEvent], None]):
        self.client = client
        self.deliver = deliver
        self.cfg = client.cfg
        self.log = get_logger("bot.feed")
        self.mode = "websocket" if self.cfg.use_websocket else "rest"
        self.last_sequence = 0
        self.invalidations = 0
        self.updates = 0
        self.teardowns = 0
        self.bad_trades = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._resync = asyncio.Event()
        self._stopping = False
        self._healthy_since = 0.0

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._books(), name="feed-books")]
        if self.cfg.use_websocket:
            self._tasks.append(asyncio.create_task(self._trades(), name="feed-trades"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def invalidate(self, reason: str) -> None:
        """Mark the book unusable now and make the feed rebuild it from scratch."""
        self._emit_invalid(reason)
        self._resync.set()
        self._fail_watchers(reason)

    def websocket_broken(self, reason: str) -> None:
        """Something broke ccxt's websocket reading (an exception in its callback): rebuild."""
        if self.mode == "websocket" and not self._stopping:
            self.invalidate(f"websocket broken: {reason}")

    def _fail_watchers(self, reason: str) -> None:
        """Fail every pending websocket watch, so a watcher blocked on a dead stream wakes up."""
        if self.mode != "websocket":
            return
        clients = getattr(self.client.ccxt, "clients", None) or {}
        for ws in list(clients.values()):
            error = ccxt.NetworkError(f"resync: {reason}")
            try:
                reset = getattr(ws, "reset", None)
                if reset is not None:
                    reset(error)
                else:
                    ws.reject(error)
            except Exception as exc:  # noqa: BLE001 - the teardown that follows closes it anyway
                self.log.info("could not fail a websocket's watchers", error=type(exc).__name__)

    def _emit_invalid(self, reason: str) -> None:
        self.invalidations += 1
        self.last_sequence = 0
        now = receive_ns()
        self.deliver(BookInvalidated(now, 0, reason))
        self.log.warning("book invalidated", reason=reason, feed=self.mode)

    def _emit_book(self, book: dict[str, Any]) -> None:
        now = receive_ns()
        try:
            check_book(book, "watch_order_book" if self.mode == "websocket" else "fetch_order_book", self.cfg.book_levels)
        except ExchangeResponseError as exc:
            self._emit_invalid(f"book refused: {exc}")
            self._resync.set()
            return
        snap = snapshot_from_ccxt(book, self.cfg.book_levels, now)
        if snap.sequence and self.last_sequence and snap.sequence < self.last_sequence:
            self._emit_invalid(f"update id went backwards: {snap.sequence} < {self.last_sequence}")
            self._resync.set()
            return
        self.last_sequence = snap.sequence or self.last_sequence
        self.updates += 1
        self.deliver(snap)

    async def _books(self) -> None:
        failures = 0
        while not self._stopping:
            if self.mode == "websocket":
                try:
                    await self._watch_books()
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure means: resync
                    healthy = self._healthy_since and time.monotonic() - self._healthy_since >= self.cfg.ws_healthy_reset_s
                    failures = 1 if healthy else failures + 1
                    self._healthy_since = 0.0
                    self._emit_invalid(f"websocket book failed: {type(exc).__name__}: {mask_secrets(str(exc))[:160]}")
                    await self._teardown()
                    if failures >= self.cfg.ws_failures_before_rest:
                        self.mode = "rest"
                        self.log.warning("falling back to REST polling", failures=failures)
                    await asyncio.sleep(backoff_s(self.cfg, failures))
            else:
                await self._poll_books()
                if self.cfg.use_websocket:
                    self.mode = "websocket"
                    failures = 0
                    self.log.info("retrying websocket market data")

    async def _watch_books(self) -> None:
        """Consume websocket updates until an error or a resync request."""
        ex = self.client.ccxt
        symbol = self.client.symbol
        self._resync.clear()
        while not self._stopping:
            book = await ex.watch_order_book(symbol)
            if self._resync.is_set():
                # a stale or broken book: close the connection and drop ccxt's cached book, so
                # the next watch subscribes afresh and rebuilds it from a new snapshot
                self._resync.clear()
                self._healthy_since = 0.0
                await self._teardown()
                continue
            if not self._healthy_since:
                self._healthy_since = time.monotonic()
            self._emit_book(book)

    async def _teardown(self) -> None:
        """Close the websocket connections and forget ccxt's cached book."""
        ex = self.client.ccxt
        self.teardowns += 1
        # no un_watch: it waits for the exchange to confirm the unsubscribe, on a connection whose
        # reader may be dead; closing the connection ends every subscription on it anyway
        try:
            await asyncio.wait_for(ex.close_ws_clients(), timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - a connection that will not close is dropped below
            self.log.info("websocket close failed", error=type(exc).__name__)
            clients = getattr(ex, "clients", None)
            if isinstance(clients, dict):
                clients.clear()
        ob = getattr(ex, "orderbooks", {})
        if isinstance(ob, dict):
            ob.pop(self.client.symbol, None)

    async def _poll_books(self) -> None:
        """REST fallback: poll the book at ``rest_poll_interval_s`` for up to 30 s, then retry websockets."""
        deadline = time.monotonic() + WS_RETRY_AFTER_REST_S
        self._resync.clear()
        while not self._stopping and (not self.cfg.use_websocket or time.monotonic() < deadline):
            try:
                self._emit_book(await self.client.fetch_order_book())
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._emit_invalid(f"REST book failed: {type(exc).__name__}: {str(exc)[:160]}")
            await asyncio.sleep(self.cfg.rest_poll_interval_s)

    async def _trades(self) -> None:
        ex = self.client.ccxt
        failures = 0
        while not self._stopping:
            try:
                trades = await ex.watch_trades(self.client.symbol)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - trades are informational: log and retry
                failures += 1
                self.log.info("trade stream failed, retrying", error=type(exc).__name__, failures=failures)
                await asyncio.sleep(backoff_s(self.cfg, failures))
                continue
            now = receive_ns()
            for t in trades:
                try:
                    price, amount = float(t["price"]), float(t["amount"])
                    ts = int(t.get("timestamp") or 0)
                    trade_id = int(t.get("id") or 0)
                except (KeyError, TypeError, ValueError):
                    price = amount = math.nan
                if not (0.0 < price < math.inf and 0.0 < amount < math.inf):
                    self.bad_trades += 1
                    continue
                self.deliver(Trade(now, ts * 1_000_000, price, amount, "sell" if t.get("side") == "sell" else "buy", trade_id))
