"""Perpetuals on the fast path: the compiled scan and the readable engine store the same rows.

The harness is ``test_fast_equivalence``'s (:func:`compare_backtests`: orders, fills, positions,
round trips, equity points, funding payments, marks and risk events row for row, and the run's
counters). Here it runs on linear and inverse perpetuals: scripted books that cross a funding
time or gap through a liquidation price (isolated and cross margin), and the real Binance USD-M
recordings under ``../shared/data`` for every built-in strategy mode, one of them the July pair
that crosses 00:00 UTC, a funding time.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from bot.config.settings import load_settings
from bot.core.events import BookInvalidated, MarkPrice
from bot.fast.backtest import arrays_refusal, fast_path_refusal
from bot.fast.columnar import encode_events
from conftest import shared_data_dir
from test_fast_equivalence import compare_backtests
from test_instruments import COMMON, SEC, book_events

ROOT = Path(__file__).resolve().parents[1]
USDM = shared_data_dir() / "hftbacktest-binance" / "usdm"
RECORDINGS = {
    "btc-0808": (["btcusdt_20240808.gz"], "backtest-usdm-btcusdt.toml"),
    "btc-july": (["btcusdt_20240718.gz", "btcusdt_20240719.gz"], "backtest-usdm-btcusdt.toml"),
    "eth-0808": (["ethusdt_20240808.gz"], "backtest-usdm-ethusdt.toml"),
}
LINEAR = {"symbol": "BTC/USDT:USDT", "type": "linear", "tick_size": "0.1", "lot_size": "0.001", "min_qty": "0.001", "min_notional": "5"}


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def scripted_run(tmp_path: Path, tag: str, events: list, **sections) -> dict:
    settings = load_settings(None, **{**COMMON, **sections})
    assert fast_path_refusal(settings) is None
    return compare_backtests(settings, events, encode_events(events), tmp_path, tag)


# --------------------------------------------------------------------------- no data needed
def test_perpetuals_are_no_longer_refused_but_their_skipped_messages_are():
    assert fast_path_refusal(load_settings(ROOT / "config" / "backtest-usdm-btcusdt.toml")) is None
    assert fast_path_refusal(load_settings(None, market={**LINEAR, "symbol": "BTC/USD:BTC", "type": "inverse", "contract_size": "100"})) is None
    t0 = 1_700_000_000 * SEC
    events = [*book_events(t0, 1.0, 50_000.0, 50_000.0, 0.1, "bid"), MarkPrice(t0 + 2 * SEC, 0, 50_000.0, 50_000.0, 0.0001, t0 + 3 * SEC)]
    assert arrays_refusal(encode_events(events[:-1])) is None
    reason = arrays_refusal(encode_events(events))
    assert reason is not None and "1 mark-price" in reason


def test_linear_funding_across_the_funding_time_matches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = (1_700_006_400 // 28_800 + 1) * 28_800 * SEC - 2 * SEC  # 2 s before a funding time
    events = list(book_events(t0, 4.0, 50_000.0, 50_000.0, 0.1, "bid"))
    scripted_run(tmp_path, "funding", events, market={**LINEAR, "leverage": 5, "funding_rate_bps": 1.0})
    assert len(rows(tmp_path / "funding-fast.db", "SELECT * FROM funding")) == 1


@pytest.mark.parametrize("margin_mode", ["isolated", "cross"])
def test_a_liquidation_through_a_gap_matches(tmp_path, monkeypatch, margin_mode):
    """20x long; the bid falls through the stop, and while that exit is in flight (300 ms of
    latency) the book gaps down past the liquidation price: the scan must stop there although an
    order is pending (the engine checks liquidation before it waits for its orders)."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    market = {**LINEAR, "leverage": 20, "maintenance_margin_rate": "0.004", "margin_mode": margin_mode}
    risk = {"liquidation_buffer_stops": 1.0, "stop_loss_bps": 10.0, "max_book_age_s": 5.0, "max_leverage": 100.0, "max_margin_usage": 1.0}
    if margin_mode == "cross":  # a cross wallet is the account: a small one, so that it can be wiped out
        risk |= {"initial_equity": 300.0, "max_position_notional": 5000.0, "max_order_notional": 5000.0, "risk_per_trade": 0.1}
    events = [*book_events(t0, 3.0, 50_000.0, 50_000.0, 0.1, "bid"), *book_events(t0 + 3 * SEC, 0.2, 49_940.0, 49_940.0, 0.1, "bid"),
              *book_events(t0 + 3_200_000_000, 1.0, 45_000.0, 45_000.0, 0.1, "bid")]
    scripted_run(tmp_path, f"liq-{margin_mode}", events, market=market, risk=risk, execution={"latency_ms": 300.0})
    db = tmp_path / f"liq-{margin_mode}-fast.db"
    assert rows(db, "SELECT MIN(ts) FROM risk_events WHERE kind = 'liquidation'") == [(t0 + 3_200_000_000,)]
    # the stop's exit reaches the venue after the liquidation closed the position: it must not open a short
    [(last_qty,)] = rows(db, "SELECT qty FROM positions ORDER BY rowid DESC LIMIT 1")
    assert Decimal(last_qty) == 0
    assert rows(db, f"SELECT COUNT(*) FROM fills WHERE ts > {t0 + 3_200_000_000}") == [(0,)]
    # and its expiry is no refusal by the venue: no cooldown, no stuck-exit count, no thin-book event
    assert rows(db, "SELECT kind, detail FROM risk_events WHERE kind IN ('venue_reject', 'partial_fill', 'stuck_exit')") == []
    assert rows(db, "SELECT status FROM orders ORDER BY ts") == [("filled",), ("expired",)]


