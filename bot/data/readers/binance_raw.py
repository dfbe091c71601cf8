"""Binance raw streams (hftbacktest collector): the existing :func:`bot.data.binance.read_binance`.

Recognized by content: gzip text whose first lines are ``<local_ns> {"stream": ...}`` combined-stream
messages or a ``<local_ns> {"lastUpdateId": ...}`` REST depth snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from bot.core.events import MarketEvent
from bot.data.binance import ReaderStats, read_binance
from bot.data.readers.io import compression, head_lines
from bot.data.readers.registry import Format, register

_LINE = re.compile(r'^\d{9,20} \{\s*"(stream|lastUpdateId)"\s*:')


def sniff(path: Path) -> bool:
    if compression(path) != "gzip":  # the reader reads gzip only (what the collector writes)
        return False
    return any(_LINE.match(line) for line in head_lines(path, 50))


def read(paths: Sequence[Path], stats: ReaderStats) -> Iterator[MarketEvent]:
    stats.exchange = "binance"
    return read_binance(list(paths), stats)


FORMAT = register(Format(
    "binance-raw",
    "Binance combined-stream recording of hftbacktest's collector: gzip '<local_ns> <json>' lines",
    sniff, read,
))
