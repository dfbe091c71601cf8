"""The reader registry: every data format the bot reads, detected from file content.

A format is a :class:`Format`: a name (what ``--format`` takes), a one-line description, a
``sniff(path) -> bool`` that looks at the file's *content* (decompressed first bytes; never the
file name's extension) and a ``read(paths, stats)`` that yields :mod:`bot.core.events` records
in ``ts_local`` order and fills a :class:`bot.data.binance.ReaderStats`. Each format module
registers itself with :func:`register` when imported; :mod:`bot.data.readers` imports them all.

:func:`read_events` is what the commands call: it finds each file's format (or takes the one
given), refuses files no reader recognizes or files of different formats given together, and
raises :class:`RecordingError` when the files yield no event at all. Like
:func:`bot.data.binance.read_binance` it is lazy: every check runs on the first ``next()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.core.events import MarketEvent
from bot.data.binance import ReaderStats
from bot.data.recording import RecordingError

__all__ = ["Format", "UnknownFormat", "detect", "format_names", "get_format", "read_events", "register"]


class UnknownFormat(RecordingError):
    """No reader recognizes the file (or ``--format`` names no reader)."""


@dataclass(frozen=True)
class Format:
    name: str
    description: str  # one line: what the format is (README table, --help, error messages)
    sniff: Callable[[Path], bool]
    read: Callable[[Sequence[Path], ReaderStats], Iterator[MarketEvent]]


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    if fmt.name in _FORMATS:
        raise ValueError(f"data format {fmt.name!r} is registered twice")
    _FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> list[str]:
    return list(_FORMATS)


def formats() -> list[Format]:
    return list(_FORMATS.values())


def get_format(name: str) -> Format:
    fmt = _FORMATS.get(name)
    if fmt is None:
        raise UnknownFormat(f"unknown data format {name!r}; known formats: {', '.join(_FORMATS)}")
    return fmt


def _sniff(fmt: Format, path: Path) -> bool:
    try:
        return bool(fmt.sniff(path))
    except (RecordingError, OSError, ValueError, UnicodeError):
        return False


def detect(path: str | Path) -> Format:
    """The format of one file, from its content; :class:`UnknownFormat` naming the file and the formats tried."""
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"data file not found: {path}")
    if not path.is_file():
        raise RecordingError(f"not a file: {path}")
    for fmt in _FORMATS.values():
        if _sniff(fmt, path):
            return fmt
    size = path.stat().st_size
    what = "the file is empty" if size == 0 else "its content matches none of them"
    raise UnknownFormat(f"{path}: not a recognized data file ({what}; formats tried: {', '.join(_FORMATS)}); "
                        f"give --format NAME to read it as one of them")


def resolve(paths: Sequence[str | Path], fmt: str | None = None) -> Format:
    """The one format of all ``paths`` (``fmt`` when given, else detected per file)."""
    if not paths:
        raise RecordingError("no data files given")
    files = [Path(p) for p in paths]
    for f in files:
        if not f.is_file():
            raise RecordingError(f"data file not found: {f}" if not f.exists() else f"not a file: {f}")
    if fmt:
        return get_format(fmt)
    found = {f: detect(f) for f in files}
    names = {d.name for d in found.values()}
    if len(names) > 1:
        listing = ", ".join(f"{f} ({d.name})" for f, d in found.items())
        raise RecordingError(f"data files of different formats cannot be read together: {listing}")
    return next(iter(found.values()))


def _events(paths: list[Path], fmt: str | None, stats: ReaderStats) -> Iterator[MarketEvent]:
    reader = resolve(paths, fmt)
    stats.format = reader.name
    n = 0
    for event in reader.read(paths, stats):
        n += 1
        yield event
    if not n:
        first = f"; first problem: {stats.problems[0]}" if stats.problems else ""
        seen = [f"{n} {what}" for n, what in (
            (stats.malformed, "malformed"), (stats.negative_sizes, "with negative sizes"), (stats.out_of_order, "out of order"),
            (stats.ignored, "ignored"), (stats.dropped_deltas, "book update(s) without a snapshot to apply to"),
        ) if n]
        raise RecordingError(f"{', '.join(map(str, paths))}: read as {reader.name} ({reader.description}), "
                             f"the file(s) yield no market events ({stats.lines} line(s) read"
                             f"{': ' + ', '.join(seen) if seen else ''}){first}")


def read_events(paths: Sequence[str | Path] | str | Path, fmt: str | None = None,
                stats: ReaderStats | None = None) -> Iterator[MarketEvent]:
    """Market events of ``paths`` read by their format (``fmt`` overrides detection).

    Lazy: errors (:class:`RecordingError`, :class:`UnknownFormat`) surface on the first ``next()``.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return _events([Path(p) for p in paths], fmt, stats if stats is not None else ReaderStats())
