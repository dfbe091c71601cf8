"""The compiled Binance parser gives exactly what the reference reader gives, or declines.

``load_binance`` reads a clean recording with :mod:`bot.fast.parse_binance` and anything else
with :func:`bot.data.binance.read_binance`. Here both are run on every shared recording (where
the compiled parser must be the one used) and on generated recordings with every kind of oddity
the reader handles (whitespace, other key orders, gaps, crossed quotes, lines out of order, bad
numbers, perpetual streams ...): the arrays and the statistics must be identical either way, and
a recording the reader refuses must be refused with the same message.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.data.recording import RecordingError
from bot.fast.columnar import load_binance
from conftest import shared_data_dir

DATA = shared_data_dir() / "hftbacktest-binance"
RECORDINGS = [
    ["spot/btcusdt_20240808.gz", "spot/btcusdt_20240809.gz"],
    ["spot/ethusdt_20240808.gz", "spot/ethusdt_20240809.gz"],
    ["usdm/btcusdt_20240808.gz"],
    ["usdm/btcusdt_20240719.gz", "usdm/btcusdt_20240718.gz"],  # given out of order: replayed by time
    ["usdm/ethusdt_20240808.gz"],
]
ARRAYS = ("kind", "ts", "seq", "off", "nbid", "lvl", "sz", "prices")


def _both(paths, tmp_path):
    """(compiled result or exception, reference result or exception)."""
    out = []
    for compiled in (True, False):
        try:
            out.append(load_binance(paths, tmp_path / f"cache-{compiled}", compiled=compiled))
        except RecordingError as exc:
            out.append(exc)
    return out


def _assert_same(fast, ref):
    if isinstance(ref, Exception):
        assert isinstance(fast, RecordingError) and str(fast) == str(ref)
        return
    assert not isinstance(fast, Exception), fast
    (a, _), (b, _) = fast, ref
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.price_decimals == b.price_decimals
    assert a.meta == b.meta


@pytest.mark.skipif(not DATA.exists(), reason="../shared/data not present: the shared Binance recordings are needed")
@pytest.mark.parametrize("names", RECORDINGS, ids=lambda n: "+".join(n))
def test_every_shared_recording_is_parsed_compiled_and_identically(names, tmp_path):
    fast, ref = _both([DATA / n for n in names], tmp_path)
    assert fast[1]["parser"] == "compiled"
    assert ref[1]["parser"] == "reader"
    _assert_same(fast, ref)


# --------------------------------------------------------------------------- generated recordings
T0 = 1_723_161_253_000_000_000


def _dec(x: float, places: int = 8) -> str:
    return f"{x:.{places}f}"


def _messages(draw, futures: bool):
    """A valid recording as (ts, message dict) pairs: a few diffs, the snapshot, then a mix."""
    sym = "btcusdt"
    lid = 1000
    msgs = []
    ts = T0
    u = lid - 3
    # diffs before the snapshot (some obsolete, one bridging it)
    for _ in range(draw(st.integers(0, 3))):
        first, u = u + 1, u + 2
        msgs.append((ts, _diff(sym, first, u, u - 2, futures, draw)))
        ts += 1_000
    bids = [[_dec(100.0 - i * 0.01, 2), _dec(1.0 + i)] for i in range(5)]
    asks = [[_dec(100.01 + i * 0.01, 2), _dec(2.0 + i)] for i in range(5)]
    snap = {"lastUpdateId": lid, "bids": bids, "asks": asks}
    if futures:
        snap = {"lastUpdateId": lid, "E": 1, "T": 1, "bids": bids, "asks": asks}
    msgs.append((ts, snap))
    u = max(u, lid)
    prev = u
    for _ in range(draw(st.integers(1, 25))):
        ts += draw(st.integers(0, 10**8))
        kind = draw(st.sampled_from(["diff", "bbo", "trade"]))
        if kind == "diff":
            first, last = prev + 1, prev + draw(st.integers(1, 3))
            msgs.append((ts, _diff(sym, first, last, prev, futures, draw)))
            prev = last
        elif kind == "bbo":
            b = draw(st.sampled_from([99.99, 100.0, 100.005]))
            data = {"u": prev, "s": "BTCUSDT", "b": _dec(b, 3), "B": _dec(draw(st.floats(0, 9))),
                    "a": _dec(b + draw(st.sampled_from([0.01, 0.02])), 3), "A": _dec(1.5)}
            msgs.append((ts, {"stream": f"{sym}@bookTicker", "data": data}))
        else:
            data = {"e": "trade", "E": 5, "s": "BTCUSDT", "t": draw(st.integers(1, 10**9)),
                    "p": _dec(draw(st.sampled_from([100.0, 100.01, 99.5])), 2), "q": _dec(draw(st.floats(0, 3))),
                    "T": 5, "m": draw(st.booleans()), "M": True}
            msgs.append((ts, {"stream": f"{sym}@trade", "data": data}))
    return msgs


def _diff(sym, first, last, pu, futures, draw):
    levels = lambda: [[_dec(draw(st.sampled_from([99.98, 99.99, 100.0, 100.01, 100.02, 100.5])), 2), _dec(draw(st.floats(0, 5)))]
                      for _ in range(draw(st.integers(0, 3)))]
    data = {"e": "depthUpdate", "E": 7, "s": "BTCUSDT", "U": first, "u": last}
    if futures:
        data.update({"T": 7, "pu": pu})
    data.update({"b": levels(), "a": levels()})
    return {"stream": f"{sym}@depth@{'0ms' if futures else '100ms'}", "data": data}


def _line(ts, msg):
    return f"{ts} {json.dumps(msg, separators=(',', ':'))}"


# oddities the reader handles and the compiled parser must either read identically or decline
def _perturb(lines, msgs, draw):
    what = draw(st.sampled_from([
        "none", "spaces", "key_order", "gap", "crossed", "back_in_time", "bad_json", "mark_price", "number_price",
        "exponent", "negative", "cr", "upper_stream", "blank", "duplicate_key", "no_snapshot", "unknown_stream",
        "leading_zero_ts", "float_id", "escaped", "extra_top_key", "unsorted_snapshot", "other_symbol",
    ]))
    i = draw(st.integers(0, max(min(len(lines), len(msgs)) - 1, 0)))  # earlier perturbations may add or drop lines
    ts, msg = msgs[i]
    data = msg.get("data")
    if what == "spaces":
        lines[i] = f"{ts} {json.dumps(msg)}"
    elif what == "key_order" and data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(reversed(list(data.items())))})
    elif what == "gap":
        for j in range(min(len(msgs), len(lines))):  # an earlier perturbation may have dropped lines
            if "depth" in str(msgs[j][1].get("stream")) and j > i:
                d = dict(msgs[j][1]["data"], U=msgs[j][1]["data"]["U"] + 5, u=msgs[j][1]["data"]["u"] + 5, pu=-1)
                if "T" not in d:
                    d.pop("pu")
                lines[j] = _line(msgs[j][0], {"stream": msgs[j][1]["stream"], "data": d})
                break
    elif what == "crossed" and data and "B" in data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, a=data["b"])})
    elif what == "back_in_time" and i > 0:
        lines[i] = _line(ts - 10**9, msg)
    elif what == "bad_json":
        lines[i] = lines[i][:-3]
    elif what == "mark_price":
        lines.insert(i, _line(ts, {"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate", "E": 1, "s": "BTCUSDT",
                                                                              "p": "100.0", "i": "100.0", "r": "0.0001", "T": 2}}))
    elif what == "number_price" and data and "p" in data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, p=float(data["p"]))})
    elif what == "exponent" and data and "q" in data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, q="1e-3")})
    elif what == "negative" and data and "q" in data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, q="-1.0")})
    elif what == "cr":
        lines[i] += "\r"
    elif what == "upper_stream" and "stream" in msg:
        lines[i] = _line(ts, dict(msg, stream=msg["stream"].upper()))
    elif what == "blank":
        lines.insert(i, "")
    elif what == "duplicate_key" and data:
        body = json.dumps(msg, separators=(",", ":"))
        lines[i] = f"{ts} {body[:-2]},\"u\":1}}}}" if "u" in data else lines[i]
    elif what == "no_snapshot":
        lines[:] = [ln for ln in lines if "lastUpdateId" not in ln]
    elif what == "unknown_stream":
        lines.insert(i, _line(ts, {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "a": 1}}))
    elif what == "leading_zero_ts":
        lines[i] = "0" + lines[i]
    elif what == "float_id" and data and "t" in data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, t=1.5)})
    elif what == "escaped" and data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": dict(data, s="BTC\u00e9USDT")})
    elif what == "extra_top_key" and data:
        lines[i] = _line(ts, {"stream": msg["stream"], "data": data, "x": 1})
    elif what == "unsorted_snapshot" and "lastUpdateId" in msg:
        lines[i] = _line(ts, dict(msg, bids=list(reversed(msg["bids"]))))
    elif what == "other_symbol" and "stream" in msg:
        lines[i] = _line(ts, dict(msg, stream=msg["stream"].replace("btcusdt", "ethusdt")))
    return what


@st.composite
def _recording(draw):
    futures = draw(st.booleans())
    msgs = _messages(draw, futures)
    lines = [_line(ts, m) for ts, m in msgs]
    what = "none"
    for _ in range(draw(st.integers(0, 2))):
        what = _perturb(lines, msgs, draw)
    split = draw(st.integers(0, len(lines)))  # sometimes two files (a recording split at midnight)
    return lines, split, what


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rec=_recording())
def test_generated_recordings_read_the_same_or_are_declined(rec, tmp_path_factory):
    lines, split, _ = rec
    tmp = tmp_path_factory.mktemp("rec")
    parts = [lines[:split], lines[split:]] if 0 < split < len(lines) else [lines]
    paths = []
    for n, part in enumerate(parts):
        path = tmp / f"part{n}.gz"
        path.write_bytes(gzip.compress(("\n".join(part) + "\n").encode()))
        paths.append(path)
    fast, ref = _both(paths, tmp)
    _assert_same(fast, ref)


def test_a_clean_generated_recording_is_read_compiled(tmp_path):
    lines = [
        f"{T0} " + json.dumps({"lastUpdateId": 10, "bids": [["100.00", "1.5"]], "asks": [["100.01", "2"]]}, separators=(",", ":")),
        f"{T0 + 1} " + json.dumps({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 11, "u": 12,
                                   "b": [["99.99", "3.25"]], "a": []}}, separators=(",", ":")),
        f"{T0 + 2} " + json.dumps({"stream": "btcusdt@trade", "data": {"e": "trade", "t": 5, "p": "100.01", "q": "0.1", "m": False}},
                                  separators=(",", ":")),
    ]
    path = tmp_path / "clean.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    fast, ref = _both([path], tmp_path)
    assert fast[1]["parser"] == "compiled"
    _assert_same(fast, ref)
    arrays = fast[0]
    assert arrays.counts() == {"snapshot": 1, "delta": 1, "bbo": 0, "trade": 1, "invalidated": 0}
    assert arrays.price_table().tolist() == [99.99, 100.0, 100.01]


# --------------------------------------------------------------------------- several files at once
def _j(msg):
    return json.dumps(msg, separators=(",", ":"))


def _spot_diff(first, last, bid="99.99"):
    return _j({"stream": "btcusdt@depth@100ms", "data": {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": first, "u": last,
                                                         "b": [[bid, "3.25"]], "a": []}})


def _files(tmp_path, parts):
    paths = []
    for n, lines in enumerate(parts):
        path = tmp_path / f"day{n}.gz"
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        paths.append(path)
    return paths


def _clean_days():
    """Three files whose boundaries cut sync sequences: diffs buffered before the snapshot are
    split across the first boundary (the snapshot is in the second file), and the second
    boundary falls between two chained diffs."""
    snap = _j({"lastUpdateId": 10, "bids": [["100.00", "1.5"], ["99.00", "1"]], "asks": [["100.01", "2"]]})
    day0 = [f"{T0} {_spot_diff(5, 8)}", f"{T0 + 1} {_spot_diff(9, 11)}"]
    day1 = [f"{T0 + 2} {_spot_diff(12, 12, '99.50')}", f"{T0 + 3} {snap}", f"{T0 + 4} {_spot_diff(13, 14)}"]
    day2 = [f"{T0 + 5} {_spot_diff(15, 20, '99.98')}",
            f"{T0 + 6} " + _j({"stream": "btcusdt@trade", "data": {"e": "trade", "t": 5, "p": "100.01000000", "q": "0.10000000",
                                                                 "m": True}})]
    return [day0, day1, day2]


def test_files_scanned_concurrently_keep_the_sync_rules_across_their_boundaries(tmp_path):
    fast, ref = _both(_files(tmp_path, _clean_days()), tmp_path)
    assert fast[1]["parser"] == "compiled"
    _assert_same(fast, ref)
    # 9-11 bridges lastUpdateId 10 (5-8 is obsolete), 12, 13-14 and 15-20 chain on it
    assert fast[0].counts() == {"snapshot": 1, "delta": 4, "bbo": 0, "trade": 1, "invalidated": 0}
    assert fast[0].meta["reader"]["dropped_deltas"] == 1


@pytest.mark.parametrize("fault", ["gap_at_boundary", "bad_line_in_last_file", "corrupt_last_file", "last_file_starts_earlier"])
def test_one_file_the_compiled_parser_declines_sends_the_whole_recording_to_the_reader(fault, tmp_path):
    days = _clean_days()
    if fault == "gap_at_boundary":
        days[2][0] = f"{T0 + 5} {_spot_diff(16, 20)}"
    elif fault == "bad_line_in_last_file":
        days[2][1] = days[2][1].replace(",", ", ")
    elif fault == "last_file_starts_earlier":
        days[2][0] = f"{T0 + 3} {_spot_diff(15, 20)}"
    paths = _files(tmp_path, days)
    if fault == "corrupt_last_file":
        paths[2].write_bytes(paths[2].read_bytes()[:-12])
    fast, ref = _both(paths, tmp_path)
    _assert_same(fast, ref)
    if not isinstance(fast, Exception):
        assert fast[1]["parser"] == "reader"


def test_decimal_and_integer_edges_read_exactly_or_decline():
    from bot.fast.parse_binance import _POW10
    from bot.fast.parse_json import _decimal, read_int

    tmp = np.zeros(2, np.int64)
    for text in ["0", "0.0", "00.5", "100", "100.5", "0.00123000", "61737.63000000", "900719925474099.1",
                 "9007199254740991", "1." + "0" * 14]:
        buf = np.frombuffer(f'"{text}",'.encode(), np.uint8)
        assert _decimal(buf, 0, buf.shape[0], tmp) == len(text) + 2, text
        assert tmp[0] / _POW10[tmp[1]] == float(text), text
    for text in ["5.", ".5", "1e5", "-1", "123456789012345678", "9007199254740993", "1.2.3", "0." + "0" * 22 + "1"]:
        buf = np.frombuffer(f'"{text}",'.encode(), np.uint8)
        assert _decimal(buf, 0, buf.shape[0], tmp) == -1, text
    for text, value in [("0", 0), ("-5", -5), ("1234567890123456789", 1234567890123456789),
                        ("9223372036854775807", 2**63 - 1), ("9223372036854775808", None), ("19223372036854775807", None),
                        ("01", None), ("1.5", None), ("1e3", None)]:
        buf = np.frombuffer(f"{text},".encode(), np.uint8)
        end = read_int(buf, 0, buf.shape[0], tmp)
        assert (end == -1) if value is None else (end == len(text) and tmp[0] == value), text


def test_price_ranks_equal_numpys_unique():
    from bot.fast.ranks import ranks

    rng = np.random.default_rng(7)
    for units in [rng.integers(0, 5000, 20_000) * 1_000_000 + 123, np.array([7, 7, 7]), rng.integers(-2**40, 2**40, 500),
                  np.array([], np.int64)]:
        table, rank = ranks(units)
        want_table, want_rank = np.unique(units, return_inverse=True)
        assert np.array_equal(table, want_table) and np.array_equal(rank, want_rank.reshape(-1))
