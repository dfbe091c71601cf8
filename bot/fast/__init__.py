"""Fast path: columnar events, a compiled book + signal kernel, and a backtest that runs the
readable engine only on the events where it could decide something. Needs ``numba``.

* :mod:`bot.fast.columnar` -- event stream <-> flat numpy arrays (exact prices);
* :mod:`bot.fast.colstore` -- those arrays on disk, written in chunks and memory-mapped (the cache);
* :mod:`bot.fast.kernel` -- the book and the signals over those arrays (bit-identical floats);
  :mod:`bot.fast.flow_kernel` its trade-flow and depth features, :mod:`bot.fast.jitopts` the
  compile options, :mod:`bot.fast.sizing` its parameters and ring sizes;
* :mod:`bot.fast.book` -- ``FastBook`` (kernel state), ``BookView``/``SignalView`` (the kernel's
  book and signals through the ``OrderBook``/``SignalEngine`` API);
* :mod:`bot.fast.backtest` -- ``run_backtest_fast``: same stored results as ``run_backtest``;
  :mod:`bot.fast.coverage` what it replays, and why the rest goes to the readable engine;
* :mod:`bot.fast.synth` -- a seeded synthetic L2 stream for benchmarks and tests.

Example::

    from bot.config.settings import load_settings
    from bot.fast.columnar import load_binance
    from bot.fast.backtest import run_backtest_fast

    settings = load_settings("config/backtest.toml")
    files = ["../shared/data/hftbacktest-binance/spot/btcusdt_20240808.gz",
             "../shared/data/hftbacktest-binance/spot/btcusdt_20240809.gz"]
    arrays, info = load_binance(files)  # parsed once, then cached under $BOT_FAST_CACHE or <tmp>
    summary = run_backtest_fast(settings, arrays, db_path="data/backtest.db", data_files=files,
                                source_stats=lambda: arrays.meta.get("reader", {}))
"""

import hashlib as _hashlib
import os as _os
import sys as _sys
from pathlib import Path as _Path


def cache_leaf(*package_dirs: _Path) -> str:
    """``numba-<hash of every .py file in package_dirs>``: changes whenever any of them does."""
    files = sorted(f for d in package_dirs for f in d.glob("*.py"))
    digest = _hashlib.blake2b(b"".join(f"{f.parent.name}/{f.name}".encode() + f.read_bytes() for f in files), digest_size=8).hexdigest()
    return f"numba-{digest}"


COMPILED_FROM = ("fast", "book", "signals")
"""The packages whose code the compiled functions hold: this one, and the two whose constants the
kernels bake in at compile time (``bot.book.book.REANCHOR_SNAPSHOTS``, ``bot.signals.rolling.RESUM_EVERY``)."""


def _key_numba_cache() -> str:
    """Point numba's disk cache at a directory named after a hash of every module of this package.

    numba checks a cached function against its own source file only: a kernel that inlines code
    from another module (``flow_kernel``, ``parse_json``, ``jitopts``) or bakes in another
    package's constant would keep running the old machine code after an edit or an upgrade that
    touched only that other file. A directory per version of those packages (``COMPILED_FROM``)
    cannot serve stale code. Set before numba is imported (it
    reads ``NUMBA_CACHE_DIR`` then); a user's own ``NUMBA_CACHE_DIR`` is kept as the parent, and
    a child process that inherited the keyed directory keeps it (same sources, same key).
    """
    here = _Path(__file__).resolve().parent
    leaf = cache_leaf(*(here.parent / name for name in COMPILED_FROM))
    current = _os.environ.get("NUMBA_CACHE_DIR")
    if current and _Path(current).name == leaf:
        return current
    keyed = str(_Path(current or here / "__pycache__") / leaf)
    _os.environ["NUMBA_CACHE_DIR"] = keyed
    config = _sys.modules.get("numba.core.config")
    if config is not None:  # numba already imported by someone else: tell it too
        config.CACHE_DIR = keyed  # type: ignore[attr-defined]
    return keyed


NUMBA_CACHE_DIR = _key_numba_cache()
