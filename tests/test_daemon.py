"""The daemon and the emulator as real processes on 127.0.0.1, through the real ccxt client.

Every daemon here runs until what the test checks has happened (orders filled, a fault seen and
survived, the book resynchronized), then is stopped with SIGTERM and must exit 0: no test waits
for a fixed duration. Each fault is checked for its effect: it fired, and trading went on (or
halted and resumed, for market-data faults), and the books equal the exchange's to the unit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_harness import (
    API_KEY, API_SECRET, Emulator, check_books_match, count, daemon_env, filled, query, run_until, start_daemon, stop, wait_for,
    kill_restart_rounds, write_config,
)

FAULT_TIMEOUT_S = 120


def test_live_orders_are_placed_filled_and_reconciled_and_no_secret_leaks(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=600)
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: count(db, "select count(*) from round_trips") >= 2, "two round trips", "--live")
    counts = check_books_match(db, emulator.state())
    assert counts["exchange_orders"] >= 4
    assert query(db, "select status from runs") == [("completed",)]
    out = subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(db), "--json"], capture_output=True, text=True, cwd=tmp_path)
    status_json = json.loads(out.stdout)
    assert status_json["mode"] == "live" and status_json["open_orders"] == [] and status_json["status"] == "completed"
    assert status_json["last_book_age_s"] is not None and status_json["last_book_age_s"] < 2
    # an authentication failure must not echo the secret either
    bad_env = daemon_env()
    bad_env["BOT__EXCHANGE__API_SECRET"] = API_SECRET[::-1]
    bad = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--live"], capture_output=True, text=True, cwd=tmp_path, env=bad_env, timeout=120)
    assert bad.returncode == 1 and "error" in bad.stderr.lower()
    haystacks = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("emulator")]
    haystacks += [bad.stdout.encode(), bad.stderr.encode()]
    for secret in (API_KEY, API_SECRET, API_SECRET[::-1]):
        for hay in haystacks:
            assert secret.encode() not in hay
    assert any(b"order sent" in h for h in haystacks), "the logs must have been written for this check to mean anything"


def test_live_mode_needs_flag_and_keys(tmp_path, emulator):
    config = write_config(tmp_path, emulator)
    no_flag = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=daemon_env())
    assert no_flag.returncode == 1 and "--live" in no_flag.stderr
    env = {k: v for k, v in daemon_env().items() if not k.startswith("BOT__")}
    no_keys = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--live"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert no_keys.returncode == 1 and "exchange.api_key" in no_keys.stderr
    assert not (tmp_path / "bot.db").exists() or query(tmp_path / "bot.db", "select count(*) from orders") == [(0,)]


def kill_and_restart(tmp_path: Path, emulator: Emulator, rounds: int, seed: int) -> dict[str, int]:
    """Kill -9 the live daemon at random moments, restart it each time, then check the books."""
    db = tmp_path / "bot.db"
    kill_restart_rounds(tmp_path, lambda name: write_config(tmp_path, emulator, duration=600, name=name), rounds, seed)
    kills = rounds
    counts = check_books_match(db, emulator.state())
    counts["kills"] = kills
    counts["reconciled"] = len(query(db, "select 1 from risk_events where kind = 'reconcile' and rule != 'balance_mismatch'"))
    assert query(db, "select count(*) from risk_events where rule = 'balance_mismatch'") == [(0,)]
    assert count(db, "select count(*) from runs where status = 'crashed'") == kills
    return counts


def test_kill_9_and_restart_loses_and_duplicates_nothing(tmp_path, emulator):
    counts = kill_and_restart(tmp_path, emulator, rounds=3, seed=11)
    assert counts["exchange_orders"] > 0


@pytest.mark.slow
def test_many_random_kills(tmp_path, emulator):
    counts = kill_and_restart(tmp_path, emulator, rounds=25, seed=2024)
    assert counts["exchange_orders"] > 10


# each fault while the daemon trades: it must fire, and orders must still fill under it
REST_FAULTS = [
    ("rate_limit=0.5", "rate_limit"),
    ("ban=0.3@1", "ban"),
    ("server_error=0.5", "server_error"),
    ("slow=0.5@4", "slow"),
    ("reject=0.5", "reject"),
    ("timeout_after_accept=0.5@5", "timeout_after_accept"),
]


@pytest.mark.parametrize("faults", [REST_FAULTS[:3], REST_FAULTS[3:]], ids=["limits-errors", "held-rejected"])
def test_rest_faults_fire_and_trading_goes_on(tmp_path, emulator, faults):
    config = write_config(tmp_path, emulator, duration=900)
    db = tmp_path / "bot.db"
    proc = start_daemon(tmp_path, config, "--live")
    seen: dict[str, tuple[int, int]] = {}
    try:
        def alive() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the daemon exited ({proc.returncode}): {(tmp_path / 'daemon.out').read_text()[-3000:]}")
            return True

        wait_for(lambda: alive() and filled(db) >= 1, FAULT_TIMEOUT_S, "the first filled order")
        for spec, name in faults:
            before_fired = emulator.state()["faults_injected"].get(name, 0)
            before_filled = filled(db)
            emulator.faults(spec + ",seed=5")
            wait_for(lambda: alive() and emulator.state()["faults_injected"].get(name, 0) >= before_fired + 2 and filled(db) >= before_filled + 2,
                     FAULT_TIMEOUT_S, f"{spec} to fire twice while two more orders fill")
            emulator.faults("")
            seen[spec] = (emulator.state()["faults_injected"][name] - before_fired, filled(db) - before_filled)
    finally:
        code = stop(proc, emulator)
    assert code == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    assert list(seen) == [spec for spec, _ in faults]
    check_books_match(db, emulator.state())
    assert "Traceback" not in (tmp_path / "daemon.out").read_text()


def test_market_data_faults_halt_then_resume(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=900, mode="live")
    db = tmp_path / "bot.db"
    proc = start_daemon(tmp_path, config, "--live")
    try:
        wait_for(lambda: proc.poll() is None and filled(db) >= 1, FAULT_TIMEOUT_S, "the first filled order")
        for spec in ("gap=1", "ws_drop=1"):
            unsound_before = count(db, "select count(*) from risk_events where kind = 'book_unsound'")
            emulator.faults(spec)
            wait_for(lambda: proc.poll() is None and count(db, "select count(*) from risk_events where kind = 'book_unsound'") >= unsound_before + 2,
                     FAULT_TIMEOUT_S, f"{spec}: the book marked unsound twice")
            emulator.faults("")
            resumed_from = filled(db)
            wait_for(lambda: proc.poll() is None and filled(db) > resumed_from, FAULT_TIMEOUT_S, f"{spec}: trading to resume")
    finally:
        code = stop(proc, emulator)
    assert code == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    events = query(db, "select kind, ts from risk_events where kind in ('book_unsound', 'resume') order by id")
    kinds = [k for k, _ in events]
    assert kinds[-1] == "resume", f"trading did not resume: {kinds}"
    # no order was sent while the book was unsound
    unsound_windows = []
    start = None
    for kind, ts in events:
        if kind == "book_unsound" and start is None:
            start = ts
        elif kind == "resume" and start is not None:
            unsound_windows.append((start, ts))
            start = None
    assert len(unsound_windows) >= 4
    for (ts,) in query(db, "select ts from orders"):
        assert not any(a <= ts < b for a, b in unsound_windows), "an order was sent while the book was unsound"
    check_books_match(db, emulator.state())


def test_live_maker_mode_quotes_cancels_and_reconciles(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=600)
    config.write_text(config.read_text().replace('[strategy]\n', '[strategy]\nmode = "maker"\nquote_notional = 200.0\nrequote_ticks = 2\n'))
    db = tmp_path / "bot.db"

    def quoted_and_moved() -> bool:
        orders = emulator.state()["orders"]
        return any(o["type"] == "LIMIT_MAKER" and o["status"] == "CANCELED" for o in orders) and any(
            o["type"] == "LIMIT_MAKER" and o["status"] == "FILLED" for o in orders)

    run_until(tmp_path, config, quoted_and_moved, "a maker quote moved (cancelled) and one filled", "--live")
    state = emulator.state()
    check_books_match(db, state)
    assert state["open_orders"] == [], "quotes must be cancelled on exit"


def test_rest_polling_feed_trades_without_websockets(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    config.write_text(config.read_text().replace("[exchange]\n", "[exchange]\nuse_websocket = false\n"))
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: count(db, "select count(*) from equity") >= 10 and filled(db) >= 1, "ten equity marks and a filled order")
    stats = json.loads(query(db, "select stats_json from runs")[0][0])
    assert stats["source"]["feed_mode"] == "rest" and stats["source"]["book_updates"] >= 10
    assert stats["book_updates"] >= 10 and stats["unsound_periods"] == 0
    assert emulator.state()["ws"]["connections"] == 0


def test_a_paper_order_still_in_flight_at_stop_is_stored_cancelled(tmp_path, emulator):
    """A stopped paper run cannot execute its simulated orders any more: each in-flight order
    is stored cancelled, with the reason, instead of staying ``new`` forever."""
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    config.write_text(config.read_text() + "\n[execution]\nlatency_ms = 3600000\n")  # an hour: nothing executes
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: count(db, "select count(*) from orders") >= 1, "an order sent (stored while in flight)")
    statuses = {s for (s,) in query(db, "select status from orders")}
    assert statuses == {"canceled"}, statuses
    assert filled(db) == 0 and count(db, "select count(*) from fills") == 0
    assert "order cancelled at stop" in (tmp_path / "logs" / "bot.log").read_text()