def test_an_order_still_in_flight_when_the_data_ends_is_stored_cancelled(tmp_path, monkeypatch):
    """The entry waits out an hour of latency and the recording ends on an invalidated book: the
    order cannot execute, so both engines store it cancelled (never ``new`` forever)."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    events = [*book_events(t0, 2.0, 50_000.0, 50_000.0, 0.1, "bid"), BookInvalidated(t0 + 2 * SEC, 0, "gap")]
    scripted_run(tmp_path, "inflight", events, market=LINEAR, execution={"latency_ms": 3_600_000.0})
    assert rows(tmp_path / "inflight-fast.db", "SELECT status FROM orders") == [("canceled",)]
    assert rows(tmp_path / "inflight-fast.db", "SELECT COUNT(*) FROM fills") == [(0,)]


def test_inverse_perpetual_matches(tmp_path, monkeypatch):
    """COIN-M: equity is the wallet plus inv_basis - contracts x size / mark (a division). A long
    rides the price up and part of the way down: the drawdown halt comes from the peak the scan
    tracked over skipped events with that expression, so a wrong equity there would not halt."""
    monkeypatch.chdir(tmp_path)
    t0 = 1_700_000_000 * SEC
    market = {"symbol": "BTC/USD:BTC", "type": "inverse", "tick_size": "0.1", "lot_size": "1", "min_qty": "1",
              "min_notional": "0", "contract_size": "100", "leverage": 2}
    risk = {"initial_equity": 0.5, "max_position_notional": 0.05, "max_order_notional": 0.05, "risk_per_trade": 0.05,
            "stop_loss_bps": 500.0, "take_profit_bps": 5000.0, "max_depth_fraction": 1.0, "max_drawdown": 0.0001}
    events = [*book_events(t0, 3.0, 50_000.0, 50_000.0, 0.1, "bid"), *book_events(t0 + 3 * SEC, 2.0, 50_000.0, 51_000.0, 0.1, "bid"),
              *book_events(t0 + 5 * SEC, 2.0, 51_000.0, 50_400.0, 0.1, "bid"), *book_events(t0 + 7 * SEC, 1.0, 50_400.0, 50_400.0, 0.1, "ask")]
    fast = scripted_run(tmp_path, "inverse", events, market=market, risk=risk, execution={"taker_fee_bps": 5.0, "latency_ms": 0.0})
    assert fast["trades"] == 1 and fast["settle"] == "BTC"
    assert rows(tmp_path / "inverse-fast.db", "SELECT rule FROM risk_events WHERE kind = 'halt'") == [("max_drawdown",)]


# --------------------------------------------------------------------------- real data
# taker at the config's thresholds never clears its cost hurdle on these recordings; with a larger
# expected move it trades (the cost test still drops the weaker entries). "held": momentum that
# holds for minutes, so a position is open at 00:00 UTC in the July pair and funding is paid on
# the scan's path (the maker pays it too, but stops the scan at every event while it quotes).
MODES = {
    "momentum": {},
    "held": {"strategy": {"max_holding_s": 300.0, "exit_threshold": -0.5}},
    "taker": {"strategy": {"mode": "taker", "expected_move_bps": 14.0}},
    "maker": {"strategy": {"mode": "maker"}},
    "mean_reversion": {"strategy": {"mode": "mean_reversion"}},
}
CASES = [
    *(pytest.param("btc-july", m) for m in MODES),
    *(pytest.param("btc-0808", m, marks=[pytest.mark.slow] if m == "maker" else []) for m in ("momentum", "taker", "maker")),
    pytest.param("btc-0808", "mean_reversion"),  # reads the kernel's trade-flow and depth features
]


def test_mean_reversion_is_admitted_on_perpetuals_too():
    """Its trade-flow and depth features are the kernel's (spot and perpetual alike)."""
    for config in ("backtest-usdm-btcusdt.toml", "backtest.toml"):
        assert fast_path_refusal(load_settings(ROOT / "config" / config, strategy={"mode": "mean_reversion"})) is None


