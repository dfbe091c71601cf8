"""Decompressed blocks of gzip recordings for the compiled parser (:mod:`bot.fast.parse_binance`).

The parser scans text faster than stdlib zlib inflates it, so inflation is most of its time.
ISA-L (the ``isal`` wheel) inflates the same gzip 2-3x faster than zlib, and ``zlib-ng`` (ccxt
already brings it) nearly as fast; whichever imports is used, stdlib zlib only as the last
resort. All three have zlib's ``decompressobj`` shape (``decompress``, ``eof``, ``unused_data``)
and release the GIL while they inflate, so a block is inflated in a thread ahead of its scan.
"""

from __future__ import annotations

import queue
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from bot.data.recording import ReadMeter

RAW_BLOCK = 2 << 20  # compressed bytes inflated at a time (about 16-25 MB of text)
AHEAD = 2  # inflated blocks waiting for the scan


def _inflater() -> tuple[ModuleType, tuple[type[BaseException], ...]]:
    """The fastest zlib-compatible module installed and the errors it raises on a corrupt stream."""
    try:
        from isal import isal_zlib

        return isal_zlib, (isal_zlib.error, zlib.error)
    except ImportError:
        pass
    try:
        from zlib_ng import zlib_ng

        return zlib_ng, (zlib_ng.error, zlib.error)
    except ImportError:
        return zlib, (zlib.error,)


INFLATE, INFLATE_ERRORS = _inflater()
GZIP_WBITS = 16 + 15  # a gzip header and trailer around a deflate stream, the largest window


class Unreadable(Exception):
    """A file the decompressor refuses: the reference reader names the fault."""


def file_blocks(path: Path) -> Iterator[bytes]:
    """Decompressed blocks of one gzip file (every member), each ending at a line end."""
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise Unreadable(str(path)) from exc
    with fh:
        z = INFLATE.decompressobj(GZIP_WBITS)
        tail = b""
        while raw := fh.read(RAW_BLOCK):
            ReadMeter.note(path, fh)  # a progress bar's bytes (the command's, when it installed one)
            try:
                data = z.decompress(raw)
                while z.eof and z.unused_data:  # a multi-member file: the next member starts here
                    rest = z.unused_data
                    z = INFLATE.decompressobj(GZIP_WBITS)
                    data += z.decompress(rest)
            except INFLATE_ERRORS as exc:
                raise Unreadable(f"{path}: {exc}") from exc
            cut = data.rfind(b"\n")
            if cut < 0:
                tail += data
                continue
            yield tail + data[: cut + 1]
            tail = data[cut + 1 :]
        if not z.eof:
            raise Unreadable(f"{path}: truncated")  # the reference reader says what is wrong
        if tail:
            yield tail + b"\n"


def blocks_ahead(path: Path, stop: threading.Event) -> Iterator[bytes]:
    """:func:`file_blocks` inflated in a thread ahead of the consumer.

    At most ``AHEAD`` blocks wait, so memory stays bounded whatever the file's length; ``stop``
    (set by the consumer, or by another file's scan that already failed) ends the thread early.
    """
    pending: queue.Queue[Any] = queue.Queue(maxsize=AHEAD)
    done = object()
    left = threading.Event()  # the consumer is gone (finished, failed or stopped)

    def put(item: Any) -> bool:
        """Queue ``item`` unless the consumer left or the scan was stopped first."""
        while not (stop.is_set() or left.is_set()):
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in file_blocks(path):
                if not put(block):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    worker = threading.Thread(target=produce, name="inflate", daemon=True)
    worker.start()
    try:
        while not stop.is_set():  # stopped: the caller sees ``stop`` and ignores what it got
            try:
                item = pending.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        left.set()
        worker.join()
