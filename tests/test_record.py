"""``bot record`` end to end: a real recorder process, a real emulator, the real ccxt client.

A minute of the emulator's market recorded, stopped with SIGINT, then inspected and backtested
from what was written; a websocket drop leaves a gap line and the recording goes on; a USD-M
recording holds mark prices and a liquidation; SIGTERM closes every file of several
instruments; kill -9 leaves a readable prefix; bad input is one line and exit 1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.core.events import BookInvalidated, BookSnapshot, Liquidation, MarkPrice, Trade
from bot.data.binance import ReaderStats
from bot.data.readers.own import read
from daemon_harness import API_KEY, API_SECRET, Emulator, daemon_env
from waiting import HANG_GUARD_S, wait_until

RECORD_CONFIG = """
[run]
log_dir = "{logs}"
console_log_level = "warning"

[exchange]
rest_url = "{url}"
timeout_ms = 3000
retry_base_delay_s = 0.1
retry_max_delay_s = 0.5
retry_attempts = {attempts}
"""

USDM_MARKET = '\n[market]\nsymbol = "BTC/USDT:USDT"\ntype = "linear"\ntick_size = "0.1"\nlot_size = "0.001"\nmin_qty = "0.001"\n'
TWO_MARKETS = ('\n[[markets]]\nsymbol = "BTC/USDT"\ntick_size = "0.01"\nlot_size = "0.00001"\n'
               '\n[[markets]]\nsymbol = "ETH/USDT"\ntick_size = "0.01"\nlot_size = "0.0001"\n')


def poll(predicate, what: str, timeout: float = HANG_GUARD_S):  # type: ignore[no-untyped-def]
    """wait_until, looking four times a second: most predicates here decompress the files written so
    far, which at wait_until's 50 a second would take a core of a machine the recorder needs."""
    return wait_until(predicate, what, timeout=timeout, interval=0.25)


def write_config(tmp: Path, url: str, extra: str = "", attempts: int = 6, name: str = "record.toml") -> Path:
    path = tmp / name
    path.write_text(RECORD_CONFIG.format(logs=tmp / "logs", url=url, attempts=attempts) + extra)
    return path


def bot(tmp: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=tmp, env=daemon_env(), capture_output=True, text=True, timeout=timeout)


class Recording:
    """A ``bot record`` process writing into ``tmp/out``."""

    def __init__(self, tmp: Path, config: Path, *args: str):
        self.tmp, self.out = tmp, tmp / "out"
        self.stdout, self.stderr = tmp / "record.out", tmp / "record.err"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "record", "--config", str(config), "--out", str(self.out), *args],
            stdout=self.stdout.open("w"), stderr=self.stderr.open("w"), cwd=tmp, env=daemon_env(), text=True)

    def files(self, prefix: str = "") -> list[Path]:
        return sorted(self.out.glob(f"{prefix}*.jsonl.gz")) if self.out.is_dir() else []

    def read(self, prefix: str = "") -> tuple[list, ReaderStats]:
        """What the files hold so far (the writer flushes every second: a live file reads up to there)."""
        if self.proc.poll() is not None and self.proc.returncode != 0 and self.proc.returncode != -signal.SIGKILL:
            pytest.fail(f"bot record exited with {self.proc.returncode}: {self.stderr.read_text()[-2000:]}")
        files = self.files(prefix)
        if not files:
            return [], ReaderStats()
        stats = ReaderStats()
        return list(read(files, stats)), stats

    def count(self, kind: type, prefix: str = "") -> int:
        return sum(isinstance(e, kind) for e in self.read(prefix)[0])

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def recording():
    made: list[Recording] = []

    def start(tmp: Path, config: Path, *args: str) -> Recording:
        rec = Recording(tmp, config, *args)
        made.append(rec)
        return rec

    yield start
    for rec in made:
        rec.kill()


