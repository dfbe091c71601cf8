"""LOBSTER (NASDAQ, lobsterdata.com): a message file and an orderbook file, zipped or not.

Files (no header, comma separated): ``TICKER_DATE_START_END_message_LEVELS.csv`` with
``time, type, order_id, size, price, direction`` per row (time in seconds after midnight New York
time; type 1 submit, 2 partial cancel, 3 delete, 4 visible execution, 5 hidden execution, 7 halt;
price in 1e-4 dollars; direction 1 buy order, -1 sell order) and ``..._orderbook_LEVELS.csv`` with
the book *after* each message: ``ask_px1, ask_sz1, bid_px1, bid_sz1, ask_px2, ...`` (empty levels
are ±9999999999 with size 0). Row i of one file belongs to row i of the other.

Given as the LOBSTER zip, as the two files (plain or compressed; in any order), or as the
message file alone when the orderbook file sits next to it under LOBSTER's name.

Events: the first row's book is a :class:`BookSnapshot`; every later row that changes the visible
book is a :class:`BookDelta` of the changed levels (a level that left the visible depth gets
size 0, so our book always equals the file's row); executions (types 4 and 5) are a
:class:`Trade` before that delta, its side the aggressor's (a sell order executed is a buy).
A halt (type 7, price -1) is a :class:`BookInvalidated`; the resume (price 1) a fresh snapshot.
Both clocks are the message time (LOBSTER has one clock), as ns since the epoch, the date taken
from the file name (midnight in America/New_York). ``sequence`` fields hold the message's row number.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported when a LOBSTER file is read, not to build `bot`'s parser
    import numpy as np

from bot.core.events import BookDelta, BookInvalidated, BookSnapshot, MarketEvent, Trade
from bot.data.binance import ReaderStats
from bot.data.readers.io import compression, head_lines, open_binary, zip_members
from bot.data.readers.registry import Format, register
from bot.data.recording import RecordingError

_EMPTY_USD = 9_999_999_999 / 10_000.0 - 1.0  # dummy levels: ±9999999999 (1e-4 dollars)
_NAME = re.compile(r"^(?P<sym>[^_/]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_(?P<kind>message|orderbook)_(?P<levels>\d+)")
_TZ = "America/New_York"


def _kind_of_lines(lines: list[str]) -> str:
    """``message``, ``orderbook`` or "" from a file's first lines."""
    if not lines:
        return ""
    rows = [line.split(",") for line in lines[:5]]
    try:
        values = [[float(x) for x in row] for row in rows]
    except ValueError:
        return ""
    widths = {len(r) for r in values}
    if widths == {6} and all(int(r[1]) == r[1] and 1 <= r[1] <= 7 and r[5] in (1, -1) and r[0] >= 0 for r in values):
        return "message"
    if len(widths) == 1 and (w := widths.pop()) % 4 == 0 and w >= 4 and all(r[0] >= r[2] or r[1] == 0 or r[3] == 0 for r in values):
        return "orderbook"
    return ""


def _zip_pair(path: Path) -> tuple[str, str] | None:
    members = zip_members(path)
    msg = [m for m in members if "_message_" in Path(m).name]
    book = [m for m in members if "_orderbook_" in Path(m).name]
    if len(msg) == 1 and len(book) == 1:
        return msg[0], book[0]
    return None


def sniff(path: Path) -> bool:
    if compression(path) == "zip":
        pair = _zip_pair(path)
        return pair is not None and _kind_of_lines(head_lines(path, 5, pair[0])) == "message"
    return _kind_of_lines(head_lines(path, 5)) in ("message", "orderbook")


def _load(path: Path, member: str | None, what: str) -> np.ndarray:
    import numpy as np

    try:
        with open_binary(path, member) as fh:
            arr = np.loadtxt(io.TextIOWrapper(fh, encoding="ascii", errors="replace"), delimiter=",", ndmin=2)
    except ValueError as exc:
        raise RecordingError(f"{path}{'/' + member if member else ''}: not a LOBSTER {what} file "
                             f"(expected comma-separated numbers on every row: {str(exc)[:120]})") from None
    return arr


def _sources(paths: Sequence[Path]) -> tuple[tuple[Path, str | None], tuple[Path, str | None], str]:
    """(message source, orderbook source, a name holding LOBSTER's file name) of the given files."""
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and compression(paths[0]) == "zip":
        pair = _zip_pair(paths[0])
        if pair is None:
            raise RecordingError(f"{paths[0]}: a zip without exactly one LOBSTER message and one orderbook file")
        return (paths[0], pair[0]), (paths[0], pair[1]), Path(pair[0]).name
    kinds = {p: _kind_of_lines(head_lines(p, 5)) for p in paths}
    msg = [p for p, k in kinds.items() if k == "message"]
    book = [p for p, k in kinds.items() if k == "orderbook"]
    if len(msg) == 1 and not book and len(paths) == 1:
        sibling = msg[0].with_name(msg[0].name.replace("_message_", "_orderbook_"))
        if sibling != msg[0] and sibling.is_file():
            book = [sibling]
    if len(msg) != 1 or len(book) != 1 or len(paths) > 2:
        listing = ", ".join(f"{p} ({k or 'neither'})" for p, k in kinds.items())
        raise RecordingError(f"LOBSTER data is one message file and its orderbook file (or their zip); got {listing}")
    return (msg[0], None), (book[0], None), msg[0].name


