"""The recorder behind ``bot record``: the live market of every configured instrument, into files.

Each instrument (``[market]``, or each of ``[[markets]]``) gets one
:class:`~bot.data.own_format.RecordingWriter` in the output directory, written on the writer
thread of the daemon's own recordings (:class:`bot.engine.recording.RecordingThread`: gzip
compression never delays the event loop that receives the next event), fed by the same
market-data path the daemon trades on:

* the order book and public trades from :class:`~bot.exchange.feed.LiveFeed` (ccxt.pro
  ``watch_order_book`` / ``watch_trades``, its integrity checks, REST fallback): every book update
  is one snapshot of the top ``exchange.book_levels`` levels, and every loss of the book (a
  websocket error or drop, a sequence break, a refused book) is a gap line (``G``) before the
  snapshot that resyncs it;
* on perpetuals, the mark price and funding (``watch_mark_price``, Binance ``<s>@markPrice@1s``;
  while that stream fails, one REST ``premiumIndex`` read per retry) and the forced orders
  (``watch_liquidations``, Binance ``<s>@forceOrder``), parsed by the same functions as the
  ``forceOrder`` / ``markPriceUpdate`` lines of a Binance recording (:mod:`bot.data.derivatives`).

Every event is stamped with the local receive time when it arrives and handed to the writer
thread at once: nothing is kept beyond that queue (bounded, ``MAX_BACKLOG``), so memory does not
grow with the recording. A watchdog invalidates (and so marks) a book that had no update for
``risk.max_book_age_s``, and errors in ccxt's websocket read callbacks make the feeds subscribe
afresh, as in the daemon. Nothing retryable ends the recorder; only :meth:`Recorder.stop` (the
CLI's SIGINT/SIGTERM), the duration, or a file that cannot be written does. Then the feeds stop
and every writer is closed (what is queued written, end marker, gzip trailer), before the
exchange connections are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.settings import Settings
from bot.core.events import BookInvalidated, BookSnapshot, MarketEvent
from bot.core.market import Market
from bot.data.derivatives import Reject, liquidation, mark_price
from bot.data.own_format import RecordingWriter
from bot.engine.recording import FLUSH_INTERVAL_S, RecordingThread, venue_symbol
from bot.engine.startup import startup_error
from bot.exchange.client import ExchangeClient
from bot.exchange.errors import backoff_s
from bot.exchange.feed import LiveFeed, callback_error, read_mark_price, receive_ns
from bot.log import get_logger

WATCH_INTERVAL_S = 0.25  # staleness checks, flushes and the duration, this often


class RecordError(Exception):
    """The recorder cannot start or must stop: one line for the operator."""


@dataclass
class Channel:
    """One instrument being recorded."""

    client: ExchangeClient
    market: Market
    writer: RecordingWriter  # written on the recording's thread; read here only for the status line
    lane: int = 0  # its index in the recording
    feed: LiveFeed | None = None
    last_event_ns: int = 0  # receive time of the last event written
    last_book_mono: float = 0.0  # when the last book update arrived (monotonic)
    stale_flagged: bool = False
    rejected: int = 0  # perpetual messages that could not be used
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return venue_symbol(self.market)


class Recorder:
    """Records until :meth:`stop` (or ``duration_s``); :meth:`run` raises :class:`RecordError`."""

    def __init__(self, settings: Settings, out_dir: str | Path, duration_s: float | None = None,
                 status: Callable[["Recorder"], None] | None = None, status_interval_s: float = 1.0):
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.duration_s = duration_s
        self.status = status
        self.status_interval_s = status_interval_s
        self.channels: list[Channel] = []
        self.recording: RecordingThread | None = None  # made once the markets are known
        self.started_mono = 0.0
        self.log = get_logger("bot.record")
        self._stop = asyncio.Event()
        self.stop_reason = ""
        self.error: str | None = None

    def stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.stop_reason = reason
            self.log.info("recorder stop requested", reason=reason)
            self._stop.set()

    # ------------------------------------------------------------------ totals
    @property
    def files(self) -> list[Path]:
        return [f for ch in self.channels for f in ch.writer.files]

    @property
    def events(self) -> int:
        return sum(ch.writer.events for ch in self.channels)

    @property
    def gaps(self) -> int:
        return sum(ch.writer.gaps for ch in self.channels)

    # ------------------------------------------------------------------ run
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        client: ExchangeClient | None = None
        try:
            try:
                client = ExchangeClient(self.settings)
            except Exception as exc:  # noqa: BLE001 - e.g. an exchange id ccxt does not know
                raise RecordError(str(startup_error(exc, self.settings, "the exchange client"))) from None
            starting = asyncio.ensure_future(self._start(client))
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not starting.done():  # stopped while loading the markets: nothing was recorded
                starting.cancel()
                await asyncio.gather(starting, return_exceptions=True)
                return
            starting.result()  # a start-up failure raises its RecordError here
            await self._record()
        finally:
            await self._shutdown(client)
            loop.set_exception_handler(previous_handler)
        if self.error is not None:
            raise RecordError(self.error)

    async def _start(self, client: ExchangeClient) -> None:
        """Every instrument's market from the exchange, and its writer; one line on any failure."""
        settings = self.settings
        try:
            clients = [client] + [client.for_instrument(i) for i in range(1, len(settings.instruments))]
            markets = [await c.load_market() for c in clients]
        except Exception as exc:  # noqa: BLE001 - every start-up failure is one line with its cause
            raise RecordError(str(startup_error(exc, settings, "load_markets"))) from None
        self.recording = RecordingThread(self.out_dir, "bot record")
        for lane, (c, market) in enumerate(zip(clients, markets)):
            # every instrument's files side by side in --out DIR (the README's names), not a directory each
            writer = self.recording.add(c.instrument.exchange, market, self.out_dir)
            self.channels.append(Channel(c, market, writer, lane))

    async def _record(self) -> None:
        self.started_mono = time.monotonic()
        for ch in self.channels:
            ch.feed = LiveFeed(ch.client, self._deliver_to(ch))
            ch.last_book_mono = time.monotonic()
            ch.feed.start()
            if ch.market.is_derivative:
                ch.tasks.append(asyncio.create_task(self._marks(ch), name=f"marks {ch.name}"))
                if self.settings.exchange.use_websocket:
                    ch.tasks.append(asyncio.create_task(self._liquidations(ch), name=f"liquidations {ch.name}"))
            self.log.info("recording", symbol=ch.market.symbol, out=str(self.out_dir), feed=ch.feed.mode)
        max_age = self.settings.risk.max_book_age_s
        next_flush = next_status = time.monotonic()
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=WATCH_INTERVAL_S)
            except TimeoutError:
                pass
            mono = time.monotonic()
            for ch in self.channels:
                if not ch.stale_flagged and mono - ch.last_book_mono > max_age and ch.feed is not None:
                    ch.stale_flagged = True
                    ch.feed.invalidate(f"stale book: no update for {mono - ch.last_book_mono:.1f}s")
            if mono >= next_flush:
                next_flush = mono + FLUSH_INTERVAL_S
                assert self.recording is not None
                self.recording.flush()
            self._check_recording()
            if self.status is not None and mono >= next_status:
                next_status = mono + self.status_interval_s
                self.status(self)
            if self.duration_s is not None and mono - self.started_mono >= self.duration_s:
                self.stop(f"--duration {self.duration_s:g}s elapsed")

    def _deliver_to(self, ch: Channel) -> Callable[[MarketEvent], None]:
        recording, lane = self.recording, ch.lane
        assert recording is not None

        def deliver(event: MarketEvent) -> None:
            if recording.closed or recording.failed is not None:
                return  # closed, or a file could not be written: nothing more goes to it
            recording.write(lane, event)  # queued: the writer thread compresses and writes it
            ch.last_event_ns = event.ts_local
            if isinstance(event, BookSnapshot):
                ch.last_book_mono = time.monotonic()
                ch.stale_flagged = False
            elif isinstance(event, BookInvalidated):
                ch.last_book_mono = time.monotonic()  # the feed is resyncing: give it max_book_age_s again

        return deliver

    def _check_recording(self) -> None:
        """A failed recording (a file that cannot be written) ends the recorder, naming the file."""
        recording = self.recording
        if recording is None or recording.failed is None or self.error is not None:
            return
        exc = recording.failure
        why = (getattr(exc, "strerror", None) or exc) if exc is not None else recording.failed
        self.error = f"{recording.failed_at or self.out_dir}: cannot write the recording ({why})"
        self.stop(self.error)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An error in an event-loop callback leaves a stream silent: as in the daemon
        (:func:`bot.exchange.feed.callback_error`), one log line and the feeds subscribe afresh."""
        callback_error(self.log, context, [ch.feed for ch in self.channels])

    # ------------------------------------------------------------------ perpetual streams
    async def _marks(self, ch: Channel) -> None:
        """Mark price and funding from ``<s>@markPrice@1s``; while it fails, read premiumIndex once per retry."""
        deliver, ex, symbol = self._deliver_to(ch), ch.client.ccxt, ch.market.symbol
        failures = 0
        while not self._stop.is_set():
            if self.settings.exchange.use_websocket:
                try:
                    ticker = await ex.watch_mark_price(symbol)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a stream error: read it over REST meanwhile, retry
                    failures += 1
                    self.log.info("mark price stream failed, retrying", symbol=symbol, error=type(exc).__name__, failures=failures)
                else:
                    info = ticker.get("info") if isinstance(ticker, dict) else None
                    try:
                        deliver(mark_price(info if isinstance(info, dict) else {}, receive_ns()))
                    except Reject as exc:
                        ch.rejected += 1
                        self.log.info("mark price message refused", symbol=symbol, detail=str(exc)[:160])
                    continue
            event = await read_mark_price(ch.client, symbol, self.log, "info")
            if event is not None:
                deliver(event)
            await asyncio.sleep(backoff_s(self.settings.exchange, failures) if failures else self.settings.exchange.mark_poll_interval_s)

    async def _liquidations(self, ch: Channel) -> None:
        """Forced orders from ``<s>@forceOrder`` (ccxt ``watch_liquidations``)."""
        deliver, ex, symbol, venue = self._deliver_to(ch), ch.client.ccxt, ch.market.symbol, ch.name.upper()
        failures = 0
        last: Any = None  # the last forced order delivered (an entry of ccxt's cache)
        while not self._stop.is_set():
            try:
                items = await ex.watch_liquidations(symbol)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried; NotSupported means this venue has no such stream
                if type(exc).__name__ == "NotSupported":
                    self.log.warning("no liquidation stream on this exchange: not recorded", symbol=symbol)
                    return
                failures += 1
                self.log.info("liquidation stream failed, retrying", symbol=symbol, error=type(exc).__name__, failures=failures)
                await asyncio.sleep(backoff_s(self.settings.exchange, failures))
                continue
            now = receive_ns()  # the feed's stamps: strictly increasing, so the recording replays in delivery order
            fresh, last = _new_since(getattr(ex, "liquidations", None), last, symbol, items)
            for item in fresh:
                info = item.get("info") if isinstance(item, dict) else None
                try:
                    deliver(liquidation({"o": info}, now, venue))
                except Reject as exc:
                    ch.rejected += 1
                    self.log.info("liquidation message refused", symbol=symbol, detail=str(exc)[:160])

    # ------------------------------------------------------------------ stop
    async def _shutdown(self, client: ExchangeClient | None) -> None:
        """Feeds first (no event can arrive after), then every writer, then the connections."""
        for ch in self.channels:
            for task in ch.tasks:
                task.cancel()
        tasks = [t for ch in self.channels for t in ch.tasks]
        feeds = [ch.feed.stop() for ch in self.channels if ch.feed is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*feeds, *tasks, return_exceptions=True), timeout=10.0)
        except TimeoutError:
            self.log.warning("a feed did not stop within 10 s; closing the files anyway")
        if self.recording is not None:
            await asyncio.to_thread(self.recording.close)  # writes what is queued: seconds behind a slow disk
            self._check_recording()
        if client is not None:
            try:
                await asyncio.wait_for(client.close(), timeout=5.0)
            except Exception as exc:  # noqa: BLE001 - the files are closed; the process ends anyway
                self.log.info("exchange connections did not close cleanly", error=type(exc).__name__)


def _new_since(cache: Any, last: Any, symbol: str, answer: Any) -> tuple[list[Any], Any]:
    """The forced orders of ``symbol`` that ccxt received after ``last``, oldest first, and the new ``last``.

    ccxt answers a watch with the one message that woke it; a message arriving before the next
    watch has nobody to wake and is only in its cache (``exchange.liquidations``, every symbol's,
    bounded). Reading the cache from the end back to the last one delivered loses none of them."""
    if cache is None or not hasattr(cache, "__reversed__"):
        items = answer if isinstance(answer, list) else []
        return items, (items[-1] if items else last)
    fresh = []
    for item in reversed(cache):
        if item is last:
            break
        if isinstance(item, dict) and item.get("symbol") == symbol:
            fresh.append(item)
    fresh.reverse()
    return fresh, (fresh[-1] if fresh else last)
