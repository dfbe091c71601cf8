"""bot.data.readers: every format detected by content and read into the same events.

Books rebuilt from our events are checked against straightforward computations made here from
the raw files (csv/json parsing, plain dicts), not with the readers' code. Tests of the shared
files skip when ``../shared/data`` is not mounted.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import lzma
import shutil
import zipfile
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.book.book import OrderBook
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarkPrice, Trade
from bot.data.binance import ReaderStats, RecordingError, read_binance
from bot.data.readers import UnknownFormat, detect, format_names, read_events
from conftest import shared_data_dir
from tardis_writer import write_tardis

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present: the shared data files are only "
                                                          "available where the shared folder is mounted")
SPOT = DATA / "hftbacktest-binance" / "spot" / "btcusdt_20240808.gz"
LOBSTER = DATA / "lobster-sample" / "LOBSTER_SampleFile_GOOG_2012-06-21_10.zip"
BITSTAMP = DATA / "bitstamp-obanalytics" / "2015-05-01.log.xz"
NAUTILUS = DATA / "nautilus-fixtures"
TARDIS25 = NAUTILUS / "tardis" / "binance-futures_book_snapshot_25_BTCUSDT.csv"
TARDIS5 = NAUTILUS / "tardis" / "binance-futures_book_snapshot_5_BTCUSDT.csv"
TARDIS_L2 = NAUTILUS / "tardis" / "deribit_incremental_book_L2_BTC-PERPETUAL.csv"
BYBIT = NAUTILUS / "bybit" / "xrpusdt-ob500.data.zip"
BN_SNAP = NAUTILUS / "binance" / "btcusdt-depth-snap.csv"
BN_UPDATE = NAUTILUS / "binance" / "btcusdt-depth-update.csv"


def _read(paths, fmt=None):
    stats = ReaderStats()
    return list(read_events(paths, fmt, stats)), stats


def _book(events) -> OrderBook:
    book = OrderBook()
    for e in events:
        if not isinstance(e, BestBidAsk):
            book.apply(e)
    return book


def _all_levels(book: OrderBook):
    bids, asks = book.level_count()
    return book.bids(bids), book.asks(asks)


# --------------------------------------------------------------------------- detection
@needs_data
@pytest.mark.data
@pytest.mark.parametrize("path, expected", [
    (SPOT, "binance-raw"), (LOBSTER, "lobster"), (BITSTAMP, "bitstamp"), (TARDIS25, "tardis"), (TARDIS5, "tardis"),
    (TARDIS_L2, "tardis"), (BYBIT, "bybit"), (BN_SNAP, "binance-book-csv"), (BN_UPDATE, "binance-book-csv"),
])
def test_every_shared_file_is_detected_by_content(path, expected, tmp_path):
    assert detect(path).name == expected
    # the name does not matter: the same bytes under a meaningless name, and gzipped, detect the same
    blind = tmp_path / "data.bin"
    shutil.copyfile(path, blind)
    assert detect(blind).name == expected
    if expected in ("tardis", "binance-book-csv", "bitstamp"):
        raw = lzma.decompress(path.read_bytes()) if expected == "bitstamp" else path.read_bytes()
        packed = tmp_path / "packed.dat"
        packed.write_bytes(gzip.compress(raw))
        assert detect(packed).name == expected


def test_unknown_and_empty_files_name_the_file_and_the_formats_tried(tmp_path):
    other = tmp_path / "prices.csv.gz"
    other.write_bytes(gzip.compress(b"date,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n"))
    empty = tmp_path / "empty.gz"
    empty.write_bytes(b"")
    for path, what in ((other, "matches none"), (empty, "empty")):
        with pytest.raises(UnknownFormat) as err:
            list(read_events([path]))
        message = str(err.value)
        assert str(path) in message and what in message and "\n" not in message
        for name in format_names():
            assert name in message


def test_a_recognized_file_without_events_is_an_error(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"))
    with pytest.raises(RecordingError, match="yield no market events"):
        list(read_events([path]))
    with pytest.raises(RecordingError, match="unknown data format 'nope'"):
        list(read_events([path], "nope"))


@needs_data
@pytest.mark.data
def test_binance_raw_through_the_registry_is_read_binance():
    ours, stats = _read([SPOT])
    direct = list(read_binance([SPOT]))
    assert ours == direct and len(ours) > 40_000
    assert (stats.format, stats.exchange, stats.symbol, stats.market_type) == ("binance-raw", "binance", "BTCUSDT", "spot")


# --------------------------------------------------------------------------- Tardis
def _tardis_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("path, depth", [(TARDIS25, 25), (TARDIS5, 5)])
def test_tardis_book_snapshots_equal_the_csv_rows(path, depth):
    rows = _tardis_rows(path)
    events, stats = _read([path])
    assert len(events) == len(rows) == 10 and all(isinstance(e, BookSnapshot) for e in events)
    assert (stats.symbol, stats.exchange, stats.market_type) == ("BTCUSDT", "binance-futures", "linear")
    book = OrderBook()
    for row, event in zip(rows, events):
        book.apply(event)
        assert event.ts_local == int(row["local_timestamp"]) * 1000 and event.ts_exchange == int(row["timestamp"]) * 1000
        bids = [(float(row[f"bids[{i}].price"]), float(row[f"bids[{i}].amount"])) for i in range(depth)]
        asks = [(float(row[f"asks[{i}].price"]), float(row[f"asks[{i}].amount"])) for i in range(depth)]
        assert book.bids(depth + 5) == bids and book.asks(depth + 5) == asks
        assert book.best_bid < book.best_ask


@needs_data
@pytest.mark.data
def test_tardis_incremental_snapshot_rows_are_one_snapshot():
    rows = _tardis_rows(TARDIS_L2)
    events, stats = _read([TARDIS_L2])
    assert len(events) == 1 and isinstance(events[0], BookSnapshot)
    expect = defaultdict(dict)
    for r in rows:
        expect[r["side"]][float(r["price"])] = float(r["amount"])
    snap = events[0]
    assert dict(snap.bids) == expect["bid"] and dict(snap.asks) == expect["ask"]
    assert [p for p, _ in snap.bids] == sorted(expect["bid"], reverse=True)
    assert stats.symbol == "BTC-PERPETUAL" and stats.market_type == "inverse"


_prices = st.integers(1, 40)
_message = st.tuples(st.booleans(), st.lists(st.tuples(st.booleans(), _prices, st.sampled_from([0.0, 0.5, 1.0, 2.25, 7.0])),
                                             min_size=1, max_size=6))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(_message, min_size=1, max_size=25), gzipped=st.booleans())
def test_tardis_incremental_book_matches_a_plain_dict_model(tmp_path_factory, messages, gzipped):
    """Snapshot runs reset the book, update rows set absolute sizes: our book equals a dict model."""
    lines = ["exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount"]
    model = None
    for i, (snap, levels) in enumerate(messages):
        ts = 1_600_000_000_000_000 + i * 1000
        if snap:
            model = {"bid": {}, "ask": {}}
        for is_bid, tick, size in levels:
            side = "bid" if is_bid else "ask"
            price = tick if is_bid else 100 + tick  # bids below asks: the book never crosses
            lines.append(f"binance,BTCUSDT,{ts - 5},{ts},{'true' if snap else 'false'},{side},{price},{size}")
            if model is not None:
                model[side][float(price)] = size
    path = tmp_path_factory.mktemp("tardis") / "book"
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gzipped else data)
    if model is None:
        with pytest.raises(RecordingError, match="without a snapshot"):
            list(read_events([path]))
        return
    events, stats = _read([path])
    assert stats.format == "tardis"
    assert stats.events["snapshot"] == sum(1 for s, _ in messages if s)
    bids, asks = _all_levels(_book(events))
    assert bids == sorted(((p, q) for p, q in model["bid"].items() if q > 0), reverse=True)
    assert asks == sorted((p, q) for p, q in model["ask"].items() if q > 0)
    assert all(b.ts_local >= a.ts_local for a, b in zip(events, events[1:]))


def test_tardis_trades_ticker_liquidations_and_bad_rows(tmp_path):
    head = "exchange,symbol,timestamp,local_timestamp"
    trades = tmp_path / "binance-futures_trades_2020-09-01_BTCUSDT.csv"
    trades.write_text(f"{head},id,side,price,amount\n"
                      "binance-futures,BTCUSDT,1000,2000,11,buy,100.5,0.25\n"
                      "binance-futures,BTCUSDT,3000,4000,12,sell,100.0,1\n"
                      "binance-futures,BTCUSDT,3000,4500,13,unknown,100.0,1\n"
                      "binance-futures,BTCUSDT,3000,5000,x,buy,-1,1\n"
                      "binance-futures,BTCUSDT,oops\n")
    ticker = tmp_path / "binance-futures_derivative_ticker_2020-09-01_BTCUSDT.csv.gz"
    ticker.write_bytes(gzip.compress(
        f"{head},funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price\n"
        "binance-futures,BTCUSDT,2500,3000,1598947200000000,0.0001,0.0002,100,100.2,100.1,100.3\n"
        "binance-futures,BTCUSDT,2600,3100,,,,,,,\n".encode()))
    liq = tmp_path / "binance-futures_liquidations_2020-09-01_BTCUSDT.csv"
    liq.write_text(f"{head},id,side,price,amount\nbinance-futures,BTCUSDT,3500,3600,,sell,99.5,2\n")
    events, stats = _read([trades, ticker, liq])
    assert [type(e) for e in events] == [Trade, MarkPrice, Liquidation, Trade]
    t1, mark, forced, t2 = events
    assert (t1.ts_exchange, t1.ts_local, t1.price, t1.size, t1.side, t1.trade_id) == (1_000_000, 2_000_000, 100.5, 0.25, "buy", 11)
    assert (t2.side, t2.trade_id) == ("sell", 12)
    assert (mark.mark_price, mark.index_price, mark.funding_rate, mark.next_funding_ts) == (100.3, 100.1, 0.0001, 1598947200000000000)
    assert (forced.side, forced.price, forced.size) == ("sell", 99.5, 2.0)
    assert stats.malformed == 2 and stats.ignored == 2  # the bad price and the short row; unknown side and empty ticker
    assert any(p.startswith(f"{trades.name}:5:") and "price" in p for p in stats.problems)
    assert any(p.startswith(f"{trades.name}:6:") and "fields" in p for p in stats.problems)
    # the same trade rows read as liquidations when --format says so
    plain = tmp_path / "flow.csv"
    plain.write_text(f"{head},id,side,price,amount\nbinance-futures,BTCUSDT,1,2,7,buy,10,1\n")
    assert [type(e) for e in _read([plain])[0]] == [Trade]
    assert [type(e) for e in _read([plain], "tardis-liquidations")[0]] == [Liquidation]


@needs_data
@pytest.mark.data
def test_tardis_round_trip_of_the_shared_binance_recording(tmp_path):
    """The Binance recording written as Tardis CSV (book, quotes, trades) reads back as the same events (µs clocks)."""
    original = list(read_binance([SPOT]))
    files = write_tardis(original, tmp_path, "binance", "BTCUSDT")
    back, stats = _read(list(files.values()))
    assert stats.format == "tardis" and stats.symbol == "BTCUSDT" and stats.market_type == "spot"
    assert stats.malformed == stats.out_of_order == 0
    assert all(b.ts_local >= a.ts_local for a, b in zip(back, back[1:]))

    def us(ns):
        return ns // 1000 * 1000

    def norm(e):
        if isinstance(e, BookSnapshot):
            return ("snapshot", us(e.ts_local), us(e.ts_exchange), e.bids, e.asks)
        if isinstance(e, BookDelta):
            return ("delta", us(e.ts_local), us(e.ts_exchange), e.bids, e.asks)
        if isinstance(e, BestBidAsk):
            return ("bbo", us(e.ts_local), us(e.ts_exchange), e.bid_price, e.bid_size, e.ask_price, e.ask_size)
        if isinstance(e, Trade):
            return ("trade", us(e.ts_local), us(e.ts_exchange), e.price, e.size, e.side, e.trade_id)
        return (type(e).__name__,)

    for kind in ("snapshot", "delta", "bbo", "trade"):
        want = [norm(e) for e in original if norm(e)[0] == kind and not (isinstance(e, BookDelta) and not (e.bids or e.asks))]
        got = [norm(e) for e in back if norm(e)[0] == kind]
        assert got == want, kind
        assert want
    assert _all_levels(_book(back)) == _all_levels(_book(original))


# --------------------------------------------------------------------------- LOBSTER
def _lobster_rows(zf: zipfile.ZipFile, kind: str):
    name = next(n for n in zf.namelist() if f"_{kind}_" in n)
    with zf.open(name) as fh:
        yield from csv.reader(io.TextIOWrapper(fh, "ascii"))


def _lobster_side(row, offset):
    out = []
    for i in range(offset, len(row), 4):
        price, size = int(row[i]), int(row[i + 1])
        if size > 0 and abs(price) != 9999999999:
            out.append((price / 10_000.0, float(size)))
    return out


def _row_of(e) -> int:
    if isinstance(e, BookSnapshot):
        return e.sequence
    if isinstance(e, BookDelta):
        return e.last_seq
    return e.trade_id


@needs_data
@pytest.mark.data
def test_lobster_book_equals_the_orderbook_file_after_every_message():
    events, stats = _read([LOBSTER])
    assert (stats.format, stats.symbol, stats.exchange) == ("lobster", "GOOG", "nasdaq")
    by_row = defaultdict(list)
    for e in events:
        by_row[_row_of(e)].append(e)
    book = OrderBook()
    trades = 0
    with zipfile.ZipFile(LOBSTER) as zf:
        for r, (msg, row) in enumerate(zip(_lobster_rows(zf, "message"), _lobster_rows(zf, "orderbook")), start=1):
            mine = by_row.pop(r, ())
            for e in mine:
                book.apply(e)
            if msg[1] in ("4", "5"):  # an execution: one trade, the aggressor opposite the resting order
                (trade,) = [e for e in mine if isinstance(e, Trade)]
                assert (trade.price, trade.size) == (int(msg[4]) / 10_000.0, float(msg[3]))
                assert trade.side == ("buy" if msg[5] == "-1" else "sell")
                trades += 1
            # asks are columns 0, 4, 8 ...; bids 2, 6, 10 ...
            assert book.asks(10) == _lobster_side(row, 0), r
            assert book.bids(10) == _lobster_side(row, 2), r
    assert r == 147_916 and not by_row
    assert stats.events["trade"] == trades == 7_765 + 3_913
    # the first message is 09:30:00.015105074 New York time (EDT, UTC-4) on 2012-06-21
    assert events[0].ts_local == 1340285400_000_000_000 + 15_105_074


@needs_data
@pytest.mark.data
def test_lobster_plain_file_pair_reads_like_the_zip(tmp_path):
    """The two CSVs (one gzipped, given in either order, or the message file alone) read like the zip."""
    n = 3000
    with zipfile.ZipFile(LOBSTER) as zf:
        names = {k: next(x for x in zf.namelist() if f"_{k}_" in x) for k in ("message", "orderbook")}
        rows = {k: zf.read(v).split(b"\n")[:n] for k, v in names.items()}
    msg = tmp_path / names["message"]
    msg.write_bytes(b"\n".join(rows["message"]) + b"\n")
    book = tmp_path / names["orderbook"]
    book.write_bytes(b"\n".join(rows["orderbook"]) + b"\n")
    small, _ = _read([book, msg])
    alone, _ = _read([msg])
    assert small == alone
    packed = tmp_path / "ob.gz"
    packed.write_bytes(gzip.compress(book.read_bytes()))
    assert _read([msg, packed])[0][:50] == small[:50]
    full, _ = _read([LOBSTER])
    assert small == full[: len(small)]
    sides = {e.side for e in small if isinstance(e, Trade)}
    assert sides == {"buy", "sell"}
    # a sell order executed (direction -1) is a buyer-initiated trade
    first = rows["message"][0].split(b",")
    assert first[1] == b"4" and first[5] == b"1" and small[0].side == "sell"


# --------------------------------------------------------------------------- Bitstamp
@needs_data
@pytest.mark.data
def test_bitstamp_snapshots_and_order_events_rebuild_the_next_snapshot():
    raw = lzma.decompress(BITSTAMP.read_bytes()).decode().splitlines()
    snapshots = [json.loads(line.split(" ", 2)[2]) for line in raw if line.split(" ", 2)[1] == "order_book"]
    events, stats = _read([BITSTAMP])
    ours = [e for e in events if isinstance(e, BookSnapshot)]
    assert len(ours) == len(snapshots) == 5_011 and stats.events["trade"] == 575
    for snap, obj in zip(ours, snapshots):
        assert snap.bids == tuple((float(p), float(q)) for p, q in obj["bids"])
        assert snap.asks == tuple((float(p), float(q)) for p, q in obj["asks"])
    # the order events between two snapshots must lead (almost always) to the next snapshot's best prices
    book = OrderBook()
    agree = compared = 0
    for e in events:
        if isinstance(e, BookSnapshot) and not book.awaiting_snapshot:
            compared += 1
            agree += (book.best_bid, book.best_ask) == (e.bids[0][0], e.asks[0][0])
        book.apply(e)
    assert compared == 5_010 and agree / compared > 0.99
    assert stats.first_ts == 1430438404518 * 1_000_000 and stats.symbol == "BTCUSD"


# --------------------------------------------------------------------------- Bybit, Binance book CSV
@needs_data
@pytest.mark.data
def test_bybit_dump_rebuilds_the_book_of_a_plain_replay():
    with zipfile.ZipFile(BYBIT) as zf:
        messages = [json.loads(line) for line in zf.read(zf.namelist()[0]).splitlines() if line.strip()]
    model = {"b": {}, "a": {}}
    for m in messages:
        if m["type"] == "snapshot":
            model = {"b": {}, "a": {}}
        for side in "ba":
            for p, q in m["data"][side]:
                model[side][float(p)] = float(q)
    events, stats = _read([BYBIT])
    assert stats.events["snapshot"] == 1 and stats.events["delta"] == 49 and stats.gaps == 0
    book = OrderBook()
    for e in events:
        book.apply(e)
        assert book.best_bid < book.best_ask
    bids, asks = _all_levels(book)
    assert bids == sorted(((p, q) for p, q in model["b"].items() if q > 0), reverse=True)
    assert asks == sorted((p, q) for p, q in model["a"].items() if q > 0)
    assert len(bids) == len(asks) == 500 and stats.symbol == "XRPUSDT"


def test_bybit_sequence_gap_invalidates_the_book(tmp_path):
    def msg(kind, u, b):
        return json.dumps({"topic": "orderbook.50.BTCUSDT", "type": kind, "ts": 1000 + u, "cts": 990 + u,
                           "data": {"s": "BTCUSDT", "b": b, "a": [["101", "1"]], "u": u, "seq": u}})
    path = tmp_path / "dump.data"
    path.write_text("\n".join([msg("snapshot", 5, [["100", "1"]]), msg("delta", 6, [["100", "2"]]),
                               msg("delta", 8, [["100", "3"]]), msg("delta", 9, [["100", "4"]])]) + "\n")
    events, stats = _read([path])
    assert [type(e) for e in events] == [BookSnapshot, BookDelta, BookInvalidated]
    assert stats.gaps == 1 and "expected u=7, got u=8" in stats.problems[0]
    assert "expected u=7, got u=8" in events[2].reason


@needs_data
@pytest.mark.data
def test_binance_book_csv_snapshot_and_sequence_rules():
    rows = _tardis_rows(BN_SNAP)
    events, stats = _read([BN_SNAP])
    assert len(events) == 1 and isinstance(events[0], BookSnapshot)
    assert dict(events[0].bids) == {float(r["price"]): float(r["qty"]) for r in rows if r["side"] == "b" and float(r["qty"])}
    assert dict(events[0].asks) == {float(r["price"]): float(r["qty"]) for r in rows if r["side"] == "a" and float(r["qty"])}
    assert events[0].sequence == int(rows[0]["last_update_id"])
    # the update file alone has nothing to apply its updates to: an error that says so
    with pytest.raises(RecordingError, match="without a snapshot to apply to"):
        list(read_events([BN_UPDATE]))
    # together they are not contiguous: the first update breaks the chain
    both, stats = _read([BN_UPDATE, BN_SNAP])
    assert isinstance(both[0], BookSnapshot) and isinstance(both[1], BookInvalidated) and stats.gaps == 1
