"""bot.data.binance: replaying Binance raw-stream recordings (hftbacktest collector format).

The tests marked ``data`` read the real recordings in ``../shared/data`` and skip when that folder
is not mounted; the others build small gzip files in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bot.book.book import BookStatus, OrderBook
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Trade
from bot.data.binance import MAX_PROBLEMS, ReaderStats, RecordingError, read_binance
from conftest import shared_data_dir

DATA = shared_data_dir() / "hftbacktest-binance"
needs_data = pytest.mark.skipif(
    not DATA.exists(),
    reason="../shared/data not present: real recordings are only available where the shared folder is mounted",
)
SPOT = [DATA / "spot" / "btcusdt_20240808.gz", DATA / "spot" / "btcusdt_20240809.gz"]
USDM_JULY = [DATA / "usdm" / "btcusdt_20240718.gz", DATA / "usdm" / "btcusdt_20240719.gz"]


# --------------------------------------------------------------------------- helpers
def _read(paths):
    stats = ReaderStats()
    events = list(read_binance(paths, stats))
    return events, stats


def _scan_kinds(paths) -> dict[str, int]:
    """Independent, naive count of message kinds: look at the stream name of every line."""
    counts = {"depth": 0, "bookTicker": 0, "trade": 0, "snapshot": 0}
    for path in paths:
        with gzip.open(path, "rt") as fh:
            for line in fh:
                body = line.split(" ", 1)[1]
                if body.startswith('{"lastUpdateId"'):
                    counts["snapshot"] += 1
                else:
                    stream = body[len('{"stream":"') :].split('"', 1)[0]
                    counts[stream.split("@")[1]] += 1
    return counts


def _check_book(events, depth_only=False) -> tuple[int, int, int]:
    """Feed events into OrderBook: (deltas leaving it crossed, deltas matching the last bookTicker, deltas).

    With ``depth_only`` the book gets no bookTicker overlay, so its top of book comes from the
    snapshot and the diffs alone (the stronger check of the diffs; the overlay would make the
    book's best equal the last bookTicker whenever that is newer than the diff).
    """
    book = OrderBook()
    last_bbo = None
    crossed = matches = deltas = 0
    for ev in events:
        if isinstance(ev, BestBidAsk):
            last_bbo = ev
            if depth_only:
                continue
        book.apply(ev)
        if isinstance(ev, BookDelta):
            deltas += 1
            if book.status is BookStatus.CROSSED:
                crossed += 1
            if last_bbo is not None and (book.best_bid, book.best_ask) == (last_bbo.bid_price, last_bbo.ask_price):
                matches += 1
    return crossed, matches, deltas


def _write_gz(path: Path, lines) -> Path:
    with gzip.open(path, "wt") as fh:
        for line in lines:
            fh.write(line if isinstance(line, str) else f"{line[0]} {json.dumps(line[1])}")
            fh.write("\n")
    return path


def _diff(U, u, bids=(), asks=(), sym="btcusdt", pu=None, E=None):
    data = {"e": "depthUpdate", "s": sym.upper(), "U": U, "u": u, "b": [list(b) for b in bids], "a": [list(a) for a in asks]}
    if pu is not None:
        data["pu"] = pu
    if E is not None:
        data["E"] = E
    return {"stream": f"{sym}@depth@{'0ms' if pu is not None else '100ms'}", "data": data}


def _snap(lid, bids, asks, **extra):
    return {"lastUpdateId": lid, "bids": [list(b) for b in bids], "asks": [list(a) for a in asks], **extra}


def _bbo(u, b, a, sym="btcusdt"):
    return {"stream": f"{sym}@bookTicker", "data": {"u": u, "s": sym.upper(), "b": b[0], "B": b[1], "a": a[0], "A": a[1]}}


def _trade(t, p, q, m, T=1_700_000_000_000, sym="btcusdt"):
    return {"stream": f"{sym}@trade", "data": {"e": "trade", "E": T + 1, "s": sym.upper(), "t": t, "p": p, "q": q, "T": T, "m": m}}


@pytest.fixture(scope="module")
def spot_read():
    return _read(SPOT)


# --------------------------------------------------------------------------- real recordings
@needs_data
@pytest.mark.data
def test_spot_pair_replays_as_one_consistent_stream(spot_read):
    events, stats = spot_read
    assert stats.gaps == 0 and stats.malformed == 0 and stats.negative_sizes == 0 and stats.out_of_order == 0
    assert stats.problems == [] and stats.problems_total == 0
    assert stats.symbol == "BTCUSDT" and stats.market_type == "spot"
    assert stats.files == [str(p) for p in SPOT]

    snapshots = [e for e in events if isinstance(e, BookSnapshot)]
    deltas = [e for e in events if isinstance(e, BookDelta)]
    assert len(snapshots) == 1 == stats.events["snapshot"]
    assert not any(isinstance(e, BookInvalidated) for e in events)

    # every message accounted for, against a naive scan of the files
    scan = _scan_kinds(SPOT)
    assert scan["snapshot"] == 1
    assert len(deltas) == stats.events["delta"]
    assert stats.events["delta"] + stats.dropped_deltas == scan["depth"]
    assert 0 < stats.dropped_deltas < 10  # only the few diffs buffered before the snapshot
    assert stats.events["bbo"] == scan["bookTicker"] - stats.crossed_bbo
    assert stats.events["trade"] == scan["trade"] == sum(isinstance(e, Trade) for e in events)
    assert len(events) == sum(stats.events.values())
    assert stats.lines == sum(scan.values())
    # documented cross-check with ../shared/data/README.md section 1 (measured independently there)
    assert (scan["depth"], scan["bookTicker"], scan["trade"]) == (6495, 73174, 19904)

    # clock: local time never goes back; exchange time is in ns (ms * 1e6), near the local clock
    ts = [e.ts_local for e in events]
    assert all(a <= b for a, b in zip(ts, ts[1:]))
    # first_ts/last_ts are the recording's first and last line; the first diffs wait for the snapshot
    with gzip.open(SPOT[0], "rt") as fh:
        assert stats.first_ts == int(fh.readline().split(" ", 1)[0]) < ts[0]
    assert stats.last_ts == ts[-1]
    assert abs(deltas[0].ts_exchange - deltas[0].ts_local) < 10 * 10**9
    assert all(e.ts_exchange == 0 for e in events if isinstance(e, BestBidAsk))  # spot bookTicker has no E

    # snapshot levels best first; the delta chain obeys the spot rules on the output itself
    snap = snapshots[0]
    assert [p for p, _ in snap.bids] == sorted((p for p, _ in snap.bids), reverse=True)
    assert [p for p, _ in snap.asks] == sorted(p for p, _ in snap.asks)
    assert snap.bids[0][0] < snap.asks[0][0]
    assert deltas[0].first_seq <= snap.sequence + 1 <= deltas[0].last_seq
    assert all(b.first_seq == a.last_seq + 1 for a, b in zip(deltas, deltas[1:]))
    # buffered diffs are replayed at the snapshot's time, right after it
    i = events.index(snap)
    assert isinstance(events[i + 1], BookDelta) and events[i + 1].ts_local == snap.ts_local

    crossed, matches, n = _check_book(events)
    assert n == len(deltas)
    assert crossed == 0
    assert matches >= 0.99 * n, f"best bid/ask equals the last bookTicker at only {matches / n:.2%} of deltas"
    crossed, matches, n = _check_book(events, depth_only=True)
    assert crossed == 0
    assert matches >= 0.99 * n, f"rebuilt best bid/ask equals the last bookTicker at only {matches / n:.2%} of deltas"

    assert json.loads(json.dumps(stats.as_dict()))["events"] == stats.events


@needs_data
@pytest.mark.data
def test_file_order_does_not_matter(spot_read):
    events, stats = spot_read
    rev_events, rev_stats = _read(list(reversed(SPOT)))
    assert rev_stats.files == stats.files
    assert len(rev_events) == len(events)
    assert rev_events == events
    assert rev_stats.as_dict() == stats.as_dict()


@needs_data
@pytest.mark.data
def test_usdm_july_pair_follows_pu_chain_across_midnight():
    events, stats = _read(USDM_JULY)
    assert stats.market_type == "linear" and stats.symbol == "BTCUSDT"
    assert stats.gaps == 0 and stats.malformed == 0 and stats.problems_total == 0
    assert stats.events["snapshot"] == 1 and stats.events["invalidated"] == 0

    scan = _scan_kinds(USDM_JULY)
    assert stats.events["delta"] + stats.dropped_deltas == scan["depth"]
    assert stats.events["bbo"] == scan["bookTicker"] and stats.events["trade"] == scan["trade"]

    # the second file (no snapshot) really continued the book: deltas from both sides of midnight
    with gzip.open(USDM_JULY[1], "rt") as fh:
        second_start = int(fh.readline().split(" ", 1)[0])
    deltas = [e for e in events if isinstance(e, BookDelta)]
    before = sum(d.ts_local < second_start for d in deltas)
    after = len(deltas) - before
    assert before > 1000 and after > 1000
    assert all(b.first_seq > a.last_seq for a, b in zip(deltas, deltas[1:]))
    # futures carry exchange time on every message
    assert all(e.ts_exchange > 0 for e in events)

    for depth_only in (False, True):
        crossed, matches, n = _check_book(events, depth_only)
        assert crossed == 0
        assert matches >= 0.99 * n, (depth_only, matches / n)


@needs_data
@pytest.mark.data
def test_damaged_copy_is_reported_not_raised(tmp_path):
    with gzip.open(SPOT[0], "rt") as fh:
        lines = [next(fh).rstrip("\n") for _ in range(2000)]
    snap_i = next(i for i, line in enumerate(lines) if '"lastUpdateId"' in line)
    depth_i = [i for i, line in enumerate(lines) if i > snap_i and "@depth" in line[:80]]
    corrupt_i = next(i for i in range(300, 2000) if "@bookTicker" in lines[i][:80])
    removed_i = depth_i[20]  # a sequence gap, detected at the next diff
    gap_i = depth_i[21]
    negative_i = depth_i[40]  # arrives while the reader already awaits a new snapshot
    assert corrupt_i < removed_i < gap_i < negative_i

    lines[corrupt_i] = lines[corrupt_i][:-12]  # truncated JSON
    ts, body = lines[negative_i].split(" ", 1)
    msg = json.loads(body)
    side = "b" if msg["data"]["b"] else "a"
    msg["data"][side][0][1] = "-0.50000000"
    lines[negative_i] = f"{ts} {json.dumps(msg)}"
    gap_ts = int(lines[gap_i].split(" ", 1)[0])
    del lines[removed_i]
    # 1-based line numbers in the damaged file (one line removed before gap_i and negative_i)
    corrupt_no, gap_no, negative_no = corrupt_i + 1, gap_i, negative_i

    path = _write_gz(tmp_path / "damaged_btcusdt.gz", lines)
    events, stats = _read([path])

    assert stats.malformed == 1
    assert any(p.startswith(f"damaged_btcusdt.gz:{corrupt_no}: invalid JSON") for p in stats.problems), stats.problems
    assert stats.negative_sizes == 1
    assert any(p.startswith(f"damaged_btcusdt.gz:{negative_no}:") and "negative" in p for p in stats.problems)
    assert stats.gaps == 1  # the negative diff came while already awaiting a snapshot: no second gap
    gap_problem = next(p for p in stats.problems if "sequence gap" in p)
    assert gap_problem.startswith(f"damaged_btcusdt.gz:{gap_no}:") and "expected U=" in gap_problem

    invalid = [e for e in events if isinstance(e, BookInvalidated)]
    assert len(invalid) == 1 and invalid[0].ts_local == gap_ts
    k = events.index(invalid[0])
    assert not any(isinstance(e, BookDelta) for e in events[k:])  # no snapshot came to resync
    assert any(isinstance(e, BestBidAsk) for e in events[k:])  # quotes and trades still flow
    depth_lines = sum("@depth" in line[:80] for line in lines)
    assert stats.events["delta"] + stats.dropped_deltas + stats.negative_sizes == depth_lines

    book = OrderBook()
    for e in events:
        book.apply(e)
    assert book.status is BookStatus.RESYNC


# --------------------------------------------------------------------------- synthetic files
def test_spot_sync_gap_on_rejected_diff_and_resync(tmp_path):
    t0 = 1_723_161_253_000_000_000
    lines = [
        (t0 + 1, _diff(1, 5, bids=[("100.0", "1")])),  # predates the snapshot: dropped
        (t0 + 2, _bbo(6, ("100.0", "1"), ("101.0", "2"))),  # before the snapshot: still emitted
        (t0 + 3, _diff(6, 10, bids=[("100.5", "3")])),  # buffered, applied after the snapshot
        (t0 + 4, _snap(7, bids=[("99.0", "1"), ("100.0", "2")], asks=[("102.0", "1"), ("101.0", "1")])),
        (t0 + 5, _diff(11, 12, asks=[("101.0", "0")])),
        (t0 + 6, _trade(42, "101.5", "0.25", True)),
        (t0 + 7, _trade(43, "101.5", "0.5", False)),
        (t0 + 8, _bbo(13, ("101.0", "1"), ("101.0", "2"))),  # crossed: counted, not emitted
        (t0 + 9, _diff(13, 14, bids=[("100.0", "-1")])),  # negative size while synced: a gap
        (t0 + 10, _diff(15, 16, bids=[("100.2", "1")])),  # buffered while awaiting
        (t0 + 11, _snap(15, bids=[("100.0", "2")], asks=[("101.5", "1")])),
        (t0 + 12, _diff(17, 18, asks=[("101.4", "1")])),
    ]
    path = _write_gz(tmp_path / "btcusdt_synthetic.gz", lines)
    early = ReaderStats()
    first = next(read_binance([path], early))
    assert isinstance(first, BestBidAsk) and early.symbol == "BTCUSDT"  # known with the first event (the CLI checks it)
    events, stats = _read([path])
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "BestBidAsk", "BookSnapshot", "BookDelta", "BookDelta", "Trade", "Trade",
        "BookInvalidated", "BookSnapshot", "BookDelta", "BookDelta",
    ]
    snap = events[1]
    assert snap.sequence == 7 and snap.bids == ((100.0, 2.0), (99.0, 1.0)) and snap.asks == ((101.0, 1.0), (102.0, 1.0))
    assert (events[2].first_seq, events[2].last_seq, events[2].ts_local) == (6, 10, t0 + 4)  # replayed at snapshot time
    assert events[2].bids == ((100.5, 3.0),)
    assert events[3].asks == ((101.0, 0.0),) and events[3].ts_local == t0 + 5
    assert (events[4].side, events[4].trade_id, events[4].size) == ("sell", 42, 0.25)
    assert events[4].ts_exchange == 1_700_000_000_000 * 1_000_000  # T, ms -> ns
    assert events[5].side == "buy"
    assert events[6].ts_local == t0 + 9 and "rejected" in events[6].reason
    assert (events[8].first_seq, events[8].ts_local) == (15, t0 + 11)
    assert events[9].last_seq == 18
    assert stats.market_type == "spot" and stats.symbol == "BTCUSDT"
    assert stats.events == {"snapshot": 2, "delta": 4, "bbo": 1, "trade": 2, "invalidated": 1}
    assert (stats.dropped_deltas, stats.gaps, stats.negative_sizes, stats.crossed_bbo, stats.malformed) == (1, 1, 1, 1, 0)
    assert any(p.startswith("btcusdt_synthetic.gz:9:") and "negative" in p for p in stats.problems)

    book = OrderBook()
    for e in events:
        book.apply(e)
    assert book.is_sound and (book.best_bid, book.best_ask) == (100.2, 101.4)


def test_futures_rules_use_pu(tmp_path):
    t0 = 1_721_347_020_000_000_000
    lines = [
        (t0 + 1, _diff(90, 99, pu=80, bids=[("10", "1")], E=1_721_347_021_000)),  # u < lastUpdateId: dropped
        (t0 + 2, _diff(100, 100, pu=99, bids=[("10", "1")])),  # u == lastUpdateId: applied on futures
        (t0 + 3, _snap(100, bids=[("10", "1")], asks=[("11", "1")], E=1_721_347_021_500, T=1_721_347_021_499)),
        (t0 + 4, _diff(101, 105, pu=100, asks=[("11", "2")], E=1_721_347_022_000)),
        (t0 + 5, _diff(111, 115, pu=108, asks=[("11", "3")])),  # pu != previous u: gap; kept for a resync
        (t0 + 6, _diff(116, 120, pu=115, asks=[("11", "4")])),  # awaiting: buffered too
        # end of file without a new snapshot: the two buffered diffs are dropped
    ]
    path = _write_gz(tmp_path / "btcusdt_fut.gz", lines)
    events, stats = _read([path])
    assert [type(e).__name__ for e in events] == ["BookSnapshot", "BookDelta", "BookDelta", "BookInvalidated"]
    assert stats.market_type == "linear"
    assert events[0].ts_exchange == 1_721_347_021_500 * 1_000_000
    assert (events[1].first_seq, events[1].last_seq, events[1].ts_local) == (100, 100, t0 + 3)
    assert events[2].ts_exchange == 1_721_347_022_000 * 1_000_000
    assert "expected pu=105, got pu=108" in events[3].reason
    assert stats.gaps == 1 and stats.dropped_deltas == 1 + 2
    assert any(p.startswith("btcusdt_fut.gz:5: sequence gap") for p in stats.problems)
    assert any("never got a snapshot" in p for p in stats.problems)


def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    t0 = 1_700_000_000_000_000_000
    good_bbo = json.dumps(_bbo(1, ("100", "1"), ("101", "1")))
    lines = [
        f"{t0} {good_bbo}",
        "no-space-here",  # 2
        f"12x {good_bbo}",  # 3: bad timestamp
        f"{t0 + 3} [1, 2]",  # 4: not an object
        f"{t0 + 4} " + json.dumps({"stream": "btcusdt@bookTicker", "data": {"u": 2, "b": "100"}}),  # 5: missing fields
        f"{t0 + 5} " + json.dumps(_trade(7, "abc", "1", True)),  # 6: non-numeric price
        f"{t0 + 6} " + json.dumps(_bbo(3, ("100", "NaN"), ("101", "1"))),  # 7: NaN size
        "",  # 8: blank, skipped silently
        f"{t0 + 1} {good_bbo}",  # 9: local time goes back: skipped
        f"{t0 + 9} " + json.dumps({"stream": "btcusdt@aggTrade", "data": {}}),  # 10: unused stream
        f"{t0 + 10} " + json.dumps(_trade(8, "100.5", "-2", False)),  # 11: negative trade size
        f"{t0 + 11} {good_bbo}",
    ]
    path = _write_gz(tmp_path / "bad.gz", lines)
    events, stats = _read([path])
    assert [e.ts_local for e in events] == [t0, t0 + 11]
    assert stats.malformed == 6 and stats.out_of_order == 1 and stats.ignored == 1 and stats.negative_sizes == 1
    assert stats.lines == 11
    for lineno in (2, 3, 4, 5, 6, 7, 9, 10, 11):
        assert any(p.startswith(f"bad.gz:{lineno}: ") for p in stats.problems), (lineno, stats.problems)
    assert any(p.startswith("bad.gz:5: ") and "missing field" in p for p in stats.problems)
    assert any(p.startswith("bad.gz:6: ") and "numeric" in p for p in stats.problems)


def test_problem_list_is_capped_but_counted(tmp_path):
    t0 = 1_700_000_000_000_000_000
    # one good line: a file of nothing but bad lines is not a recording at all (see below)
    good = (t0, _bbo(1, ("100", "1"), ("101", "1")))
    path = _write_gz(tmp_path / "junk.gz", [good, *(f"{t0 + 1 + i} {{oops" for i in range(MAX_PROBLEMS + 50))])
    events, stats = _read([path])
    assert len(events) == 1 and stats.malformed == MAX_PROBLEMS + 50
    assert len(stats.problems) == MAX_PROBLEMS and stats.problems_total == MAX_PROBLEMS + 50


def test_missing_file_raises_recording_error(tmp_path):
    missing = tmp_path / "nowhere" / "btcusdt_20990101.gz"
    it = read_binance([missing])  # lazy: checks run on the first next(), before any event
    with pytest.raises(RecordingError, match="btcusdt_20990101.gz") as err:
        next(it)
    assert str(missing) in str(err.value)


def test_overlapping_files_raise_recording_error(tmp_path):
    t0 = 1_700_000_000_000_000_000
    a = _write_gz(tmp_path / "part_a.gz", [(t0 + i * 10, _bbo(i, ("100", "1"), ("101", "1"))) for i in range(10)])
    b = _write_gz(tmp_path / "part_b.gz", [(t0 + 50 + i * 10, _bbo(100 + i, ("100", "1"), ("101", "1"))) for i in range(10)])
    with pytest.raises(RecordingError) as err:
        list(read_binance([b, a]))
    assert "part_a.gz" in str(err.value) and "part_b.gz" in str(err.value)
    # touching files (next starts exactly where the previous ends) chain fine, in either order
    c = _write_gz(tmp_path / "part_c.gz", [(t0 + 90 + i, _bbo(200 + i, ("100", "1"), ("101", "1"))) for i in range(3)])
    events, stats = _read([c, a])
    assert len(events) == 13 and stats.files == [str(a), str(c)]


def test_unreadable_inputs_raise_recording_error(tmp_path):
    plain = tmp_path / "plain.gz"
    plain.write_text("1700000000000000000 {}\n")
    with pytest.raises(RecordingError, match="not a gzip"):
        list(read_binance([plain]))
    t0 = 1_700_000_000_000_000_000
    btc = _write_gz(tmp_path / "btc.gz", [(t0, _bbo(1, ("100", "1"), ("101", "1")))])
    eth = _write_gz(tmp_path / "eth.gz", [(t0 + 10, _bbo(1, ("10", "1"), ("11", "1"), sym="ethusdt"))])
    with pytest.raises(RecordingError, match="different symbols"):
        list(read_binance([btc, eth]))


@pytest.mark.parametrize("kind", ["csv", "other-json", "timestamped-other-json", "empty", "blank-lines", "all-malformed"])
def test_foreign_files_raise_recording_error_naming_the_file(tmp_path, kind):
    """Another format gzipped is not a recording of 0 events: the reader refuses it up front."""
    t0 = 1_700_000_000_000_000_000
    lines = {
        "csv": ["timestamp,price,qty", *(f"{1_700_000_000 + i},{100 + i},1" for i in range(50))],
        "other-json": [json.dumps({"id": i, "price": 100 + i}) for i in range(20)],
        "timestamped-other-json": [f"{t0 + i} " + json.dumps({"id": i, "price": 100 + i}) for i in range(20)],
        "empty": [],
        "blank-lines": ["", "", ""],
        "all-malformed": [f"{t0 + i} {{oops" for i in range(MAX_PROBLEMS + 50)],
    }[kind]
    path = tmp_path / f"foreign_{kind}.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(line + "\n" for line in lines))
    it = read_binance([path])
    with pytest.raises(RecordingError) as err:
        next(it)  # before any event
    message = str(err.value)
    assert str(path) in message and "not a Binance raw-stream recording" in message
    assert "<local_ns> <json>" in message and "lastUpdateId" in message and "\n" not in message
    if kind == "csv":
        assert "timestamp,price,qty" in message  # shows what the file starts with
    if kind == "empty":
        assert "empty" in message


def test_foreign_file_after_a_good_one_is_refused(tmp_path):
    t0 = 1_700_000_000_000_000_000
    good = _write_gz(tmp_path / "btcusdt_a.gz", [(t0 + i, _bbo(i, ("100", "1"), ("101", "1"))) for i in range(5)])
    other = tmp_path / "notes.gz"
    with gzip.open(other, "wt") as fh:
        fh.write("a,b\n1,2\n")
    with pytest.raises(RecordingError, match="notes.gz: not a Binance raw-stream recording"):
        list(read_binance([good, other]))


def test_recording_without_market_events_raises(tmp_path):
    """Recognized lines, but nothing comes out: every line of a used stream broken, or unused streams only."""
    t0 = 1_700_000_000_000_000_000
    path = _write_gz(tmp_path / "btcusdt_agg.gz", [(t0 + i, {"stream": "btcusdt@aggTrade", "data": {"a": i}}) for i in range(5)])
    stats = ReaderStats()
    with pytest.raises(RecordingError) as err:
        next(read_binance([path], stats))
    assert str(path) in str(err.value) and "no market events" in str(err.value) and "5 of unused streams" in str(err.value)
    assert stats.ignored == 5  # the stats are filled in before the error
    broken = _write_gz(tmp_path / "btcusdt_broken.gz", [(t0 + i, _bbo(i, ("100", "-1"), ("101", "1"))) for i in range(3)])
    with pytest.raises(RecordingError, match="no market events.*3 with negative sizes"):
        list(read_binance([broken]))


def test_market_type_is_known_before_the_first_event(tmp_path):
    t0 = 1_700_000_000_000_000_000
    for pu, expected in ((None, "spot"), (5, "linear")):
        path = _write_gz(tmp_path / f"btcusdt_{expected}.gz", [
            (t0, _bbo(1, ("100", "1"), ("101", "1"))),  # a quote first, then the first diff
            (t0 + 1, _diff(6, 10, bids=[("100", "2")], pu=pu)),
            (t0 + 2, _snap(7, bids=[("100", "1")], asks=[("101", "1")])),
        ])
        stats = ReaderStats()
        first = next(read_binance([path], stats))
        assert isinstance(first, BestBidAsk) and stats.market_type == expected and stats.symbol == "BTCUSDT"


def test_files_of_different_markets_raise(tmp_path):
    t0 = 1_700_000_000_000_000_000
    spot = _write_gz(tmp_path / "spot.gz", [(t0, _diff(1, 2))])
    fut = _write_gz(tmp_path / "fut.gz", [(t0 + 10, _diff(3, 4, pu=2))])
    with pytest.raises(RecordingError, match="different markets.*spot.gz \\(spot\\).*fut.gz \\(linear\\)"):
        list(read_binance([spot, fut]))


def test_coinm_files_are_inverse_and_refused_with_spot(tmp_path):
    """COIN-M ids carry the contract (btcusd_perp): pu diffs make it futures, the id makes it inverse."""
    t0 = 1_700_000_000_000_000_000
    coinm = _write_gz(tmp_path / "coinm.gz", [(t0, _diff(3, 4, pu=2, sym="btcusd_perp"))])
    stats = ReaderStats()
    with pytest.raises(RecordingError, match="no market events"):  # a diff without a snapshot, nothing else
        next(read_binance([coinm], stats))
    assert (stats.symbol, stats.market_type) == ("BTCUSD_PERP", "inverse")  # known before that
    spot = _write_gz(tmp_path / "spot.gz", [(t0 + 10, _diff(1, 2, sym="btcusd_perp"))])
    with pytest.raises(RecordingError, match="different markets \\(inverse and spot\\).*coinm.gz \\(inverse\\).*spot.gz \\(spot\\)"):
        list(read_binance([coinm, spot]))