def inspect_json(capsys, files: list[Path]) -> dict:
    """``bot inspect --json`` of ``files`` (in this process: it only reads)."""
    from bot.cli.main import main

    capsys.readouterr()
    code = main(["inspect", *map(str, files), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


# --------------------------------------------------------------------------- the Done-when
def test_a_minute_recorded_then_inspected_and_backtested(tmp_path, capsys, emulator, recording):
    config = write_config(tmp_path, emulator.url)
    rec = recording(tmp_path, config, "--status-interval", "5")
    first = poll(lambda: (rec.read()[0] or [None])[0], "the first recorded event")
    # a minute of market: from the first event written until the recorder is told to stop
    poll(lambda: time.time_ns() - first.ts_local >= 60e9 and rec.read()[1].last_ts - first.ts_local >= 59e9,
               "a minute of recorded events", timeout=180)
    assert rec.stop(signal.SIGINT) == 0, rec.stderr.read_text()[-2000:]
    (summary,) = rec.stdout.read_text().splitlines()
    files = rec.files()
    assert len(files) in (1, 2)  # two when the minute crossed the top of a UTC hour
    assert summary.startswith("recorded ") and all(f.name in summary for f in files)
    err = rec.stderr.read_text()
    assert "Traceback" not in err
    status = [line for line in err.splitlines() if line.startswith("recording ")]
    assert len(status) >= 10 and "BTCUSDT: " in status[-1] and " events, " in status[-1]

    report = inspect_json(capsys, files)
    assert report["format"] == "bot-recording" and report["symbol"] == "BTCUSDT" and report["market_type"] == "spot"
    assert report["exchange"] == "binance"
    assert report["events"] > 300 and report["counts"]["snapshot"] > 300 and report["counts"]["trade"] > 0
    assert report["first_ts"] < report["last_ts"] and report["last_ts"] - report["first_ts"] >= 59e9
    assert report["gaps"] == report["counts"]["invalidated"] and report["crossed_books"] == 0
    assert report["problems"] == [] and report["malformed"] == report["out_of_order"] == 0  # closed with its end marker
    assert str(report["events"]) in summary

    done = bot(tmp_path, "backtest", "--config", str(config), "--data", *map(str, files), "--db", str(tmp_path / "bt.db"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["events"] == report["events"]


# --------------------------------------------------------------------------- gaps
def test_a_websocket_drop_a_sequence_break_and_a_bad_frame_each_leave_a_marked_gap(tmp_path, capsys, emulator, recording):
    rec = recording(tmp_path, write_config(tmp_path, emulator.url))
    poll(lambda: rec.count(BookSnapshot) >= 20, "20 book updates recorded")
    assert emulator.admin("/admin/ws_drop", "")["dropped"] >= 1

    def resynced(after: int) -> Callable[[], int]:
        """Gap lines so far, once more than ``after`` and 20 book updates after the last."""
        def check() -> int:
            events, _ = rec.read()
            gaps = [i for i, e in enumerate(events) if isinstance(e, BookInvalidated)]
            return len(gaps) if len(gaps) > after and sum(isinstance(e, BookSnapshot) for e in events[gaps[-1]:]) >= 20 else 0
        return check

    dropped = poll(resynced(0), "a gap line after the drop, then 20 book updates")
    # a diff message the exchange never sent (a broken update-id chain): ccxt's resync is marked too
    emulator.admin("/admin/gap", "")
    broken = poll(resynced(dropped), "a gap line after the sequence break, then 20 book updates")
    # a frame ccxt's reader cannot decode ends its read loop silently: the recorder resubscribes and marks it
    assert emulator.ws_inject({"kind": "raw", "text": '{"stream":"btcusdt@depth@100ms","data":'}) >= 1
    poll(resynced(broken), "a gap line after an undecodable frame, then 20 book updates")
    assert rec.stop(signal.SIGTERM) == 0, rec.stderr.read_text()[-2000:]
    events, stats = rec.read()
    gaps = [e for e in events if isinstance(e, BookInvalidated)]
    assert "websocket" in gaps[0].reason and stats.gaps == len(gaps) >= 3 and stats.problems == []
    assert any(g.reason.startswith("websocket broken: JSONDecodeError") for g in gaps)  # the loop's exception handler
    for gap in gaps:  # each resynced by a snapshot
        after = events[events.index(gap) + 1:]
        assert isinstance(next(e for e in after if not isinstance(e, (Trade, BookInvalidated))), BookSnapshot)
    report = inspect_json(capsys, rec.files())
    assert report["gaps"] == report["counts"]["invalidated"] == len(gaps) and report["problems"] == []
    assert f"({len(gaps)} gaps)" in rec.stdout.read_text()


def test_a_book_that_goes_silent_is_marked_stale(tmp_path, recording):
    """A replayed recording ends and the book freezes: no error, no update; after
    ``risk.max_book_age_s`` the recorder's watchdog marks the gap (and the feed resubscribes)."""
    from bot.emulator.process import EmulatorProcess
    from emulator_helpers import write_recording

    data = tmp_path / "short.gz"
    write_recording(data, seconds=20.0)  # long enough for the recorder to start on a loaded machine
    emu = EmulatorProcess(["--data", str(data)], cwd=tmp_path, stderr_path=tmp_path / "emulator.err")
    try:
        rec = recording(tmp_path, write_config(tmp_path, emu.url, "\n[risk]\nmax_book_age_s = 1.0\n"))
        poll(lambda: rec.count(BookSnapshot) >= 5, "5 book updates of the replay recorded")
        stale = poll(lambda: [e for e in rec.read()[0] if isinstance(e, BookInvalidated) and e.reason.startswith("stale book")],
                           "the stale book marked once the replay ended")
        assert rec.stop(signal.SIGINT) == 0, rec.stderr.read_text()[-2000:]
    finally:
        emu.stop()
    events, stats = rec.read()
    last_book = max(e.ts_local for e in events if isinstance(e, BookSnapshot) and e.ts_local < stale[0].ts_local)
    assert stale[0].ts_local - last_book >= 1e9  # only after max_book_age_s without an update
    assert stats.problems == []


# --------------------------------------------------------------------------- perpetuals
def test_a_usdm_recording_holds_mark_prices_and_a_liquidation(tmp_path, capsys, recording):
    import ccxt

    from bot.emulator.client import futures_ccxt_config

    emu = Emulator(tmp_path, "--market", "usdm", balances="USDT=10000")
    try:
        rec = recording(tmp_path, write_config(tmp_path, emu.url, USDM_MARKET))
        poll(lambda: rec.count(MarkPrice) >= 2, "two mark prices recorded")
        poll(lambda: "btcusdt@forceOrder" in emu.state()["ws"]["streams"], "the recorder's forceOrder subscription")
        # the emulator's liquidations are its account's: open an isolated long, move the mark below its liquidation price
        ex = ccxt.binanceusdm(futures_ccxt_config(emu.url, emu.ws_url, API_KEY, API_SECRET, "usdm"))
        ex.load_markets()
        ex.set_leverage(20, "BTC/USDT:USDT")
        ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        (pos,) = ex.fetch_positions(["BTC/USDT:USDT"])
        liq_price = float(pos["info"]["liquidationPrice"])
        assert emu.mark(price=liq_price - 5)["liquidations"]
        poll(lambda: rec.count(Liquidation) >= 1, "the liquidation recorded")
        assert rec.stop(signal.SIGINT) == 0, rec.stderr.read_text()[-2000:]
    finally:
        emu.stop()
    events, stats = rec.read()
    marks = [e for e in events if isinstance(e, MarkPrice)]
    (liq,) = [e for e in events if isinstance(e, Liquidation)]
    assert stats.market_type == "linear" and stats.symbol == "BTCUSDT" and stats.problems == []
    assert all(m.mark_price > 0 and m.ts_exchange > 0 and m.next_funding_ts > 0 for m in marks)
    assert liq.side == "sell" and liq.size == 0.01 and liq.price > 0
    report = inspect_json(capsys, rec.files())
    assert report["counts"]["mark_price"] == len(marks) and report["counts"]["liquidation"] == 1
    assert report["market_type"] == "linear"


# --------------------------------------------------------------------------- stopping
def test_sigterm_closes_every_file_of_several_instruments(tmp_path, recording):
    emu = Emulator(tmp_path, "--symbol", "BTC/USDT,ETH/USDT", balances="USDT=10000,BTC=0,ETH=0")
    try:
        rec = recording(tmp_path, write_config(tmp_path, emu.url, TWO_MARKETS))
        poll(lambda: rec.count(BookSnapshot, "BTCUSDT") >= 5 and rec.count(BookSnapshot, "ETHUSDT") >= 5,
                   "book updates of both instruments")
        assert rec.stop(signal.SIGTERM) == 0, rec.stderr.read_text()[-2000:]
    finally:
        emu.stop()
    for prefix in ("BTCUSDT", "ETHUSDT"):
        files = rec.files(prefix)
        assert files, f"no file of {prefix}"
        _, stats = rec.read(prefix)
        assert stats.symbol == prefix and stats.problems == [], stats.problems  # every file has its end marker and trailer
    assert "of 2 instrument(s)" in rec.stdout.read_text()


def test_kill_9_leaves_a_readable_prefix(tmp_path, capsys, emulator, recording):
    rec = recording(tmp_path, write_config(tmp_path, emulator.url))
    poll(lambda: rec.count(BookSnapshot) >= 20, "20 book updates recorded")
    rec.kill()
    events, stats = rec.read()
    assert len(events) >= 20 and stats.malformed == 0
    assert any("cut off" in p for p in stats.problems)
    report = inspect_json(capsys, rec.files())
    assert report["format"] == "bot-recording" and report["events"] == len(events) and report["first_ts"] < report["last_ts"]


# --------------------------------------------------------------------------- bad input
def _one_error_line(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 1 with one ``error:`` line (a config error lists its keys below it, as for ``bot run``)."""
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    message = "\n".join(line for line in lines[errors[0]:] if line == lines[errors[0]] or line.startswith("  "))
    for needle in needles:
        assert needle in message, message


def test_bad_input_is_one_line_and_exit_1(tmp_path, emulator, capsys):
    from bot.cli.main import main

    def in_process(*args: str) -> subprocess.CompletedProcess:  # refused before anything starts: no need for a process
        capsys.readouterr()
        code = main(["record", *args])
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    out = tmp_path / "out"
    _one_error_line(in_process("--config", str(tmp_path / "missing.toml"), "--out", str(out)), "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text('[exchange]\nbook_levels = 1\n')
    _one_error_line(in_process("--config", str(bad), "--out", str(out)), "book_levels")
    config = write_config(tmp_path, emulator.url)
    afile = tmp_path / "a-file"
    afile.write_text("")
    _one_error_line(in_process("--config", str(config), "--out", str(afile)), "not a directory")
    _one_error_line(in_process("--config", str(config), "--out", str(afile / "sub")), "cannot write there")
    _one_error_line(in_process("--config", str(config), "--out", str(out), "--duration", "0"), "--duration")
    unlisted = write_config(tmp_path, emulator.url, '\n[market]\nsymbol = "DOGE/USDT"\n', name="doge.toml")
    _one_error_line(bot(tmp_path, "record", "--config", str(unlisted), "--out", str(out)), "DOGE/USDT", "not listed")
    # nothing listens on the emulator's port once it is stopped
    url = emulator.url
    emulator.stop()
    gone = write_config(tmp_path, url, attempts=2, name="gone.toml")
    _one_error_line(bot(tmp_path, "record", "--config", str(gone), "--out", str(out)), "cannot reach the exchange")
    assert not list(out.glob("*.jsonl.gz"))


def test_forced_orders_that_woke_nobody_are_taken_from_ccxts_cache():
    """ccxt resolves a watch with the one message that woke it; the next ones before the next
    watch are only in its cache: the recorder reads them from there, once each, of its symbol only."""
    from ccxt.async_support.base.ws.cache import ArrayCache

    from bot.cli.recorder import _new_since

    cache = ArrayCache(3)
    a, b, other = {"symbol": "X", "n": 1}, {"symbol": "X", "n": 2}, {"symbol": "Y", "n": 3}
    for item in (a, other, b):
        cache.append(item)
    fresh, last = _new_since(cache, None, "X", [a])
    assert fresh == [a, b] and last is b
    assert _new_since(cache, last, "X", [b]) == ([], b)
    c, d = {"symbol": "X", "n": 4}, {"symbol": "X", "n": 5}
    cache.append(c)
    cache.append(d)  # b and more fell out of the bounded cache: everything left is newer than b
    assert _new_since(cache, b, "X", [c]) == ([c, d], d)
    assert _new_since(None, None, "X", [c]) == ([c], c)  # no cache: the answer itself


def test_status_line_is_the_consoles_on_a_terminal_and_plain_otherwise(tmp_path, capsys):
    import io

    from bot.cli.record import _plain_status, status_text
    from bot.cli.recorder import Channel, Recorder
    from bot.config.settings import Settings
    from bot.console import human_size, status_line
    from bot.core.market import Market
    from bot.data.own_format import Header, RecordingWriter

    rec = Recorder(Settings(), tmp_path)
    market = Market(symbol="BTC/USDT", tick_size=0.01, lot_size=0.001, min_qty=0, min_notional=0, exchange_symbol="BTCUSDT")
    writer = RecordingWriter(tmp_path, Header("binance", "BTC/USDT", "BTCUSDT", "spot"))
    rec.channels.append(Channel(client=None, market=market, writer=writer))  # type: ignore[arg-type]
    now = time.time_ns()
    writer.write(BookSnapshot(now - 2_000_000_000, 0, ((100.0, 1.0),), ((100.1, 1.0),), 1))
    writer.write(BookInvalidated(now - 1_500_000_000, 0, "test"))
    rec.channels[0].last_event_ns = now - 1_500_000_000
    line = status_text(rec, now)
    assert "BTCUSDT: 2 events, 1 gaps, " in line and writer.files[0].name in line and "last 1.5s ago" in line
    assert f", {human_size(writer.bytes_written)}, " in line  # bot.console's sizes (1000-based), as every command shows them
    # on a terminal bot.console's status line draws that text (its refresh thread renders it)
    drawn = status_line(status_text, force=True, stream=io.StringIO())
    drawn.set(rec)
    assert drawn.text().startswith("recording ") and "BTCUSDT: 2 events, 1 gaps, " in drawn.text()
    _plain_status(rec)  # off a terminal: a plain line per interval, no control characters
    err = capsys.readouterr().err
    assert err.startswith("recording ") and "\r" not in err and "\x1b" not in err and err.count("\n") == 1
    writer.close()


def test_the_command_line_parser_does_not_load_the_recorder():
    """Every ``bot`` command builds the whole parser: ``record`` must not make them all import ccxt
    (seconds on a busy machine, for ``bot status`` as much as for ``bot record``)."""
    code = "import sys, bot.cli.main as m; m.build_parser(); print(sorted(n for n in ('ccxt', 'bot.cli.recorder') if n in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_a_file_that_cannot_be_written_ends_the_recorder_naming_it(tmp_path):
    """The writer thread (bot.engine.recording) fails the write; the recorder's watch turns that
    into its one error line, naming where it could not write and why."""
    from bot.cli.recorder import Recorder
    from bot.config.settings import Settings
    from bot.core.market import Market
    from bot.engine.recording import RecordingThread

    out = tmp_path / "out"
    out.write_text("")  # a file where the recording's directory should be
    rec = Recorder(Settings(), out)
    rec.recording = RecordingThread(out, "bot record")
    market = Market(symbol="BTC/USDT", tick_size=0.01, lot_size=0.001, min_qty=0, min_notional=0, exchange_symbol="BTCUSDT")
    rec.recording.add("binance", market, out)
    rec.recording.write(0, BookSnapshot(time.time_ns(), 0, ((100.0, 1.0),), ((100.1, 1.0),), 1))
    assert rec.recording.sync(), "the writer thread did not take the event"
    rec._check_recording()
    rec.recording.close()
    assert rec.error is not None and rec.error.startswith(f"{out}: cannot write the recording (") and rec.stop_reason == rec.error, rec.error


def test_on_a_terminal_the_consoles_status_line_is_drawn(tmp_path, emulator):
    from test_console import Terminal

    config = write_config(tmp_path, emulator.url)
    term = Terminal([sys.executable, "-m", "bot", "record", "--config", str(config), "--out", str(tmp_path / "out"), "--duration", "4"],
                    tmp_path, daemon_env(), tmp_path / "stdout.txt")
    assert term.wait(120) == 0, term.text()[-2000:]
    drawn = term.text()
    assert "recording " in drawn and "BTCUSDT: " in drawn and " events, " in drawn, drawn[-2000:]
    assert (tmp_path / "stdout.txt").read_text().startswith("recorded ")  # the summary on stdout, never the status line
