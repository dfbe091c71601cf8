"""``bot inspect`` and ``--format``: what a data file holds, and one-line errors for files no reader knows."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli.main import main
from conftest import shared_data_dir

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present: the shared data files are only "
                                                          "available where the shared folder is mounted")
SPOT = [DATA / "hftbacktest-binance" / "spot" / f"btcusdt_2024080{d}.gz" for d in (8, 9)]
ROOT = Path(__file__).resolve().parents[1]


def _inspect(capsys, *args):
    code = main(["inspect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@needs_data
@pytest.mark.data
def test_inspect_json_of_the_split_spot_recording(capsys):
    code, out, err = _inspect(capsys, *SPOT, "--json")
    assert code == 0, err
    r = json.loads(out)
    # the figures of ../shared/data/README.md (measured there by an independent script)
    assert (r["format"], r["exchange"], r["symbol"], r["market_type"]) == ("binance-raw", "binance", "BTCUSDT", "spot")
    assert r["counts"]["bbo"] == 73_174 and r["counts"]["trade"] == 19_904 and r["counts"]["snapshot"] == 1
    assert r["counts"]["delta"] + r["dropped_deltas"] == 6_495
    assert r["events"] == sum(r["counts"].values())
    assert r["gaps"] == 0 and r["crossed_books"] == 0 and r["malformed"] == 0
    assert round((r["last_ts"] - r["first_ts"]) / 1e9, 1) == 650.4
    assert r["first_time"].startswith("2024-08-08T23:54:14")


@needs_data
@pytest.mark.data
@pytest.mark.parametrize("path, fmt, symbol, kinds", [
    ("lobster-sample/LOBSTER_SampleFile_GOOG_2012-06-21_10.zip", "lobster", "GOOG", {"snapshot", "delta", "trade"}),
    ("bitstamp-obanalytics/2015-05-01.log.xz", "bitstamp", "BTCUSD", {"snapshot", "delta", "trade"}),
    ("nautilus-fixtures/tardis/binance-futures_book_snapshot_25_BTCUSDT.csv", "tardis", "BTCUSDT", {"snapshot"}),
    ("nautilus-fixtures/bybit/xrpusdt-ob500.data.zip", "bybit", "XRPUSDT", {"snapshot", "delta"}),
])
def test_inspect_names_format_symbol_and_kinds(capsys, path, fmt, symbol, kinds):
    code, out, err = _inspect(capsys, DATA / path, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert (r["format"], r["symbol"]) == (fmt, symbol)
    assert {k for k, v in r["counts"].items() if v} == kinds
    assert r["first_ts"] <= r["last_ts"] and r["gaps"] == 0
    if fmt == "lobster":
        assert r["crossed_books"] == 0 and r["counts"]["delta"] > 100_000
    code, text, _ = _inspect(capsys, DATA / path)
    assert code == 0 and f"format       {fmt}" in text and "sequence gaps 0" in text


def test_inspect_counts_gaps_crossed_books_and_malformed_lines(capsys, tmp_path):
    path = tmp_path / "book.csv"
    path.write_text(
        "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
        "binance,BTCUSDT,1,1000,true,bid,100,1\n"
        "binance,BTCUSDT,1,1000,true,ask,101,1\n"
        "binance,BTCUSDT,2,2000,false,bid,102,1\n"  # the bid above the ask: crossed
        "binance,BTCUSDT,3,3000,false,ask,nan,1\n"  # malformed
        "binance,BTCUSDT,4,4000,false,bid,102,0\n")
    code, out, err = _inspect(capsys, path, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["counts"]["snapshot"] == 1 and r["counts"]["delta"] == 2
    assert r["crossed_books"] == 1 and r["malformed"] == 1 and r["problems"][0].startswith("book.csv:5:")
    assert r["first_ts"] == 1_000_000 and r["last_ts"] == 4_000_000


def test_inspect_refuses_unknown_files_in_one_line(capsys, tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"hello\nworld\n"))
    code, out, err = _inspect(capsys, path)
    assert code == 1 and not out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "formats tried: binance-raw" in lines[0] and "tardis" in lines[0]


def _bot(*args, cwd):
    return subprocess.run([sys.executable, "-m", "bot", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_backtest_of_a_gzipped_file_no_reader_knows_is_an_error(tmp_path):
    path = tmp_path / "quotes.csv.gz"
    path.write_bytes(gzip.compress(b"time,bid,ask\n1,100,101\n"))
    out = _bot("backtest", "--config", ROOT / "config" / "backtest.toml", "--data", path, "--db", tmp_path / "b.db", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and str(path) in out.stderr and "formats tried" in out.stderr
    assert "Traceback" not in out.stderr


def test_backtest_of_a_tardis_file_without_events_is_an_error(tmp_path):
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(gzip.compress(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"))
    out = _bot("backtest", "--config", ROOT / "config" / "backtest.toml", "--data", path, "--db", tmp_path / "b.db", cwd=tmp_path)
    assert out.returncode == 1 and "yield no market events" in out.stderr and "Traceback" not in out.stderr


@needs_data
@pytest.mark.data
def test_format_option_overrides_detection(tmp_path, capsys):
    # read as the wrong format: an error naming what that reader expected
    code, _, err = _inspect(capsys, SPOT[0], "--format", "tardis")
    assert code == 1 and str(SPOT[0]) in err and "Tardis" in err
    code, _, err = _inspect(capsys, SPOT[0], "--format", "nope")
    assert code == 1 and "unknown data format 'nope'" in err
    out = _bot("backtest", "--config", ROOT / "config" / "backtest.toml", "--data", SPOT[0], "--format", "lobster",
               "--db", tmp_path / "b.db", cwd=tmp_path)
    assert out.returncode == 1 and "LOBSTER" in out.stderr and "Traceback" not in out.stderr


@needs_data
@pytest.mark.data
def test_backtest_replays_a_tardis_recording(tmp_path):
    """The spot recording written as Tardis CSV backtests like any other data (spot, BTCUSDT)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bot.data.binance import read_binance
    from tardis_writer import write_tardis

    files = write_tardis(read_binance([SPOT[0]]), tmp_path / "tardis", "binance", "BTCUSDT")
    out = _bot("backtest", "--config", ROOT / "config" / "backtest.toml", "--data", *files.values(), "--json",
               "--db", tmp_path / "b.db", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "completed"
    assert summary["stats"]["source"]["format"] == "tardis" and summary["stats"]["source"]["events"]["delta"] > 3000
