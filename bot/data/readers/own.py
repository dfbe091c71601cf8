"""Reader of the bot's own recordings (``bot record``, ``run.record_dir``): see :mod:`bot.data.own_format`.

Several files (an hourly-rotated recording) are read in the order of their headers'
``started_ns``, whatever order they are given in; they must be of one exchange and symbol. A
file cut off by a crash (no end marker, or a truncated gzip stream) is read up to its last
complete line and named in ``problems``; it is not an error, since everything before the cut is
sound. Events whose receive time goes back are skipped (``out_of_order``), malformed lines
counted and named, never applied.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarkPrice, MarketEvent, Trade
from bot.data.binance import ReaderStats
from bot.data.own_format import HEADER_KEY, VERSION, decode
from bot.data.readers.io import head_lines
from bot.data.readers.registry import Format, register
from bot.data.recording import RecordingError

_CHUNK = 1 << 20
_KIND = {BookSnapshot: "snapshot", BookDelta: "delta", BestBidAsk: "bbo", Trade: "trade", BookInvalidated: "invalidated"}


def _header(line: str) -> dict | None:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if type(obj) is dict and HEADER_KEY in obj else None


def sniff(path: Path) -> bool:
    lines = head_lines(path, 1)
    return bool(lines) and _header(lines[0]) is not None


def _raw_lines(path: Path, cut: list[str]) -> Iterator[bytes]:
    """Decompressed lines of one file; a truncated stream ends them quietly (noted in ``cut``)."""
    z = zlib.decompressobj(16 + zlib.MAX_WBITS)
    rest = b""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        while True:
            raw = fh.read(_CHUNK)
            if not raw:
                break
            try:
                data = z.decompress(raw)
            except zlib.error as exc:
                cut.append(f"{path.name}: corrupt compressed data after {fh.tell() - len(raw)} bytes ({exc}); read up to there")
                break
            lines = (rest + data).split(b"\n")
            rest = lines.pop()
            yield from lines
            if z.eof:  # one gzip member per file; anything after it is not ours
                break
    if not z.eof:
        cut.append(f"{path.name}: cut off (no gzip trailer; the writer did not close it); read up to its last flush")
    if rest:
        cut.append(f"{path.name}: last line incomplete; dropped")


def _started(path: Path) -> int:
    lines = head_lines(path, 1)
    head = _header(lines[0]) if lines else None
    if head is None:
        raise RecordingError(f"{path}: not a bot recording (no header line)")
    if head.get(HEADER_KEY) != VERSION:
        raise RecordingError(f"{path}: recording version {head.get(HEADER_KEY)!r}; this bot reads version {VERSION}")
    return int(head.get("started_ns") or 0)


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    files = sorted((Path(p) for p in paths), key=_started)
    stats.files = [str(p) for p in files]
    counts = stats.events
    last_ts = 0
    for path in files:
        cut: list[str] = []
        ended = False
        for lineno, line in enumerate(_raw_lines(path, cut), start=1):
            if not line.strip():
                continue
            stats.lines += 1
            where = f"{path.name}:{lineno}"
            try:
                obj = orjson.loads(line)
                if type(obj) is not dict:
                    raise ValueError("expected a JSON object")
                if lineno == 1:
                    _check_header(obj, where, stats)
                    continue
                event = decode(obj)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                stats.malformed += 1
                stats.problem(f"{where}: {type(exc).__name__}: {exc}")
                continue
            if event is None:
                ended = True
                continue
            if event.ts_local < last_ts:
                stats.out_of_order += 1
                stats.problem(f"{where}: receive time goes back; event skipped")
                continue
            last_ts = stats.last_ts = event.ts_local
            stats.first_ts = stats.first_ts or event.ts_local
            kind = _KIND.get(type(event))
            if kind is not None:
                counts[kind] += 1
                if kind == "invalidated":
                    stats.gaps += 1
            elif isinstance(event, MarkPrice):
                stats.mark_prices += 1
            elif isinstance(event, Liquidation):
                stats.liquidations += 1
            yield event
        for message in cut:
            stats.problem(message)
        if not ended and not cut:
            stats.problem(f"{path.name}: no end marker (the recorder stopped without closing it)")


def _check_header(obj: dict, where: str, stats: ReaderStats) -> None:
    if HEADER_KEY not in obj:
        raise RecordingError(f"{where}: expected the recording header line")
    if obj[HEADER_KEY] != VERSION:
        raise RecordingError(f"{where}: recording version {obj[HEADER_KEY]!r}; this bot reads version {VERSION}")
    symbol = str(obj.get("venue_symbol") or obj.get("symbol") or "")
    if stats.symbol and symbol != stats.symbol:
        raise RecordingError(f"{where}: {symbol} is not {stats.symbol}: mixed symbols in one recording")
    stats.symbol = symbol
    stats.market_type = str(obj.get("market_type") or "")
    stats.exchange = str(obj.get("exchange") or "")


FORMAT = register(Format(
    "bot-recording",
    "the bot's own recordings (bot record, run.record_dir): gzip NDJSON of normalized events with a header line",
    sniff, read,
))
