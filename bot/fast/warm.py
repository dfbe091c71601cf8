"""Compile every numba function of the fast path once, so no user command pays for it.

``python -m bot.fast.warm`` (run by ``make install``) parses a small generated Binance
recording with the compiled parser and replays a short synthetic stream through the fast
backtest into a scratch database. numba writes the machine code to its cache (``cache=True``,
beside the modules or under ``$NUMBA_CACHE_DIR``); later processes load it instead of compiling,
which took 15-60 s for the kernel and the parser on a 2-core machine. Safe to run again: it then
only loads the cache.

It also writes the bot's own bytecode (``__pycache__/*.pyc``). pip compiles what it installs,
but an editable install (``pip install -e``, what ``make install`` does) leaves the package's
sources to be compiled by the first import, and with ``PYTHONDONTWRITEBYTECODE`` set (common in
containers and CI) never stored: every command then compiled about a hundred modules again,
0.2 s of CPU before it did anything. Stale bytecode after an edit is harmless: Python checks
each file's timestamp and compiles the changed ones. Prints what it did and how long it took, and exits 0 even when numba cannot
write its cache (a read-only install), since every command still works, only slower at first.
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import time
from pathlib import Path


def _recording(path: Path) -> None:
    """A few clean lines of each kind the compiled parser reads (spot; a USD-M twin exercises pu)."""
    ts = 1_723_161_253_000_000_000
    dumps = lambda obj: json.dumps(obj, separators=(",", ":"))  # noqa: E731
    lines = [f"{ts} " + dumps({"lastUpdateId": 10, "bids": [["100.00", "1.5"]], "asks": [["100.01", "2"]]})]
    for i in range(50):
        lines.append(f"{ts + 1 + 3 * i} " + dumps({"stream": "btcusdt@depth@100ms", "data": {
            "e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 11 + i, "u": 11 + i, "b": [["99.99", f"{1 + i % 3}.25"]], "a": []}}))
        lines.append(f"{ts + 2 + 3 * i} " + dumps({"stream": "btcusdt@bookTicker", "data": {
            "u": 11 + i, "s": "BTCUSDT", "b": "100.00", "B": "1.5", "a": "100.01", "A": "2"}}))
        lines.append(f"{ts + 3 + 3 * i} " + dumps({"stream": "btcusdt@trade", "data": {
            "e": "trade", "t": i, "p": "100.01", "q": "0.1", "m": bool(i % 2)}}))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


def _prune_old_caches() -> int:
    """Remove the cache directories of earlier versions of the package (``numba-<other hash>``
    beside the current one): no process of this checkout can use them any more."""
    import shutil

    from bot.fast import NUMBA_CACHE_DIR

    current = Path(NUMBA_CACHE_DIR)
    old = [d for d in current.parent.glob("numba-*") if d.is_dir() and d != current]
    for d in old:
        shutil.rmtree(d, ignore_errors=True)
    return len(old)


def _compile_bytecode() -> bool:
    """Write ``__pycache__`` bytecode for every module of the bot package (see the module docstring)."""
    import compileall

    return bool(compileall.compile_dir(str(Path(__file__).resolve().parents[1]), quiet=1))


def main() -> int:
    t0 = time.perf_counter()
    bytecode = "bytecode written" if _compile_bytecode() else "bytecode not written (read-only install?)"
    try:
        from bot.config.settings import load_settings
        from bot.fast.backtest import run_backtest_fast
        from bot.fast.parse_binance import parse
        from bot.fast.synth import synthetic_arrays
    except ImportError as exc:  # numba missing: nothing to compile
        print(f"bot.fast.warm: fast path not available ({exc}); nothing compiled", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="bot-warm-") as tmp:
        rec = Path(tmp) / "warm.gz"
        _recording(rec)
        parsed = parse([rec], "BTCUSDT", "spot")
        t1 = time.perf_counter()
        from bot.log import configure

        configure(str(Path(tmp) / "logs"), "warning", "error")  # the replay's trade log is not the point here
        settings = load_settings(None, run={"log_dir": str(Path(tmp) / "logs")})
        arrays = synthetic_arrays(20_000, seed=1)
        run_backtest_fast(settings, arrays, db_path=Path(tmp) / "warm.db")
        t2 = time.perf_counter()
    ok = "ok" if parsed is not None else "the parser declined its own test recording (a bug: please report it)"
    pruned = _prune_old_caches()
    print(f"bot.fast.warm: {bytecode}; parser {t1 - t0:.1f} s ({ok}), kernel and fast replay {t2 - t1:.1f} s; "
          f"later commands load the compiled code from numba's cache{f' (removed {pruned} older one(s))' if pruned else ''}", file=sys.stderr)
    return 0 if parsed is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
