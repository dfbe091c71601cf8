"""``bot inspect FILE... [--format NAME] [--json]``: what a data file holds, before replaying it.

The files are read together, as ``--data`` would read them (one format, detected from the
content unless ``--format`` is given), and every event is counted by kind. The depth events are
also replayed through an :class:`~bot.book.book.OrderBook` of their own (no best-bid/ask overlay)
to count the events after which the rebuilt book is crossed. The report names the format,
exchange, symbol, market type, the local and exchange time spans, the counts, sequence gaps,
crossed books and the reader's problem counts (malformed lines ...), with its first problems.
A file no reader recognizes, or that yields no event, is an error (exit 1) naming the file.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

from bot.book.book import OrderBook
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarkPrice, Trade
from bot.data.binance import ReaderStats, RecordingError

KINDS = {BookSnapshot: "snapshot", BookDelta: "delta", BestBidAsk: "bbo", Trade: "trade",
         BookInvalidated: "invalidated", MarkPrice: "mark_price", Liquidation: "liquidation"}


def _iso(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def inspect_files(paths: list[str], fmt: str | None = None) -> dict[str, Any]:
    """The inspection report of ``paths`` read together (raises :class:`RecordingError`)."""
    from bot.data.readers import get_format, read_events

    stats = ReaderStats()
    counts = dict.fromkeys(KINDS.values(), 0)
    book = OrderBook()
    crossed = 0
    first = last = 0
    first_ex = last_ex = 0
    for event in read_events(paths, fmt, stats):
        kind = KINDS[type(event)]
        counts[kind] += 1
        ts = event.ts_local
        if not first:
            first = ts
        last = ts
        ex = event.ts_exchange
        if ex:
            first_ex = min(first_ex, ex) if first_ex else ex
            last_ex = max(last_ex, ex)
        if kind in ("snapshot", "delta", "invalidated"):
            book.apply(event)
            if kind != "invalidated" and not book.awaiting_snapshot:
                bid, ask = book.best_bid, book.best_ask
                if bid == bid and ask == ask and bid >= ask:  # NaN-safe: an empty side is not crossed
                    crossed += 1
    bids, asks = book.level_count()
    return {
        "files": [str(p) for p in paths],
        "format": stats.format,
        "format_description": get_format(stats.format).description,
        "exchange": stats.exchange or None,
        "symbol": stats.symbol or None,
        "market_type": stats.market_type or None,
        "events": sum(counts.values()),
        "counts": counts,
        "first_ts": first,
        "last_ts": last,
        "first_time": _iso(first),
        "last_time": _iso(last),
        "duration_s": round((last - first) / 1e9, 3),
        "first_ts_exchange": first_ex or None,
        "last_ts_exchange": last_ex or None,
        "gaps": stats.gaps,
        "crossed_books": crossed,
        "crossed_bbo": stats.crossed_bbo,
        "malformed": stats.malformed,
        "negative_sizes": stats.negative_sizes,
        "out_of_order": stats.out_of_order,
        "dropped_deltas": stats.dropped_deltas,
        "ignored": stats.ignored,
        "lines": stats.lines,
        "final_book_levels": {"bids": bids, "asks": asks},
        "problems_total": stats.problems_total,
        "problems": stats.problems[:20],
    }


def format_text(r: dict[str, Any]) -> str:
    c = r["counts"]
    lines = [
        f"files        {', '.join(r['files'])}",
        f"format       {r['format']} ({r['format_description']})",
        f"instrument   {r['exchange'] or '?'} {r['symbol'] or '?'} ({r['market_type'] or 'market type unknown'})",
        f"time span    {r['first_time']} -> {r['last_time']} ({r['duration_s']:,.3f} s, local clock)",
        f"events       {r['events']:,}: " + ", ".join(f"{k} {v:,}" for k, v in c.items() if v),
        f"sequence gaps {r['gaps']}, crossed books {r['crossed_books']}, crossed quotes {r['crossed_bbo']}",
        f"bad input    malformed {r['malformed']}, negative sizes {r['negative_sizes']}, out of order {r['out_of_order']}, "
        f"updates without a snapshot {r['dropped_deltas']}, ignored {r['ignored']}",
    ]
    for p in r["problems"][:10]:
        lines.append(f"problem      {p}")
    if r["problems_total"] > 10:
        lines.append(f"             ... {r['problems_total'] - 10} more problem(s)")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from bot.store.jsonout import strict_json

    try:
        report = inspect_files(list(args.files), args.format)
    except RecordingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(strict_json(report) if args.json else format_text(report))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from bot.data.readers import formats

    names = "; ".join(f"{f.name}: {f.description}" for f in formats())
    p = sub.add_parser("inspect", help="what recorded data files hold: format, instrument, time span, counts, gaps, crossed books",
                       description=f"Read the files as --data would and report on them. Formats: {names}.")
    p.add_argument("files", nargs="+", metavar="FILE", help="data files, read together (the files of one recording)")
    p.add_argument("--format", metavar="NAME", help="read the files as this format instead of detecting it")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_inspect)
