"""Recordings written on a writer thread: ``run.record_dir`` (the daemon) and ``bot record``.

Every market event an instrument's engine receives is written, exactly as delivered and in
delivery order, by one :class:`~bot.data.own_format.RecordingWriter` per instrument under
``<record_dir>/<run id>/`` (the bot's own recording format, hourly files). The run row names the
directory (``runs.replay_json``), so ``bot compare --run ID`` finds it, and ``bot backtest
--data`` replays it. ``bot record`` (:mod:`bot.cli.recorder`) writes through the same
:class:`RecordingThread`, its files side by side in ``--out DIR``.

The decision path only hands the event over: after the engine has handled it, ``write`` puts
it on a queue (well under a microsecond) and a writer thread encodes, compresses and writes it.
Compressing a book snapshot at gzip level 6 takes 0.1 ms at the median and several ms when
deflate emits a block; in the event loop's thread that would delay the next event's receipt
(``benchmarks/bench_ops.py --setting record``). zlib and file writes release the GIL, so the
thread costs the loop little. One queue for every instrument keeps the delivery order.

A recording that fails (a full disk, a removed directory, a writer so far behind that its queue
passes ``MAX_BACKLOG`` events) is logged once and stops, with the reason kept for the run's
stats (``recording.failed``); trading goes on. A cut-off recording still reads up to its last
flush, and ``bot compare`` names the failure as a divergence source. ``bot record`` instead
ends on a failure, naming the file (``failed_at``, ``failure``).
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from bot.core.events import MarketEvent
from bot.core.market import Market
from bot.data.own_format import Header, RecordingWriter
from bot.log import get_logger

FLUSH_INTERVAL_S = 1.0  # a crash loses at most this much of the recording
MAX_BACKLOG = 200_000  # events queued but not yet written: beyond this the recording gives up (memory)
CLOSE_TIMEOUT_S = 60.0

_FLUSH, _STOP = object(), object()


def recording_dir(record_dir: str | Path, run_id: str) -> Path:
    """Where the recording of run ``run_id`` goes."""
    return Path(record_dir) / run_id


def venue_symbol(market: Market) -> str:
    """The exchange's own name of an instrument (``BTCUSDT``): a recording's ``venue_symbol`` and
    the stem of its file names (``<VENUE_SYMBOL>_<YYYYMMDDTHHMMSS>.jsonl.gz``), one rule for the
    daemon's recordings and ``bot record``'s."""
    return market.exchange_symbol or market.symbol.partition(":")[0].replace("/", "")


class RecordingThread:
    """A recording of one or more instruments: ``add`` one writer per instrument (in lane order),
    then ``write(lane, event)`` for every delivered event; ``close`` on stop (it waits until the
    writer thread has written everything queued)."""

    failure_note = ""  # the end of the log line naming a failure

    def __init__(self, dir: str | Path, source: str):
        self.dir = Path(dir)
        self.source = source
        self.writers: list[RecordingWriter] = []
        self.failed: str | None = None
        self.failure: BaseException | None = None  # the error behind ``failed`` (None: the backlog or the stop)
        self.failed_at: Path | None = None  # the file (or directory) being written when it failed
        self.closed = False
        self.log = get_logger("bot.recording")
        self.queued = 0  # counted by the caller's thread ...
        self.done = 0  # ... and by the writer thread
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._drain, name="recording", daemon=True)
        self._thread.start()

    def add(self, exchange: str, market: Market, out_dir: str | Path | None = None) -> RecordingWriter:
        """The writer of the next lane, writing under ``out_dir`` (default: a directory of its own
        under the recording's, each holding one continuous recording for ``bot backtest --data``)."""
        symbol = venue_symbol(market)
        header = Header(exchange, market.symbol, symbol, market.kind, self.source)
        writer = RecordingWriter(self.dir / _safe(symbol) if out_dir is None else Path(out_dir), header, FLUSH_INTERVAL_S)
        self.writers.append(writer)
        return writer

    def write(self, lane: int, event: MarketEvent) -> None:
        """Queue one delivered event (never raises, never blocks)."""
        if self.failed is not None or self.closed:
            return
        if self.queued - self.done >= MAX_BACKLOG:
            self._fail(f"the writer fell {MAX_BACKLOG} events behind (disk too slow)")
            return
        self.queued += 1
        self._queue.put((lane, event))

    def flush(self) -> None:
        """Make everything queued so far readable on disk (the daemon's heartbeat asks once a second)."""
        if self.failed is None and not self.closed:
            self._queue.put(_FLUSH)

    def sync(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Wait until everything queued so far is written (and flushed); False on timeout."""
        if self.closed or not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.put(_FLUSH)
        self._queue.put(done)
        return done.wait(timeout_s)

    def close(self) -> None:
        """Write what is queued, finish every file (end marker, trailer, fsync) and end the writer
        thread. Safe to call twice; never raises."""
        if self.closed:
            return
        self.closed = True
        self._queue.put(_STOP)
        self._thread.join(CLOSE_TIMEOUT_S)
        if self._thread.is_alive() and self.failed is None:
            self.failed = f"the writer did not finish within {CLOSE_TIMEOUT_S:g}s of the stop"
            self.log.error("recording failed: writer did not finish", dir=str(self.dir))

    def _drain(self) -> None:
        """The writer thread: every queued event in order, until the stop marker. Only this
        thread touches the writers."""
        get = self._queue.get
        shut = False  # the writers are closed (stopped by a failure)
        while True:
            item = get()
            if item is _STOP:
                if not shut:
                    self._close_writers()
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            if self.failed is None:
                writer: RecordingWriter | None = None
                try:
                    if item is _FLUSH:
                        for writer in self.writers:
                            writer.flush()
                    else:
                        lane, event = item
                        writer = self.writers[lane]
                        writer.write(event)
                        self.done += 1
                except Exception as exc:  # noqa: BLE001 - a recording failure must never stop trading
                    self._fail(exc, writer)
            if self.failed is not None and not shut:
                shut = True  # what was written up to the last flush stays readable; the rest is dropped
                self._close_writers(quiet=True)

    def _close_writers(self, quiet: bool = False) -> None:
        for writer in self.writers:
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001 - the disk that failed a write may fail this too
                if not quiet:
                    self._fail(exc, writer)

    def _fail(self, exc: BaseException | str, writer: RecordingWriter | None = None) -> None:
        if self.failed is not None:
            return
        if not isinstance(exc, str):
            self.failure = exc
        if writer is not None:
            self.failed_at = writer.current or writer.out_dir
        self.failed = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}")[:300]  # last: readers look at it first
        self.log.error("recording failed: recording stopped" + self.failure_note, dir=str(self.dir), error=self.failed)

    def files(self) -> list[list[str]]:
        """Every instrument's files, oldest first (lane order)."""
        return [[str(p) for p in writer.files] for writer in self.writers]

    def stats(self) -> dict[str, Any]:
        """What the recording holds, for the run's stats (``recording``)."""
        return {
            "dir": str(self.dir),
            "files": self.files(),
            "events": sum(w.events for w in self.writers),
            "bytes": sum(w.bytes_written for w in self.writers),
            "failed": self.failed,
        }


class RunRecorder(RecordingThread):
    """The recording of one daemon run (``run.record_dir``): under ``<record_dir>/<run id>/``, one
    directory per instrument; a failure stops the recording, never the trading."""

    failure_note = ", trading goes on"

    def __init__(self, record_dir: str | Path, run_id: str, source: str):
        super().__init__(recording_dir(record_dir, run_id), source)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name) or "instrument"
