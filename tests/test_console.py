"""The console (bot.console): progress bars with an ETA and ``bot run``'s start lines, status line and summary.

Real processes: the commands run with stderr on a pseudo-terminal (``os.openpty``) to see what
a person at a terminal sees, and with pipes to check that scripts and log files get no control
characters and a clean stdout.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from daemon_harness import API_KEY, API_SECRET, daemon_env, write_config
from emulator_helpers import write_recording
from waiting import wait_until

from bot.console import Bar, is_terminal, progress, status_line

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__") and k not in ("COLUMNS", "LINES")}
    env.update(extra)
    return env


class Terminal:
    """A process whose stderr is a 160x40 pseudo-terminal (stdout goes to ``stdout_path``); what
    it draws is collected by a thread, so a test can wait for something to appear."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str], stdout_path: Path):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        self.master = master
        self.data = bytearray()
        self.lock = threading.Lock()
        self.stdout_path = stdout_path
        with open(stdout_path, "wb") as out:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=slave, cwd=cwd, env=env)
        os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the last writer closed the terminal (EIO)
                return
            if not chunk:
                return
            with self.lock:
                self.data += chunk

    def raw(self) -> str:
        with self.lock:
            return self.data.decode("utf-8", "replace")

    def text(self) -> str:
        """What was drawn, escape sequences removed."""
        return ANSI.sub("", self.raw())

    def wait(self, timeout: float = 300) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(timeout=30)
        os.close(self.master)
        return code

    def stdout(self) -> str:
        return self.stdout_path.read_text()


def bot_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.gz"
    write_recording(path, seconds=120, step_ms=20)
    return path


# --------------------------------------------------------------------------- the module
def test_off_a_terminal_nothing_is_drawn_and_plain_lines_are_plain(tmp_path):
    out = tmp_path / "err.txt"
    with open(out, "w") as stream:
        assert not is_terminal(stream)
        with progress(10, "quiet", stream=stream) as bar:
            bar.advance(10)
        assert bar.mode == "off"
        with progress(4, "plain", stream=stream, plain_every_s=0.0) as bar:
            for _ in range(4):
                bar.advance()
        with status_line(str, stream=stream) as line:
            line.set("x")
            assert not line.active
    text = out.read_text()
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("plain   0% 0/4 items") and lines[-1].startswith("plain 100% 4/4 items") and "ETA 0:00:00" in lines[-1]


def test_the_eta_leaves_out_work_done_before_this_run():
    bar = Bar(100.0, "x", "items", sys.stderr, "off", 0.0)
    bar.initial = bar.completed = 50.0
    assert bar.eta_s() is None  # nothing done in this run yet: no rate to go by
    bar.completed = 75.0
    eta = bar.eta_s()
    assert eta is not None and eta >= 0


# --------------------------------------------------------------------------- bot backtest
def test_backtest_on_a_terminal_draws_a_progress_bar_with_an_eta_and_keeps_stdout_json(tmp_path, recording):
    term = Terminal(bot_args("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(recording),
                             "--db", str(tmp_path / "bt.db"), "--json"), tmp_path, clean_env(), tmp_path / "out.json")
    assert term.wait() == 0, term.text()[-2000:]
    drawn = term.text()
    assert "backtest" in drawn and "ETA" in drawn and "100%" in drawn, drawn[-2000:]
    assert re.search(r"\d+(\.\d+)?/\d+(\.\d+)? ?[kM]?B", drawn), "the bar counts the recording's bytes"
    assert "\x1b[" in term.raw(), "on a terminal the bar is animated"
    summary = json.loads(term.stdout())  # stdout holds the JSON result only
    assert summary["status"] == "completed"


