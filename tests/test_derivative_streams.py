"""Perpetual-futures streams in Binance recordings: markPrice -> MarkPrice, forceOrder -> Liquidation,
and COIN-M (inverse) recordings as a whole (``btcusd_perp`` ids, ``pu`` diffs, contract sizes)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.book.book import BookStatus, OrderBook
from bot.core.events import BookDelta, Liquidation, MarkPrice
from bot.data.binance import ReaderStats, RecordingError, probe_recording, read_binance
from bot.data.derivatives import Reject, liquidation, mark_price
from bot.fast.columnar import encode_events, load_binance
from emulator_helpers import write_coinm_recording, write_usdm_recording

T0 = 1_700_000_000_000_000_000
MS = 1_700_000_000_000


def _write_gz(path: Path, lines) -> Path:
    with gzip.open(path, "wt") as fh:
        for line in lines:
            fh.write(line if isinstance(line, str) else f"{line[0]} {json.dumps(line[1])}")
            fh.write("\n")
    return path


def _mark(p="50000.1", sym="btcusdt", stream="markPrice@1s", **extra):
    data = {"e": "markPriceUpdate", "E": MS, "s": sym.upper(), "p": p, "i": "49990.5", "P": "50001", "r": "0.00012", "T": MS + 3_600_000}
    data.update(extra)
    return {"stream": f"{sym}@{stream}", "data": {k: v for k, v in data.items() if v is not None}}


def _force(sym="btcusdt", **order):
    o = {"s": sym.upper(), "S": "SELL", "o": "LIMIT", "f": "IOC", "q": "0.014", "p": "49900", "ap": "49950.5",
         "X": "FILLED", "l": "0.014", "z": "0.014", "T": MS + 5}
    o.update(order)
    return {"stream": f"{sym}@forceOrder", "data": {"e": "forceOrder", "E": MS + 7, "o": {k: v for k, v in o.items() if v is not None}}}


def _read(paths):
    stats = ReaderStats()
    return list(read_binance(paths, stats)), stats


# --------------------------------------------------------------------------- COIN-M recordings
def test_coinm_recording_replays_as_inverse_with_perpetual_events(tmp_path):
    path = tmp_path / "btcusd_perp_20240808.gz"
    written = write_coinm_recording(path, seconds=2.0)
    stats = ReaderStats()
    events = read_binance([path], stats)
    first = next(events)
    # known before the first event, like for USD-M (the CLI refuses a config of another market on it)
    assert stats.symbol == "BTCUSD_PERP" and stats.market_type == "inverse"
    events = [first, *events]
    assert stats.malformed == stats.gaps == stats.ignored == stats.problems_total == 0
    assert stats.events["snapshot"] == 1 and stats.events["delta"] + stats.dropped_deltas == written["depth"]
    assert stats.events["bbo"] == written["bookTicker"] and stats.events["trade"] == written["trade"]
    marks = [e for e in events if isinstance(e, MarkPrice)]
    liqs = [e for e in events if isinstance(e, Liquidation)]
    assert len(marks) == stats.mark_prices == written["markPrice"] > 0
    assert len(liqs) == stats.liquidations == written["forceOrder"] > 1
    assert all(m.ts_exchange > 0 and m.next_funding_ts % 28_800_000_000_000 == 0 and m.funding_rate == 0.0001 for m in marks)
    assert all(m.index_price < m.mark_price for m in marks)
    # the first forced order is not filled yet (ap 0, z 0): its limit price and whole quantity
    before = [e for e in events if e.ts_local < liqs[0].ts_local and type(e).__name__ == "Trade"][-1]
    assert liqs[0].side == "sell" and liqs[0].size == 12.0 and abs(liqs[0].price - (before.price - 5.1)) < 1e-6
    assert [e.side for e in liqs[:3]] == ["sell", "buy", "sell"] and all(e.size == 8.0 for e in liqs[1:])
    # contract sizes are integers; the book rebuilds from the pu chain and ignores the perpetual events
    book = OrderBook()
    for ev in events:
        book.apply(ev)
        if isinstance(ev, BookDelta):
            assert book.status is BookStatus.SOUND and all(q == int(q) for _, q in ev.bids + ev.asks)
    assert [e.ts_local for e in events] == sorted(e.ts_local for e in events)


def test_coinm_probe_and_fast_cache_use_the_new_market_names(tmp_path):
    path = tmp_path / "btcusd_perp.gz"
    write_coinm_recording(path)
    info = probe_recording(path)
    assert (info.symbol, info.market_type) == ("BTCUSD_PERP", "inverse") and info.first_ts < info.last_ts
    arrays, timing = load_binance([path], tmp_path / "cache")
    assert not timing["cached"]
    assert arrays.meta["market_type"] == arrays.meta["reader"]["market_type"] == "inverse"
    assert arrays.meta["unified_symbol"] == "BTC/USD:BTC"
    # the kernel does not use the perpetual events yet: skipped, and counted as skipped
    assert arrays.meta["skipped"] == {"mark_price": arrays.meta["reader"]["mark_prices"], "liquidation": arrays.meta["reader"]["liquidations"]}
    assert sum(arrays.counts().values()) == sum(arrays.meta["reader"]["events"].values())
    cached, timing = load_binance([path], tmp_path / "cache")
    assert timing["cached"] and cached.meta["market_type"] == "inverse"


def test_usdm_cache_meta_is_linear(tmp_path):
    path = tmp_path / "btcusdt_usdm.gz"
    write_usdm_recording(path)
    arrays, _ = load_binance([path], tmp_path / "cache")
    assert arrays.meta["market_type"] == "linear" and arrays.meta["unified_symbol"] == "BTC/USDT:USDT"
    assert "skipped" not in arrays.meta


def test_encode_events_skips_perpetual_events_without_failing():
    events = [MarkPrice(1, 0, 100.0), Liquidation(2, 0, 100.5, 1.0, "buy"), MarkPrice(3, 0, 101.0)]
    a = encode_events(events)
    assert len(a) == 0 and a.meta["skipped"] == {"mark_price": 2, "liquidation": 1}


# --------------------------------------------------------------------------- line by line
def test_usdm_mark_price_and_liquidation_fields(tmp_path):
    path = tmp_path / "usdm.gz"
    write_usdm_recording(path)
    with gzip.open(path, "rt") as fh:
        lines = fh.read().splitlines()
    last = int(lines[-1].split(" ", 1)[0])
    extra = [(last + 1, _mark(stream="markPrice")), (last + 2, _force()), (last + 3, _force(S="BUY", ap="0", z=None, p="50010", q="0.5"))]
    path = _write_gz(path, lines + extra)
    events, stats = _read([path])
    assert stats.market_type == "linear" and (stats.mark_prices, stats.liquidations) == (1, 2)
    mark, liq, liq2 = events[-3:]
    assert mark == MarkPrice(last + 1, MS * 1_000_000, 50000.1, 49990.5, 0.00012, (MS + 3_600_000) * 1_000_000)
    assert liq == Liquidation(last + 2, (MS + 5) * 1_000_000, 49950.5, 0.014, "sell")
    assert liq2 == Liquidation(last + 3, (MS + 5) * 1_000_000, 50010.0, 0.5, "buy")


def test_bad_perpetual_lines_are_counted_and_named_never_raised(tmp_path):
    lines = [
        (T0, _mark()),  # 1: good
        (T0 + 1, _mark(p=None)),  # 2: no mark price
        (T0 + 2, _mark(p="abc")),  # 3
        (T0 + 3, _mark(p="-5")),  # 4
        (T0 + 4, _mark(p="NaN")),  # 5
        (T0 + 5, _mark(i="-1")),  # 6
        (T0 + 6, _mark(T="soon")),  # 7
        (T0 + 7, _mark(r="", T=0, i=None)),  # 8: good (a delivery contract: no funding)
        (T0 + 8, {"stream": "btcusdt@markPrice", "data": [1, 2]}),  # 9: data not an object
        (T0 + 9, _force()),  # 10: good
        (T0 + 10, {"stream": "btcusdt@forceOrder", "data": {"e": "forceOrder", "o": "x"}}),  # 11
        (T0 + 11, _force(S="LONG")),  # 12
        (T0 + 12, _force(z="-1")),  # 13: negative size
        (T0 + 13, _force(s="ETHUSDT")),  # 14: another symbol's order
        (T0 + 14, _force(p="0", ap="0")),  # 15
        (T0 + 15, _force(q=[1], z=None)),  # 16
        (T0 + 16, {"stream": "!forceOrder@arr", "data": _force()["data"]}),  # 17: all-market stream
    ]
    path = _write_gz(tmp_path / "btcusdt.gz", lines)
    events, stats = _read([path])
    assert [type(e) for e in events] == [MarkPrice, MarkPrice, Liquidation]
    assert events[1].funding_rate == events[1].index_price == events[1].next_funding_ts == 0
    assert (stats.mark_prices, stats.liquidations) == (2, 1)
    assert stats.malformed == 12 and stats.negative_sizes == 1 and stats.ignored == 1
    assert stats.symbol == "BTCUSDT"  # the all-market stream does not name the instrument
    named = {int(p.split(":")[1]) for p in stats.problems}
    assert named == set(range(2, 8)) | {9} | set(range(11, 18))
    assert any("btcusdt.gz:13: forceOrder: negative size" in p for p in stats.problems)
    assert any("btcusdt.gz:14: forceOrder: order of 'ETHUSDT'" in p for p in stats.problems)


def test_recording_of_perpetual_streams_only_is_not_empty(tmp_path):
    """Mark prices alone are market events: the recording replays (the no-events refusal is for
    files whose every line is broken or unused)."""
    path = _write_gz(tmp_path / "marks.gz", [(T0 + i, _mark()) for i in range(3)])
    events, stats = _read([path])
    assert len(events) == stats.mark_prices == 3 and stats.market_type == ""
    bad = _write_gz(tmp_path / "bad.gz", [(T0 + i, _mark(p="x")) for i in range(3)])
    try:
        _read([bad])
    except RecordingError as exc:
        assert "no market events" in str(exc) and "3 malformed" in str(exc)
    else:
        raise AssertionError("a recording of broken lines only must be refused")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.sampled_from(["1", "0", "-1", "1e400", "nan", "", "BUY", "SELL", "BTCUSDT"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(list("pirTESsqzo") + ["ap"]), inner, max_size=6),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list("pirTESo")), _json, max_size=7))
def test_parsers_raise_only_reject(data):
    for parse in (lambda d: mark_price(d, 1), lambda d: liquidation(d, 1, "BTCUSDT")):
        try:
            ev = parse(data)
        except Reject:
            continue
        if isinstance(ev, MarkPrice):
            assert ev.mark_price > 0 and ev.next_funding_ts >= 0
        else:
            assert ev.price > 0 and ev.size >= 0 and ev.side in ("buy", "sell")
