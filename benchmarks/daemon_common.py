"""The exchange emulator as a subprocess and a daemon config pointing at it (benchmarks 3 and 4)."""

from __future__ import annotations

from pathlib import Path

from common import ROOT

from bot.emulator.process import EmulatorProcess

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


class Emulator(EmulatorProcess):
    """``python -m bot emulator --sim`` on a free port with the benchmark account; stopped with SIGTERM."""

    def __init__(self, workdir: Path, *extra: str):
        super().__init__(
            ["--sim", "--api-key", BENCH_KEY, "--api-secret", BENCH_SECRET, "--balances", "USDT=100000,BTC=0", "--log-level", "warning", *extra],
            cwd=workdir, stderr_path=workdir / "emulator.err",
        )


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
