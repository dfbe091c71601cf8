"""``run.record_dir`` and ``bot compare``: a paper daemon against the emulator records what it
traded on, and its own recording replays to the same orders and fills; an altered config or a
cut recording is reported with its first difference.

The daemon runs until it has traded (waiting for the condition, never a fixed time), then gets
SIGTERM; the replay is a pure function of the recording, so the comparison is exact.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_harness import count, filled, query, run_until, write_config

ROOT = Path(__file__).resolve().parents[1]


def bot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def compare(db: Path, run_id: str, *data: Path, cwd: Path) -> tuple[int, dict]:
    extra = ["--data", *map(str, data)] if data else []
    out = bot("compare", "--db", str(db), "--run", run_id, *extra, "--json", cwd=cwd)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


@pytest.fixture
def recorded_run(tmp_path, emulator):
    """A paper daemon with run.record_dir that made round trips, stopped with SIGTERM."""
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    config.write_text(config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n"))
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: count(db, "select count(*) from round_trips") >= 2 and filled(db) >= 4,
              "two paper round trips")
    (run_id, replay_json, stats_json), = query(db, "select run_id, replay_json, stats_json from runs")
    return tmp_path, db, run_id, json.loads(replay_json), json.loads(stats_json)


def test_a_paper_run_replayed_from_its_own_recording_matches_it(recorded_run):
    tmp, db, run_id, replay, stats = recorded_run
    rec_dir = Path(replay["recording"]["dir"])
    assert rec_dir == tmp / "rec" / run_id
    files = sorted(rec_dir.rglob("*.jsonl.gz"))
    assert files and stats["recording"]["failed"] is None
    assert stats["recording"]["events"] == stats["events"]  # every event the engine received, no more

    code, result = compare(db, run_id, *files, cwd=tmp)
    assert code == 0, result
    assert result["identical"] and result["first_difference"] is None
    assert result["orders"]["paper"] == result["orders"]["replay"] >= 4
    assert result["fills"]["paper"] == result["fills"]["replay"] >= 4
    assert result["orders"]["differing"] == result["fills"]["differing"] == 0
    assert result["events"] == stats["events"]
    assert result["known_divergence_sources"] == []
    inst, = result["instruments"]
    assert inst["fills"]["max_time_delta_ns"] == 0 and inst["fills"]["max_price_delta"] == "0"

    # without --data: the run's own recording, found from its row
    code, again = compare(db, run_id, cwd=tmp)
    assert code == 0 and again["identical"] and again["fills"] == result["fills"]

    # the recording is ordinary backtest data too
    out = bot("backtest", "--config", str(tmp / "bot.toml"), "--data", *map(str, files), "--db", str(tmp / "bt.db"), "--json", cwd=tmp)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["status"] == "completed" and summary["events"] == stats["events"]


def test_an_altered_config_is_reported_as_a_divergence(recorded_run):
    tmp, db, run_id, replay, _ = recorded_run
    altered = tmp / "altered.db"
    shutil.copy(db, altered)
    conn = sqlite3.connect(altered)
    config = json.loads(conn.execute("select config_json from runs").fetchone()[0])
    config["execution"]["taker_fee_bps"] = config["execution"]["taker_fee_bps"] + 3.0  # every fill's fee changes
    conn.execute("update runs set config_json = ?", [json.dumps(config)])
    conn.commit()
    conn.close()
    code, result = compare(altered, run_id, cwd=tmp)
    assert code == 3 and not result["identical"]
    first = result["first_difference"]
    assert first["kind"] == "fill" and first["field"] == "fee" and first["index"] == 0
    assert first["paper"] != first["replay"]
    assert result["fills"]["differing"] >= 1


def test_a_cut_recording_is_reported_with_the_first_missing_decision(recorded_run):
    tmp, db, run_id, replay, _ = recorded_run
    files = sorted(Path(replay["recording"]["dir"]).rglob("*.jsonl.gz"))
    # keep the events up to just before the last order: the replay cannot make it
    last_order_ts, = query(db, "select max(ts) from orders where run_id = ?", run_id)[0]
    import gzip

    cut = tmp / "cut.jsonl.gz"
    with gzip.open(cut, "wt") as out:
        for f in files:
            with gzip.open(f, "rt") as fh:
                for n, line in enumerate(fh):
                    obj = json.loads(line)
                    if n and (obj.get("k") == "E" or obj["t"] >= last_order_ts):
                        break
                    out.write(line)
            break  # one instrument; its files are hourly, the test run fits one or two
    code, result = compare(db, run_id, cut, cwd=tmp)
    assert code == 3 and not result["identical"]
    assert result["orders"]["replay"] < result["orders"]["paper"]
    first = result["first_difference"]
    assert first is not None and first["ts"] <= last_order_ts
    assert any(s["source"] == "recording_problem" for s in result["known_divergence_sources"])  # no end marker


def test_bad_inputs_are_one_line_errors(recorded_run):
    tmp, db, run_id, _, _ = recorded_run
    out = bot("compare", "--db", str(tmp / "nope.db"), "--run", run_id, cwd=tmp)
    assert out.returncode == 1 and out.stderr.startswith("error: database not found") and len(out.stderr.splitlines()) == 1
    out = bot("compare", "--db", str(db), "--run", "no-such-run", cwd=tmp)
    assert out.returncode == 1 and "is not in" in out.stderr and len(out.stderr.splitlines()) == 1
    other = tmp / "other.csv"
    other.write_text("not,a,recording\n1,2,3\n")
    out = bot("compare", "--db", str(db), "--run", run_id, "--data", str(other), cwd=tmp)
    assert out.returncode == 1 and out.stderr.startswith("error: ") and len(out.stderr.splitlines()) == 1


def test_a_recording_failure_stops_the_recording_not_the_caller(tmp_path):
    """A full disk mid-run: the write that fails is logged, recording stops, nothing is raised."""
    import errno

    from bot.core.events import BookSnapshot
    from bot.core.market import Market
    from decimal import Decimal
    from bot.engine.recording import RunRecorder

    recorder = RunRecorder(tmp_path / "rec", "run-1", "test")
    recorder.add("binance", Market("BTC/USDT", Decimal("0.01"), Decimal("0.00001"), exchange_symbol="BTCUSDT"))
    snap = BookSnapshot(1_000, 0, ((100.0, 1.0),), ((101.0, 1.0),), 1)
    recorder.write(0, snap)
    assert recorder.sync()  # the writer thread has written it
    writer = recorder.writers[0]
    real = writer._fh

    class Full:
        def write(self, data):  # noqa: ANN001
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):  # noqa: ANN001
            return getattr(real, name)

    writer._fh = Full()
    recorder.write(0, BookSnapshot(2_000, 0, ((100.5, 1.0),), ((101.0, 1.0),), 2))  # into the compressor: no error yet
    recorder.flush()  # the heartbeat's flush reaches the full disk
    assert recorder.sync()
    assert recorder.failed is not None and "No space left" in recorder.failed
    written = writer.events
    recorder.write(0, BookSnapshot(10**9, 0, ((1.0, 1.0),), ((2.0, 1.0),), 10**6))  # ignored from now on
    recorder.flush()
    recorder.close()
    assert not recorder._thread.is_alive()
    assert writer.events == written and recorder.stats()["failed"] == recorder.failed


def test_an_unwritable_record_dir_is_logged_and_the_daemon_trades_on(tmp_path, emulator):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the recording's directory should be\n")
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    config.write_text(config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{blocker}\"\n"))
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: filled(db) >= 2, "two filled paper orders despite the failed recording")
    (status, stats_json), = query(db, "select status, stats_json from runs")
    stats = json.loads(stats_json)
    assert status == "completed" and stats["recording"]["failed"] and stats["recording"]["events"] == 0
    log = (tmp_path / "logs" / "bot.log").read_text()
    assert "recording failed" in log


def test_a_restarted_paper_run_replays_from_the_account_it_restored(tmp_path, emulator):
    """The second run takes over the first's account (position, peak equity): its replay restores
    the same account from the same earlier run, and matches."""
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    db = tmp_path / "bot.db"

    def holding() -> bool:
        rows = query(db, "select qty from positions order by id desc limit 1")
        return count(db, "select count(*) from round_trips") >= 1 and bool(rows) and float(rows[0][0]) != 0.0

    run_until(tmp_path, config, holding, "a round trip and an open position", tag="first")
    config.write_text(config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n"))
    first_id, = query(db, "select run_id from runs")[0]

    def traded_again() -> bool:
        ids = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]
        return len(ids) == 2 and count(db, "select count(*) from round_trips where run_id = ?", ids[1]) >= 2

    run_until(tmp_path, config, traded_again, "two round trips of the restarted run", tag="second")
    (run_id, replay_json), = query(db, "select run_id, replay_json from runs where run_id != ?", first_id)
    assert json.loads(replay_json)["previous_runs"] == [first_id]  # (its position may have closed before the SIGTERM)
    code, result = compare(db, run_id, cwd=tmp_path)
    assert code == 0, result
    assert result["identical"] and result["fills"]["paper"] >= 3  # the carried position's exit, then a round trip


@pytest.fixture
def two_symbol_emulator(tmp_path):
    from daemon_harness import Emulator

    emu = Emulator(tmp_path, "--symbol", "BTC/USDT,ETH/USDT", balances="USDT=10000,BTC=0,ETH=0")
    yield emu
    emu.stop()


def test_two_instruments_recorded_apart_replay_in_delivery_order(tmp_path, two_symbol_emulator):
    """One account, two engines that share its equity: the two recordings, merged by receive time,
    are the order the engines saw the events in, so the replay matches on both."""
    config = write_config(tmp_path, two_symbol_emulator, mode="paper", duration=600)
    text = config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n")
    config.write_text(text + "".join(f'\n[[markets]]\nsymbol = "{s}"\n' for s in ("BTC/USDT", "ETH/USDT")))
    db = tmp_path / "bot.db"

    def both_traded() -> bool:
        rows = dict(query(db, "select symbol, count(*) from orders where status = 'filled' group by symbol"))
        return rows.get("BTC/USDT", 0) >= 2 and rows.get("ETH/USDT", 0) >= 2

    run_until(tmp_path, config, both_traded, "two filled orders on each instrument")
    (run_id, replay_json), = query(db, "select run_id, replay_json from runs")
    files = sorted(Path(json.loads(replay_json)["recording"]["dir"]).rglob("*.jsonl.gz"))
    assert {f.parent.name for f in files} == {"BTCUSDT", "ETHUSDT"}
    code, result = compare(db, run_id, *files, cwd=tmp_path)
    assert code == 0, result
    assert [i["symbol"] for i in result["instruments"]] == ["BTC/USDT", "ETH/USDT"]
    assert all(i["identical"] and i["fills"]["paper"] >= 2 for i in result["instruments"])
    # one instrument's recording alone is not the run's
    out = bot("compare", "--db", str(db), "--run", run_id, "--data", *[str(f) for f in files if f.parent.name == "BTCUSDT"], cwd=tmp_path)
    assert out.returncode == 1 and "no recording of ETH/USDT" in out.stderr


def test_a_kill_switch_file_is_reported_as_a_known_divergence_source(tmp_path, emulator):
    """The file is looked at on the filesystem, not in the event stream: the replay cannot see it,
    and compare says so instead of passing the difference off as the engine's."""
    kill = tmp_path / "KILL"
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    text = config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n")
    config.write_text(text.replace("[risk]\n", f"[risk]\nkill_switch_file = \"{kill}\"\n"))
    db = tmp_path / "bot.db"

    def killed() -> bool:
        if filled(db) >= 2 and not kill.exists():
            kill.write_text("stop\n")
        return count(db, "select count(*) from risk_events where kind = 'halt' and rule = 'kill_switch'") >= 1

    run_until(tmp_path, config, killed, "the kill switch file to halt the run")
    run_id, = query(db, "select run_id from runs")[0]
    code, result = compare(db, run_id, cwd=tmp_path)
    sources = [s["source"] for s in result["known_divergence_sources"]]
    assert "kill_switch" in sources
    assert code == (0 if result["identical"] else 3)


