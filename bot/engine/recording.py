"""``run.record_dir``: the daemon records what its engines traded on.

Every market event an instrument's engine receives is written, exactly as delivered and in
delivery order, by one :class:`~bot.data.own_format.RecordingWriter` per instrument under
``<record_dir>/<run id>/`` (the bot's own recording format, hourly files). The run row names the
directory (``runs.replay_json``), so ``bot compare --run ID`` finds it, and ``bot backtest
--data`` replays it.

The write happens after the engine has handled the event, so the decision never waits for it.
A recording that fails (a full disk, a removed directory) is logged once and stops, with the
reason kept for the run's stats (``recording.failed``); trading goes on. A cut-off recording
still reads up to its last flush, and ``bot compare`` names the failure as a divergence source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.core.events import MarketEvent
from bot.core.market import Market
from bot.data.own_format import Header, RecordingWriter
from bot.log import get_logger

FLUSH_INTERVAL_S = 1.0  # a crash loses at most this much of the recording


def recording_dir(record_dir: str | Path, run_id: str) -> Path:
    """Where the recording of run ``run_id`` goes."""
    return Path(record_dir) / run_id


class RunRecorder:
    """The recording of one daemon run: ``add`` one writer per instrument (in lane order), then
    ``write(lane, event)`` for every delivered event; ``close`` on stop."""

    def __init__(self, record_dir: str | Path, run_id: str, source: str):
        self.dir = recording_dir(record_dir, run_id)
        self.source = source
        self.writers: list[RecordingWriter] = []
        self.failed: str | None = None
        self.closed = False
        self.log = get_logger("bot.recording")

    def add(self, exchange: str, market: Market) -> None:
        venue_symbol = market.exchange_symbol or market.symbol.partition(":")[0].replace("/", "")
        header = Header(exchange, market.symbol, venue_symbol, market.kind, self.source)
        # one directory per instrument: each holds one continuous recording for `bot backtest --data`
        self.writers.append(RecordingWriter(self.dir / _safe(venue_symbol), header, FLUSH_INTERVAL_S))

    def write(self, lane: int, event: MarketEvent) -> None:
        if self.failed is not None or self.closed:
            return
        try:
            self.writers[lane].write(event)
        except Exception as exc:  # noqa: BLE001 - a recording failure must never stop trading
            self._fail(exc)

    def flush(self) -> None:
        if self.failed is not None or self.closed:
            return
        try:
            for writer in self.writers:
                writer.flush()
        except Exception as exc:  # noqa: BLE001
            self._fail(exc)

    def close(self) -> None:
        """Finish every file (end marker, trailer, fsync). Safe to call twice; never raises."""
        if self.closed:
            return
        self.closed = True
        if self.failed is not None:
            return
        for writer in self.writers:
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001
                self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self.failed = f"{type(exc).__name__}: {exc}"[:300]
        self.log.error("recording failed: recording stopped, trading goes on", dir=str(self.dir), error=self.failed)
        for writer in self.writers:
            try:
                writer.close()  # what was written up to the last flush stays readable
            except Exception:  # noqa: BLE001, S110 - the disk that failed the write may fail this too
                pass

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


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name) or "instrument"
