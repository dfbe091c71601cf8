"""Test helper: write market events as Tardis.dev CSV files (the round-trip test of the Tardis reader).

Written from the dataset layouts (header ``exchange,symbol,timestamp,local_timestamp`` + the
dataset's columns, timestamps in µs), not with the reader's code, so a reader that misreads a
column fails the round trip. Prices and sizes are written with ``repr`` (exact float round trip).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, MarketEvent, Trade

PREFIX = "exchange,symbol,timestamp,local_timestamp"


def _us(ns: int) -> int:
    return ns // 1000


def write_tardis(events: Iterable[MarketEvent], folder: Path, exchange: str, symbol: str) -> dict[str, Path]:
    """Book (incremental_book_L2), quotes and trades files (gzip) of ``events``; returns them by dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "book": folder / f"{exchange}_incremental_book_L2_{symbol}.csv.gz",
        "quotes": folder / f"{exchange}_quotes_{symbol}.csv.gz",
        "trades": folder / f"{exchange}_trades_{symbol}.csv.gz",
    }
    with gzip.open(paths["book"], "wt") as book, gzip.open(paths["quotes"], "wt") as quotes, gzip.open(paths["trades"], "wt") as trades:
        book.write(f"{PREFIX},is_snapshot,side,price,amount\n")
        quotes.write(f"{PREFIX},ask_amount,ask_price,bid_price,bid_amount\n")
        trades.write(f"{PREFIX},id,side,price,amount\n")
        head = f"{exchange},{symbol}"
        for e in events:
            stamp = f"{head},{_us(e.ts_exchange)},{_us(e.ts_local)}"
            if isinstance(e, (BookSnapshot, BookDelta)):
                flag = "true" if isinstance(e, BookSnapshot) else "false"
                for side, levels in (("bid", e.bids), ("ask", e.asks)):
                    for price, size in levels:
                        book.write(f"{stamp},{flag},{side},{price!r},{size!r}\n")
            elif isinstance(e, BestBidAsk):
                quotes.write(f"{stamp},{e.ask_size!r},{e.ask_price!r},{e.bid_price!r},{e.bid_size!r}\n")
            elif isinstance(e, Trade):
                trades.write(f"{stamp},{e.trade_id},{e.side},{e.price!r},{e.size!r}\n")
    return paths