def test_backtest_off_a_terminal_has_no_bar_and_no_escape_codes(tmp_path, recording):
    proc = subprocess.run(bot_args("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(recording),
                                   "--db", str(tmp_path / "bt.db"), "--json"), cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "completed"
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr and "ETA" not in proc.stderr


def test_backtest_no_progress_on_a_terminal_draws_nothing(tmp_path, recording):
    term = Terminal(bot_args("backtest", "--config", str(ROOT / "config" / "backtest.toml"), "--data", str(recording),
                             "--db", str(tmp_path / "bt.db"), "--no-progress"), tmp_path, clean_env(), tmp_path / "out.txt")
    assert term.wait() == 0, term.text()[-2000:]
    assert "ETA" not in term.text() and "pnl" in term.stdout()


# --------------------------------------------------------------------------- bot tune
def tune_inputs(tmp_path: Path) -> tuple[Path, Path]:
    text = (ROOT / "config" / "demo.toml").read_text()
    head, sep, sim = text.partition("\n[sim]\n")
    config = tmp_path / "sim.toml"
    config.write_text(head + sep + sim.replace("duration_s = 600.0", "duration_s = 120.0", 1))
    space = tmp_path / "space.toml"
    space.write_text('[search]\nfolds = 2\n[params]\n"strategy.enter_threshold" = [0.4, 0.6]\n')
    return config, space


def test_tune_on_a_terminal_draws_a_progress_bar_with_an_eta(tmp_path):
    config, space = tune_inputs(tmp_path)
    term = Terminal(bot_args("tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(tmp_path / "tune.db"),
                             "--workers", "0", "--json"), tmp_path, clean_env(), tmp_path / "out.json")
    assert term.wait() == 0, term.text()[-2000:]
    drawn = term.text()
    assert "8/8 trials" in drawn and "ETA" in drawn and "100%" in drawn, drawn[-2000:]
    assert json.loads(term.stdout())["complete"] is True


def test_tune_off_a_terminal_writes_plain_progress_lines_and_quiet_none(tmp_path):
    config, space = tune_inputs(tmp_path)
    args = bot_args("tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(tmp_path / "tune.db"), "--workers", "0", "--json")
    proc = subprocess.run(args, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["complete"] is True
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    assert re.search(r"^tune 100% 8/8 trials .*ETA 0:00:00$", proc.stderr, re.M), proc.stderr
    quiet = subprocess.run(args + ["--quiet"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and "trials" not in quiet.stderr, quiet.stderr  # resumed: every trial was kept


# --------------------------------------------------------------------------- bot run
def test_run_on_a_terminal_says_what_it_connected_to_shows_a_status_line_and_prints_the_stored_summary(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=900)
    db = tmp_path / "bot.db"
    token = "console-test-token-4f1d2c"
    with open(config, "a") as fh:
        fh.write("\n[http]\nport = 0\n")
    env = {k: v for k, v in daemon_env().items() if k not in ("COLUMNS", "LINES")}  # the terminal's own size (160 columns)
    term = Terminal(bot_args("run", "--config", str(config), "--db", str(db)), tmp_path,
                    env | {"BOT__HTTP__TOKEN": token}, tmp_path / "daemon.stdout")
    try:
        status = re.compile(r"PAPER \d:\d\d:\d\d  PnL [+-]?[\d,.]+  equity [\d,.]+  no halt  \|  BTC/USDT pos \S+.*book \d+\.\d\ds sound")
        wait_until(lambda: term.proc.poll() is not None or status.search(term.text()), "the status line with position and book age")
        assert term.proc.poll() is None, term.text()[-3000:]
        started = term.stdout()
        run_id = re.search(r"run id:\s+(\S+)", started).group(1)
        assert "bot run: PAPER" in started and emulator.url in started and "BTC/USDT" in started
        assert str(db) in started and re.search(r"http:\s+on, http://127\.0\.0\.1:\d+/", started)
    finally:
        if term.proc.poll() is None:
            term.proc.send_signal(signal.SIGTERM)
        code = term.wait(timeout=120)
    assert code == 0, term.text()[-3000:]
    out = term.stdout()
    for secret in (API_KEY, API_SECRET, token):
        assert secret not in out and secret not in term.text()
    head, _, summary = out.partition(f"bot run: run {run_id} stopped (completed); its summary, as `bot report` shows it:\n")
    assert summary, out[-3000:]
    report = subprocess.run(bot_args("report", "--db", str(db), "--run", run_id), cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert summary == report.stdout  # the same text, figure for figure, as the database's report
    stored = json.loads(subprocess.run(bot_args("report", "--db", str(db), "--run", run_id, "--json"), cwd=tmp_path,
                                       env=clean_env(), capture_output=True, text=True, timeout=120).stdout)
    assert "pnl_net:" in summary and stored["run_id"] == run_id and stored["status"] == "completed"
    assert "SIGTERM" in summary  # the stop reason, as stored
    assert "\x1b[" in term.raw()  # the status line was drawn with control sequences, on the terminal only


def test_run_off_a_terminal_prints_start_and_summary_lines_without_escape_codes(tmp_path, emulator):
    config = write_config(tmp_path, emulator, mode="paper", duration=4)  # stops by itself: run.duration_s
    db = tmp_path / "bot.db"
    proc = subprocess.run(bot_args("run", "--config", str(config), "--db", str(db)), cwd=tmp_path, env=daemon_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\x1b" not in proc.stdout + proc.stderr and "\r" not in proc.stdout + proc.stderr
    run_id = re.search(r"run id:\s+(\S+)", proc.stdout).group(1)
    assert "http:        off" in proc.stdout
    _, _, summary = proc.stdout.partition(f"bot run: run {run_id} stopped (completed); its summary, as `bot report` shows it:\n")
    report = subprocess.run(bot_args("report", "--db", str(db), "--run", run_id), cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=120)
    assert summary == report.stdout and "run.duration_s" in summary


def test_the_endpoint_is_named_without_credentials_and_says_testnet(monkeypatch):
    from bot.cli.run_console import endpoint
    from bot.config.settings import load_settings

    for key in [k for k in os.environ if k.startswith("BOT__")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("BOT__EXCHANGE__REST_URL", "https://user:s3cretPass@example.test:8443/api")
    shown = endpoint(load_settings(ROOT / "config" / "backtest.toml"))
    assert "s3cretPass" not in shown and "user" not in shown and "https://example.test:8443/api" in shown
    monkeypatch.delenv("BOT__EXCHANGE__REST_URL")
    monkeypatch.setenv("BOT__EXCHANGE__SANDBOX", "true")
    assert "testnet" in endpoint(load_settings(ROOT / "config" / "backtest.toml"))
