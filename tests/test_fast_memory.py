"""Bounded memory (issue 13): the memory-mapped columnar layout and its chunked producers.

* :func:`bot.fast.synth.write_synthetic` writes exactly :func:`synthetic_arrays`' stream, whatever the chunk;
* :func:`bot.fast.colstore.write_events` writes exactly :func:`encode_events`' arrays, also when a later
  chunk needs more price decimals than the first ones;
* a replay over the mapped layout stores the same orders, fills and equity rows as one over arrays in
  memory, with the page releases exercised every few events;
* released pages leave the process (``/proc/self/smaps``);
* a truncated or damaged column directory is one clear line (ColumnsError), and ``load_binance`` /
  ``bot backtest`` rebuild a damaged cache with a note, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.config.settings import load_settings
from bot.core.events import BestBidAsk, BookDelta, BookSnapshot, MarkPrice, Trade
from bot.fast import backtest as fast_backtest
from bot.fast.colstore import ColumnsError, open_columns, save_columns, write_events
from bot.fast.columnar import encode_events, iter_events, load_binance
from bot.fast.synth import synthetic_arrays, write_synthetic
from emulator_helpers import write_recording
from test_fast_equivalence import SYNTH_ACTIVE, TABLES, stored

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("kind", "ts", "seq", "off", "nbid", "lvl", "sz", "prices")


def assert_same(a, b) -> None:
    for name in NAMES:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.price_decimals == b.price_decimals


@pytest.mark.parametrize(("n", "seed", "chunk"), [(1, 7, 1), (3_000, 3, 1), (20_000, 7, 997), (20_000, 7, 1 << 20)])
def test_write_synthetic_is_synthetic_arrays(tmp_path, n, seed, chunk):
    path = write_synthetic(tmp_path / "syn.cols", n, seed, chunk=chunk)
    mapped = open_columns(path)
    assert len(mapped) == n and mapped.meta == synthetic_arrays(1, seed).meta | {"events": n}
    assert_same(mapped, synthetic_arrays(n, seed))


def _events_with_more_decimals_later() -> list:
    """1-decimal prices first, 3-decimal ones after the first chunks, and perpetual events to skip."""
    out = [BookSnapshot(1, 0, ((100.5, 1.0), (100.0, 2.0)), ((101.0, 1.5),), 10)]
    for i in range(40):
        out.append(BestBidAsk(2 + i, 0, 100.5, 1.0 + i, 101.0, 2.0, 11 + i))
        out.append(Trade(2 + i, 0, 101.0, 0.25, "buy" if i % 2 else "sell", 500 + i))
    out.append(MarkPrice(50, 0, 100.7))
    out.append(BookDelta(60, 0, ((100.125, 3.0),), ((101.375, 0.0), (102.0, 1.0)), 0, 99))
    out.append(BestBidAsk(61, 0, 100.125, 3.0, 101.0, 2.0, 100))
    return out


@pytest.mark.parametrize("chunk", [1, 7, 1 << 16])
def test_write_events_is_encode_events(tmp_path, chunk):
    events = _events_with_more_decimals_later()
    path = write_events(events, tmp_path / "ev.cols", {"source": "test"}, chunk=chunk)
    mapped, ref = open_columns(path), encode_events(events, {"source": "test"})
    assert_same(mapped, ref)
    assert mapped.price_decimals == 3 and mapped.meta == ref.meta == {"source": "test", "skipped": {"mark_price": 1, "liquidation": 0}}
    assert list(iter_events(mapped)) == list(iter_events(ref))


def test_write_events_of_a_synthetic_stream_round_trips(tmp_path):
    arrays = synthetic_arrays(5_000, seed=2)
    assert_same(open_columns(write_events(iter_events(arrays), tmp_path / "s.cols", chunk=333)), arrays)


def test_mapped_replay_stores_the_same_rows_as_arrays_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(fast_backtest, "RELEASE_EVERY", 1_000)  # release pages many times during the replay
    settings = load_settings(ROOT / "config" / "backtest.toml", **SYNTH_ACTIVE)
    memory = synthetic_arrays(40_000, seed=5)
    mapped = open_columns(write_synthetic(tmp_path / "syn.cols", 40_000, 5, chunk=4_096))
    runs = []
    for tag, arrays in (("memory", memory), ("mapped", mapped)):
        summary = fast_backtest.run_backtest_fast(settings, arrays, db_path=tmp_path / f"{tag}.db", data_files=[])
        runs.append((summary, stored(tmp_path / f"{tag}.db", summary["run_id"])))
    (s1, rows1), (s2, rows2) = runs
    assert s1["orders"] > 300 and len(rows1["equity"]) > 100
    for table in TABLES:
        assert rows1[table] == rows2[table], table
    for key in ("trades", "fills", "orders", "pnl_net", "fees", "final_equity", "max_drawdown"):
        assert s1[key] == s2[key], key
    # a second replay over the same mapping (the pages were released behind the first one)
    again = fast_backtest.run_backtest_fast(settings, mapped, db_path=tmp_path / "again.db", data_files=[])
    assert stored(tmp_path / "again.db", again["run_id"]) == rows2


def _mapped_rss_kib(file: Path) -> int:
    """Resident KiB of this process's mappings of ``file`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1] == str(file)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs /proc/self/smaps (Linux)")
