"""The fast path makes the same decisions as the readable engine, event by event.

* Kernel signals (:mod:`bot.fast.kernel`) against ``OrderBook`` + ``SignalEngine``: every event's
  changed/sound/valid flags equal, every ``SignalState`` field within 1e-9 (relative); in
  practice they are bit-identical and the tests also count exact matches.
* The kernel's book (through :class:`bot.fast.book.BookView`) against ``OrderBook`` after every
  event of random streams with gaps, resyncs, crossed books and far levels.
* ``run_backtest_fast`` against ``run_backtest``: the stored orders, fills, positions, round
  trips, equity points, funding payments, marks and risk events are identical row for row (run
  id aside), and so are the run's counters.

On the real Binance BTCUSDT recording when ``../shared/data`` is mounted, and on synthetic and
simulated streams that need no data; perpetuals (funding, liquidation, the USD-M recordings) in
``test_fast_equivalence_perp.py`` with the same helpers.
"""

from __future__ import annotations

import dataclasses
import math
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from bot.book.book import OrderBook
from bot.config.settings import load_settings
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Trade
from bot.engine.runner import run_backtest
from bot.fast.backtest import run_backtest_fast
from bot.fast.book import BookView, FastBook
from bot.fast.columnar import encode_events, iter_events, load_npz, save_npz
from bot.fast.kernel import OUT_CHANGED, OUT_ROWS, OUT_SOUND, OUT_VALID
from bot.fast.synth import synthetic_arrays
from bot.signals.features import SignalEngine
from bot.signals.rolling import RESUM_EVERY
from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
BTC_FILES = [SPOT / "btcusdt_20240808.gz", SPOT / "btcusdt_20240809.gz"]
needs_data = pytest.mark.skipif(
    not all(f.exists() for f in BTC_FILES),
    reason=f"../shared/data not present: {SPOT} (real Binance BTCUSDT recording)",
)

TABLES = {
    "orders": "client_order_id, ts, side, amount, order_type, price, reason, reduce_only, stop_price, take_profit_price, status, filled, exchange_order_id",
    "fills": "ts, client_order_id, side, price, amount, fee, liquidity, trade_id",
    "positions": "ts, qty, avg_price, realized_pnl, cash, fees, funding",
    "round_trips": "open_ts, close_ts, side, max_qty, pnl_gross, fees, pnl_net",
    "equity": "ts, equity, mid, position_qty, cash",
    "risk_events": "ts, kind, rule, detail",
    "funding": "ts, symbol, rate, mark, position, amount, currency, ref",
    "marks": "ts, symbol, mid, qty, pnl",
}


# --------------------------------------------------------------------------- helpers
def compare_signals(events, arrays, cfg, sig: SignalEngine | None = None):
    """Assert kernel == readable for every event; return (events, exact float matches, floats).
    ``sig``: the readable engine to use (a test may inspect it afterwards)."""
    book, sig = OrderBook(), sig or SignalEngine(cfg)
    ref_flags, ref_vals = [], []
    for ev in events:
        changed = book.apply(ev)
        if changed:
            sig.update(book, ev.ts_local)
        elif type(ev) is Trade:  # as Engine.on_event: trades feed the flow features
            sig.observe(ev)
        st = sig.state
        ref_flags.append((OUT_CHANGED if changed else 0) | (OUT_SOUND if book.is_sound else 0) | (OUT_VALID if st.valid else 0))
        ref_vals.append(tuple(getattr(st, name) for name in OUT_ROWS))
    ref_flags = np.array(ref_flags, dtype=np.uint8)
    ref_vals = np.array(ref_vals, dtype=np.float64).T
    flags, vals = FastBook(arrays, cfg).signals_all()
    assert flags.shape == ref_flags.shape
    bad = np.flatnonzero(flags != ref_flags)
    assert bad.size == 0, f"flags differ at event {bad[0]}: kernel {flags[bad[0]]} readable {ref_flags[bad[0]]}"
    both_nan = np.isnan(vals) & np.isnan(ref_vals)
    close = np.isclose(vals, ref_vals, rtol=1e-9, atol=1e-12) | both_nan
    for r, name in enumerate(OUT_ROWS):
        bad = np.flatnonzero(~close[r])
        assert bad.size == 0, f"{name} differs at event {bad[0]}: kernel {vals[r, bad[0]]!r} readable {ref_vals[r, bad[0]]!r}"
    exact = (vals == ref_vals) | both_nan
    return int(flags.size), int(exact.sum()), int(exact.size)


