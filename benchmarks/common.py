"""Shared helpers of the benchmarks: machine description, timing statistics, memory, results.

Every benchmark prints the machine it ran on and writes its figures as JSON (``--json FILE``)
so that ``run_all.py`` can gather them into one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data" / "hftbacktest-binance" / "spot"
BTC_FILES = [DATA / "btcusdt_20240808.gz", DATA / "btcusdt_20240809.gz"]


def real_data_present() -> bool:
    return all(f.exists() for f in BTC_FILES)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU, cores, Python and library versions, and the load when asked (the machine may be shared)."""
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        info["numpy"] = None
    try:
        import numba

        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    try:
        info["loadavg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    info["host_speed_ref_s"] = host_speed_reference()
    return info


def host_speed_reference(loops: int = 1_000_000, repeat: int = 3) -> float:
    """Seconds for a fixed pure-Python loop (best of ``repeat``): how fast this host runs Python
    right now. On a shared virtual machine the same code runs up to twice slower at busy times;
    compare figures of different runs only together with this number (smaller is faster)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        s = 0
        for i in range(loops):
            s += i * i % 7
        best = min(best, time.perf_counter() - t)
    return round(best, 4)


def print_machine(title: str) -> dict[str, Any]:
    m = machine()
    print(f"== {title}")
    print(f"   machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
          f"load average (1 min) {m.get('loadavg_1m')}, host speed reference {m['host_speed_ref_s']} s (1M-iteration Python loop, smaller is faster)")
    return m


def stream_arguments(description: str) -> argparse.ArgumentParser:
    """The options benchmarks 1 and 2 share: stream size, repeats, seed, recording cache, JSON out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="1M synthetic events, fewer repeats")
    p.add_argument("--events", type=int, default=None, help="synthetic events (default 10M, quick 1M)")
    p.add_argument("--repeat", type=int, default=None, help="timed runs per figure (default 5, quick 3)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--cache", default=None, help="cache dir for the encoded recording (default: $BOT_FAST_CACHE or <tmp>)")
    p.add_argument("--json", default=None, help="write the results to this file")
    return p


def timed(fn: Callable[[], Any], repeat: int, warmup: int = 0) -> tuple[list[float], Any]:
    """Wall times (perf_counter) of ``repeat`` calls after ``warmup`` untimed ones; last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def rate_stats(n: int, times: list[float]) -> dict[str, Any]:
    """Events/s at the best and the median of the timed runs (best = least disturbed by others)."""
    best = min(times)
    med = statistics.median(times)
    return {
        "runs": len(times),
        "best_s": round(best, 6),
        "median_s": round(med, 6),
        "best_events_per_s": round(n / best),
        "median_events_per_s": round(n / med),
    }


def maxrss_mb() -> float:
    """Peak resident set size of this process so far (``resource.getrusage``, Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb(pid: int | None = None) -> float | None:
    """Current resident set size from /proc (None when not available)."""
    try:
        for line in Path(f"/proc/{pid or 'self'}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f}/s"


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))


def quiet_logging(log_dir: Path, level: str = "info") -> None:
    """Configure the bot's logging as the CLI does (JSON file, console warnings only)."""
    from bot.log import configure

    configure(log_dir, level, "error")


@dataclass
class Measured:
    """One child process, as :func:`run_measured` saw it."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    peak_rss_mib: float

    def last_error_line(self) -> str:
        """The last line the process wrote to stderr (else stdout): what a failure says."""
        text = self.stderr.strip() or self.stdout.strip()
        return text.splitlines()[-1] if text else ""

    def json(self) -> Any:
        return json.loads(self.stdout)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended (and was reaped) just before
        pass


def run_measured(cmd: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout_s: float | None = None) -> Measured:
    """Run ``cmd`` to its end: exit code, output, wall time and its own peak RSS (``os.wait4``,
    which only the process's own reap reports). The output goes to temporary files, not pipes, so
    a chatty process can never block on a full pipe while nobody reads; past ``timeout_s`` it is
    killed (exit -9)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=cwd, env=env)
        # os.kill, not proc.kill: Popen.kill polls (reaps) the child first, and then os.wait4 below
        # would find no child and the peak RSS would be lost
        timer = threading.Timer(timeout_s, _kill, (proc.pid,)) if timeout_s else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        out.seek(0)
        err.seek(0)
        return Measured(proc.returncode, out.read(), err.read(), wall, usage.ru_maxrss / 1024)


def run_bot(args: list[str], *, cache: Path | None = None, env_extra: dict[str, str] | None = None, cwd: Path = ROOT,
            timeout_s: float | None = None, check: bool = True) -> Measured:
    """``python -m bot ARGS`` as a user runs it, in a new process (the one runner of the
    benchmarks' ``bot backtest`` / ``bot tune`` commands). The calling shell's ``BOT__``
    overrides are dropped, so a figure measures the config it names, then ``env_extra`` is
    added; ``cache``: ``$BOT_FAST_CACHE``. ``check``: a non-zero exit ends the benchmark with the
    command's last error line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    if cache is not None:
        env["BOT_FAST_CACHE"] = str(cache)
    env.update(env_extra or {})
    run = run_measured([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, timeout_s=timeout_s)
    if check and run.returncode != 0:
        raise SystemExit(f"bot {args[0] if args else ''} failed (exit {run.returncode}): {run.last_error_line()[-400:]}")
    return run