def test_released_pages_leave_the_process(tmp_path):
    a = open_columns(write_synthetic(tmp_path / "syn.cols", 200_000, 3))
    ts = (tmp_path / "syn.cols" / "ts.npy").resolve()
    assert int(a.ts.sum()) != 0  # touch every page of the 1.6 MB column
    assert _mapped_rss_kib(ts) > 1_000
    a.release(len(a))
    assert _mapped_rss_kib(ts) <= 8  # the last partial page at most


# --------------------------------------------------------------------------- damaged directories
def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        with open(path / "sz.npy", "r+b") as fh:
            fh.truncate(os.path.getsize(path / "sz.npy") - 8)
    elif how == "no meta":
        (path / "meta.json").unlink()
    elif how == "bad meta":
        (path / "meta.json").write_text("{not json")
    elif how == "old version":
        info = json.loads((path / "meta.json").read_text())
        (path / "meta.json").write_text(json.dumps({**info, "version": 4}))
    elif how == "garbage header":
        with open(path / "ts.npy", "r+b") as fh:
            fh.write(b"garbage!")
    elif how == "missing column":
        (path / "lvl.npy").unlink()
    elif how == "bad offsets":
        with open(path / "off.npy", "r+b") as fh:
            fh.seek(128)
            fh.write(np.int64(5).tobytes())


@pytest.mark.parametrize("how", ["truncated", "no meta", "bad meta", "old version", "garbage header", "missing column", "bad offsets"])
def test_a_damaged_directory_is_one_clear_line(tmp_path, how):
    path = save_columns(synthetic_arrays(2_000, seed=1), tmp_path / "syn.cols")
    _damage(path, how)
    with pytest.raises(ColumnsError) as info:
        open_columns(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_load_binance_rebuilds_a_damaged_cache(tmp_path):
    rec = tmp_path / "btcusdt_20240808.gz"
    write_recording(rec)
    first, timing = load_binance([rec], tmp_path / "cache")
    assert not timing["cached"] and Path(timing["path"]).name.endswith(".cols")
    first = first.slice(0, len(first))  # copies: damaging the file below changes what its mapping shows
    _damage(Path(timing["path"]), "truncated")
    again, timing = load_binance([rec], tmp_path / "cache")
    assert not timing["cached"] and "sz.npy" in timing["rebuilt"]
    assert_same(again, first)
    assert load_binance([rec], tmp_path / "cache")[1]["cached"]


def test_bot_backtest_rebuilds_a_damaged_cache_with_a_note(tmp_path):
    rec = tmp_path / "btcusdt_20240808.gz"
    write_recording(rec, seconds=5.0)
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(rec),
           "--db", str(tmp_path / "bt.db"), "--cache", str(cache), "--json", "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    [cols] = cache.glob("binance-*.cols")
    _damage(cols, "truncated")
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    notes = [line for line in second.stderr.splitlines() if "cached recording could not be used" in line]
    assert len(notes) == 1 and "sz.npy" in notes[0]
    assert json.loads(second.stdout)["orders"] == json.loads(first.stdout)["orders"]


def test_other_formats_encode_to_a_scratch_directory_removed_after_the_run(tmp_path):
    """A non-Binance format is encoded chunk by chunk to a mapped scratch directory under --cache,
    gone once the command ends; the stored results are the readable engine's."""
    from bot.data.binance import read_binance
    from tardis_writer import write_tardis

    rec = tmp_path / "btcusdt_20240808.gz"
    write_recording(rec, seconds=5.0)
    files = [str(f) for f in write_tardis(read_binance([rec]), tmp_path / "tardis", "binance", "BTCUSDT").values()]
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    out = {}
    for engine in ("fast", "readable"):
        cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", *files,
               "--db", str(tmp_path / f"{engine}.db"), "--cache", str(cache), "--engine", engine, "--json", "--no-progress"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        out[engine] = json.loads(proc.stdout)
    assert out["fast"]["stats"]["command"]["engine"] == "fast" and out["fast"]["events"] > 100
    for key in ("events", "orders", "fills", "pnl_net"):
        assert out["fast"][key] == out["readable"][key], key
    assert list(cache.iterdir()) == []  # the scratch directory is removed


def test_an_unwritable_cache_is_one_error_line(tmp_path):
    rec = tmp_path / "btcusdt_20240808.gz"
    write_recording(rec)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(rec),
           "--db", str(tmp_path / "bt.db"), "--cache", str(blocker / "cache"), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--cache" in errors[0] and "not-a-dir" in errors[0], proc.stderr
