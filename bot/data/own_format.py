"""The bot's own recording format: the normalized events exactly as the engine received them.

Written by ``bot record`` and by the daemons when ``run.record_dir`` is set; read back by the
``bot-recording`` reader (:mod:`bot.data.readers.own`), so a backtest of a recording sees the
same events, in the same order, with the same timestamps as the run that made it.

A file is gzip-compressed NDJSON (``*.jsonl.gz``). The first line is a header::

    {"imbalance_bot_recording": 1, "exchange": "binance", "symbol": "BTC/USDT:USDT",
     "venue_symbol": "BTCUSDT", "market_type": "linear", "started_ns": ..., "source": "bot record"}

and every further line is one event, ``k`` telling its kind, ``t`` its local receive time and
``x`` the exchange's time (ns, 0 when the venue sent none):

=====  ======================  ==============================================================
``k``  event                   fields
=====  ======================  ==============================================================
``S``  book snapshot           ``b``/``a``: ``[[price, size], ...]`` best first, ``s`` update id
``D``  book delta              ``b``/``a``: absolute new sizes (0 removes), ``f``/``l`` update ids
``Q``  best bid/ask            ``bp``, ``bq``, ``ap``, ``aq``, ``s``
``T``  public trade            ``p``, ``q``, ``side`` (aggressor ``buy``/``sell``), ``i`` trade id
``M``  mark price / funding    ``m``, ``i`` index, ``r`` funding rate, ``n`` next funding (ns)
``L``  liquidation             ``p``, ``q``, ``side`` (the forced order's side)
``G``  gap                     ``reason``: the book was lost (reconnect, sequence break); the
                               next snapshot resyncs it (:class:`BookInvalidated`)
``E``  end                     written by a clean close; a file without it was cut off
=====  ======================  ==============================================================

Floats are written in their shortest round-trip form, so every value reads back bit for bit.
The writer flushes the compressor (``Z_SYNC_FLUSH``) at least every ``flush_interval_s``: a file
cut off by a crash or ``kill -9`` is readable up to its last flush. Files rotate at the top of
every UTC hour (so also at midnight), by the events' receive time: one file per hour and symbol,
named ``<VENUE_SYMBOL>_<YYYYMMDD>T<HHMMSS>.jsonl.gz`` after its first event; a name already on disk
gets a ``-1``, ``-2`` ... suffix, so nothing is ever overwritten.
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bot.core.events import (
    BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarkPrice, MarketEvent, Trade,
)

HEADER_KEY = "imbalance_bot_recording"
VERSION = 1
SUFFIX = ".jsonl.gz"
_HOUR_NS = 3_600 * 1_000_000_000


def encode(event: MarketEvent) -> dict[str, Any]:
    """One event as its line's object (see the module docstring for the keys)."""
    if isinstance(event, BookSnapshot):
        return {"k": "S", "t": event.ts_local, "x": event.ts_exchange, "b": event.bids, "a": event.asks, "s": event.sequence}
    if isinstance(event, BookDelta):
        return {"k": "D", "t": event.ts_local, "x": event.ts_exchange, "b": event.bids, "a": event.asks,
                "f": event.first_seq, "l": event.last_seq}
    if isinstance(event, Trade):
        return {"k": "T", "t": event.ts_local, "x": event.ts_exchange, "p": event.price, "q": event.size,
                "side": event.side, "i": event.trade_id}
    if isinstance(event, BestBidAsk):
        return {"k": "Q", "t": event.ts_local, "x": event.ts_exchange, "bp": event.bid_price, "bq": event.bid_size,
                "ap": event.ask_price, "aq": event.ask_size, "s": event.sequence}
    if isinstance(event, MarkPrice):
        return {"k": "M", "t": event.ts_local, "x": event.ts_exchange, "m": event.mark_price, "i": event.index_price,
                "r": event.funding_rate, "n": event.next_funding_ts}
    if isinstance(event, Liquidation):
        return {"k": "L", "t": event.ts_local, "x": event.ts_exchange, "p": event.price, "q": event.size, "side": event.side}
    if isinstance(event, BookInvalidated):
        return {"k": "G", "t": event.ts_local, "x": event.ts_exchange, "reason": event.reason}
    raise TypeError(f"cannot record {type(event).__name__}")


def _levels(raw: Any) -> tuple[tuple[float, float], ...]:
    return tuple((float(p), float(q)) for p, q in raw)


