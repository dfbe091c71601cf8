"""The bot's own recording format: what the writer puts down the reader gives back, bit for bit.

A shared Binance recording written through :class:`RecordingWriter` must read back as the same
events (every kind, every float); files rotate on UTC hours; a file cut off without its trailer
(a crash) reads up to its last flush and is named in the problems, not refused.
"""

from __future__ import annotations

import gzip
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarkPrice, Trade
from bot.data.binance import ReaderStats, read_binance
from bot.data.own_format import Header, RecordingWriter
from bot.data.readers import detect, read_events
from conftest import shared_data_dir

DATA = shared_data_dir()
SPOT = DATA / "hftbacktest-binance" / "spot" / "btcusdt_20240808.gz"
USDM = DATA / "hftbacktest-binance" / "usdm" / "btcusdt_20240808.gz"
HEADER = Header("binance", "BTC/USDT", "BTCUSDT", "spot", source="test")
T0 = 1_733_220_000 * 10**9  # 2024-12-03 10:00:00 UTC, on an hour boundary


def _read(paths):
    stats = ReaderStats()
    return list(read_events(paths, None, stats)), stats


def _write(tmp_path, events, header=HEADER, **kw):
    w = RecordingWriter(tmp_path / "rec", header, **kw)
    for e in events:
        w.write(e)
    return w


@pytest.mark.skipif(not USDM.exists(), reason="../shared/data not present: the shared Binance recordings are needed")
@pytest.mark.parametrize("src", [SPOT, USDM], ids=["spot", "usdm"])
def test_a_shared_recording_round_trips_exactly(tmp_path, src):
    events = list(read_binance([src], ReaderStats()))[:60_000]
    header = Header("binance", "BTC/USDT:USDT", "BTCUSDT", "linear") if src == USDM else HEADER
    w = _write(tmp_path, events, header)
    w.close()
    assert all(detect(f).name == "bot-recording" for f in w.files)
    back, stats = _read(w.files)
    assert back == events
    assert stats.format == "bot-recording" and stats.symbol == "BTCUSDT" and stats.market_type == header.market_type
    assert stats.problems == [] and stats.malformed == 0
    assert sum(stats.events.values()) + stats.mark_prices + stats.liquidations == len(events)


def _event(draw, ts):
    price = st.floats(1e-8, 1e7, allow_nan=False, allow_infinity=False)
    size = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)
    levels = st.lists(st.tuples(price, size), max_size=5).map(tuple)
    side = st.sampled_from(["buy", "sell"])
    kind = draw(st.integers(0, 6))
    x = draw(st.integers(0, 2**62))
    if kind == 0:
        return BookSnapshot(ts, x, draw(levels), draw(levels), draw(st.integers(0, 2**62)))
    if kind == 1:
        return BookDelta(ts, x, draw(levels), draw(levels), draw(st.integers(0, 2**40)), draw(st.integers(0, 2**40)))
    if kind == 2:
        return Trade(ts, x, draw(price), draw(size), draw(side), draw(st.integers(0, 2**62)))
    if kind == 3:
        return BestBidAsk(ts, x, draw(price), draw(size), draw(price), draw(size), draw(st.integers(0, 2**40)))
    if kind == 4:
        return MarkPrice(ts, x, draw(price), draw(price), draw(st.floats(-0.1, 0.1)), draw(st.integers(0, 2**62)))
    if kind == 5:
        return Liquidation(ts, x, draw(price), draw(size), draw(side))
    return BookInvalidated(ts, x, draw(st.text(max_size=30)))


@st.composite
def _events(draw):
    steps = draw(st.lists(st.integers(0, 2 * 3_600 * 10**9), min_size=1, max_size=40))
    ts, out = T0, []
    for step in steps:
        ts += step
        out.append(_event(draw, ts))
    return out


@settings(max_examples=60, deadline=None)
@given(events=_events())
def test_any_events_round_trip_and_files_rotate_on_utc_hours(tmp_path_factory, events):
    tmp = tmp_path_factory.mktemp("own")
    w = _write(tmp, events)
    w.close()
    back, stats = _read(list(reversed(w.files)))  # any order given: read in recording order
    assert back == events
    hours = {e.ts_local // (3_600 * 10**9) for e in events}
    assert len(w.files) == len(hours)  # one file per UTC hour that has events
    assert stats.gaps == sum(isinstance(e, BookInvalidated) for e in events)


def test_a_file_cut_off_by_a_crash_reads_up_to_its_last_flush(tmp_path):
    events = [Trade(T0 + i * 1_000_000, 0, 100.0 + i, 1.0, "buy", i) for i in range(2_000)]
    w = _write(tmp_path, events[:1_000])
    w.flush()
    for e in events[1_000:]:
        w.write(e)  # not flushed: lost with the process, like after kill -9
    path = w.files[0]
    size_at_flush = path.stat().st_size
    os.truncate(path, size_at_flush)  # what reached the disk; the writer is never closed
    back, stats = _read([path])
    assert back[:1_000] == events[:1_000] and len(back) >= 1_000
    assert any("cut off" in p for p in stats.problems)
    with pytest.raises((EOFError, gzip.BadGzipFile, OSError)):
        gzip.decompress(path.read_bytes())  # a plain gzip reader refuses it; ours does not


def test_an_existing_file_is_never_overwritten(tmp_path):
    first = _write(tmp_path, [Trade(T0, 0, 1.0, 1.0, "buy")])
    first.close()
    second = _write(tmp_path, [Trade(T0, 0, 2.0, 1.0, "sell")])
    second.close()
    assert first.files[0] != second.files[0] and first.files[0].exists()
    assert _read(first.files)[0][0].price == 1.0


def test_mixed_symbols_are_refused(tmp_path):
    a = _write(tmp_path, [Trade(T0, 0, 1.0, 1.0, "buy")])
    a.close()
    b = _write(tmp_path, [Trade(T0 + 1, 0, 1.0, 1.0, "buy")], Header("binance", "ETH/USDT", "ETHUSDT", "spot"))
    b.close()
    from bot.data.recording import RecordingError
    with pytest.raises(RecordingError, match="mixed symbols"):
        _read(a.files + b.files)
