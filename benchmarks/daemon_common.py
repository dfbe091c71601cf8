"""The exchange emulator as a subprocess and a daemon config pointing at it (benchmarks 3 and 4)."""

from __future__ import annotations

from pathlib import Path

from common import ROOT

from bot.emulator.process import EmulatorProcess, write_daemon_config
from bot.emulator.process import daemon_env as _daemon_env

# credentials of the local emulator's test account, made up for the benchmark (not real keys)
BENCH_KEY = "benchKEY0a1b2c3d4e5f6a7b8c9d"
BENCH_SECRET = "benchSECRET9f8e7d6c5b4a3f2e1d0"


class Emulator(EmulatorProcess):
    """``python -m bot emulator --sim`` on a free port with the benchmark account; stopped with SIGTERM."""

    def __init__(self, workdir: Path, *extra: str):
        super().__init__(
            ["--sim", "--api-key", BENCH_KEY, "--api-secret", BENCH_SECRET, "--balances", "USDT=100000,BTC=0", "--log-level", "warning", *extra],
            cwd=workdir, stderr_path=workdir / "emulator.err",
        )


def write_config(workdir: Path, url: str, *, mode: str, duration: float) -> Path:
    return write_daemon_config(workdir / "bench.toml", url, mode=mode, duration=duration, max_book_age_s=5.0)


def daemon_env() -> dict[str, str]:
    return _daemon_env(BENCH_KEY, BENCH_SECRET, pythonpath=str(ROOT))
