"""The daemon and the emulator as real processes on 127.0.0.1, through the real ccxt client."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon_harness import (
    API_KEY, API_SECRET, Emulator, check_books_match, daemon_env, query, start_daemon, wait_for, write_config,
)


@pytest.fixture
def emulator(tmp_path):
    emu = Emulator(tmp_path)
    yield emu
    emu.stop()


def finish(proc: subprocess.Popen, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_live_orders_are_placed_filled_and_reconciled(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=12)
    proc = start_daemon(tmp_path, config, "--live")
    assert finish(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    db = tmp_path / "bot.db"
    counts = check_books_match(db, emulator.state())
    assert counts["exchange_orders"] >= 2, "the fast config must trade within 12 s"
    [(status,)] = query(db, "select status from runs")
    assert status == "completed"
    out = subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(db), "--json"], capture_output=True, text=True, cwd=tmp_path)
    status_json = json.loads(out.stdout)
    assert status_json["mode"] == "live" and status_json["open_orders"] == [] and status_json["status"] == "completed"
    assert status_json["last_book_age_s"] is not None and status_json["last_book_age_s"] < 2


def test_live_mode_needs_flag_and_keys(tmp_path, emulator):
    config = write_config(tmp_path, emulator)
    no_flag = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=daemon_env())
    assert no_flag.returncode == 1 and "--live" in no_flag.stderr
    env = {k: v for k, v in daemon_env().items() if not k.startswith("BOT__")}
    no_keys = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--live"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert no_keys.returncode == 1 and "exchange.api_key" in no_keys.stderr
    assert not (tmp_path / "bot.db").exists() or query(tmp_path / "bot.db", "select count(*) from orders") == [(0,)]


def test_one_daemon_per_database_and_sigterm_stops_cleanly(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=120)
    first = start_daemon(tmp_path, config, tag="first")
    db = tmp_path / "bot.db"
    wait_for(lambda: bool(query(db, "select 1 from heartbeat")), 30, "the first daemon's heartbeat")
    second = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True, cwd=tmp_path, env=daemon_env(), timeout=60)
    assert second.returncode == 1 and "another bot instance" in second.stderr and str(first.pid) in second.stderr
    first.send_signal(signal.SIGTERM)
    assert finish(first, 30) == 0
    assert query(db, "select status from runs") == [("completed",)]
    stats = json.loads(query(db, "select stats_json from runs")[0][0])
    assert stats["stop_reason"] == "SIGTERM"


def kill_and_restart(tmp_path: Path, emulator: Emulator, rounds: int, seed: int) -> dict[str, int]:
    """Kill -9 the live daemon at random moments, restart it each time, then check the books."""
    rng = random.Random(seed)
    db = tmp_path / "bot.db"
    config = write_config(tmp_path, emulator, duration=600)
    kills = 0
    for n in range(rounds):
        proc = start_daemon(tmp_path, config, "--live")

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited with {proc.returncode}: {(tmp_path / 'daemon.out').read_text()[-3000:]}")
            return query(db, "select count(*) from heartbeat") == [(n + 1,)]

        wait_for(up, 120, "the restarted daemon to come up")
        time.sleep(rng.uniform(0.0, 3.0))
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(10)
        kills += 1
    final = write_config(tmp_path, emulator, duration=4, name="final.toml")
    last = start_daemon(tmp_path, final, "--live")
    assert finish(last) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    counts = check_books_match(db, emulator.state())
    counts["kills"] = kills
    counts["reconciled"] = len(query(db, "select 1 from risk_events where kind = 'reconcile' and rule != 'balance_mismatch'"))
    assert query(db, "select count(*) from risk_events where rule = 'balance_mismatch'") == [(0,)]
    return counts


def test_kill_9_and_restart_loses_and_duplicates_nothing(tmp_path, emulator):
    counts = kill_and_restart(tmp_path, emulator, rounds=3, seed=11)
    assert counts["exchange_orders"] > 0


@pytest.mark.slow
def test_many_random_kills(tmp_path, emulator):
    counts = kill_and_restart(tmp_path, emulator, rounds=25, seed=2024)
    assert counts["exchange_orders"] > 10


@pytest.mark.parametrize(
    "spec",
    [
        "rate_limit=0.5",
        "ban=0.5",
        "server_error=0.5",
        "slow=0.5@4",
        "reject=0.5",
        "timeout_after_accept=0.5@5",
    ],
)
def test_rest_faults_are_survived(tmp_path, emulator, spec):
    config = write_config(tmp_path, emulator, duration=20)
    proc = start_daemon(tmp_path, config, "--live")
    db = tmp_path / "bot.db"
    wait_for(lambda: bool(query(db, "select 1 from heartbeat")), 60, "the daemon to come up")
    emulator.faults(spec + ",seed=5")
    assert finish(proc, 90) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    state = emulator.state()
    emulator.faults("")
    assert sum(state["faults_injected"].values()) > 0, f"{spec} never fired"
    check_books_match(db, state)


@pytest.mark.parametrize("spec", ["gap=3", "ws_drop=3"])
def test_market_data_faults_halt_then_resume(tmp_path, emulator, spec):
    config = write_config(tmp_path, emulator, duration=14, mode="live")
    proc = start_daemon(tmp_path, config, "--live")
    db = tmp_path / "bot.db"
    wait_for(lambda: bool(query(db, "select 1 from heartbeat")), 60, "the daemon to come up")
    emulator.faults(spec)
    assert finish(proc, 90) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    emulator.faults("")
    events = query(db, "select kind, ts from risk_events where kind in ('book_unsound', 'resume') order by ts, id")
    kinds = [k for k, _ in events]
    assert kinds.count("book_unsound") >= 1, f"{spec}: the book was never marked unsound: {kinds}"
    assert kinds[-1] == "resume", f"{spec}: trading did not resume: {kinds}"
    # no order was sent while the book was unsound
    unsound_windows = []
    start = None
    for kind, ts in events:
        if kind == "book_unsound" and start is None:
            start = ts
        elif kind == "resume" and start is not None:
            unsound_windows.append((start, ts))
            start = None
    for (ts,) in query(db, "select ts from orders"):
        assert not any(a <= ts < b for a, b in unsound_windows), "an order was sent while the book was unsound"
    check_books_match(db, emulator.state())


def test_no_secret_in_logs_database_or_errors(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=6)
    proc = start_daemon(tmp_path, config, "--live")
    assert finish(proc) == 0
    # an authentication failure must not echo the secret either
    bad_env = daemon_env()
    bad_env["BOT__EXCHANGE__API_SECRET"] = API_SECRET[::-1]
    bad = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--live"], capture_output=True, text=True, cwd=tmp_path, env=bad_env, timeout=60)
    assert bad.returncode == 1 and "error" in bad.stderr.lower()
    haystacks = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.name.startswith("emulator")]
    haystacks += [bad.stdout.encode(), bad.stderr.encode()]
    for secret in (API_KEY, API_SECRET, API_SECRET[::-1]):
        for hay in haystacks:
            assert secret.encode() not in hay
    assert any(b"order sent" in h for h in haystacks), "the logs must have been written for this check to mean anything"


def test_live_maker_mode_quotes_cancels_and_reconciles(tmp_path, emulator):
    config = write_config(tmp_path, emulator, duration=15)
    config.write_text(config.read_text().replace('[strategy]\n', '[strategy]\nmode = "maker"\nquote_notional = 200.0\nrequote_ticks = 2\n'))
    proc = start_daemon(tmp_path, config, "--live")
    assert finish(proc, 90) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    db = tmp_path / "bot.db"
    state = emulator.state()
    check_books_match(db, state)
    types = {o["type"] for o in state["orders"]}
    assert "LIMIT_MAKER" in types, f"no post-only order reached the exchange: {types}"
    assert any(o["status"] == "CANCELED" for o in state["orders"]), "quotes must be moved or pulled"
    assert state["open_orders"] == [], "quotes must be cancelled on exit"


def test_rest_polling_feed_trades_without_websockets(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=10)
    config.write_text(config.read_text().replace("[exchange]\n", "[exchange]\nuse_websocket = false\n"))
    proc = start_daemon(tmp_path, config)
    assert finish(proc, 60) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    db = tmp_path / "bot.db"
    stats = json.loads(query(db, "select stats_json from runs")[0][0])
    assert stats["source"]["feed_mode"] == "rest" and stats["source"]["book_updates"] >= 10
    assert stats["book_updates"] >= 10 and stats["unsound_periods"] == 0
    assert emulator.state()["ws"]["connections"] == 0