def stored(db: Path, run_id: str) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db)
    try:
        out = {}
        for table, cols in TABLES.items():
            rows = conn.execute(f"SELECT {cols} FROM {table} WHERE run_id = ? ORDER BY rowid", [run_id]).fetchall()
            out[table] = [tuple(v.replace(run_id, "<run>") if isinstance(v, str) else v for v in row) for row in rows]
        return out
    finally:
        conn.close()


def compare_backtests(settings, events, arrays, tmp_path: Path, tag: str) -> dict:
    """Run both engines; assert identical stored rows and counters; return the fast summary."""
    slow = run_backtest(settings, events, db_path=tmp_path / f"{tag}-readable.db", data_files=[])
    fast = run_backtest_fast(settings, arrays, db_path=tmp_path / f"{tag}-fast.db", data_files=[])
    assert fast["fast_path"] is True
    a = stored(tmp_path / f"{tag}-readable.db", slow["run_id"])
    b = stored(tmp_path / f"{tag}-fast.db", fast["run_id"])
    for table in TABLES:
        assert len(a[table]) == len(b[table]), f"{table}: {len(a[table])} readable rows, {len(b[table])} fast"
        for i, (x, y) in enumerate(zip(a[table], b[table])):
            assert x == y, f"{table} row {i}: readable {x} != fast {y}"
    s1 = {k: v for k, v in slow["stats"].items() if k not in ("wall_time_s", "source")}
    s2 = {k: v for k, v in fast["stats"].items() if k not in ("wall_time_s", "source", "fast")}
    assert s1 == s2
    for key in ("trades", "fills", "orders", "rejects", "pnl_net", "fees", "final_equity", "max_drawdown"):
        assert slow[key] == fast[key], key
    return fast


# trades often, both sides, tight stops and targets, quick time stops, no fees
ACTIVE = {
    "strategy": {"enter_threshold": 0.35, "exit_threshold": 0.05, "cooldown_s": 0.2, "max_holding_s": 2.0, "allow_short": True},
    "risk": {"stop_loss_bps": 0.05, "take_profit_bps": 0.1, "daily_loss_limit": 0.02, "max_drawdown": 0.5, "max_order_notional": 2000.0, "risk_per_trade": 0.01},
    "signal": {"ofi_scale": 0.5, "depth_levels": 3, "distance_weighted": False},
    "execution": {"taker_fee_bps": 0.0},
}
# the synthetic market moves a few ticks: stops and targets of about one tick
SYNTH_ACTIVE = {**ACTIVE, "risk": {**ACTIVE["risk"], "stop_loss_bps": 0.002, "take_profit_bps": 0.003}}
# taker mode with a cost test, and a drawdown halt (until restart)
DRAWDOWN_TAKER = {"risk": {"max_drawdown": 0.002, "daily_loss_limit": 0.5}, "strategy": {"mode": "taker", "expected_move_bps": 60.0}}
# a daily loss halt that expires at the UTC day roll in the middle of the recording
DAILY_HALT = {"risk": {"daily_loss_limit": 0.004}, "strategy": {"enter_threshold": 0.35, "cooldown_s": 0.2}, "signal": {"ofi_scale": 0.5}}


def reasons(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r.split(":")[0] for (r,) in conn.execute("SELECT reason FROM orders")} | {r for (r,) in conn.execute("SELECT rule FROM risk_events")}
    finally:
        conn.close()


