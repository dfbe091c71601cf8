"""bot.data.merge: grouping recording files by instrument and merging their event streams by time.

The tests marked ``data`` read the real recordings in ``../shared/data`` and skip when that folder
is not mounted; the others build small gzip files in ``tmp_path``.
"""

from __future__ import annotations

import gzip
import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.events import BookInvalidated
from bot.data.binance import ReaderStats, RecordingError, read_binance
from bot.data.merge import Group, group_recordings, merge_by_time, read_merged
from conftest import shared_data_dir
from emulator_helpers import write_coinm_recording, write_recording, write_usdm_recording

DATA = shared_data_dir() / "hftbacktest-binance"
needs_data = pytest.mark.skipif(
    not DATA.exists(),
    reason="../shared/data not present: real recordings are only available where the shared folder is mounted",
)
SPOT4 = [DATA / "spot" / f"{sym}_2024080{d}.gz" for sym in ("btcusdt", "ethusdt") for d in (8, 9)]


def _separate(group: Group):
    stats = ReaderStats()
    return list(read_binance(list(group.files), stats)), stats


def _check_merge(groups: list[Group]) -> None:
    """Merged = every separate read, interleaved by ts_local; per-group stats as if read alone."""
    alone = [_separate(g) for g in groups]
    merged, stats = read_merged(groups)
    out = list(merged)
    ts = [ev.ts_local for _, ev in out]
    assert ts == sorted(ts)
    assert len(out) == sum(len(events) for events, _ in alone)
    for i, (events, st_alone) in enumerate(alone):
        assert [ev for j, ev in out if j == i] == events  # exactly its events, in its own order
        assert stats[i].as_dict() == st_alone.as_dict()


# --------------------------------------------------------------------------- real recordings
@needs_data
@pytest.mark.data
def test_four_spot_files_group_into_two_instruments_and_merge_by_time():
    shuffled = SPOT4[:]
    random.Random(7).shuffle(shuffled)
    groups = group_recordings(shuffled)
    assert [(g.symbol, g.market_type, g.unified_symbol) for g in groups] == [
        ("BTCUSDT", "spot", "BTC/USDT"), ("ETHUSDT", "spot", "ETH/USDT")]
    assert [[f.name for f in g.files] for g in groups] == [
        ["btcusdt_20240808.gz", "btcusdt_20240809.gz"], ["ethusdt_20240808.gz", "ethusdt_20240809.gz"]]
    assert all(g.first_ts < g.last_ts for g in groups)
    _check_merge(groups)


@needs_data
@pytest.mark.data
def test_spot_and_usdm_of_one_coin_are_two_instruments():
    files = [DATA / "usdm" / "btcusdt_20240808.gz", DATA / "spot" / "btcusdt_20240808.gz", DATA / "usdm" / "ethusdt_20240808.gz"]
    groups = group_recordings(files)
    assert [g.key for g in groups] == [("BTCUSDT", "linear"), ("BTCUSDT", "spot"), ("ETHUSDT", "linear")]
    assert [g.unified_symbol for g in groups] == ["BTC/USDT:USDT", "BTC/USDT", "ETH/USDT:USDT"]


# --------------------------------------------------------------------------- synthetic recordings
def test_spot_linear_and_inverse_recordings_merge(tmp_path):
    write_recording(tmp_path / "a_spot.gz", seconds=1.0, step_ms=30)
    write_usdm_recording(tmp_path / "b_usdm.gz", seconds=1.0, step_ms=70, symbol="ethusdt", mid=3000.0)
    write_coinm_recording(tmp_path / "c_coinm.gz", seconds=1.0, step_ms=50)
    groups = group_recordings(sorted(tmp_path.glob("*.gz"), reverse=True))
    assert [(g.symbol, g.market_type, g.unified_symbol) for g in groups] == [
        ("BTCUSDT", "spot", "BTC/USDT"), ("BTCUSD_PERP", "inverse", "BTC/USD:BTC"), ("ETHUSDT", "linear", "ETH/USDT:USDT")]
    _check_merge(groups)