def test_a_live_run_records_too_but_is_not_compared(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="live", duration=600)
    config.write_text(config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n"))
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: filled(db) >= 1, "a filled live order", "--live")
    (run_id, stats_json), = query(db, "select run_id, stats_json from runs")
    recording = json.loads(stats_json)["recording"]
    assert recording["failed"] is None and recording["events"] > 0
    out = bot("compare", "--db", str(db), "--run", run_id, cwd=tmp_path)
    assert out.returncode == 1 and "is a live run" in out.stderr
    files = [f for group in recording["files"] for f in group]
    replay_config = write_config(tmp_path, emulator, mode="paper", duration=600, name="replay.toml")  # a backtest needs no keys
    out = bot("backtest", "--config", str(replay_config), "--data", *files, "--db", str(tmp_path / "bt.db"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_a_paper_run_stopped_with_an_order_in_flight_replays_identically(tmp_path, emulator):
    """Stopped while its order waits out the simulated latency: the run stores that order
    cancelled at the stop, and so must the replay at the recording's end."""
    config = write_config(tmp_path, emulator, mode="paper", duration=600)
    config.write_text(config.read_text().replace("[run]\n", f"[run]\nrecord_dir = \"{tmp_path / 'rec'}\"\n")
                      + "\n[execution]\nlatency_ms = 3600000\n")
    db = tmp_path / "bot.db"
    run_until(tmp_path, config, lambda: count(db, "select count(*) from orders") >= 1, "an order in flight")
    (run_id,), = query(db, "select run_id from runs")
    assert {s for (s,) in query(db, "select status from orders")} == {"canceled"}
    code, result = compare(db, run_id, cwd=tmp_path)
    assert code == 0 and result["identical"], result
    assert result["orders"]["paper"] == result["orders"]["replay"] >= 1
