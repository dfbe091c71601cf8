"""Store (SQLite via sqlite-utils) and the run summary computed from the database alone."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from decimal import Decimal as D
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.orders import Fill, Order, OrderStatus, Side
from bot.core.portfolio import RoundTrip
from bot.store import SCHEMA_VERSION, Store, StoreError, format_summary, summarize
from bot.store.report import SUMMARY_KEYS

ROOT = Path(__file__).resolve().parents[1]


def _start(store: Store, run_id: str = "run-1", *, interval: float = 1.0, initial: float = 10_000.0, **kw) -> None:
    store.start_run(
        run_id,
        mode="backtest",
        config={"store": {"batch_size": store.batch_size, "equity_interval_s": interval}, "market": {"symbol": "BTC/USDT"}},
        git_rev="abc123",
        data_files=["data/a.jsonl.gz"],
        initial_equity=initial,
        symbol="BTC/USDT",
        **kw,
    )


def _count(path: Path, table: str, run_id: str | None = None) -> int:
    """Count rows through an independent connection (sees committed data only)."""
    with sqlite3.connect(path) as conn:
        if run_id is None:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return conn.execute(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]


def _trip(open_ts: int, close_ts: int, gross: str, fees: str, side: str = "long") -> RoundTrip:
    return RoundTrip(open_ts=open_ts, close_ts=close_ts, side=side, max_qty=D("0.01"), pnl_gross=D(gross), fees=D(fees))


# ---------------------------------------------------------------------------------------------
# round trip through the database


def test_round_trip_and_summary(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "bot.db"  # parent dirs are created
    interval = 5.0
    equity = [10_000.0, 10_100.0, 9_999.0, 9_898.99, 10_200.0, 10_050.0]
    fees = [D("0.03"), D("0.0312345"), D("0.0000001")]
    trips = [_trip(1, 2, "3.5", "0.5"), _trip(3, 4, "0.2", "0.3"), _trip(5, 6, "-1", "0.1", "short"), _trip(7, 8, "10", "1")]

    with Store(db, batch_size=500) as store:
        _start(store, interval=interval, started_at=1_700_000_000.0)
        o1 = Order("c-1", ts=1000, side=Side.BUY, amount=D("0.01000"), price=D("30000.10"), reason="signal",
                   stop_price=D("29970.07"), take_profit_price=D("30045.15"))
        store.record_order("run-1", o1)
        o1.status, o1.filled, o1.exchange_order_id = OrderStatus.FILLED, D("0.01000"), "x-9"
        store.record_order("run-1", o1)  # same batch: replaces the buffered row
        o2 = Order("c-2", ts=2000, side=Side.SELL, amount=D("0.01"), reason="exit", reduce_only=True)
        store.record_order("run-1", o2)
        store.flush()
        o2.status, o2.filled = OrderStatus.FILLED, D("0.01")
        store.record_order("run-1", o2)  # later batch: upserts the stored row
        for i, fee in enumerate(fees):
            store.record_fill("run-1", Fill(ts=1000 + i, client_order_id="c-1", side=Side.BUY,
                                            price=D("30000.123456789012345"), amount=D("0.00333"), fee=fee))
        store.record_position("run-1", 1001, D("0.01"), D("30000.10"), D("0"), D("9699.99"), D("0.03"))
        for trip in trips:
            store.record_round_trip("run-1", trip)
        for i, e in enumerate(equity):
            store.record_equity("run-1", 1000 + i * 5000, e, 30_000.0 + i, 0.01, 9_700.0)
        store.record_risk_event("run-1", 1500, "reject", "max_position_notional", "too big")
        store.record_risk_event("run-1", 1600, "reject", "min_notional", "too small")
        store.record_risk_event("run-1", 1700, "halt", "max_drawdown", "dd 5%")
        store.finish_run("run-1", status="completed", ended_at=1_700_000_100.0,
                         stats={"events": 1234, "wall_time_s": 2.5, "gaps": 3, "malformed": 1})
        assert store.pending == 0

        # read side of the store
        run = store.run("run-1")
        assert run["status"] == "completed" and run["ended_at"] == 1_700_000_100.0
        assert run["config"]["store"]["equity_interval_s"] == interval
        assert run["data_files"] == ["data/a.jsonl.gz"] and run["git_rev"] == "abc123"
        assert run["stats"]["events"] == 1234
        assert [r["run_id"] for r in store.runs()] == ["run-1"]
        assert store.latest_run_id() == "run-1"
        assert store.run("nope") is None

        orders = list(store.rows("orders", "run-1"))
        assert [(o["client_order_id"], o["status"], o["filled"]) for o in orders] == [
            ("c-1", "filled", "0.01000"), ("c-2", "filled", "0.01")]
        assert orders[0]["side"] == "buy" and orders[0]["exchange_order_id"] == "x-9"
        assert orders[0]["stop_price"] == "29970.07" and orders[1]["reduce_only"] == 1 and orders[1]["price"] is None
        fills = list(store.rows("fills", "run-1"))
        assert [D(f["fee"]) for f in fills] == fees  # exact, including 1e-7
        assert D(fills[0]["price"]) == D("30000.123456789012345")
        pos = list(store.rows("positions", "run-1"))
        assert len(pos) == 1 and D(pos[0]["cash"]) == D("9699.99")
        stored_trips = list(store.rows("round_trips", "run-1"))
        assert [D(t["pnl_net"]) for t in stored_trips] == [t.pnl_net for t in trips]

    s = summarize(db)
    assert set(s) == set(SUMMARY_KEYS)
    assert s["run_id"] == "run-1" and s["db"] == str(db)
    assert (s["mode"], s["symbol"], s["status"]) == ("backtest", "BTC/USDT", "completed")
    assert s["started_at"] == 1_700_000_000.0 and s["ended_at"] == 1_700_000_100.0
    assert s["events"] == 1234 and s["wall_time_s"] == 2.5 and s["events_per_s"] == pytest.approx(1234 / 2.5)
    assert (s["trades"], s["fills"], s["orders"], s["rejects"]) == (4, 3, 2, 2)
    assert s["stats"] == {"gaps": 3, "malformed": 1}

    fee_sum = float(sum(fees))
    assert s["fees"] == pytest.approx(fee_sum, abs=1e-12)
    assert s["initial_equity"] == 10_000.0 and s["final_equity"] == equity[-1]
    assert s["pnl_net"] == pytest.approx(equity[-1] - 10_000.0, abs=1e-8)
    assert s["pnl_gross"] == pytest.approx(equity[-1] - 10_000.0 + fee_sum, abs=1e-8)
    # wins: 3.0, -0.1, -1.1, 9.0 -> 2 of 4
    assert s["win_rate"] == pytest.approx(0.5)

    peak, worst = equity[0], 0.0
    for e in equity:
        peak = max(peak, e)
        worst = max(worst, (peak - e) / peak)
    assert worst == pytest.approx((10_100.0 - 9_898.99) / 10_100.0)
    assert s["max_drawdown"] == pytest.approx(worst, abs=1e-6)

    # 25 µs of equity rows: no daily return, so no Sharpe (tests/test_report_figures.py has the formulas)
    assert s["sharpe"] is None and "at least 30 daily returns" in s["sharpe_reason"]
    assert "daily returns" in s["sharpe_annualization"] and "sqrt(365)" in s["sharpe_annualization"]

    text = format_summary(s)
    text, _, table = text.partition("\n\n")
    lines = text.splitlines()
    assert table.startswith("instruments (money in USDT):") and "BTC/USDT" in table
    assert lines[0].startswith("run_id:") and "run-1" in lines[0]
    value_cols = {len(re.match(r"^[\w.]+: +", line).group(0)) for line in lines}
    assert len(value_cols) == 1, "values are aligned in one column"
    assert any(line.startswith("stats.gaps:") and line.endswith("3") for line in lines)
    assert any(line.startswith("win_rate:") and "50.00%" in line for line in lines)
    assert "DID NOT FINISH" not in text


def test_summary_without_trades_or_equity(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    with Store(db) as store:
        _start(store, initial=5_000.0)
        store.record_equity("run-1", 1, 5_000.0, 1.0, 0.0, 5_000.0)
        store.record_equity("run-1", 2, 5_000.0, 1.0, 0.0, 5_000.0)
        store.finish_run("run-1", status="interrupted", stats={"events": 10, "wall_time_s": 0})
    s = summarize(db, "run-1")
    assert s["status"] == "interrupted"
    assert s["trades"] == 0 and s["win_rate"] is None
    assert s["sharpe"] is None  # fewer than 3 points
    assert s["max_drawdown"] == 0.0 and s["pnl_net"] == 0.0 and s["fees"] == 0.0
    assert s["events_per_s"] == 0  # zero wall time
    assert "n/a" in format_summary(s)

    with Store(db) as store:
        _start(store, "run-2", initial=100.0)
        for ts in range(5):  # constant equity: zero std
            store.record_equity("run-2", ts, 100.0, 1.0, 0.0, 100.0)
        store.finish_run("run-2", status="completed", stats={})
    s2 = summarize(db)  # latest run
    assert s2["run_id"] == "run-2" and s2["sharpe"] is None and s2["events"] is None
    assert s2["final_equity"] == 100.0


def test_latest_run_and_reopen_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    with Store(db) as store:
        _start(store, "a", started_at=100.0)
        _start(store, "b", started_at=300.0)
        _start(store, "c", started_at=200.0)
        assert store.latest_run_id() == "b"
        with pytest.raises(StoreError, match="'a'"):
            _start(store, "a")
    with Store(db) as store:  # second open: schema already there
        assert store.schema_version() == SCHEMA_VERSION
        assert [r["run_id"] for r in store.runs()] == ["a", "c", "b"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
        conn.execute("UPDATE meta SET value = ? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer"):
        Store(db)


def test_every_table_has_indexed_run_id(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    Store(db).close()
    with sqlite3.connect(db) as conn:
        for table in ("orders", "fills", "positions", "round_trips", "equity", "risk_events"):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            assert "run_id" in cols
            first_cols = set()
            for idx in conn.execute(f"PRAGMA index_list({table})"):
                first_cols.add(conn.execute(f"PRAGMA index_info({idx[1]})").fetchone()[2])
            assert "run_id" in first_cols, table


def test_records_for_unknown_run_and_bad_status_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "bot.db") as store:
        with pytest.raises(StoreError, match="ghost"):
            store.record_equity("ghost", 1, 1.0, 1.0, 0.0, 1.0)
        assert store.pending == 0
        _start(store)
        with pytest.raises(ValueError, match="status"):
            store.finish_run("run-1", status="done", stats={})
        with pytest.raises(StoreError, match="nope"):
            store.finish_run("nope", status="completed", stats={})
        assert store.run("run-1")["status"] == "running"


# ---------------------------------------------------------------------------------------------
# batching


def test_batching_flushes_automatically(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    store = Store(db, batch_size=3)
    _start(store)
    assert _count(db, "runs") == 1  # start_run is committed immediately

    order = Order("c-1", ts=1, side=Side.BUY, amount=D("1"))
    store.record_order("run-1", order)
    order.status = OrderStatus.FILLED
    store.record_order("run-1", order)  # replaces, does not add a row
    store.record_fill("run-1", Fill(1, "c-1", Side.BUY, D("10"), D("1"), D("0.01")))
    assert store.pending == 2
    assert _count(db, "orders") == 0 and _count(db, "fills") == 0  # nothing unflushed is visible

    store.record_position("run-1", 1, D("1"), D("10"), D("0"), D("-10.01"), D("0.01"))  # 3rd row: auto flush
    assert store.pending == 0
    assert (_count(db, "orders"), _count(db, "fills"), _count(db, "positions")) == (1, 1, 1)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM orders").fetchone() == ("filled",)

    for ts in range(5):
        store.record_equity("run-1", ts, 100.0 + ts, 1.0, 0.0, 1.0)
    assert _count(db, "equity") == 3 and store.pending == 2  # one automatic batch of 3
    store.flush()
    assert _count(db, "equity") == 5 and store.pending == 0
    store.flush()  # nothing buffered: no-op
    store.record_risk_event("run-1", 9, "halt", "kill_switch", "")
    store.close()  # close flushes
    assert _count(db, "risk_events") == 1
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.record_equity("run-1", 1, 1.0, 1.0, 0.0, 1.0)


def test_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    with Store(db) as store:
        assert store.db.journal_mode == "wal"
    with sqlite3.connect(db) as conn:  # persistent property of the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ---------------------------------------------------------------------------------------------
# atomicity


def test_failed_flush_with_invalid_row_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    store = Store(db, batch_size=100)
    _start(store)
    store.record_equity("run-1", 0, 100.0, 1.0, 0.0, 100.0)
    store.flush()

    store.record_order("run-1", Order("c-1", ts=1, side=Side.BUY, amount=D("1")))  # written before fills
    store.record_fill("run-1", Fill(1, "c-1", Side.BUY, None, D("1"), D("0.1")))  # type: ignore[arg-type]  # NOT NULL price
    store.record_equity("run-1", 1, 101.0, 1.0, 1.0, 0.0)
    with pytest.raises(StoreError, match="fills") as info:
        store.flush()
    assert "rolled back" in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.IntegrityError)

    assert _count(db, "orders") == 0 and _count(db, "fills") == 0
    assert _count(db, "equity") == 1  # only the earlier batch
    assert _count(db, "runs") == 1 and store.run("run-1")["status"] == "running"
    assert store.pending == 3  # kept for a retry
    assert store.discard_pending() == 3
    store.finish_run("run-1", status="failed", stats={"error": "bad fill"})
    store.close()
    s = summarize(db)
    assert s["status"] == "failed" and s["orders"] == 0 and s["final_equity"] == 100.0


def test_failure_after_first_table_rolls_back_then_retry_succeeds(tmp_path: Path, monkeypatch) -> None:
    db = tmp_path / "bot.db"
    store = Store(db, batch_size=100)
    _start(store)
    store.record_order("run-1", Order("c-1", ts=1, side=Side.BUY, amount=D("1")))
    store.record_fill("run-1", Fill(1, "c-1", Side.BUY, D("10"), D("1"), D("0.1")))
    store.record_round_trip("run-1", _trip(1, 2, "1", "0.1"))
    store.record_equity("run-1", 1, 101.0, 1.0, 1.0, 0.0)

    written: list[str] = []
    original = Store._write_table

    def flaky(self, table, rows):
        original(self, table, rows)  # really writes the first table ...
        written.append(table)
        if len(written) == 2:
            raise sqlite3.OperationalError("disk I/O error (simulated)")

    monkeypatch.setattr(Store, "_write_table", flaky)
    with pytest.raises(StoreError, match="simulated"):
        store.finish_run("run-1", status="completed", stats={"events": 1, "wall_time_s": 1})
    assert written == ["orders", "fills"]
    for table in ("orders", "fills", "round_trips", "equity"):
        assert _count(db, table) == 0, table
    assert store.run("run-1")["status"] == "running"  # the run update was part of the failed transaction

    monkeypatch.setattr(Store, "_write_table", original)
    store.finish_run("run-1", status="completed", stats={"events": 1, "wall_time_s": 1})  # retry: all, exactly once
    store.close()
    assert [_count(db, t) for t in ("orders", "fills", "round_trips", "equity")] == [1, 1, 1, 1]
    assert summarize(db)["status"] == "completed"


# ---------------------------------------------------------------------------------------------
# interrupted process


def test_killed_process_leaves_consistent_db(tmp_path: Path) -> None:
    db = tmp_path / "bot.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from decimal import Decimal as D
        from bot.core.orders import Fill, Order, Side
        from bot.store import Store
        store = Store({str(db)!r}, batch_size=1000)
        store.start_run("killed", mode="paper", config={{"store": {{"equity_interval_s": 1.0}}}}, git_rev=None,
                        data_files=[], initial_equity=1000.0, symbol="BTC/USDT")
        store.record_order("killed", Order("c-1", ts=1, side=Side.BUY, amount=D("1")))
        store.record_fill("killed", Fill(1, "c-1", Side.BUY, D("10"), D("1"), D("0.25")))
        for i, e in enumerate([1000.0, 990.0, 1010.0, 1005.0]):
            store.record_equity("killed", i, e, 10.0, 1.0, 990.0)
        store.flush()
        # a second batch that never gets flushed
        store.record_fill("killed", Fill(2, "c-1", Side.BUY, D("10"), D("1"), D("9")))
        for i in range(4, 10):
            store.record_equity("killed", i, 2000.0, 10.0, 1.0, 990.0)
        store.record_risk_event("killed", 5, "reject", "min_notional", "")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr

    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT status, ended_at, stats_json FROM runs WHERE run_id='killed'").fetchone() == (
            "running", None, None)
        assert conn.execute("SELECT COUNT(*) FROM fills").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM equity").fetchone() == (4,)
        assert conn.execute("SELECT COUNT(*) FROM risk_events").fetchone() == (0,)

    s = summarize(db)
    assert s["run_id"] == "killed" and s["status"] == "running"
    assert s["fills"] == 1 and s["orders"] == 1 and s["rejects"] == 0
    assert s["fees"] == 0.25 and s["final_equity"] == 1005.0 and s["pnl_net"] == 5.0
    assert s["events"] is None and s["ended_at"] is None and s["events_per_s"] == 0
    assert s["max_drawdown"] == pytest.approx(0.01)
    assert "DID NOT FINISH" in format_summary(s)

    with Store(db) as store:  # the file is usable again: the run can still be closed
        store.finish_run("killed", status="interrupted", stats={"events": 0, "wall_time_s": 0})
    assert summarize(db)["status"] == "interrupted"


# ---------------------------------------------------------------------------------------------
# lookup errors


def test_summarize_missing_db_or_run(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(LookupError, match="missing.db"):
        summarize(missing)
    assert not missing.exists()  # summarize never creates a database

    db = tmp_path / "bot.db"
    Store(db).close()
    with pytest.raises(LookupError, match="no runs"):
        summarize(db)
    with Store(db) as store:
        _start(store, "real-run")
    with pytest.raises(LookupError, match="no-such-run") as info:
        summarize(db, "no-such-run")
    assert str(db) in str(info.value) and "real-run" in str(info.value)

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(LookupError, match="other.db"):
        summarize(other)


# ---------------------------------------------------------------------------------------------
# a big run (how long summarize takes on it is benchmarks/bench_summary.py's figure, not a test's)


@pytest.mark.slow
def test_summary_is_right_on_a_million_equity_rows(tmp_path: Path) -> None:
    db = tmp_path / "big.db"
    n = 1_000_000
    rng = np.random.default_rng(1)
    equity = 10_000.0 * np.cumprod(1.0 + rng.normal(0.0, 1e-4, n))
    with Store(db) as store:
        _start(store, "big")
        with store.db.atomic():  # bulk-load directly: the test is about the read side
            store.db.conn.executemany(
                "INSERT INTO equity (run_id, ts, equity, mid, position_qty, cash) VALUES ('big', ?, ?, 1, 0, 1)",
                zip(range(n), equity.tolist()),
            )
        store.finish_run("big", status="completed", stats={"events": n, "wall_time_s": 10.0})

    s = summarize(db, "big")

    peak = np.maximum.accumulate(equity)
    assert s["max_drawdown"] == pytest.approx(((peak - equity) / peak).max(), abs=1e-6)
    assert s["sharpe"] is None and s["ratios"]["returns"] == 0  # a million rows, 1 ms of market time
    assert s["final_equity"] == pytest.approx(equity[-1])


def test_commit_durability_follows_the_config(tmp_path):
    """WAL + NORMAL by default (survives kill -9); FULL on request (also survives power loss)."""
    normal = Store(tmp_path / "n.db")
    full = Store(tmp_path / "f.db", synchronous="full")
    try:
        assert normal.db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert full.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        normal.close()
        full.close()
    off = Store(tmp_path / "o.db", synchronous="off")
    try:
        assert off.db.execute("PRAGMA synchronous").fetchone()[0] == 0
    finally:
        off.close()
    with pytest.raises(ValueError, match="synchronous"):
        Store(tmp_path / "x.db", synchronous="extra")


def test_manual_checkpoints_leave_the_wal_to_checkpoint(tmp_path):
    """The daemon turns automatic checkpoints off (they would land inside an order's commit) and
    checkpoints from another connection; nothing committed is lost either way."""
    from bot.store.store import checkpoint

    db = tmp_path / "bot.db"
    store = Store(db, batch_size=10_000)
    store.manual_checkpoints()
    assert store.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    _start(store)
    for i in range(3000):
        store.record_equity("run-1", i, 100.0 + i, 1.0, 0.0, 100.0)
    store.flush()
    busy, wal_pages, copied = checkpoint(db)
    assert busy == 0 and wal_pages > 0 and copied == wal_pages
    store.close()
    assert _count(db, "equity") == 3000


@settings(max_examples=500, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False) | st.builds(lambda c, e: Decimal(c).scaleb(e), st.integers(-10**12, 10**12), st.integers(-20, 8)))
def test_quantity_text_is_plain_positional_notation(value):
    """_dec writes Decimals as format(value, "f") does (its shortcut through str() included), and
    the text reads back to the same value."""
    from bot.store.store import _dec

    text = _dec(value)
    assert text == format(value, "f") and "E" not in text and Decimal(text) == value


def test_status_reads_one_commit_while_a_daemon_flushes(tmp_path: Path, monkeypatch) -> None:
    """``bot status`` reads all its rows from one commit: a flush that lands between its SELECTs
    (here: after it read the position, before it reads the equity) is not half in the answer.
    In autocommit each SELECT saw the newest flush, pairing one flush's position with the next
    one's equity, a state the database never held."""
    import bot.store.status as status_mod

    path = tmp_path / "bot.db"
    store = Store(path)
    _start(store, "run-1")
    store.record_position("run-1", 1, D("0.1"), D("30000"), D("0"), D("7000"), D("0"), symbol="BTC/USDT")
    store.record_equity("run-1", 1, 10_000.0, 30_000.0, 0.1, 7000.0)
    store.flush()

    class FlushBeforeEquity:
        """The status connection; the daemon's next flush commits just before the equity SELECT."""

        def __init__(self, conn: sqlite3.Connection):
            self.conn, self.flushed = conn, False

        def execute(self, sql: str, *args):
            if "FROM equity" in sql and not self.flushed:
                self.flushed = True
                store.record_position("run-1", 2, D("0"), D("0"), D("3"), D("10003"), D("0"), symbol="BTC/USDT")
                store.record_equity("run-1", 2, 10_003.0, 30_030.0, 0.0, 10_003.0)
                store.flush()
            return self.conn.execute(sql, *args)

        def __getattr__(self, name: str):
            return getattr(self.conn, name)

    connect = status_mod._connect
    watched: list[FlushBeforeEquity] = []
    monkeypatch.setattr(status_mod, "_connect", lambda p: watched.append(FlushBeforeEquity(connect(p))) or watched[-1])
    status = status_mod.read_status(path, "run-1")
    assert watched[0].flushed, "the interleaved flush did not happen"
    assert (status["position"], status["cash"], status["equity"], status["equity_ts"]) == ("0.1", "7000", 10_000.0, 1)
    # the next reading sees the second flush, whole
    status = status_mod.read_status(path, "run-1")
    assert (status["position"], status["cash"], status["equity"], status["equity_ts"]) == ("0", "10003", 10_003.0, 2)
    store.close()