# --------------------------------------------------------------------------- no data needed
def test_columnar_round_trip(tmp_path):
    settings = load_settings(ROOT / "config" / "demo.toml", sim={"duration_s": 20.0, "seed": 3})
    from bot.data.sim import simulate

    events = list(simulate(settings.sim, settings.market))
    a = encode_events(events, meta={"source": "sim"})
    assert a.price_decimals == 2
    back = list(iter_events(a))
    assert len(back) == len(events)
    for x, y in zip(events, back):
        assert type(x) is type(y) and x.ts_local == y.ts_local
        if isinstance(x, (BookSnapshot, BookDelta)):
            assert x.bids == y.bids and x.asks == y.asks
        elif isinstance(x, BestBidAsk):
            assert (x.bid_price, x.bid_size, x.ask_price, x.ask_size, x.sequence) == (y.bid_price, y.bid_size, y.ask_price, y.ask_size, y.sequence)
        elif isinstance(x, Trade):
            assert (x.price, x.size, x.side, x.trade_id) == (y.price, y.size, y.side, y.trade_id)
    path = save_npz(a, tmp_path / "x.npz")
    b = load_npz(path)
    for name in ("kind", "ts", "seq", "off", "nbid", "lvl", "sz", "prices"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert b.price_decimals == 2 and b.meta == {"source": "sim"}


def _random_stream(rng: random.Random, n: int, jump: float = 0.0, snapshots: float = 0.02):
    """Snapshots, deltas (near and far levels, deletions, duplicates), bbos with in- and
    out-of-order ids, trades, invalidations and crossed quotes. ``jump``: after an invalidation
    the mid moves by up to this fraction (beyond a price band), some of it at once, some in a
    single delta-free snapshot."""
    events = []
    t = 1_700_000_000_000_000_000
    seq = 100
    mid = 10_000
    def lv(center, side, far=False):
        d = rng.randint(1, 4000) if far else rng.randint(0, 12)
        tick = center - d if side == "b" else center + 1 + d
        size = 0.0 if rng.random() < 0.3 else round(rng.uniform(0.001, 3.0), 3)
        return (tick / 100, size)
    for _ in range(n):
        t += rng.randint(1, 3_000_000)
        r = rng.random()
        mid += rng.choice((-1, 0, 0, 1))
        if r < snapshots:
            bids = tuple(sorted({lv(mid, "b") for _ in range(8)}, key=lambda x: -x[0]))
            asks = tuple(sorted({lv(mid, "a") for _ in range(8)}))
            events.append(BookSnapshot(t, 0, bids, asks, seq))
        elif r < 0.35:
            seq += rng.randint(1, 5)
            far = rng.random() < 0.2
            events.append(BookDelta(t, 0, tuple(lv(mid, "b", far) for _ in range(rng.randint(0, 5))), tuple(lv(mid, "a", far) for _ in range(rng.randint(0, 5))), seq - 1, seq))
        elif r < 0.8:
            bid = (mid - rng.randint(0, 3)) / 100
            ask = (mid + rng.randint(-1, 3)) / 100  # sometimes crossed or locked
            q = seq + rng.randint(-3, 3) if rng.random() < 0.9 else 0
            events.append(BestBidAsk(t, 0, bid, rng.choice((0.0, 0.5, 1.25)), ask, rng.choice((0.0, 0.7, 2.0)), q))
        elif r < 0.97:
            events.append(Trade(t, 0, mid / 100, 0.1, rng.choice(("buy", "sell")), rng.randint(1, 10**6)))
        else:
            events.append(BookInvalidated(t, 0, "test"))
            if jump:
                mid = max(5000, int(mid * (1 + rng.uniform(-jump, jump))))  # far levels stay above 0
    return events


@pytest.mark.parametrize("seed", [1, 2])
def test_book_matches_readable_book_event_by_event(seed):
    events = _random_stream(random.Random(seed), 2500)
    arrays = encode_events(events)
    settings = load_settings(signal={"depth_levels": 4})
    fb = FastBook(arrays, settings.signal)
    view = BookView(fb)
    flags = np.zeros(1, np.uint8)
    vals = np.zeros((len(OUT_ROWS), 1))
    book = OrderBook()
    for i, ev in enumerate(events):
        changed = book.apply(ev)
        fb.run_signals(i + 1, flags, vals)
        assert view.apply(ev) == changed, i
        assert (view.status, view.is_sound, view.depth_sequence, view.last_update_ts) == (book.status, book.is_sound, book.depth_sequence, book.last_update_ts), i
        assert (view.crossed_events, view.resyncs, view.updates, view.level_count()) == (book.crossed_events, book.resyncs, book.updates, book.level_count()), i
        assert view.bids(6) == book.bids(6) and view.asks(6) == book.asks(6), i
        bb, ba = view.best_bid, book.best_bid
        assert bb == ba or (math.isnan(bb) and math.isnan(ba)), i
        assert view.best_bid_size == book.best_bid_size and view.best_ask_size == book.best_ask_size, i
        assert view.depth("bid", 3) == book.depth("bid", 3) and view.depth("ask", 50) == book.depth("ask", 50), i
        if i % 97 == 0:
            assert list(view.bids(1 << 30)) == book.bids(1 << 30) and list(view.asks(1 << 30)) == book.asks(1 << 30), i
    assert book.crossed_events > 0 and book.resyncs > 0  # the stream exercised both


@pytest.mark.parametrize("seed", [3, 4])
def test_price_band_and_reanchoring_match_event_by_event(seed):
    """Mid jumps beyond the band across resyncs: the kernel's status, reference mid and
    re-anchoring equal OrderBook's at every event."""
    events = _random_stream(random.Random(seed), 6000, jump=0.2, snapshots=0.15)
    arrays = encode_events(events)
    settings = load_settings(signal={"depth_levels": 4})
    fb = FastBook(arrays, settings.signal, price_band=0.05)
    view = BookView(fb)
    flags = np.zeros(1, np.uint8)
    vals = np.zeros((len(OUT_ROWS), 1))
    book = OrderBook(price_band=0.05)
    for i, ev in enumerate(events):
        book.apply(ev)
        fb.run_signals(i + 1, flags, vals)
        assert (view.status, view.is_sound, view.implausible_events, view.reanchors) == (book.status, book.is_sound, book.implausible_events, book.reanchors), i
        assert view.ref_mid == book.ref_mid or (math.isnan(view.ref_mid) and math.isnan(book.ref_mid)), i
    assert book.implausible_events > 0 and book.reanchors > 0  # the stream exercised both


@pytest.mark.parametrize("seed", [1, 2])
def test_random_stream_signals_match(seed):
    events = _random_stream(random.Random(seed + 10), 2000)
    flow = {"trade_window_s": 0.02, "vwap_window_s": 0.5, "weight_trade_imbalance": 0.2, "weight_vwap_deviation": 0.3, "weight_depth_depletion": 0.1}
    settings = load_settings(signal={"depth_levels": 4, "distance_weighted": True, "ofi_window_s": 0.01, **flow})
    n, exact, total = compare_signals(events, encode_events(events), settings.signal)
    assert exact == total


def _gapped_stream(n: int, seed: int, gap_s: float) -> list:
    """The synthetic stream with three gaps: the book is invalidated, ``gap_s`` passes, its
    updates are lost for 300 events while the trades keep coming, then a snapshot of the true
    book resyncs it."""
    book, out, shift, lost = OrderBook(), [], 0, 0
    for i, ev in enumerate(iter_events(synthetic_arrays(n, seed=seed))):
        book.apply(ev)
        if i in (n // 4, n // 2 + n // 8, n - n // 8):
            out.append(BookInvalidated(ev.ts_local + shift, 0, "gap"))
            shift, lost = shift + int(gap_s * 1e9), 300
        ev = dataclasses.replace(ev, ts_local=ev.ts_local + shift)
        if lost:
            lost -= 1
            if type(ev) is Trade:
                out.append(ev)
            if not lost:
                out.append(BookSnapshot(ev.ts_local, 0, tuple(book.bids(1 << 30)), tuple(book.asks(1 << 30)), book.depth_sequence))
            continue
        out.append(ev)
    return out


@pytest.mark.parametrize("trade_window_s, vwap_window_s", [(0.05, 4.0), (3.0, 0.1)])
def test_flow_windows_with_gaps_match_bit_for_bit(monkeypatch, trade_window_s, vwap_window_s):
    """Trades through resyncs and 1.5 s gaps, one short window (it empties between trades and at
    each gap) and one long one (thousands of removals: the exact re-sum every RESUM_EVERY):
    every event's features equal, bit for bit, and both drift rules were taken by each kind of
    window (counted on the readable RollingSum)."""
    from bot.signals import rolling

    seen: dict[int, list[int]] = {}  # id(RollingSum) -> [empties, re-sums]
    expire = rolling.RollingSum.expire

    def counting(self, now):
        before = len(self.items)
        removed = self._removed
        expire(self, now)
        c = seen.setdefault(id(self), [0, 0])
        c[0] += before > 0 and not self.items
        c[1] += bool(self.items) and self._removed == 0 and removed + before - len(self.items) > 0

    monkeypatch.setattr(rolling.RollingSum, "expire", counting)
    events = _gapped_stream(60_000, 13, 1.5)
    flow = {"trade_window_s": trade_window_s, "vwap_window_s": vwap_window_s, "depth_mean_s": 2.0,
            "weight_trade_imbalance": 0.2, "weight_vwap_deviation": 0.3, "weight_depth_depletion": 0.1}
    settings = load_settings(ROOT / "config" / "backtest.toml", signal=flow)
    sig = SignalEngine(settings.signal)
    n, exact, total = compare_signals(events, encode_events(events), settings.signal, sig)
    assert exact == total
    flow_ = sig._flow
    short, long_ = (flow_._flow, flow_._vwap) if trade_window_s < vwap_window_s else (flow_._vwap, flow_._flow)
    assert seen[id(short)][0] > 50 and seen[id(long_)][1] >= 1, seen
    assert seen[id(flow_._dev._s)][1] >= 1 and RESUM_EVERY == 4096, seen


def test_synthetic_signals_match():
    arrays = synthetic_arrays(40_000, seed=11)
    settings = load_settings(ROOT / "config" / "backtest.toml")
    n, exact, total = compare_signals(iter_events(arrays), arrays, settings.signal)
    assert n == 40_000 and exact == total  # bit for bit


def test_synthetic_backtest_matches(tmp_path):
    arrays = synthetic_arrays(40_000, seed=5)
    settings = load_settings(ROOT / "config" / "backtest.toml", **SYNTH_ACTIVE)
    fast = compare_backtests(settings, list(iter_events(arrays)), arrays, tmp_path, "synth")
    assert fast["orders"] > 300 and fast["stats"]["fast"]["engine_share"] < 0.2
    assert {"signal", "stop_loss", "take_profit"} <= reasons(tmp_path / "synth-fast.db")


def test_synthetic_backtest_matches_with_kill_switch_file_and_maker(tmp_path):
    arrays = synthetic_arrays(15_000, seed=9)
    events = list(iter_events(arrays))
    risk = {**SYNTH_ACTIVE["risk"], "kill_switch_file": str(tmp_path / "stop-trading")}
    settings = load_settings(ROOT / "config" / "backtest.toml", **{**SYNTH_ACTIVE, "risk": risk})
    fast = compare_backtests(settings, events, arrays, tmp_path, "killfile")  # the scan cannot see the file: stops at every mark
    assert fast["orders"] > 20
    # the maker wakes on every mark: the fast path stops there and matches row for row
    maker = load_settings(ROOT / "config" / "backtest.toml", strategy={"mode": "maker"}, signal={"ofi_scale": 0.5})
    compare_backtests(maker, events, arrays, tmp_path, "maker")


def test_a_plugin_strategy_replays_fast_from_its_published_wake(tmp_path):
    """No rule of the toy strategy is in the kernel: it replays fast from what it publishes."""
    arrays = synthetic_arrays(30_000, seed=11)
    toy = {**SYNTH_ACTIVE, "strategy": {"mode": "toy_clock", "plugins": ["toy_strategy"], "params": {"hold_s": 1.5, "wait_s": 0.7}}}
    settings = load_settings(ROOT / "config" / "backtest.toml", **toy)
    fast = compare_backtests(settings, list(iter_events(arrays)), arrays, tmp_path, "toy")
    assert fast["orders"] > 20 and fast["stats"]["fast"]["engine_share"] < 0.5


def test_simulator_backtest_matches(tmp_path):
    from bot.data.sim import simulate

    settings = load_settings(ROOT / "config" / "demo.toml", sim={"duration_s": 300.0}, strategy={"enter_threshold": 0.4, "allow_short": True})
    events = list(simulate(settings.sim, settings.market))
    arrays = encode_events(events)
    compare_signals(events, arrays, settings.signal)
    fast = compare_backtests(settings, events, arrays, tmp_path, "sim")
    assert fast["orders"] > 5


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def real():
    from bot.data.binance import read_binance
    from bot.fast.columnar import encode_events as enc

    events = list(read_binance(BTC_FILES))
    return events, enc(events)


@needs_data
@pytest.mark.data
def test_real_signals_match_event_by_event(real):
    events, arrays = real
    settings = load_settings(ROOT / "config" / "backtest.toml")
    n, exact, total = compare_signals(events, arrays, settings.signal)
    assert n == 99_572
    assert exact == total  # bit-identical, not only within 1e-9


@needs_data
@pytest.mark.data
def test_real_backtest_matches(real, tmp_path):
    events, arrays = real
    settings = load_settings(ROOT / "config" / "backtest.toml")
    fast = compare_backtests(settings, events, arrays, tmp_path, "real")
    assert fast["orders"] > 100 and fast["stats"]["halts"] >= 1


@needs_data
@pytest.mark.data
@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("active", ACTIVE, {"signal", "stop_loss", "take_profit", "max_holding", "end_of_data"}),
        ("drawdown-taker", DRAWDOWN_TAKER, {"signal", "max_drawdown", "halted"}),
        ("daily-halt", DAILY_HALT, {"signal", "daily_loss_limit", "halted", "halt_expired"}),
    ],
)
def test_real_backtest_matches_other_settings(real, tmp_path, name, overrides, expected):
    events, arrays = real
    settings = load_settings(ROOT / "config" / "backtest.toml", **overrides)
    compare_backtests(settings, events, arrays, tmp_path, name)
    assert expected <= reasons(tmp_path / f"{name}-fast.db")