@pytest.fixture(scope="module")
def usdm():
    """Each recording's events (the reference reader) and their columnar arrays, read once."""
    from bot.data.binance import read_binance

    cache: dict[str, tuple[list, object]] = {}

    def get(name: str):
        files = [USDM / f for f in RECORDINGS[name][0]]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            pytest.skip(f"../shared/data not present: {', '.join(missing)} (real Binance USD-M recordings)")
        if name not in cache:
            events = list(read_binance(files))
            cache[name] = (events, encode_events(events))
        return cache[name]

    return get


@pytest.mark.data
@pytest.mark.parametrize("recording, mode", CASES)
def test_usdm_recordings_match_for_every_mode(usdm, tmp_path, monkeypatch, recording, mode):
    monkeypatch.chdir(tmp_path)
    events, arrays = usdm(recording)
    settings = load_settings(ROOT / "config" / RECORDINGS[recording][1], **MODES[mode],
                             run={"log_dir": str(tmp_path / "logs"), "console_log_level": "error"})
    fast = compare_backtests(settings, events, arrays, tmp_path, f"{recording}-{mode}")
    assert fast["orders"] > 0, "the mode trades on this recording"
    if mode != "maker":  # the maker wakes on every mark
        assert fast["stats"]["fast"]["engine_share"] < 0.2
    if recording == "btc-july" and mode in ("held", "maker"):
        # they hold a position across 00:00 UTC: funding is paid
        assert rows(tmp_path / f"{recording}-{mode}-fast.db", "SELECT COUNT(*) FROM funding") != [(0,)]


@pytest.mark.data
def test_usdm_ethusdt_momentum_matches(usdm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    events, arrays = usdm("eth-0808")
    settings = load_settings(ROOT / "config" / RECORDINGS["eth-0808"][1], run={"log_dir": str(tmp_path / "logs"), "console_log_level": "error"})
    assert compare_backtests(settings, events, arrays, tmp_path, "eth")["orders"] > 100
