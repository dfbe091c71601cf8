"""File access shared by the readers: compression told by the content, not by the file name.

A data file may be plain text, gzip, xz, bz2 or a zip archive (LOBSTER's sample, Bybit's history
dumps). :func:`open_binary` opens any of them as a stream of the decompressed bytes (the first
data member of a zip), :func:`head` returns the first decompressed bytes for sniffing, and
:func:`iter_lines` yields text lines. Every failure is a :class:`RecordingError` naming the file.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bot.data.recording import ReadMeter, RecordingError, block_lines

_CHUNK = 1 << 20
_MAGIC = {b"\x1f\x8b": "gzip", b"\xfd7zXZ\x00": "xz", b"BZh": "bz2", b"PK\x03\x04": "zip"}


def compression(path: Path) -> str:
    """``"gzip"``, ``"xz"``, ``"bz2"``, ``"zip"`` or ``"plain"``, from the file's first bytes."""
    try:
        with open(path, "rb") as fh:
            start = fh.read(6)
    except FileNotFoundError:
        raise RecordingError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise RecordingError(f"not a file: {path}") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None
    for magic, kind in _MAGIC.items():
        if start.startswith(magic):
            return kind
    return "plain"


def zip_members(path: Path) -> list[str]:
    """Names of the files in a zip archive (folders and macOS resource forks left out)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX")]
    except (zipfile.BadZipFile, OSError) as exc:
        raise RecordingError(f"{path}: not a readable zip archive ({exc})") from None


def _data_member(path: Path) -> str:
    members = [n for n in zip_members(path) if not n.lower().endswith((".txt", ".md", ".pdf"))]
    if not members:
        raise RecordingError(f"{path}: the zip archive holds no data file")
    return members[0]


def open_binary(path: Path, member: str | None = None) -> IO[bytes]:
    """The decompressed content of ``path`` (of ``member``, or the first data file, of a zip)."""
    kind = compression(path)
    try:
        if kind == "gzip":
            return gzip.open(path, "rb")
        if kind == "xz":
            return lzma.open(path, "rb")
        if kind == "bz2":
            return bz2.open(path, "rb")
        if kind == "zip":
            zf = zipfile.ZipFile(path)
            return zf.open(member or _data_member(path))
        return open(path, "rb")
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise RecordingError(f"{path}: cannot open ({exc})") from None


def _chunks(path: Path, member: str | None = None, metered: bool = False) -> Iterator[bytes]:
    try:
        with open_binary(path, member) as fh:
            while chunk := fh.read(_CHUNK):
                if metered:
                    ReadMeter.note(path, fh)
                yield chunk
    except RecordingError:
        raise
    except (EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile, gzip.BadGzipFile) as exc:
        raise RecordingError(f"{path}: corrupt or truncated compressed data ({exc})") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _gzip_head(path: Path, size: int) -> bytes:
    """First decompressed bytes of a gzip file, also when the stream is cut off (a recorder killed mid-file)."""
    z = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = b""
    try:
        with open(path, "rb") as fh:
            while len(out) < size and not z.eof and (raw := fh.read(_CHUNK // 16)):
                out += z.decompress(raw, size - len(out))
    except (OSError, zlib.error):
        pass
    return out[:size]


def head(path: Path, size: int = 64 * 1024, member: str | None = None) -> bytes:
    """Up to ``size`` first decompressed bytes (b"" for an unreadable or corrupt file: sniffing never raises)."""
    try:
        if member is None and compression(path) == "gzip":
            return _gzip_head(path, size)
    except RecordingError:
        return b""
    out = b""
    try:
        for chunk in _chunks(path, member):
            out += chunk
            if len(out) >= size:
                break
    except RecordingError:
        pass
    return out[:size]


def head_lines(path: Path, n: int = 20, member: str | None = None) -> list[str]:
    """The first ``n`` non-blank text lines (the last one may be cut short when longer than 64 KiB)."""
    text = head(path, member=member).decode("utf-8", "replace")
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()][:n]


def iter_lines(path: Path, member: str | None = None) -> Iterator[str]:
    """Text lines without their newline (``\\r`` removed too), decoded in blocks for speed."""
    return block_lines(_chunks(path, member, metered=True), strip_cr=True)