def _midnight_ns(name: str, stats: ReaderStats) -> int:
    m = _NAME.match(name)
    if m:
        stats.symbol = m["sym"]
        day = datetime.strptime(m["date"], "%Y-%m-%d").replace(tzinfo=ZoneInfo(_TZ))
        return int(day.timestamp()) * 1_000_000_000
    stats.problem(f"{name}: no date in the file name (LOBSTER's TICKER_DATE_..._message_N.csv): times are seconds after 1970-01-01")
    return 0


def _side(px: list[float], sz: list[float]) -> dict[float, float]:
    """Price -> size of the occupied levels of one side of a row (dummy levels left out)."""
    return {p: q for p, q in zip(px, sz) if q > 0 and -_EMPTY_USD < p < _EMPTY_USD}


def _rows(books: np.ndarray, chunk: int = 8192) -> Iterator[list[float]]:
    """The orderbook rows as lists, prices in dollars (converted a chunk at a time: bounded memory)."""
    for start in range(0, len(books), chunk):
        part = books[start : start + chunk].copy()
        part[:, 0::2] /= 10_000.0
        yield from part.tolist()


def _diff(old: dict[float, float], new: dict[float, float]) -> tuple[tuple[float, float], ...]:
    out = [(p, q) for p, q in new.items() if old.get(p) != q]
    out += [(p, 0.0) for p in old if p not in new]
    return tuple(out)


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    import numpy as np

    msg_src, book_src, name = _sources(paths)
    stats.files = [str(p) + (f"/{m}" if m else "") for p, m in (msg_src, book_src)]
    stats.exchange, stats.market_type = "nasdaq", ""
    base = _midnight_ns(name, stats)
    msgs = _load(*msg_src, "message")
    books = _load(*book_src, "orderbook")
    if msgs.shape[1] != 6:
        raise RecordingError(f"{stats.files[0]}: a LOBSTER message file has 6 columns, this one {msgs.shape[1]}")
    if books.shape[1] % 4:
        raise RecordingError(f"{stats.files[1]}: a LOBSTER orderbook file has 4 columns per level, this one {books.shape[1]}")
    if len(msgs) != len(books):
        raise RecordingError(f"{stats.files[0]} has {len(msgs)} rows but {stats.files[1]} {len(books)}: not one LOBSTER pair")
    ts_all = base + np.rint(msgs[:, 0] * 1e9).astype(np.int64)
    if len(ts_all) and np.any(np.diff(ts_all) < 0):
        raise RecordingError(f"{stats.files[0]}: message times go back (row {int(np.argmax(np.diff(ts_all) < 0)) + 2}); not a LOBSTER file")
    stats.lines = len(msgs)
    if len(msgs):
        stats.first_ts, stats.last_ts = int(ts_all[0]), int(ts_all[-1])
    counts = stats.events
    changed = np.ones(len(books), dtype=bool)
    changed[1:] = np.any(books[1:] != books[:-1], axis=1)
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    halted = False
    synced = False
    rows = _rows(books)
    for i, ((_t, kind, _oid, size, price, direction), row, ts) in enumerate(zip(msgs.tolist(), rows, ts_all.tolist())):
        kind = int(kind)
        if kind in (4, 5):
            if size > 0 and price > 0:
                counts["trade"] += 1
                yield Trade(ts, ts, price / 10_000.0, size, "buy" if direction < 0 else "sell", i + 1)
            else:
                stats.malformed += 1
                stats.problem(f"{stats.files[0]}:{i + 1}: execution without a positive size and price")
        elif kind == 7:
            if price < 0 and not halted:
                halted = True
                synced = False
                counts["invalidated"] += 1
                yield BookInvalidated(ts, ts, f"{stats.files[0]}:{i + 1}: trading halt")
                continue
            if price > 0 and halted:
                halted = False
        elif kind not in (1, 2, 3):
            stats.ignored += 1
        if halted:
            continue
        if not synced:
            bids, asks = _side(row[2::4], row[3::4]), _side(row[0::4], row[1::4])
            synced = True
            counts["snapshot"] += 1
            yield BookSnapshot(ts, ts, tuple(sorted(bids.items(), reverse=True)), tuple(sorted(asks.items())), i + 1)
            continue
        if not changed[i]:
            continue
        nb, na = _side(row[2::4], row[3::4]), _side(row[0::4], row[1::4])
        db, da = _diff(bids, nb), _diff(asks, na)
        bids, asks = nb, na
        if db or da:
            counts["delta"] += 1
            yield BookDelta(ts, ts, db, da, i + 1, i + 1)


FORMAT = register(Format(
    "lobster",
    "LOBSTER message + orderbook CSV pair (zip or files; prices in 1e-4 dollars, times in s after midnight)",
    sniff, read,
))
