"""Data readers: one module per recorded-data format, found by content (see :mod:`.registry`).

Importing this package registers every format below, in this order (the order detection tries
them in; each sniff is specific to its format, so the order only matters for speed).
"""

from __future__ import annotations

from bot.data.readers import binance_raw, binance_csv, bitstamp, bybit, lobster, own, tardis  # noqa: F401  (registration)
from bot.data.readers.registry import Format, UnknownFormat, detect, format_names, formats, get_format, read_events, resolve

__all__ = ["Format", "UnknownFormat", "detect", "format_names", "formats", "get_format", "read_events", "resolve"]
