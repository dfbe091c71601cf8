"""Tests for ``bot research`` (:mod:`bot.research`).

Every figure is checked against an independent, deliberately plain computation on a small slice
of the real recordings (raw JSON lines parsed here, python loops, numpy.polyfit / lstsq), never
against constants. The recordings live in ``../shared/data``; without them the data tests skip.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import struct
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from bot.config.settings import load_settings
from bot.research import stats
from bot.research.analysis import (
    AnalysisParams,
    forward_change,
    intervals,
    predictive_features,
    trailing_sum_samples,
    trailing_sum_stream,
)
from bot.research.command import register
from bot.research.features import SOURCE_QUOTE, extract_features

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BINANCE = DATA / "hftbacktest-binance"
SPOT_BTC = [BINANCE / "spot" / "btcusdt_20240808.gz", BINANCE / "spot" / "btcusdt_20240809.gz"]
SPOT_ETH = [BINANCE / "spot" / "ethusdt_20240808.gz", BINANCE / "spot" / "ethusdt_20240809.gz"]
USDM_BTC = [BINANCE / "usdm" / "btcusdt_20240808.gz"]
CONFIG = ROOT / "config" / "backtest.toml"
USDM_CONFIG = ROOT / "config" / "backtest-usdm-btcusdt.toml"

needs_data = pytest.mark.skipif(
    not all(p.is_file() for p in SPOT_BTC + SPOT_ETH + USDM_BTC),
    reason=f"../shared/data not present: {DATA} (real Binance recordings, mounted only on some machines)",
)
NS = 1_000_000_000
TICK = 0.01


# ---------------------------------------------------------------------------------------------
# plain helpers (independent of the code under test)
# ---------------------------------------------------------------------------------------------
def raw_messages(path: Path, limit: int | None = None):
    """(local ts, stream kind, data) for each line of a raw recording, parsed here from scratch."""
    with gzip.open(path, "rt") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                return
            ts, body = line.split(" ", 1)
            msg = json.loads(body)
            if "stream" not in msg:
                yield int(ts), "snapshot", msg
                continue
            yield int(ts), msg["stream"].split("@")[1], msg["data"]


def plain_ofi(prev: tuple[float, float, float, float], cur: tuple[float, float, float, float]) -> float:
    """CKS (2014) eq. (4), written out term by term."""
    pb0, qb0, pa0, qa0 = prev
    pb, qb, pa, qa = cur
    e = 0.0
    if pb >= pb0:
        e = e + qb
    if pb <= pb0:
        e = e - qb0
    if pa <= pa0:
        e = e - qa
    if pa >= pa0:
        e = e + qa0
    return e


def plain_ranks(values) -> list[float]:
    """Average ranks (1-based) with an explicit loop over tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def png_size(path: Path) -> tuple[int, int]:
    """Validate the PNG structure (signature, IHDR with a correct CRC, IEND) and return (w, h)."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name}: not a PNG signature"
    length, kind = struct.unpack(">I4s", raw[8:16])
    assert kind == b"IHDR" and length == 13
    ihdr = raw[16:29]
    (crc,) = struct.unpack(">I", raw[29:33])
    assert zlib.crc32(b"IHDR" + ihdr) == crc, f"{path.name}: bad IHDR CRC"
    assert raw[-12:-4] == b"\x00\x00\x00\x00IEND" or raw[-8:-4] == b"IEND", f"{path.name}: no IEND chunk"
    w, h = struct.unpack(">II", ihdr[:8])
    return w, h


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="bot")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# statistics, on synthetic data (no recordings needed)
# ---------------------------------------------------------------------------------------------
def test_newey_west_lag0_is_white_hc0():
    rng = np.random.default_rng(1)
    n = 300
    x = rng.normal(size=(n, 2))
    y = 0.3 + x @ np.array([1.5, -0.7]) + rng.normal(size=n) * (1 + np.abs(x[:, 0]))  # heteroskedastic
    r = stats.ols(y, x, lag=0)
    X = np.column_stack([np.ones(n), x])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    e = y - X @ coef
    inv = np.linalg.inv(X.T @ X)
    hc0 = inv @ (X.T @ np.diag(e**2) @ X) @ inv
    np.testing.assert_allclose(r.coef, coef, rtol=1e-10)
    np.testing.assert_allclose(r.se, np.sqrt(np.diag(hc0)), rtol=1e-10)


@pytest.mark.parametrize("lag", [1, 3, 40])
def test_newey_west_matches_bartlett_double_sum(lag):
    rng = np.random.default_rng(2)
    n = 200
    u = np.convolve(rng.normal(size=n + 5), np.ones(5) / 5, mode="valid")[:n]  # MA(4) errors
    x = rng.normal(size=n).cumsum() * 0.1
    y = 1.0 + 2.0 * x + u
    r = stats.ols(y, x, lag=lag)
    X = np.column_stack([np.ones(n), x])
    e = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
    t = np.arange(n)
    W = np.clip(1.0 - np.abs(t[:, None] - t[None, :]) / (lag + 1.0), 0.0, None)  # Bartlett kernel matrix
    U = X * e[:, None]
    inv = np.linalg.inv(X.T @ X)
    V = inv @ (U.T @ W @ U) @ inv
    np.testing.assert_allclose(r.se, np.sqrt(np.diag(V)), rtol=1e-9)


def test_hac_fft_path_equals_loop():
    rng = np.random.default_rng(3)
    U = rng.normal(size=(3000, 3))
    U[:, 1] += np.roll(U[:, 0], 7)
    for lag in (0, 5, 33, 500):
        np.testing.assert_allclose(stats._hac_meat_fft(U, lag), stats._hac_meat_loop(U, lag), rtol=1e-9, atol=1e-7)


def test_nw_lag_rule():
    assert stats.nw_lag(100) == 4          # floor(4 * 1^(2/9))
    assert stats.nw_lag(65) == math.floor(4 * 0.65 ** (2 / 9))
    assert stats.nw_lag(10_000, overlap=150) == 150
    assert stats.nw_lag(10, overlap=50) == 9


def test_rankdata_and_spearman_against_plain_loop():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 7, size=400).astype(float)  # many ties
    y = x + rng.integers(-3, 4, size=400)
    np.testing.assert_allclose(stats.rankdata(x), plain_ranks(list(x)))
    rx, ry = plain_ranks(list(x)), plain_ranks(list(y))
    np.testing.assert_allclose(stats.spearman(x, y), np.corrcoef(rx, ry)[0, 1], rtol=1e-12)


def test_input_errors_exit_1(tmp_path):
    code, _, err = run_cli(["research", "--data", str(tmp_path / "nope.gz"), "--out", str(tmp_path / "o")])
    assert code == 1 and "data file not found" in err
    junk = tmp_path / "junk.gz"
    junk.write_bytes(b"this is not gzip")
    code, _, err = run_cli(["research", "--data", str(junk), "--out", str(tmp_path / "o")])
    assert code == 1 and "error: " in err and "not a recognized data file" in err and str(junk) in err
    good = tmp_path / "empty.gz"
    with gzip.open(good, "wt") as fh:
        fh.write("")
    code, _, err = run_cli(["research", "--data", str(good), "--out", str(tmp_path / "o"), "--horizons", "1,x"])
    assert code == 1 and "--horizons" in err
    code, _, err = run_cli(["research", "--data", str(good), "--out", str(tmp_path / "o"), "--interval", "0"])
    assert code == 1 and "--interval" in err
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[signal]\nno_such_key = 1\n")
    code, _, err = run_cli(["research", "--data", str(good), "--out", str(tmp_path / "o"), "--config", str(bad_cfg)])
    assert code == 1 and "no_such_key" in err


@pytest.mark.parametrize("kind", ["gzipped-csv", "gzipped-json", "gzipped-empty", "plain-text"])
def test_foreign_data_files_exit_1_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.gz"
    if kind == "plain-text":
        path.write_text("1723161253937085768 {}\n")
    else:
        with gzip.open(path, "wt") as fh:
            fh.write({"gzipped-csv": "ts,price,qty\n1723161253,61000.1,0.5\n1723161254,61000.2,0.1\n",
                      "gzipped-json": "".join(json.dumps({"id": i, "price": 61000.5}) + "\n" for i in range(5)),
                      "gzipped-empty": ""}[kind])
    code, out, err = run_cli(["research", "--data", str(path), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 1 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and str(path) in line
    assert "not a recognized data file" in line and "formats tried: binance-raw" in line
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.skipif(not (USDM_BTC[0].is_file() and SPOT_BTC[0].is_file()), reason=f"../shared/data not present: {DATA}")
def test_market_type_mismatch_with_a_config_exits_1(tmp_path):
    """The config's fees and tick would be of the other market: refused, naming both and the config to use."""
    code, _, err = run_cli(["research", "--data", str(USDM_BTC[0]), "--out", str(tmp_path / "a"), "--config", str(CONFIG), "--quiet"])
    assert code == 1
    [line] = err.splitlines()
    assert 'recording is USD-M linear perpetual (market type "linear")' in line and 'market.type is "spot"' in line
    assert str(CONFIG) in line and "backtest-usdm-btcusdt.toml" in line
    code, _, err = run_cli(["research", "--data", str(SPOT_BTC[0]), "--out", str(tmp_path / "b"), "--config", str(USDM_CONFIG), "--quiet"])
    assert code == 1 and 'recording is spot' in err and 'market.type is "linear"' in err and "backtest.toml" in err