def test_split_recording_groups_in_time_order(tmp_path):
    """The second half of a split recording (no snapshot) joins the first, whatever the given order."""
    write_recording(tmp_path / "whole.gz", seconds=1.0)
    with gzip.open(tmp_path / "whole.gz", "rt") as fh:
        lines = fh.read().splitlines()
    for name, part in (("late.gz", lines[len(lines) // 2 :]), ("early.gz", lines[: len(lines) // 2])):
        with gzip.open(tmp_path / name, "wt") as fh:
            fh.write("\n".join(part) + "\n")
    (group,) = group_recordings([tmp_path / "late.gz", tmp_path / "early.gz"])
    assert [f.name for f in group.files] == ["early.gz", "late.gz"]
    merged, stats = read_merged([group])
    assert [ev for _, ev in merged] == list(read_binance([tmp_path / "whole.gz"]))
    assert stats[0].gaps == 0


def test_grouping_errors_name_the_files(tmp_path):
    write_recording(tmp_path / "btc.gz")
    write_recording(tmp_path / "eth.gz", symbol="ethusdt")
    with pytest.raises(RecordingError, match="no recording files"):
        group_recordings([])
    with pytest.raises(RecordingError, match="given twice.*btc.gz"):
        group_recordings([tmp_path / "btc.gz", tmp_path / "eth.gz", tmp_path / "." / "btc.gz"])
    with pytest.raises(RecordingError, match="recording not found: .*missing.gz"):
        group_recordings([tmp_path / "btc.gz", tmp_path / "missing.gz"])
    with gzip.open(tmp_path / "table.gz", "wt") as fh:
        fh.write("time,price\n1,2\n")
    with pytest.raises(RecordingError, match="table.gz: not a Binance raw-stream recording"):
        group_recordings([tmp_path / "btc.gz", tmp_path / "table.gz"])
    write_recording(tmp_path / "btc_again.gz")  # the same instrument over the same time
    with pytest.raises(RecordingError, match="overlap in time.*btc"):
        group_recordings([tmp_path / "btc.gz", tmp_path / "btc_again.gz", tmp_path / "eth.gz"])
    # a file whose first lines are only a snapshot: its symbol is unknown, two instruments could own it
    snap = {"lastUpdateId": 1, "bids": [["1", "1"]], "asks": [["2", "1"]]}
    with gzip.open(tmp_path / "snap.gz", "wt") as fh:
        fh.write(f"1800000000000000000 {json.dumps(snap)}\n")
    with pytest.raises(RecordingError, match="snap.gz: its first lines do not tell the symbol.*BTCUSDT spot, ETHUSDT spot"):
        group_recordings([tmp_path / "btc.gz", tmp_path / "eth.gz", tmp_path / "snap.gz"])
    with pytest.raises(RecordingError, match="snap.gz: its first lines name no symbol"):
        group_recordings([tmp_path / "snap.gz"])
    (only,) = group_recordings([tmp_path / "btc.gz", tmp_path / "snap.gz"])  # one instrument can own it
    assert [f.name for f in only.files] == ["btc.gz", "snap.gz"]


def test_reader_errors_surface_on_the_first_next(tmp_path):
    write_recording(tmp_path / "btc.gz")
    groups = group_recordings([tmp_path / "btc.gz"])
    (tmp_path / "btc.gz").write_bytes(b"not gzip any more")
    merged, _ = read_merged(groups)
    with pytest.raises(RecordingError, match="btc.gz"):
        next(merged)


# --------------------------------------------------------------------------- merge_by_time itself
def _streams(lists):
    return [[BookInvalidated(ts, 0, f"{i}:{j}") for j, ts in enumerate(sorted(ts_list))] for i, ts_list in enumerate(lists)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=25), max_size=6))
def test_merge_is_ordered_stable_and_complete(lists):
    streams = _streams(lists)
    out = list(merge_by_time([iter(s) for s in streams]))
    keys = [(ev.ts_local, i) for i, ev in out]
    assert keys == sorted(keys)  # by time, ties by stream index
    for i, s in enumerate(streams):
        assert [ev for j, ev in out if j == i] == s  # each stream's own events, in its own order
    assert len(out) == sum(map(len, streams))


def test_merge_is_lazy():
    """Bounded memory: infinite streams merge, each read at most one event ahead."""
    pulled = [0, 0, 0]

    def stream(i, step):
        for k in itertools.count():
            pulled[i] += 1
            yield BookInvalidated(k * step, 0, "")

    merged = merge_by_time([stream(0, 1), stream(1, 3), stream(2, 1000)])
    first = list(itertools.islice(merged, 100))
    assert [ev.ts_local for _, ev in first] == sorted(ev.ts_local for _, ev in first)
    assert sum(pulled) <= 100 + 3 and pulled[2] == 2  # the slow stream: its first two events only


def test_merge_refuses_a_stream_that_goes_back():
    streams = [iter([BookInvalidated(5, 0, ""), BookInvalidated(3, 0, "")]), iter([BookInvalidated(4, 0, "")])]
    with pytest.raises(ValueError, match="stream 0 goes back in time"):
        list(merge_by_time(streams))
    assert list(merge_by_time([])) == [] and list(merge_by_time([iter([]), iter([])])) == []
