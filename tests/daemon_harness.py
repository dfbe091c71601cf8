"""Real processes on 127.0.0.1: the exchange emulator and the bot daemon, for daemon tests."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from bot.emulator.process import EmulatorProcess, write_daemon_config
from bot.emulator.process import daemon_env as _daemon_env

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "itestKEY9f3a7c1e5b2d8a64"
API_SECRET = "itestSECRETq8w7e6r5t4y3u2i1o0p9"


START_BALANCES = "USDT=10000,BTC=0"
T = TypeVar("T")


class Emulator(EmulatorProcess):
    """The simulated exchange for daemon tests: one account with the test keys and 10,000 USDT
    (``balances`` replaces that)."""

    def __init__(self, tmp: Path, *extra: str, balances: str = START_BALANCES):
        self.start_balances = {k: Decimal(v) for k, v in (item.split("=") for item in balances.split(","))}
        super().__init__(
            ["--sim", "--api-key", API_KEY, "--api-secret", API_SECRET, "--balances", balances, *extra],
            cwd=tmp, stderr_path=tmp / "emulator.err",
        )


def write_config(tmp: Path, emu: Emulator, *, mode: str = "live", duration: float = 30.0, max_age: float = 2.0, name: str = "bot.toml") -> Path:
    return write_daemon_config(tmp / name, emu.url, mode=mode, duration=duration, max_book_age_s=max_age)


def daemon_env() -> dict[str, str]:
    return _daemon_env(API_KEY, API_SECRET)


def start_daemon(tmp: Path, config: Path, *args: str, tag: str = "daemon", env: dict[str, str] | None = None) -> subprocess.Popen:
    out = open(tmp / f"{tag}.out", "a")
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config), *args],
        stdout=out, stderr=subprocess.STDOUT, cwd=tmp, env=env or daemon_env(), text=True,
    )


def query(db: Path, sql: str, *params: Any) -> list[tuple]:
    """The rows ``sql`` selects; [] while the database or the table does not exist yet.

    A read that meets a busy or locked database (the daemon checkpointing its WAL under load) is
    tried again rather than answered with [], which would read as "no rows" and make a truth
    computed from the rows silently wrong."""
    if not db.exists():
        return []
    for _ in range(200):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            last = exc
        finally:
            conn.close()
        time.sleep(0.05)
    raise AssertionError(f"{db}: still unreadable after 200 tries: {last}")


def one_read(db: Path, work: Callable[[Callable[..., list[tuple]]], T]) -> T:
    """``work(q)``, where every ``q(sql, *params)`` reads the same state of the database: one
    connection, one read transaction (WAL: its first SELECT fixes the snapshot, later commits of
    the daemon stay invisible to it). Separate :func:`query` calls may each see a different
    flush, so figures summed from them can mix two states no reader ever saw together. A busy or
    locked database is tried again, from the start, as in :func:`query`."""
    for _ in range(200):
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            conn.execute("BEGIN")
            return work(lambda sql, *params: conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            last = exc
        finally:
            conn.close()  # ends the read transaction (nothing was written)
        time.sleep(0.05)
    raise AssertionError(f"{db}: still unreadable after 200 tries: {last}")


def _stopped(pid: int) -> bool:
    """The process is stopped by a signal (state ``T`` in /proc/PID/stat, Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "Tt"


@contextmanager
def frozen(proc: subprocess.Popen | None) -> Iterator[None]:
    """The daemon stopped (SIGSTOP) for the duration, continued (SIGCONT) after: its database
    holds still while a test reads it and a CLI command reads it, so the two can be compared
    exactly. The process stays alive (its pid, its last heartbeat), it just writes nothing.

    A transaction it had open stays uncommitted and invisible to readers (WAL), so what they see
    is its last commit. Without it, a live daemon commits an equity point and a heartbeat about
    every second, and a ``bot status`` under load takes longer than that: no window without a
    commit, and equal figures before and after do not mean nothing changed in between."""
    if proc is None or proc.poll() is not None:
        yield
        return
    proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: _stopped(proc.pid), 30, f"the daemon (pid {proc.pid}) to stop")
        yield
    finally:
        proc.send_signal(signal.SIGCONT)


