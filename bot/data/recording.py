"""The files of a Binance raw-stream recording: gzip line access and the probe of a file's head.

Split from :mod:`bot.data.binance` so that the reader module holds the replay loop and this one
what is known about a file *before* replaying it: its symbol, market type and local time span
(:func:`probe_recording`), and whether several files chain into one continuous recording
(:func:`chain_files`). :mod:`bot.data.merge` groups a several-instrument run with the same two
functions, so both agree on what a file is. All errors are :class:`RecordingError` naming the file.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.data.symbols import market_type_of

__all__ = ["EXPECTED_FORMAT", "ReadMeter", "RecordingError", "RecordingFile", "chain_files", "iter_lines", "probe_recording", "stream_kind"]

_CHUNK = 1 << 20
_HEAD_LINES = 1000


class RecordingError(Exception):
    """The recording cannot be replayed at all (missing/unreadable file, not gzip, not a raw-stream
    recording, no market events, files that do not chain in time, mixed symbols or markets)."""


def stream_kind(suffix: str) -> str:
    """What a combined-stream name's part after ``<sym>@`` carries: depth, bbo, trade, mark,
    liq, or "" for a stream the reader does not use."""
    if suffix == "depth" or suffix.startswith("depth@"):
        return "depth"
    if suffix == "bookTicker":
        return "bbo"
    if suffix == "trade":
        return "trade"
    if suffix == "markPrice" or suffix.startswith("markPrice@"):
        return "mark"
    if suffix == "forceOrder":
        return "liq"
    return ""


# --------------------------------------------------------------------------- file access
class ReadMeter:
    """How far a replay has read its data files: bytes as stored on disk (compressed or not), per
    file, so a progress bar's ETA can be the files' sizes. Only the replay's reads count (the
    readers' ``iter_lines``), not a probe or a format sniff. A command that shows progress
    installs one with :meth:`install` and reads :meth:`done`; the readers update it once per block.
    """

    current: "ReadMeter | None" = None  # the installed meter (None: nothing is measured)

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}

    def install(self) -> "ReadMeter":
        ReadMeter.current = self
        return self

    def uninstall(self) -> None:
        if ReadMeter.current is self:
            ReadMeter.current = None

    def done(self) -> int:
        return sum(self.positions.values())

    @staticmethod
    def note(path: Path, fh: object) -> None:
        """Record how far the file under ``fh`` has been read (its descriptor's offset)."""
        meter = ReadMeter.current
        if meter is None:
            return
        try:
            pos = os.lseek(fh.fileno(), 0, os.SEEK_CUR)  # type: ignore[attr-defined]
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # a zip member: no descriptor of its own
            return
        key = str(path)
        if pos > meter.positions.get(key, 0):
            meter.positions[key] = pos


def _read_chunks(path: Path, metered: bool = False) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                if metered:
                    ReadMeter.note(path, fh)
                yield chunk
    except FileNotFoundError:
        raise RecordingError(f"recording not found: {path}") from None
    except gzip.BadGzipFile as exc:
        raise RecordingError(f"{path}: not a gzip file ({exc})") from None
    except (EOFError, zlib.error) as exc:
        raise RecordingError(f"{path}: corrupt or truncated gzip data ({exc})") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None


def block_lines(chunks: Iterable[bytes], strip_cr: bool = False) -> Iterator[str]:
    """Text lines (without newline, and without ``\\r`` when ``strip_cr``) of a stream of byte
    blocks, each block decoded at once for speed; a line split across blocks is joined."""
    tail = b""
    for chunk in chunks:
        buf = tail + chunk if tail else chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            tail = buf
            continue
        tail = buf[cut + 1 :]
        text = buf[:cut].decode("utf-8", "replace")
        if strip_cr and "\r" in text:
            text = text.replace("\r", "")
        yield from text.split("\n")
    if tail:
        text = tail.decode("utf-8", "replace")
        yield text.rstrip("\r") if strip_cr else text


def iter_lines(path: Path) -> Iterator[str]:
    """Text lines of a gzip file (without newline), decoded in blocks for speed."""
    return block_lines(_read_chunks(path, metered=True))


def _line_ts(line: bytes | str) -> int | None:
    head = line.split(b" " if isinstance(line, bytes) else " ", 1)
    if len(head) != 2:
        return None
    try:
        ts = int(head[0])
    except ValueError:
        return None
    return ts if ts > 0 else None


@dataclass
class _FileInfo:
    path: Path
    first_ts: int | None = None
    last_ts: int | None = None
    symbol: str = ""
    market_type: str = ""  # from the first well-formed depth diff of the first lines, if any
    recognized: bool = False  # a line of the first _HEAD_LINES is a stream message or a snapshot
    nonblank: int = 0  # non-blank head lines looked at
    scanned: int = 0  # head lines (blank or not) looked at: the next call goes on from here
    sample: list[str] = field(default_factory=list)  # the first non-blank lines, cut short (for errors)


def _head_object(line: bytes) -> Any:
    try:
        return json.loads(line.split(b" ", 1)[1])
    except (ValueError, RecursionError):
        return None


def _scan_head(info: _FileInfo, head: bytes, complete: bool) -> bool:
    """Look at the first lines: first timestamp, symbol, market type and whether the file is a
    raw-stream recording at all; True when nothing more is to be learnt from the head.

    ``head`` only grows between calls, so each call goes on where the previous one stopped.
    """
    lines = head.split(b"\n")
    if not complete:
        lines.pop()  # may be cut in the middle
    for i in range(info.scanned, len(lines)):
        if info.nonblank >= _HEAD_LINES:
            break
        info.scanned = i + 1
        line = lines[i]
        if not line.strip():
            continue
        info.nonblank += 1
        if len(info.sample) < 2:
            info.sample.append(line[:60].decode("utf-8", "replace"))
        ts = _line_ts(line)
        if ts is None:
            continue
        if info.first_ts is None:
            info.first_ts = ts
        if not info.recognized or (not info.symbol and line.find(b'"stream"', 0, 200) >= 0) or (
            not info.market_type and line.find(b"@depth", 0, 200) >= 0
        ):
            obj = _head_object(line)
            if type(obj) is dict:
                stream = obj.get("stream")
                if isinstance(stream, str) and "@" in stream:
                    sym, _, suffix = stream.partition("@")
                    if not info.symbol and not sym.startswith("!"):
                        info.symbol = sym.upper()
                    data = obj.get("data")
                    if type(data) is dict:
                        info.recognized = True
                        # the rule of _Reader._parse_diff, on the first diff it would accept
                        if (not info.market_type and stream_kind(suffix) == "depth"
                                and type(data.get("U")) is int and type(data.get("u")) is int):
                            info.market_type = market_type_of(sym, "pu" in data or stream.endswith("@0ms"))
                elif stream is None and "lastUpdateId" in obj:
                    info.recognized = True
        if info.recognized and info.symbol and info.market_type:
            return True
    return info.nonblank >= _HEAD_LINES


EXPECTED_FORMAT = (
    "expected gzip text of '<local_ns> <json>' lines holding Binance combined-stream "
    "messages ({\"stream\": \"btcusdt@depth@100ms\", \"data\": {...}}) or a REST depth snapshot ({\"lastUpdateId\": ...})"
)


def _foreign(info: _FileInfo, empty: bool) -> RecordingError:
    if empty:
        what = "the file is empty"
    elif not info.nonblank:
        what = "it holds only blank lines"
    else:
        first = ", ".join(repr(s) for s in info.sample)
        what = f"none of its first {info.nonblank} line(s) is a stream message or a depth snapshot; first lines are {first}"
    return RecordingError(f"{info.path}: not a Binance raw-stream recording ({what}); {EXPECTED_FORMAT}")


def _probe(path: Path) -> _FileInfo:
    """First/last local timestamp, symbol and market type of a file (decompresses it once, no
    JSON per line beyond the first ones).

    Raises :class:`RecordingError` when none of the first :data:`_HEAD_LINES` non-blank lines is a
    stream message or a depth snapshot (another format, an empty file). The symbol and the market
    type come from the first stream name and depth diff within the first lines; files without them
    there are still checked line by line during the replay.
    """
    info = _FileInfo(path)
    chunks = _read_chunks(path)
    prev, last = _head(info, chunks)
    for chunk in chunks:
        prev, last = last, chunk
    for line in reversed((prev + last).split(b"\n")):
        ts = _line_ts(line)
        if ts is not None:
            info.last_ts = ts
            break
    if info.last_ts is None:
        info.last_ts = info.first_ts  # no timestamp in the last 1-2 MB: cannot check the end
    return info


def _head(info: _FileInfo, chunks: Iterator[bytes]) -> tuple[bytes, bytes]:
    """Fill ``info`` from the first lines, consuming ``chunks`` only as far as the head needs;
    returns the last two chunks consumed. Raises the foreign-file error before decompressing the rest."""
    head = prev = last = b""
    for chunk in chunks:
        head += chunk
        prev, last = last, chunk
        if _scan_head(info, head, complete=False) or len(head) >= 4 * _CHUNK:
            if not info.recognized:
                raise _foreign(info, empty=False)
            return prev, last
    _scan_head(info, head, complete=True)
    if not info.recognized:
        raise _foreign(info, empty=not head)
    return prev, last


@dataclass(frozen=True)
class RecordingFile:
    """What the first and last lines of one recording file tell (see :func:`probe_recording`)."""

    path: Path
    symbol: str  # exchange id, upper case ("BTCUSDT", "BTCUSD_PERP"); "" when no stream line is in the first lines
    market_type: str  # "spot", "linear", "inverse"; "" when no depth diff is in the first lines
    first_ts: int  # local ns timestamps of the first and last timestamped line
    last_ts: int


def probe_recording(path: str | Path) -> RecordingFile:
    """Symbol, market type and local time span of one recording file, without replaying it.

    Decompresses the file once (JSON of the first lines only). Raises :class:`RecordingError`,
    naming the file, when it is missing, not a file, unreadable, not gzip or not a raw-stream
    recording. :func:`read_binance` and :func:`bot.data.merge.group_recordings` both start here.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording not found: {path}" if not path.exists() else f"not a file: {path}")
    info = _probe(path)
    assert info.first_ts is not None and info.last_ts is not None  # a recognized file has a timestamped line
    return RecordingFile(path, info.symbol, info.market_type, info.first_ts, info.last_ts)


def probe_head(path: str | Path) -> RecordingFile:
    """:func:`probe_recording` from the first lines only: symbol, market type, first timestamp.

    The end of the file is not read, so ``last_ts`` is ``first_ts``: a caller that orders files
    with it must itself check that each file starts after the previous one ends (the compiled
    parser does, and hands any overlap to the reference reader, which reports it).
    """
    path = Path(path)
    if not path.is_file():
        raise RecordingError(f"recording not found: {path}" if not path.exists() else f"not a file: {path}")
    info = _FileInfo(path)
    chunks = _read_chunks(path)
    try:
        _head(info, chunks)
    finally:
        chunks.close()  # type: ignore[attr-defined]
    assert info.first_ts is not None
    return RecordingFile(path, info.symbol, info.market_type, info.first_ts, info.first_ts)


def chain_files(files: Sequence[RecordingFile]) -> list[RecordingFile]:
    """The files of one recording in replay order (by first timestamp, then as given).

    Raises :class:`RecordingError`, naming the files, when they hold different symbols or
    markets or when one starts before the previous one ends (they would not replay as one
    continuous stream).
    """
    files = sorted(files, key=lambda f: f.first_ts)  # stable: ties keep the given order
    symbols = {f.symbol for f in files if f.symbol}
    if len(symbols) > 1:
        listing = ", ".join(f"{f.path} ({f.symbol})" for f in files if f.symbol)
        raise RecordingError(f"recordings of different symbols cannot be replayed together: {listing}")
    types = {f.market_type for f in files if f.market_type}
    if len(types) > 1:
        listing = ", ".join(f"{f.path} ({f.market_type})" for f in files if f.market_type)
        raise RecordingError(f"recordings of different markets ({' and '.join(sorted(types))}) cannot be replayed together: {listing}")
    for a, b in zip(files, files[1:]):
        if b.first_ts < a.last_ts:
            raise RecordingError(
                f"recordings overlap in time: {b.path} starts at {b.first_ts} before {a.path} ends at "
                f"{a.last_ts}; give the files of one continuous recording"
            )
    return files
