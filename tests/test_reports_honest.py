"""What the operator is told equals what the database holds, in the cases that used to lie.

* A resumed run reports its own starting equity (the carried position valued at its start,
  shown as ``carried``) and its own PnL, fees and trades, not the earlier run's.
* A daemon stopped while holding a position: ``bot status`` shows that position and every order
  and fill the database holds.
* A live daemon holding a position: status shows the position the exchange holds, while it runs.
* A daemon killed with ``kill -9``: the restart marks its run ``crashed``; its report and status
  are still sums over its rows.

Every check compares the JSON of ``bot status --json`` / ``bot report --json`` with sums computed
here from the database's rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from daemon_harness import CommitWatch, Emulator, frozen, one_read, query, run_until, start_daemon, wait_for, write_config


def cli_json(tmp: Path, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bot", *args, "--json"], capture_output=True, text=True, cwd=tmp, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


def runs(db: Path) -> list[str]:
    return [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]


def truth(db: Path, run_id: str) -> dict:
    """The figures of one run, summed from its rows, all read from one state of the database."""
    return one_read(db, lambda q: _truth(q, run_id))


def _truth(q, run_id: str) -> dict:
    (initial, carried, mode, symbol, started), = q("select initial_equity, carried_json, mode, symbol, started_at from runs where run_id = ?", run_id)
    account = [r for (r,) in q("select run_id from runs where mode = ? and symbol = ? and (started_at < ? or run_id = ?)", mode, symbol, started, run_id)]
    marks = ",".join("?" * len(account))
    position = q(f"select qty, cash from positions where run_id in ({marks}) order by ts desc, id desc limit 1", *account)
    equity = q("select equity from equity where run_id = ? order by ts desc, id desc limit 1", run_id)
    final = equity[0][0] if equity else initial
    fees = sum((Decimal(v) for (v,) in q("select coalesce(fee_value, fee) from fills where run_id = ?", run_id)), Decimal(0))
    return {
        "initial_equity": initial,
        "carried": json.loads(carried) if carried else None,
        "final_equity": final,
        "pnl_net": final - initial,
        "fees": float(fees),
        "orders": q("select count(*) from orders where run_id = ?", run_id)[0][0],
        "fills": q("select count(*) from fills where run_id = ?", run_id)[0][0],
        "trades": q("select count(*) from round_trips where run_id = ?", run_id)[0][0],
        "position": Decimal(position[0][0]) if position else Decimal(0),
        "cash": Decimal(position[0][1]) if position else None,
        "open_orders": [r for (r,) in q("select client_order_id from orders where run_id = ? and status in ('new', 'partially_filled') order by ts", run_id)],
    }


def assert_report_is_the_rows(tmp: Path, db: Path, run_id: str) -> dict:
    t = truth(db, run_id)
    report = cli_json(tmp, "report", "--db", str(db), "--run", run_id)
    assert report["initial_equity"] == pytest.approx(t["initial_equity"], abs=1e-8)
    assert report["final_equity"] == pytest.approx(t["final_equity"], abs=1e-8)
    assert report["pnl_net"] == pytest.approx(t["pnl_net"], abs=1e-6)
    assert report["fees"] == pytest.approx(t["fees"], abs=1e-8)
    assert report["pnl_gross"] == pytest.approx(t["pnl_net"] + t["fees"], abs=1e-6)
    assert (report["orders"], report["fills"], report["trades"]) == (t["orders"], t["fills"], t["trades"])
    assert report["carried"] == t["carried"]
    return report


def assert_status_is_the_rows(tmp: Path, db: Path, run_id: str, writer: subprocess.Popen | None = None) -> dict:
    """``bot status`` equals the rows, compared on one state of the database.

    A daemon still running (``writer``) is frozen for the comparison: it commits an equity point
    and a heartbeat about every second, and a status call under load takes longer. Retrying until
    the figures before and after the call are equal is not enough: two equity points can land
    during one call, the second at the mid of the one before, so the figures come back while the
    status read the point in between (it did: status 9999.95052484 at row 7, truth 9999.95049184
    at rows 6 and 8). The check that nothing was committed makes a writer that was not frozen fail
    here, not later as a wrong figure."""
    with frozen(writer), CommitWatch(db) as watch:
        watch.mark()
        t = truth(db, run_id)
        status = cli_json(tmp, "status", "--db", str(db), "--run", run_id)
        assert watch.unchanged(), "the database changed during the comparison: a daemon still writes it (pass it as writer)"
    assert Decimal(status["position"]) == t["position"]
    assert (status["orders"], status["fills"]) == (t["orders"], t["fills"])
    assert status["equity"] == pytest.approx(t["final_equity"], abs=1e-8)
    assert status["pnl"] == pytest.approx(t["pnl_net"], abs=1e-6)
    assert status["initial_equity"] == pytest.approx(t["initial_equity"], abs=1e-8)
    assert status["fees"] == pytest.approx(t["fees"], abs=1e-8)
    assert status["open_orders"] == t["open_orders"]
    return status


def holding_config(tmp: Path, emu: Emulator, mode: str, name: str) -> Path:
    """Enters as usual but holds: exits only on an extreme score, no time stop, wide stops."""
    config = write_config(tmp, emu, mode=mode, duration=600, name=name)
    text = config.read_text().replace("exit_threshold = 0.0", "exit_threshold = -0.99").replace("max_holding_s = 1.5", "max_holding_s = 3600")
    config.write_text(text.replace("[risk]\n", "[risk]\nstop_loss_bps = 2000\ntake_profit_bps = 2000\n"))
    return config


def holding(db: Path, run_index: int) -> bool:
    ids = runs(db)
    if len(ids) <= run_index:
        return False
    last = query(db, "select qty from positions where run_id = ? order by ts desc, id desc limit 1", ids[run_index])
    pending = query(db, "select count(*) from orders where run_id = ? and status in ('new', 'partially_filled')", ids[run_index])
    return bool(last) and Decimal(last[0][0]) > 0 and pending == [(0,)]


def test_a_resumed_run_reports_its_own_equity_and_pnl_and_a_stopped_one_its_position(tmp_path):
    emu = Emulator(tmp_path)
    try:
        db = tmp_path / "bot.db"
        run_until(tmp_path, holding_config(tmp_path, emu, "paper", "hold.toml"), lambda: holding(db, 0), "a position held", tag="first")
        first = runs(db)[0]
        status = assert_status_is_the_rows(tmp_path, db, first)
        assert Decimal(status["position"]) > 0, "stopped while holding: status must show the position"
        assert_report_is_the_rows(tmp_path, db, first)

        config = write_config(tmp_path, emu, mode="paper", duration=600)

        def second_trades() -> bool:
            ids = runs(db)
            return len(ids) == 2 and query(db, "select count(*) from round_trips where run_id = ?", ids[1])[0][0] >= 2

        run_until(tmp_path, config, second_trades, "two round trips of the resumed run", tag="second")
    finally:
        emu.stop()
    second = runs(db)[1]
    report = assert_report_is_the_rows(tmp_path, db, second)
    assert_status_is_the_rows(tmp_path, db, second)
    carried = report["carried"]
    before = truth(db, first)
    assert carried is not None and Decimal(carried["qty"]) == before["position"]
    # its starting equity is the account at its start: the first run's cash plus the carried
    # position at the mid then, not the first run's starting 10,000
    assert report["initial_equity"] == pytest.approx(float(before["cash"]) + float(before["position"]) * carried["mark"], abs=1e-6)
    assert report["initial_equity"] != pytest.approx(10_000.0, abs=1e-6)


def test_live_position_while_running_and_after_kill_9(tmp_path):
    emu = Emulator(tmp_path)
    try:
        db = tmp_path / "bot.db"
        proc = start_daemon(tmp_path, holding_config(tmp_path, emu, "live", "hold.toml"), "--live")
        try:
            wait_for(lambda: proc.poll() is None and holding(db, 0), 120, "a live position held")
            first = runs(db)[0]
            # let a heartbeat flush the latest rows, then read status while the daemon runs
            seen = query(db, "select ts from heartbeat")[0][0]
            wait_for(lambda: query(db, "select ts from heartbeat")[0][0] > seen, 60, "the next heartbeat")
            status = assert_status_is_the_rows(tmp_path, db, first, writer=proc)
            btc = emu.state()["balances"]["BTC"]
            assert Decimal(status["position"]) == Decimal(btc["free"]) + Decimal(btc["locked"]) > 0
            assert status["status"] == "running"
        finally:
            proc.kill()  # SIGKILL: the run is never closed by its process
            proc.wait(30)
        assert query(db, "select status from runs") == [("running",)]
        dead = cli_json(tmp_path, "status", "--db", str(db), "--run", first)
        assert dead["status"].startswith("running (DID NOT FINISH: its process (pid")
        run_until(tmp_path, write_config(tmp_path, emu, duration=600), lambda: len(runs(db)) == 2 and bool(query(db, "select 1 from heartbeat where run_id = ?", runs(db)[1])),
                  "the restarted daemon's heartbeat", "--live", tag="restart")
        state = emu.state()
    finally:
        emu.stop()
    assert query(db, "select status from runs where run_id = ?", first) == [("crashed",)]
    report = assert_report_is_the_rows(tmp_path, db, first)
    assert report["status"] == "crashed"
    assert_status_is_the_rows(tmp_path, db, first)
    second = runs(db)[1]
    assert_report_is_the_rows(tmp_path, db, second)
    final = assert_status_is_the_rows(tmp_path, db, second)
    btc = state["balances"]["BTC"]
    assert Decimal(final["position"]) + Decimal(final["dust"]) == Decimal(btc["free"]) + Decimal(btc["locked"])
