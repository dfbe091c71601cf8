"""Limits that must hold across processes and restarts, with the daemon as a real process.

* One daemon per database, however the database is named: through a symlink (the file lock is
  taken on the resolved path) and through a hard link (the writer row inside the database).
* A restart on the same UTC day after the daily loss limit stays halted: no new budget.
* A malformed websocket frame (which ends ccxt's reader while the socket stays open) is noticed
  at once and the book resynchronized, not left to the staleness watchdog.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from daemon_harness import daemon_env, query, run_until, start_daemon, wait_for, write_config


def _second_daemon(tmp_path, config, db) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config), "--db", str(db)],
                          capture_output=True, text=True, cwd=tmp_path, env=daemon_env(), timeout=120)


def test_the_same_database_through_a_symlink_or_a_hard_link_is_refused(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=300)
    db = tmp_path / "bot.db"
    first = start_daemon(tmp_path, config, tag="first")
    try:
        wait_for(lambda: bool(query(db, "select 1 from heartbeat")), 60, "the first daemon's heartbeat")
        same = _second_daemon(tmp_path, config, db)
        assert same.returncode == 1 and "another bot instance" in same.stderr and str(first.pid) in same.stderr
        (tmp_path / "elsewhere").mkdir()
        link = tmp_path / "elsewhere" / "link.db"
        link.symlink_to(db)
        by_symlink = _second_daemon(tmp_path, config, link)
        assert by_symlink.returncode == 1, by_symlink.stderr
        assert "another bot instance" in by_symlink.stderr and str(first.pid) in by_symlink.stderr
        hard = tmp_path / "elsewhere" / "hard.db"
        os.link(db, hard)
        by_hard_link = _second_daemon(tmp_path, config, hard)
        assert by_hard_link.returncode == 1, by_hard_link.stderr
        assert "2 hard links" in by_hard_link.stderr
        for out in (by_symlink, by_hard_link):
            assert "Traceback" not in out.stderr
        runs = query(db, "select run_id from runs")
        assert len(runs) == 1, f"a second run was started on the same database: {runs}"
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(60) == 0
    assert query(db, "select status from runs") == [("completed",)]
    assert json.loads(query(db, "select stats_json from runs")[0][0])["stop_reason"] == "SIGTERM"


def test_the_writer_row_refuses_a_second_writer_while_the_first_lives(tmp_path):
    """The lock inside the database, for a second name the file lock cannot see (a bind mount):
    a live writer is refused, a dead one (killed, no cleanup) is taken over."""
    from bot.store.store import Store, StoreError

    db = tmp_path / "bot.db"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from bot.store.store import Store; s = Store(sys.argv[1]); "
         "s.writer_lock().acquire('holder-run'); print('held', flush=True); time.sleep(600)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        store = Store(db)
        with pytest.raises(StoreError, match=f"pid {holder.pid}, run holder-run"):
            store.writer_lock().acquire("second-run")
        holder.kill()  # no release: the row stays, naming a dead process
        holder.wait(30)
        lock = store.writer_lock()
        lock.acquire("second-run")
        assert query(db, "select pid, run_id from writer") == [(os.getpid(), "second-run")]
        lock.release()
        assert query(db, "select count(*) from writer") == [(0,)]
        store.close()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_restart_on_the_same_day_after_the_daily_loss_limit_stays_halted(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=300)
    # a loss of 1 USDT on 10,000 (the fees of one round trip) halts for the day
    config.write_text(config.read_text().replace("daily_loss_limit = 0.5", "daily_loss_limit = 0.0001"))
    db = tmp_path / "bot.db"

    def halted(run: int) -> bool:
        runs = [r for (r,) in query(db, "select run_id from runs order by started_at")]
        return len(runs) > run and bool(query(db, "select 1 from risk_events where run_id = ? and kind = 'halt' and rule = 'daily_loss_limit'", runs[run]))

    run_until(tmp_path, config, lambda: halted(0), "the daily loss halt")
    first_run = query(db, "select run_id from runs")[0][0]
    assert query(db, "select count(*) from orders where run_id = ?", first_run)[0][0] >= 1

    def restarted_and_marked(n_marks: int):
        def check() -> bool:
            runs = [r for (r,) in query(db, "select run_id from runs order by started_at")]
            return len(runs) == 2 and halted(1) and query(db, "select count(*) from equity where run_id = ?", runs[1])[0][0] >= n_marks
        return check

    # long enough to have decided many times: several equity marks with a sound book
    run_until(tmp_path, config, restarted_and_marked(5), "the restarted daemon to mark equity five times", tag="second")
    second_run = query(db, "select run_id from runs order by started_at")[1][0]
    # a position the first run's halt was still flattening when it stopped is flattened now (a
    # reduce-only exit): that closes risk; an order that opens or adds would be a new loss budget
    assert query(db, "select count(*) from orders where run_id = ? and reduce_only = 0", second_run) == [(0,)], "the restart opened a new loss budget"
    assert all(reason == "daily_loss_limit" for (reason,) in query(db, "select reason from orders where run_id = ?", second_run))
    halt = query(db, "select detail from risk_events where run_id = ? and kind = 'halt'", second_run)
    assert halt and "carried over" in halt[0][0]
    status = json.loads(subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(db), "--json"], capture_output=True, text=True, cwd=tmp_path).stdout)
    assert status["run_id"] == second_run and status["halts"] and status["orders"] == 0


def test_a_malformed_websocket_frame_resyncs_at_once(tmp_path, emulator):
    max_age = 30.0  # far beyond the resync: it must not wait for the staleness watchdog
    config = write_config(tmp_path, emulator, mode="paper", duration=300, max_age=max_age)
    db = tmp_path / "bot.db"
    proc = start_daemon(tmp_path, config)
    try:
        wait_for(lambda: bool(query(db, "select 1 from risk_events where kind = 'resume'")), 60, "a sound book")
        emulator.ws_inject({"kind": "raw", "text": '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","U":'})
        wait_for(lambda: len(query(db, "select 1 from risk_events where kind = 'resume'")) >= 2, 60, "the book to be sound again")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    (unsound_ts,), = query(db, "select ts from risk_events where kind = 'book_unsound' order by id limit 1")
    (resumed_ts,), = query(db, "select ts from risk_events where kind = 'resume' order by id desc limit 1")
    assert resumed_ts - unsound_ts < max_age * 1e9, "the resync waited for the staleness watchdog"
    log = (tmp_path / "logs" / "bot.log").read_text()
    assert "websocket broken: JSONDecodeError" in log
    assert "stale book" not in log
    assert "Traceback" not in (tmp_path / "daemon.out").read_text()


def test_a_refused_exit_backs_off_then_halts_entries_instead_of_storming(tmp_path, emulator):
    """The venue refuses every order once a position is open: the exit is retried at a doubling
    cooldown, never on every book update; after max_exit_rejects refusals entries halt
    (stuck_exit); once the venue takes orders again the exit executes and no entry follows."""
    config = write_config(tmp_path, emulator, duration=600)
    text = config.read_text().replace("exit_threshold = 0.0", "exit_threshold = -0.99").replace("max_holding_s = 1.5", "max_holding_s = 3")
    config.write_text(text.replace("[risk]\n", "[risk]\nstop_loss_bps = 2000\ntake_profit_bps = 2000\nvenue_reject_cooldown_s = 0.5\n"))
    db = tmp_path / "bot.db"
    proc = start_daemon(tmp_path, config, "--live")

    def holding() -> bool:
        last = query(db, "select qty from positions order by ts desc, id desc limit 1")
        pending = query(db, "select count(*) from orders where status in ('new', 'partially_filled')")
        return bool(last) and float(last[0][0]) > 0 and pending == [(0,)]

    try:
        wait_for(lambda: proc.poll() is None and holding(), 120, "a position held")
        emulator.faults("reject=1")
        wait_for(lambda: proc.poll() is None and bool(query(db, "select 1 from risk_events where kind = 'stuck_exit'")), 120, "the stuck_exit halt")
        emulator.faults("")
        wait_for(lambda: proc.poll() is None and query(db, "select count(*) from orders where reduce_only = 1 and status = 'filled'") == [(1,)],
                 120, "the exit to execute once the venue takes orders")
        seen = query(db, "select ts from heartbeat")[0][0]
        wait_for(lambda: query(db, "select ts from heartbeat")[0][0] > seen + 2, 60, "a few more seconds of decisions while halted")
    finally:
        emulator.faults("")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    refused = query(db, "select ts from orders where reduce_only = 1 and status = 'rejected' order by ts")
    (halt_ts,), = query(db, "select ts from risk_events where kind = 'stuck_exit'")
    before_halt = [ts for (ts,) in refused if ts <= halt_ts]
    assert len(before_halt) == 3, f"max_exit_rejects = 3 refusals before the halt, got {len(before_halt)}"
    # each retry waited at least the doubled cooldown: 0.5 s, then 1 s (a lower bound: load only adds to it)
    gaps = [b - a for a, b in zip(before_halt, before_halt[1:])]
    assert gaps[0] >= 0.5e9 and gaps[1] >= 1.0e9, gaps
    reasons = [d for (d,) in query(db, "select detail from risk_events where kind = 'venue_reject'")]
    assert len(reasons) == len(refused) and all("rejected by the matching engine" in r for r in reasons)
    entries_after = query(db, "select count(*) from orders where reduce_only = 0 and ts > ?", halt_ts)
    assert entries_after == [(0,)], "entries went on after stuck_exit"
    assert query(db, "select count(*) from orders where reduce_only = 0 and status = 'rejected'") == [(0,)]