class CommitWatch:
    """Tells whether anything at all was committed to ``db`` since :meth:`mark`.

    ``PRAGMA data_version`` of one connection changes with every commit another connection makes
    (a WAL checkpoint, which changes no content, leaves it alone). Comparing figures read before
    and after is not the same: the rows can change and come back to the same figures (an equity
    point, then another at the earlier mid) while something read in between saw the middle state.
    """

    def __init__(self, db: Path):
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        self.version: int | None = None

    def _read(self) -> int:
        for _ in range(200):
            try:
                return self.conn.execute("pragma data_version").fetchone()[0]
            except sqlite3.OperationalError as exc:
                last = exc
            time.sleep(0.05)
        raise AssertionError(f"data_version still unreadable after 200 tries: {last}")

    def mark(self) -> None:
        self.version = self._read()

    def unchanged(self) -> bool:
        """No commit since :meth:`mark`: whatever was read in between saw one and the same state."""
        return self._read() == self.version

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "CommitWatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def count(db: Path, sql: str, *params: Any) -> int:
    """The single number ``sql`` selects; 0 while the database or its tables do not exist yet."""
    rows = query(db, sql, *params)
    return rows[0][0] if rows else 0


def filled(db: Path) -> int:
    """Orders the database holds as filled."""
    return count(db, "select count(*) from orders where status = 'filled'")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def db_balances(db: Path) -> dict[str, Decimal]:
    """What the fills in the database say each asset's balance moved by: the traded amounts, and
    every fee in the asset it was charged in."""
    out: dict[str, Decimal] = {}
    has_currency = any(name == "fee_currency" for _, name, *_ in query(db, "pragma table_info(fills)"))
    currency_col = "f.fee_currency" if has_currency else "NULL"  # a database from before fees had currencies: quote
    for symbol, side, price, amount, fee, currency in query(
        db, f"select r.symbol, f.side, f.price, f.amount, f.fee, {currency_col} from fills f join runs r using (run_id)"
    ):
        base, quote = symbol.split("/")
        sign = 1 if side == "buy" else -1
        out[base] = out.get(base, Decimal(0)) + sign * Decimal(amount)
        out[quote] = out.get(quote, Decimal(0)) - sign * Decimal(price) * Decimal(amount)
        fee_asset = currency or quote
        out[fee_asset] = out.get(fee_asset, Decimal(0)) - Decimal(fee)
    return out


def exchange_moves(emu_state: dict, start: dict[str, Decimal]) -> dict[str, Decimal]:
    """How far each balance on the exchange is from where the account started (free + locked)."""
    assets = set(start) | set(emu_state["balances"])
    out = {}
    for asset in assets:
        bal = emu_state["balances"].get(asset, {"free": "0", "locked": "0"})
        out[asset] = Decimal(bal["free"]) + Decimal(bal["locked"]) - start.get(asset, Decimal(0))
    return out


def check_books_match(db: Path, emu_state: dict, start: dict[str, Decimal] | None = None) -> dict[str, int]:
    """Zero lost, zero duplicated orders; fills and every balance agree with the exchange to the unit."""
    exchange_orders = {o["clientOrderId"]: o for o in emu_state["orders"]}
    assert len(exchange_orders) == len(emu_state["orders"]), "two exchange orders share a client order id"
    db_orders = {cid: (status, filled) for cid, status, filled in query(db, "select client_order_id, status, filled from orders")}
    lost = set(exchange_orders) - set(db_orders)
    assert not lost, f"orders on the exchange that the database does not know: {sorted(lost)}"
    for cid, (status, filled) in db_orders.items():
        ex = exchange_orders.get(cid)
        if ex is None:
            assert status == "rejected", f"{cid} is {status} in the database but unknown to the exchange"
            continue
        assert Decimal(filled) == Decimal(ex["executedQty"]), f"{cid}: filled {filled} != exchange {ex['executedQty']}"
        assert status in ("filled", "canceled", "expired", "rejected"), f"{cid} left {status}"
    trade_ids = [t for (t,) in query(db, "select trade_id from fills")]
    assert len(trade_ids) == len(set(trade_ids)), "a fill was booked twice"
    assert len(trade_ids) == len(emu_state["trades"]), "fills in the database differ from the exchange's trades"
    booked = db_balances(db)
    moved = exchange_moves(emu_state, start or {"USDT": Decimal(10000), "BTC": Decimal(0)})
    for asset in set(booked) | {a for a, v in moved.items() if v}:
        assert booked.get(asset, Decimal(0)) == moved.get(asset, Decimal(0)), (
            f"{asset}: the database's fills say {booked.get(asset, 0)}, the exchange moved {moved.get(asset, 0)}"
        )
    return {"orders": len(db_orders), "exchange_orders": len(exchange_orders), "fills": len(trade_ids)}