def test_usdm_recording_without_config_warns_and_report_json_is_strict(tmp_path):
    from emulator_helpers import write_usdm_recording

    path = tmp_path / "btcusdt_usdm.gz"
    write_usdm_recording(path, seconds=5.0)
    code, _, err = run_cli(["research", "--data", str(path), "--out", str(tmp_path / "a"), "--config", str(CONFIG), "--quiet"])
    assert code == 1 and 'market.type is "spot"' in err and "backtest-usdm-btcusdt.toml" in err
    code, _, err = run_cli(["research", "--data", str(path), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 0, err

    def strict(name):
        raise AssertionError(f"report.json is not strict JSON: {name}")

    rep = json.loads((tmp_path / "b" / "report.json").read_text(), parse_constant=strict)
    assert rep["data"]["market_type"] == "linear"
    assert rep["warnings"][0].startswith("no --config, so the built-in defaults are used: recording is USD-M linear perpetual")


# ---------------------------------------------------------------------------------------------
# features and figures on a slice of the real spot BTCUSDT recording
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spot0808():
    if not SPOT_BTC[0].is_file():
        pytest.skip(f"../shared/data not present: {DATA}")
    from bot.data.binance import ReaderStats, read_binance

    st = ReaderStats()
    fs = extract_features(read_binance([SPOT_BTC[0]], st), load_settings(CONFIG).signal, levels=5)
    return fs, st


@pytest.fixture(scope="module")
def raw0808():
    if not SPOT_BTC[0].is_file():
        pytest.skip(f"../shared/data not present: {DATA}")
    return list(raw_messages(SPOT_BTC[0], limit=12_000))


@needs_data
@pytest.mark.data
def test_quote_ofi_equals_plain_loop_over_bookticker(spot0808, raw0808):
    fs, st = spot0808
    assert st.crossed_bbo == 0 and st.out_of_order == 0  # so every raw bookTicker row is an event
    rows = [(ts, (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))) for ts, kind, d in raw0808 if kind == "bookTicker"]
    n = 2000
    assert len(rows) > n
    expected = [0.0] + [plain_ofi(rows[i - 1][1], rows[i][1]) for i in range(1, n)]
    np.testing.assert_array_equal(fs.quote_ts[:n], [ts for ts, _ in rows[:n]])
    np.testing.assert_allclose(fs.quote_e[:n], expected, rtol=0, atol=1e-12)
    assert np.count_nonzero(expected) > n // 2  # the check is not vacuous


@needs_data
@pytest.mark.data
def test_book_l1_at_quote_samples_equals_raw_bookticker(spot0808, raw0808):
    fs, _ = spot0808
    quotes = {ts: (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"])) for ts, kind, d in raw0808 if kind == "bookTicker"}
    shared = {ts for ts, n in Counter(ts for ts, _, _ in raw0808).items() if n > 1}  # ambiguous stamps
    last_raw_ts = raw0808[-1][0]
    idx = [i for i in np.flatnonzero((fs.source == SOURCE_QUOTE) & (fs.ts <= last_raw_ts)) if int(fs.ts[i]) not in shared][:2000]
    assert len(idx) == 2000
    for i in idx:
        b, bq, a, aq = quotes[int(fs.ts[i])]
        assert (fs.bid[i], fs.bid_size[i], fs.ask[i], fs.ask_size[i]) == (b, bq, a, aq)


@needs_data
@pytest.mark.data
def test_book_and_multilevel_ofi_equal_plain_loop(spot0808):
    fs, _ = spot0808
    n = 2000
    levels = fs.ofi_levels()
    book = fs.ofi_book()
    for m in (0, 2, 4):
        for i in range(n):
            if i == 0 or fs.segment[i] != fs.segment[i - 1]:
                exp = 0.0
            else:
                prev = (fs.bid_px[i - 1, m], fs.bid_sz[i - 1, m], fs.ask_px[i - 1, m], fs.ask_sz[i - 1, m])
                cur = (fs.bid_px[i, m], fs.bid_sz[i, m], fs.ask_px[i, m], fs.ask_sz[i, m])
                exp = plain_ofi(prev, cur)
            assert levels[i, m] == pytest.approx(exp, abs=1e-12)
            if m == 0:
                assert book[i] == pytest.approx(exp, abs=1e-12)
    # derived L1 columns
    i = 1234
    qb, qa = fs.bid_size[i], fs.ask_size[i]
    assert fs.l1_imbalance()[i] == pytest.approx((qb - qa) / (qb + qa))
    micro = (fs.bid[i] * qa + fs.ask[i] * qb) / (qb + qa)
    assert fs.microprice_offset()[i] == pytest.approx(micro - (fs.bid[i] + fs.ask[i]) / 2, abs=1e-9)
    b5, a5 = fs.bid_sz[i, :5].sum(), fs.ask_sz[i, :5].sum()
    assert fs.book_imbalance(5)[i] == pytest.approx((b5 - a5) / (b5 + a5))


@needs_data
@pytest.mark.data
def test_intervals_equal_plain_sums(spot0808, raw0808):
    fs, _ = spot0808
    iv = intervals(fs, 10 * NS, 1800 * NS, TICK)
    trades = [(ts, float(d["q"]) * (-1 if d["m"] else 1)) for ts, kind, d in raw_messages(SPOT_BTC[0]) if kind == "trade"]
    t0 = int(fs.ts[0])
    e_book = fs.ofi_book()
    for k in (0, 1, 7, len(iv.start_ts) - 1):
        lo, hi = t0 + k * 10 * NS, t0 + (k + 1) * 10 * NS
        assert iv.start_ts[k] == lo
        # mid at a boundary: the last sample at or before it
        i_lo = max(i for i in range(len(fs.ts)) if fs.ts[i] <= lo)
        i_hi = max(i for i in range(len(fs.ts)) if fs.ts[i] <= hi)
        assert iv.dmid_ticks[k] == pytest.approx((fs.mid[i_hi] - fs.mid[i_lo]) / TICK, abs=1e-6)
        exp_q = sum(e for ts, e in zip(fs.quote_ts, fs.quote_e) if lo < ts <= hi)
        assert iv.ofi_quotes[k] == pytest.approx(exp_q, abs=1e-6)
        exp_b = sum(e_book[i] for i in range(len(fs.ts)) if lo < fs.ts[i] <= hi)
        assert iv.ofi_book[k] == pytest.approx(exp_b, abs=1e-6)
        exp_t = sum(q for ts, q in trades if lo < ts <= hi)
        assert iv.trade_imbalance[k] == pytest.approx(exp_t, abs=1e-9)
    assert iv.valid.all()


@needs_data
@pytest.mark.data
def test_ols_on_intervals_matches_polyfit_and_lstsq(spot0808):
    fs, _ = spot0808
    iv = intervals(fs, 5 * NS, 1800 * NS, TICK)
    y, x = iv.dmid_ticks[iv.valid], iv.ofi_quotes[iv.valid]
    r = stats.ols(y, x)
    b, a = np.polyfit(x, y, 1)
    assert r.coef[1] == pytest.approx(b, rel=1e-9)
    assert r.coef[0] == pytest.approx(a, rel=1e-9, abs=1e-9)
    assert r.r2 == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-9)
    # multi-level: R2 of lstsq on [1, OFI_1..OFI_3]
    X = np.column_stack([np.ones(len(y)), iv.ofi_levels[iv.valid][:, :3]])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    r2 = 1 - np.sum((y - X @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
    assert stats.ols(y, iv.ofi_levels[iv.valid][:, :3]).r2 == pytest.approx(r2, rel=1e-9)


@needs_data
@pytest.mark.data
def test_forward_change_alignment_on_hand_picked_samples(spot0808):
    fs, _ = spot0808
    for h in (0.1, 1.0, 10.0):
        h_ns = int(h * NS)
        d, valid, j = forward_change(fs, fs.mid, h_ns)
        for i in (0, 17, 5000, 20_000, len(fs.ts) // 2):
            target = fs.ts[i] + h_ns
            k = i
            while k + 1 < len(fs.ts) and fs.ts[k + 1] <= target:  # walk forward by hand
                k += 1
            assert j[i] == k
            assert fs.ts[k] <= target and (k + 1 == len(fs.ts) or fs.ts[k + 1] > target)
            assert d[i] == fs.mid[k] - fs.mid[i]
            assert valid[i]
    # the last samples have no future within the recording
    d, valid, _ = forward_change(fs, fs.mid, 60 * NS)
    assert not valid[-1] and valid[0]
    end = fs.segment_end_ts[-1]
    assert np.array_equal(valid, fs.ts + 60 * NS < end)


@needs_data
@pytest.mark.data
def test_trailing_flow_features_equal_plain_sums(spot0808):
    fs, _ = spot0808
    w = 1 * NS
    ofi_b = trailing_sum_samples(fs, fs.ofi_book(), w)
    ofi_q = trailing_sum_stream(fs, fs.quote_ts, fs.quote_e, w)
    tf = trailing_sum_stream(fs, fs.trade_ts, fs.trade_signed, w)
    e_b = fs.ofi_book()
    assert fs.counts["segments"] == 1
    start = fs.ts[0]  # the window never reaches back before the book was sound (segment start)
    for i in (3, 999, 12_345, len(fs.ts) - 1):
        t = fs.ts[i]
        lo = max(t - w, start - 1)
        assert ofi_b[i] == pytest.approx(sum(e_b[k] for k in range(i + 1) if fs.ts[k] > t - w), abs=1e-6)
        assert ofi_q[i] == pytest.approx(sum(e for ts, e in zip(fs.quote_ts, fs.quote_e) if lo < ts <= t), abs=1e-6)
        assert tf[i] == pytest.approx(sum(q for ts, q in zip(fs.trade_ts, fs.trade_signed) if lo < ts <= t), abs=1e-9)
    # sample 3 is within a second of the start: quotes before the book synced are left out
    assert any(ts < start and ts > fs.ts[3] - w for ts in fs.quote_ts)


@needs_data
@pytest.mark.data
def test_spearman_hit_rate_and_oos_r2_on_real_slice(spot0808):
    fs, _ = spot0808
    feats = predictive_features(fs, AnalysisParams(tick_size=TICK))
    d, valid, _ = forward_change(fs, fs.mid, 1 * NS)
    x = feats["l1_imbalance"][valid][:3000]
    y = (d / TICK)[valid][:3000]
    # Spearman = Pearson of average ranks (many tied zero moves here)
    assert np.mean(y == 0) > 0.1
    assert stats.spearman(x, y) == pytest.approx(np.corrcoef(plain_ranks(list(x)), plain_ranks(list(y)))[0, 1], rel=1e-9)
    # hit rate: explicit loop
    hits = [np.sign(a) == np.sign(b) for a, b in zip(x, y) if a != 0 and b != 0]
    rate, n = stats.hit_rate(x, y)
    assert n == len(hits) and rate == pytest.approx(sum(hits) / len(hits))
    # out-of-sample R2 with the test-set mean
    b, a = np.polyfit(x[:1500], y[:1500], 1)
    yt, pred = y[1500:], a + b * x[1500:]
    exp = 1 - sum((yt - pred) ** 2) / sum((yt - yt.mean()) ** 2)
    assert stats.r2_score(yt, pred) == pytest.approx(exp, rel=1e-9)


@needs_data
@pytest.mark.data
def test_score_is_the_signal_engine_state(spot0808):
    """The score column is the bot's own SignalEngine, replayed exactly as the trading engine does."""
    from bot.book.book import OrderBook
    from bot.data.binance import read_binance
    from bot.signals.features import SignalEngine

    fs, _ = spot0808
    book, eng = OrderBook(), SignalEngine(load_settings(CONFIG).signal)
    scores = []
    for ev in read_binance([SPOT_BTC[0]]):
        if book.apply(ev):
            s = eng.update(book, ev.ts_local)
            if s.valid:
                scores.append(s.score)
                if len(scores) == 3000:
                    break
    np.testing.assert_array_equal(fs.score[:3000], scores)
    assert np.all(np.abs(fs.score) <= 1.0 + 1e-12)


# ---------------------------------------------------------------------------------------------
# end to end through the CLI
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spot_run(tmp_path_factory):
    if not all(p.is_file() for p in SPOT_BTC):
        pytest.skip(f"../shared/data not present: {DATA}")
    out = tmp_path_factory.mktemp("research_spot")
    code, stdout, stderr = run_cli(["research", "--data", *map(str, SPOT_BTC), "--out", str(out), "--config", str(CONFIG)])
    return code, stdout, stderr, out


@needs_data
@pytest.mark.data
@pytest.mark.slow
def test_end_to_end_spot_btcusdt(spot_run):
    code, stdout, stderr, out = spot_run
    assert code == 0, stderr
    assert "research:" in stderr  # progress on stderr
    rep = json.loads((out / "report.json").read_text())
    for key in ("data", "parameters", "warnings", "cks", "predictive", "costs", "plots", "runtime_s"):
        assert key in rep
    assert [f["path"] for f in rep["data"]["files"]] == [str(p) for p in SPOT_BTC]
    assert rep["data"]["counts"]["samples"] > 50_000 and rep["data"]["counts"]["segments"] == 1
    assert rep["data"]["duration_s"] == pytest.approx(650, abs=2)
    assert rep["parameters"]["horizons_s"] == [0.1, 1.0, 10.0, 60.0]
    assert rep["parameters"]["taker_fee_bps"] == load_settings(CONFIG).execution.taker_fee_bps
    cks = rep["cks"]
    assert cks["interval_s"] == 10.0 and cks["intervals_valid"] == 65
    for name in ("ofi_quotes", "ofi_book", "trade_imbalance"):
        r = cks["regressions"][name]
        assert {"beta_mean", "t_mean", "r2_mean", "share_significant", "per_window"} <= set(r)
        assert 0.0 <= r["r2_mean"] <= 1.0
    r = cks["regressions"]["ofi_quotes"]
    assert r["n_windows"] == len(r["per_window"]) == 1 and r["r2_mean"] == r["per_window"][0]["r2"]
    assert [m["levels"] for m in cks["multilevel"]] == list(range(1, 11))
    r2s = [m["r2_mean"] for m in cks["multilevel"]]
    assert all(b >= a - 1e-12 for a, b in zip(r2s, r2s[1:]))  # nested regressions: R2 never falls
    hs = rep["predictive"]["horizons"]
    assert [h["horizon_s"] for h in hs] == [0.1, 1.0, 10.0, 60.0]
    for h in hs:
        for name in ("l1_imbalance", "ofi_quotes", "trade_flow", "score"):
            f = h["features"][name]
            assert {"ic", "ic_test", "r2_oos", "hit_rate", "t_nw"} <= set(f)
            assert -1 <= f["ic"] <= 1 and 0 <= f["hit_rate"] <= 1
        assert 0 <= h["zero_move_share"] <= 1
    costs = rep["costs"]
    assert costs["round_trip_taker_bps"] == pytest.approx(2 * rep["parameters"]["taker_fee_bps"] + costs["spread"]["mean_bps"])
    assert set(costs["buckets"]) == {"score", "ofi_quotes", "l1_imbalance"}
    assert isinstance(costs["any_bucket_clears_taker_cost"], bool)
    assert set(rep["plots"]) >= {"ic_decay.png", "conditional_move.png", "ofi_scatter.png"}
    for name in rep["plots"]:
        w, h = png_size(out / name)
        assert w > 200 and h > 200
    assert "CKS" in stdout and "Predictive" in stdout and "verdict" in stdout


@needs_data
@pytest.mark.data
def test_cks_table_matches_polyfit_on_intervals(spot0808):
    from bot.research.analysis import cks_table

    fs, _ = spot0808
    iv = intervals(fs, 10 * NS, 1800 * NS, TICK)
    tab, _ = cks_table(fs, AnalysisParams(tick_size=TICK))
    for name, x in (("ofi_quotes", iv.ofi_quotes), ("trade_imbalance", iv.trade_imbalance)):
        x, y = x[iv.valid], iv.dmid_ticks[iv.valid]
        b, a = np.polyfit(x, y, 1)
        r = tab["regressions"][name]
        assert r["n_windows"] == 1 and r["n_intervals"] == len(y)
        assert r["beta_mean"] == pytest.approx(b, rel=1e-9)
        assert r["per_window"][0]["alpha"] == pytest.approx(a, rel=1e-9, abs=1e-9)
        assert r["r2_mean"] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-9)
        X = np.column_stack([np.ones(len(y)), x])
        e = y - X @ np.array([a, b])
        inv = np.linalg.inv(X.T @ X)
        lag = r["per_window"][0]["nw_lag"]
        t_idx = np.arange(len(y))
        W = np.clip(1.0 - np.abs(t_idx[:, None] - t_idx[None, :]) / (lag + 1.0), 0.0, None)
        V = inv @ ((X * e[:, None]).T @ W @ (X * e[:, None])) @ inv
        assert r["t_mean"] == pytest.approx(b / math.sqrt(V[1, 1]), rel=1e-9)
        assert r["share_significant"] == (1.0 if abs(b / math.sqrt(V[1, 1])) > 1.96 else 0.0)


@needs_data
@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    "files, config, extra, expect_warning",
    [
        # USD-M tick is 0.1; a spot config is refused (other market), so the small tick comes from --tick-size
        (USDM_BTC, USDM_CONFIG, ["--tick-size", "0.01"], "tick_size looks too small"),
        (SPOT_ETH, CONFIG, [], "recording is ETHUSDT"),                # symbol differs from the config's market
    ],
    ids=["usdm-btcusdt-0808", "spot-ethusdt"],
)
def test_robustness_other_recordings(tmp_path, files, config, extra, expect_warning):
    code, stdout, stderr = run_cli(["research", "--data", *map(str, files), "--out", str(tmp_path), "--config", str(config), "--quiet", *extra])
    assert code == 0, stderr
    assert stderr == ""  # --quiet
    rep = json.loads((tmp_path / "report.json").read_text())
    assert any(expect_warning in w for w in rep["warnings"]), rep["warnings"]
    assert rep["cks"]["regressions"]["ofi_quotes"]["n_windows"] == 1
    assert 0 < rep["cks"]["regressions"]["ofi_quotes"]["r2_mean"] <= 1
    for h in rep["predictive"]["horizons"]:
        assert h["n"] > 1000
        assert all(v is None or -1 <= v["ic"] <= 1 for v in h["features"].values())
    for name in rep["plots"]:
        png_size(tmp_path / name)


def test_ofi_scatter_draws_a_window_without_a_regression(tmp_path):
    """A window whose flows never vary has no regression (means are None): the plot says n/a."""
    import numpy as np

    from bot.research.analysis import Intervals
    from bot.research.plots import plot_ofi_scatter

    k = 5
    iv = Intervals(np.arange(k), np.zeros(k), np.zeros(k), np.zeros((k, 1)), None, np.ones(k, dtype=bool), np.zeros(k, dtype=int))
    none = {"n_windows": 1, "beta_mean": None, "t_mean": None, "r2_mean": None}
    out = tmp_path / "ofi.png"
    plot_ofi_scatter(iv, {"interval_s": 1.0, "regressions": {"ofi_quotes": none, "ofi_book": none}}, out, "flat")
    assert out.stat().st_size > 0
