"""Columnar event streams on disk, written in chunks and memory-mapped for replay.

Why. A replay reads every event once, front to back. Loading the columns (an ``.npz``) costs
RAM in proportion to the recording; mapping them lets the kernel page them in as it goes, and
:meth:`EventArrays.release` hands the pages it has passed back to the kernel, so a replay of any
length stays within a fixed memory budget (``benchmarks/bench_memory.py`` shows it).

Layout: a directory holding one ``.npy`` file per column of :class:`~bot.fast.columnar.EventArrays`
(``kind ts seq off nbid lvl sz prices``, the dtypes of that module's docstring) and ``meta.json``
(``version`` = :data:`~bot.fast.columnar.ENCODING_VERSION`, ``events``, ``levels``,
``price_decimals``, ``meta``). Each column file is a plain ``.npy`` (``np.load(f, mmap_mode="r")``
opens it) whose header is padded to :data:`HEADER` bytes, so a writer can append chunks after a
placeholder and fill the header in at the end. A directory is built under a temporary name and
renamed into place once complete, so a crash never leaves a half-written one under the real name.

What is checked on opening (:func:`open_columns`): ``meta.json`` readable and of this version,
every column present with its dtype and length, each file exactly as long as its header says
(truncation), ``off[0] == 0``, ``off[n] == levels``, prices strictly ascending. Every problem is a
:class:`ColumnsError` of one line naming the file. Not checked: a byte changed in place inside a
column of the right length (that would need a full read, the cost mapping avoids).
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot.core.events import MarketEvent
from bot.fast.columnar import ENCODING_VERSION, EventArrays, encode_chunks, price_units

HEADER = 128  # bytes of every column file's .npy header (magic, length, padded dict, newline)
EVENT_COLUMNS = {"kind": np.int8, "ts": np.int64, "seq": np.int64, "nbid": np.int32}
LEVEL_COLUMNS = {"lvl": np.int32, "sz": np.float64}
DTYPES = {**EVENT_COLUMNS, "off": np.int64, **LEVEL_COLUMNS, "prices": np.int64}
PAGE = mmap.PAGESIZE
CHUNK_LEVELS = 1 << 21  # levels per pass when a finished column is rewritten


class ColumnsError(ValueError):
    """A columnar directory that cannot be used (one line, naming the file)."""


def npy_header(dtype: Any, count: int) -> bytes:
    """A version 1.0 ``.npy`` header of exactly :data:`HEADER` bytes for a 1-D array."""
    body = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (count,)}).encode("latin1")
    head = b"\x93NUMPY\x01\x00" + struct.pack("<H", HEADER - 10)
    return head + body + b" " * (HEADER - len(head) - len(body) - 1) + b"\n"


class ColumnWriter:
    """Builds a columnar directory from chunks: :meth:`append` the events in order, optionally
    :meth:`map_levels` (level values to ranks, once the price table is known), then :meth:`finish`.
    Used as a context manager, a writer left without :meth:`finish` removes its temporary directory.

    ``level_dtype`` is the dtype of the level values :meth:`append` takes (int32 ranks or window
    indices, float64 prices for :func:`write_events`); they must be ranks by :meth:`finish`."""

    def __init__(self, path: str | Path, level_dtype: Any = np.int32):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self.level_dtype = np.dtype(level_dtype)
        self.files = {name: open(self.tmp / f"{name}.npy", "wb") for name in (*EVENT_COLUMNS, "off", "sz")}
        self.files["levels"] = open(self.tmp / "levels.tmp", "wb")  # level values; lvl.npy once ranks
        for fh in self.files.values():
            fh.write(b"\0" * HEADER)
        self.files["off"].write(np.zeros(1, np.int64).tobytes())
        self.events = 0
        self.levels = 0
        self.done = False

    def __enter__(self) -> "ColumnWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self._close_files()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _close_files(self) -> None:
        for fh in self.files.values():
            if not fh.closed:
                fh.close()

    def append(self, kind: np.ndarray, ts: np.ndarray, seq: np.ndarray, off_next: np.ndarray, nbid: np.ndarray,
               levels: np.ndarray, sz: np.ndarray) -> None:
        """The next events: ``off_next[i]`` is the global end offset of event i's levels (``off[i + 1]``),
        ``levels``/``sz`` their values and sizes."""
        n, m = int(kind.shape[0]), int(sz.shape[0])
        if n and int(off_next[-1]) != self.levels + m:
            raise ValueError(f"chunk's last offset {int(off_next[-1])} != levels written {self.levels + m}")
        for name, col in (("kind", kind), ("ts", ts), ("seq", seq), ("off", off_next), ("nbid", nbid)):
            self.files[name].write(np.ascontiguousarray(col, DTYPES[name]).tobytes())
        self.files["levels"].write(np.ascontiguousarray(levels, self.level_dtype).tobytes())
        self.files["sz"].write(np.ascontiguousarray(sz, np.float64).tobytes())
        self.events += n
        self.levels += m

    def level_chunks(self, chunk: int = CHUNK_LEVELS) -> Iterator[np.ndarray]:
        """The level values written so far, ``chunk`` at a time (read from the file, not kept)."""
        self.files["levels"].flush()
        size = self.level_dtype.itemsize
        for lo in range(0, self.levels, chunk):
            yield np.fromfile(self.tmp / "levels.tmp", dtype=self.level_dtype, count=min(chunk, self.levels - lo), offset=HEADER + lo * size)

    def map_levels(self, fn: Callable[[np.ndarray], np.ndarray], chunk: int = CHUNK_LEVELS) -> None:
        """Replace every level value ``v`` by the int32 rank ``fn(v)`` (applied chunk by chunk)."""
        with open(self.tmp / "levels.map", "wb") as out:
            out.write(b"\0" * HEADER)
            for values in self.level_chunks(chunk):
                out.write(np.ascontiguousarray(fn(values), np.int32).tobytes())
        self.files["levels"].close()
        os.replace(self.tmp / "levels.map", self.tmp / "levels.tmp")
        self.files["levels"] = open(self.tmp / "levels.tmp", "r+b")
        self.files["levels"].seek(0, os.SEEK_END)
        self.level_dtype = np.dtype(np.int32)

    def finish(self, prices: np.ndarray, price_decimals: int, meta: dict[str, Any]) -> Path:
        """Write the price table, the headers and ``meta.json``; move the directory into place
        (replacing an older one of that name)."""
        if self.level_dtype != np.int32:
            raise ValueError("level values must be mapped to int32 ranks before finish")
        counts = {**{name: self.events for name in EVENT_COLUMNS}, "off": self.events + 1, "sz": self.levels, "levels": self.levels}
        for name, count in counts.items():
            fh = self.files[name]
            fh.seek(0)
            fh.write(npy_header(DTYPES.get(name, np.int32), count))
        self._close_files()
        os.replace(self.tmp / "levels.tmp", self.tmp / "lvl.npy")
        np.save(self.tmp / "prices.npy", np.ascontiguousarray(prices, np.int64))
        info = {"version": ENCODING_VERSION, "events": self.events, "levels": self.levels, "price_decimals": int(price_decimals), "meta": meta}
        (self.tmp / "meta.json").write_text(json.dumps(info, default=str))
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        try:
            os.replace(self.tmp, self.path)
        except OSError:  # another process finished the same directory first: keep theirs
            if not (self.path / "meta.json").exists():
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)
        self.done = True
        return self.path


def save_columns(a: EventArrays, path: str | Path) -> Path:
    """Write in-memory arrays (the compiled parser's) as a columnar directory."""
    with ColumnWriter(path) as w:
        w.append(a.kind, a.ts, a.seq, a.off[1:], a.nbid, a.lvl, a.sz)
        return w.finish(a.prices, a.price_decimals, a.meta)


def write_events(events: Iterable[MarketEvent], path: str | Path, meta: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
                 start_decimals: int = 0, chunk: int = 1 << 16) -> Path:
    """:func:`~bot.fast.columnar.encode_events` to a columnar directory, ``chunk`` events at a
    time: the same arrays, in memory bounded by the chunk whatever the stream's length.

    The level prices are written as floats first; at the end, passes over them (chunk by chunk,
    from the file) find the decimals that hold every price exactly, the price table (the union
    of each chunk's distinct units) and each level's rank. ``meta`` may be a callable, evaluated
    after the stream is exhausted (a reader's statistics are complete only then). ValueError
    (before anything is moved into place) when no decimals hold the prices exactly."""
    skipped: dict[str, int] = {}
    with ColumnWriter(path, level_dtype=np.float64) as w:
        for kind, ts, seq, nbid, nlev, prices, sizes in encode_chunks(events, skipped, chunk):
            off_next = np.cumsum(np.frombuffer(nlev, dtype=np.int64)) + w.levels
            w.append(np.frombuffer(kind, np.int8), np.frombuffer(ts, np.int64), np.frombuffer(seq, np.int64), off_next,
                     np.frombuffer(nbid, np.int32), np.frombuffer(prices, np.float64), np.frombuffer(sizes, np.float64))
        decimals = start_decimals
        for values in w.level_chunks():  # a price exact at d decimals is exact at every d' > d
            decimals = price_units(values, decimals)[1]
        table = np.zeros(0, np.int64)
        for values in w.level_chunks():
            table = np.union1d(table, price_units(values, decimals)[0])
        if table.size >= 2**31:
            raise ValueError("too many distinct prices")
        w.map_levels(lambda values: np.searchsorted(table, price_units(values, decimals)[0]))
        info = dict((meta() if callable(meta) else meta) or {})
        if skipped:
            info["skipped"] = skipped
        return w.finish(table, decimals, info)


# --------------------------------------------------------------------------- reading
class Pager:
    """The mappings behind an :class:`EventArrays` opened by :func:`open_columns`: ``release``
    drops the resident pages of the events (and their levels) a replay has passed. They stay in
    the page cache; reading them again maps them again, so releasing is never wrong, only slower."""

    def __init__(self) -> None:
        self.maps: dict[str, tuple[mmap.mmap, int, int]] = {}  # name -> (mapping, data offset, itemsize)
        self.done: dict[str, int] = {}  # bytes released so far, per column

    def add(self, name: str, mm: mmap.mmap, itemsize: int) -> None:
        self.maps[name] = (mm, HEADER, itemsize)
        self.done[name] = 0

    def release(self, events: int, levels: int) -> None:
        """Drop the pages before event ``events`` and level ``levels``: from where the last call
        stopped, or from the start when a new pass began behind it (a second replay)."""
        for name, (mm, start, size) in self.maps.items():
            upto = levels if name in LEVEL_COLUMNS else events
            end = (start + upto * size) // PAGE * PAGE
            done = self.done[name]
            if end < done:  # a new pass over the stream
                done = 0
            if end > done:
                mm.madvise(mmap.MADV_DONTNEED, done, end - done)
            self.done[name] = end


def _read_header(file: Path, name: str) -> tuple[np.dtype, int]:
    try:
        with open(file, "rb") as fh:
            if np.lib.format.read_magic(fh) != (1, 0):
                raise ValueError("not a version 1.0 header")
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            offset = fh.tell()
    except FileNotFoundError:
        raise ColumnsError(f"{file}: column {name!r} missing") from None
    except (OSError, ValueError) as exc:
        raise ColumnsError(f"{file}: not a readable .npy column ({exc})") from None
    if offset != HEADER or fortran or len(shape) != 1:
        raise ColumnsError(f"{file}: expected a 1-D column with a {HEADER}-byte header")
    return dtype, int(shape[0])


def open_columns(path: str | Path) -> EventArrays:
    """Map a columnar directory read-only-in-effect (copy-on-write pages, never written back: the
    kernels take ordinary writable arrays) and check it (module docstring); ColumnsError if unusable."""
    path = Path(path)
    try:
        info = json.loads((path / "meta.json").read_text())
        n, levels, decimals = int(info["events"]), int(info["levels"]), int(info["price_decimals"])
    except FileNotFoundError:
        raise ColumnsError(f"{path}: not a columnar recording (no meta.json)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ColumnsError(f"{path / 'meta.json'}: unreadable ({exc})") from None
    if info.get("version") != ENCODING_VERSION:
        raise ColumnsError(f"{path}: encoding version {info.get('version')}, expected {ENCODING_VERSION}")
    pager = Pager()
    cols: dict[str, np.ndarray] = {}
    expected = {**{name: n for name in EVENT_COLUMNS}, "off": n + 1, **{name: levels for name in LEVEL_COLUMNS}}
    for name, count in expected.items():
        file = path / f"{name}.npy"
        dtype, shape = _read_header(file, name)
        if dtype != np.dtype(DTYPES[name]) or shape != count:
            raise ColumnsError(f"{file}: expected {count} values of {np.dtype(DTYPES[name])}, the header says {shape} of {dtype}")
        size = HEADER + count * dtype.itemsize
        if file.stat().st_size != size:
            raise ColumnsError(f"{file}: {file.stat().st_size} bytes, expected {size} (truncated or damaged)")
        with open(file, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        cols[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=HEADER)
        pager.add(name, mm, dtype.itemsize)
    try:
        prices = np.load(path / "prices.npy")
    except (OSError, ValueError) as exc:
        raise ColumnsError(f"{path / 'prices.npy'}: unreadable ({exc})") from None
    if prices.dtype != np.int64 or prices.ndim != 1 or (prices.size > 1 and not np.all(np.diff(prices) > 0)):
        raise ColumnsError(f"{path / 'prices.npy'}: expected strictly ascending int64 prices")
    if int(cols["off"][0]) != 0 or int(cols["off"][n]) != levels:
        raise ColumnsError(f"{path / 'off.npy'}: offsets must run from 0 to {levels} (the levels)")
    return EventArrays(cols["kind"], cols["ts"], cols["seq"], cols["off"], cols["nbid"], cols["lvl"], cols["sz"], prices, decimals,
                       meta=info.get("meta", {}), pager=pager)