def stop(proc: subprocess.Popen, emu: EmulatorProcess | None = None, timeout: float = 120) -> int:
    """Clear the emulator's faults (if given), SIGTERM the daemon if it still runs, return its exit code."""
    if emu is not None:
        emu.faults("")
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def run_until(tmp: Path, config: Path, predicate: Callable[[], bool], what: str, *args: str, timeout: float = 120, tag: str = "daemon",
              env: dict[str, str] | None = None) -> None:
    """Start the daemon, wait until ``predicate()`` holds (failing at once if the daemon exits),
    then stop it with SIGTERM and require a clean exit 0: the test ends when what it checks has
    happened, not after a fixed duration."""
    proc = start_daemon(tmp, config, *args, tag=tag, env=env)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {proc.returncode} before {what}: {(tmp / f'{tag}.out').read_text()[-3000:]}")
            return predicate()

        wait_for(ready, timeout, what)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, (tmp / f"{tag}.out").read_text()[-3000:]


def kill_restart_rounds(tmp: Path, make_config: Callable[[str], Path], rounds: int, seed: int) -> None:
    """Start the live daemon, ``kill -9`` it at a random moment after it sent an order, ``rounds``
    times, then start it once more until it has reconciled every earlier order (``make_config(name)``
    writes the config file ``name``)."""
    import random

    rng = random.Random(seed)
    db = tmp / "bot.db"
    config = make_config("bot.toml")
    for n in range(rounds):
        proc = start_daemon(tmp, config, "--live")

        def trading() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited with {proc.returncode}: {(tmp / 'daemon.out').read_text()[-3000:]}")
            ids = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]
            return len(ids) == n + 1 and count(db, "select count(*) from orders where run_id = ?", ids[-1]) >= 1

        wait_for(trading, 120, "the restarted daemon to send an order")
        time.sleep(rng.uniform(0.0, 3.0))  # the moment of the kill is the randomized input, not a wait for anything
        proc.kill()  # SIGKILL: no cleanup at all
        proc.wait(10)
    final = make_config("final.toml")

    def reconciled() -> bool:
        ids = [r for (r,) in query(db, "select run_id from runs order by started_at, rowid")]
        # the last start has reconciled (it writes its heartbeat only once trading) and nothing is left open
        return len(ids) == rounds + 1 and bool(query(db, "select 1 from heartbeat where run_id = ?", ids[-1])) and count(
            db, "select count(*) from orders where run_id != ? and status in ('new', 'partially_filled')", ids[-1]) == 0

    run_until(tmp, final, reconciled, "the final start to reconcile every earlier order", "--live", tag="final")


def set_keys(text: str, section: str, lines: str) -> str:
    """Set ``key = value`` lines in ``[section]`` of a TOML text (replacing a key it already has)."""
    for line in filter(None, lines.splitlines()):
        key = line.split("=")[0].strip()
        head = text.index(f"[{section}]\n") + len(section) + 3
        end = text.find("\n[", head)
        end = len(text) if end < 0 else end + 1
        body = [ln for ln in text[head:end].splitlines() if ln.split("=")[0].strip() != key]
        text = text[:head] + "\n".join([line, *body]) + "\n" + text[end:]
    return text
