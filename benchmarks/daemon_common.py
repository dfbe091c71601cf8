"""The exchange emulator as a subprocess and a daemon config pointing at it (benchmarks 3 and 4)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT

# credentials of the local emulator's test account, made up for the benchmark (not real keys)
BENCH_KEY = "benchKEY0a1b2c3d4e5f6a7b8c9d"
BENCH_SECRET = "benchSECRET9f8e7d6c5b4a3f2e1d0"

CONFIG = """
[run]
mode = "{mode}"
db = "{db}"
log_dir = "{logs}"
log_level = "info"
console_log_level = "warning"
duration_s = {duration}
cancel_open_orders_on_exit = true

[signal]
ofi_scale = 0.3

[strategy]
enter_threshold = 0.3
exit_threshold = 0.0
cooldown_s = 0.2
max_holding_s = 1.5
allow_short = false

[risk]
max_book_age_s = 5.0
max_order_notional = 500.0
daily_loss_limit = 0.5
max_drawdown = 0.5

[exchange]
rest_url = "{url}"
timeout_ms = 3000
rest_poll_interval_s = 0.2
retry_base_delay_s = 0.1
retry_max_delay_s = 1.0
retry_attempts = 6
"""


class Emulator:
    """``python -m bot emulator --sim`` on a free port; stopped with SIGTERM."""

    def __init__(self, workdir: Path, *extra: str):
        self.err = open(workdir / "emulator.err", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "emulator", "--sim", "--port", "0", "--api-key", BENCH_KEY, "--api-secret", BENCH_SECRET,
             "--balances", "USDT=100000,BTC=0", "--log-level", "warning", *extra],
            stdout=subprocess.PIPE, stderr=self.err, text=True, cwd=workdir,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("EMULATOR READY"):
            self.stop()
            raise RuntimeError(f"emulator did not start: {line!r} {(workdir / 'emulator.err').read_text()[-2000:]}")
        _, _, self.url, self.ws_url = line.split()

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/admin/state", timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.err.close()


def write_config(workdir: Path, url: str, *, mode: str, duration: float) -> Path:
    path = workdir / "bench.toml"
    path.write_text(CONFIG.format(mode=mode, db=workdir / "bot.db", logs=workdir / "logs", duration=duration, url=url))
    return path


def daemon_env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    env["BOT__EXCHANGE__API_KEY"] = BENCH_KEY
    env["BOT__EXCHANGE__API_SECRET"] = BENCH_SECRET
    env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