def decode(obj: dict[str, Any]) -> MarketEvent | None:
    """The event of one line's object; ``None`` for the end marker. Raises ``KeyError``/``TypeError``/``ValueError`` on a bad line."""
    k, t, x = obj["k"], int(obj["t"]), int(obj.get("x") or 0)
    if k == "S":
        return BookSnapshot(t, x, _levels(obj["b"]), _levels(obj["a"]), int(obj.get("s") or 0))
    if k == "D":
        return BookDelta(t, x, _levels(obj["b"]), _levels(obj["a"]), int(obj.get("f") or 0), int(obj.get("l") or 0))
    if k == "T":
        side = obj["side"]
        if side not in ("buy", "sell"):
            raise ValueError(f"trade side must be buy or sell, got {side!r}")
        return Trade(t, x, float(obj["p"]), float(obj["q"]), side, int(obj.get("i") or 0))
    if k == "Q":
        return BestBidAsk(t, x, float(obj["bp"]), float(obj["bq"]), float(obj["ap"]), float(obj["aq"]), int(obj.get("s") or 0))
    if k == "M":
        return MarkPrice(t, x, float(obj["m"]), float(obj.get("i") or 0.0), float(obj.get("r") or 0.0), int(obj.get("n") or 0))
    if k == "L":
        side = obj["side"]
        if side not in ("buy", "sell"):
            raise ValueError(f"liquidation side must be buy or sell, got {side!r}")
        return Liquidation(t, x, float(obj["p"]), float(obj["q"]), side)
    if k == "G":
        return BookInvalidated(t, x, str(obj.get("reason", "gap")))
    if k == "E":
        return None
    raise ValueError(f"unknown event kind {k!r}")


@dataclass(frozen=True)
class Header:
    exchange: str
    symbol: str  # ccxt unified symbol, e.g. BTC/USDT:USDT
    venue_symbol: str  # the exchange's id, e.g. BTCUSDT
    market_type: str  # spot, linear or inverse
    source: str = "bot record"

    def line(self, started_ns: int) -> dict[str, Any]:
        return {HEADER_KEY: VERSION, "exchange": self.exchange, "symbol": self.symbol, "venue_symbol": self.venue_symbol,
                "market_type": self.market_type, "started_ns": started_ns, "source": self.source}


def _hour_of(ts_ns: int) -> int:
    return ts_ns // _HOUR_NS


def _file_name(venue_symbol: str, ts_ns: int) -> str:
    stamp = datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() else "-" for c in venue_symbol)
    return f"{safe}_{stamp}"


class RecordingWriter:
    """Appends one instrument's events to hourly-rotated files under ``out_dir``.

    Memory stays bounded: each line goes straight into the compressor and out to the file;
    nothing is buffered beyond zlib's window and the OS's write buffer. ``close`` writes the end
    marker and the gzip trailer; without it (a crash) the file still reads up to its last flush.
    """

    def __init__(self, out_dir: str | Path, header: Header, flush_interval_s: float = 1.0) -> None:
        self.out_dir = Path(out_dir)
        self.header = header
        self.flush_interval_s = flush_interval_s
        self.files: list[Path] = []  # every file written, oldest first
        self.events = 0  # events written, all files
        self.gaps = 0  # gap markers written, all files
        self.bytes_written = 0  # compressed bytes on disk, all files
        self._fh: BinaryIO | None = None
        self._z: Any = None
        self._hour = -1
        self._last_flush = 0.0
        self._last_ts = 0

    @property
    def current(self) -> Path | None:
        # also read from other threads (a recording's status line while its writer thread opens a file)
        return self.files[-1] if self._fh is not None and self.files else None

    def _open(self, ts_ns: int) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        base = _file_name(self.header.venue_symbol, ts_ns)
        path, n = self.out_dir / f"{base}{SUFFIX}", 0
        while path.exists():
            n += 1
            path = self.out_dir / f"{base}-{n}{SUFFIX}"
        # exclusive create: two writers never share a file
        self._fh = open(path, "xb")  # noqa: SIM115  (closed in _close)
        self._z = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self.files.append(path)
        self._hour = _hour_of(ts_ns)
        self._put(self.header.line(ts_ns))
        self._sync()

    def _put(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None
        out = self._z.compress(orjson.dumps(obj) + b"\n")
        if out:
            self._fh.write(out)
            self.bytes_written += len(out)

    def _sync(self) -> None:
        assert self._fh is not None
        out = self._z.flush(zlib.Z_SYNC_FLUSH)
        self._fh.write(out)
        self._fh.flush()
        self.bytes_written += len(out)
        self._last_flush = time.monotonic()

    def _close(self, ts_ns: int) -> None:
        if self._fh is None:
            return
        self._put({"k": "E", "t": ts_ns})
        out = self._z.flush(zlib.Z_FINISH)
        self._fh.write(out)
        self.bytes_written += len(out)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh, self._z = None, None

    def write(self, event: MarketEvent) -> None:
        """Record one event (rotating first when it starts a new UTC hour)."""
        ts = event.ts_local
        if self._fh is None or _hour_of(ts) != self._hour:
            self._close(self._last_ts or ts)
            self._open(ts)
        self._put(encode(event))
        self.events += 1
        if isinstance(event, BookInvalidated):
            self.gaps += 1
        self._last_ts = max(self._last_ts, ts)
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self._sync()

    def flush(self) -> None:
        """Make everything written so far readable (called by the recorder's timer too)."""
        if self._fh is not None:
            self._sync()

    def close(self) -> None:
        """Finish the current file: end marker, gzip trailer, fsync. Safe to call twice."""
        self._close(self._last_ts or time.time_ns())
