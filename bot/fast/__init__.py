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
