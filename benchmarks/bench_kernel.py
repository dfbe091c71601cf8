"""Benchmark 1: order book + signals (book imbalance, OFI, microprice, score, and the trade-flow
and depth features) per event.

Streams: the real Binance spot BTCUSDT recording (99,572 events, if ../shared/data is mounted)
and a seeded synthetic stream (default 10 million L2 events, :mod:`bot.fast.synth`).

Measured, each after a warm-up run (numba compiled and its cache loaded before timing):

* ``readable``: ``OrderBook.apply`` + ``SignalEngine.update`` (and ``observe`` for trades) as ``Engine.on_event`` calls them,
  over a pre-built list of events (real data, and a prefix of the synthetic stream);
* ``kernel``: :func:`bot.fast.kernel.run_signals`, the same per-event ``SignalState`` fields
  written to output arrays (chunks of 65,536 events, buffers reused): book imbalance, OFI,
  microprice, mid, spread and the score, as a replay whose strategy and score read no flow
  feature computes them (``FastBook(flow=False)``: the default config, momentum, taker); the
  figure benchmark 1's ≥ 5 M/s target is about;
* ``kernel, with flow features``: the same with the trade-flow and depth features too
  (``flow=True``: ``mean_reversion``, the maker's pulls, a score weighing them);
* ``kernel (summary only)``: :func:`bot.fast.kernel.run_count` without per-event output and
  without the flow features (``flow=False``), as a replay whose strategy and score read none of
  them runs it (momentum, taker);
* ``kernel, summary, with flow features``: the same with them (``mean_reversion``, the maker's pulls).

Events/s are given at the best and the median of ``--repeat`` runs (three times as many, at least 15, for the short real recording) (the machine may be shared:
the best run is the least disturbed). Memory: ``tracemalloc`` peak of Python and numpy
allocations made during one kernel run (the kernel itself allocates nothing), the process RSS
(/proc) before and after another (untraced) run, the peak RSS of the process (``resource.getrusage``
``ru_maxrss``) and the size of the columnar event arrays.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np

from common import stream_arguments, BTC_FILES, ROOT, fmt_rate, maxrss_mb, print_machine, rate_stats, real_data_present, rss_mb, timed, write_json

from bot.config.settings import load_settings
from bot.fast import kernel as K
from bot.fast.book import CHUNK, FastBook
from bot.fast.columnar import iter_events, load_binance
from bot.fast.synth import synthetic_arrays


def run_kernel_chunked(arrays, cfg, flags, vals, flow: bool = False) -> FastBook:
    fb = FastBook(arrays, cfg, flow=flow)
    n = len(arrays)
    while fb.pos < n:
        stop = min(n, fb.pos + CHUNK)
        m = stop - fb.pos
        fb.run_signals(stop, flags[:m], vals[:, :m])
    return fb


def run_kernel_count(arrays, cfg, threshold: float, flow: bool = True):
    fb = FastBook(arrays, cfg, flow=flow)
    return fb.run_count(len(arrays), threshold)


def run_readable(events, cfg) -> int:
    from bot.book.book import OrderBook
    from bot.signals.features import SignalEngine

    from bot.core.events import Trade

    book, sig = OrderBook(), SignalEngine(cfg)
    valid = 0
    apply, update, observe = book.apply, sig.update, sig.observe
    for ev in events:
        if apply(ev):
            if update(book, ev.ts_local).valid:
                valid += 1
        elif type(ev) is Trade:  # as Engine.on_event: trades feed the flow features
            observe(ev)
    return valid


def measure(name: str, arrays, cfg, repeat: int, readable_events: int, threshold: float) -> dict:
    n = len(arrays)
    out: dict = {"stream": name, "events": n, "event_arrays_mb": round(arrays.nbytes / 2**20, 1), "counts": arrays.counts(), "distinct_prices": int(arrays.prices.shape[0])}
    flags = np.zeros(CHUNK, dtype=np.uint8)
    vals = np.zeros((len(K.OUT_ROWS), CHUNK), dtype=np.float64)
    # warm-up on a small slice (compiles or loads the numba cache for these array types)
    warm = arrays.slice(0, min(n, 5000))
    run_kernel_chunked(warm, cfg, flags, vals)
    run_kernel_count(warm, cfg, threshold)

    gc.collect()
    run_kernel_chunked(arrays, cfg, flags, vals)  # first full run (touches every page once)
    rss0 = rss_mb()
    fb = run_kernel_chunked(arrays, cfg, flags, vals)
    rss1 = rss_mb()
    tracemalloc.start()
    run_kernel_chunked(arrays, cfg, flags, vals)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out["memory"] = {
        "tracemalloc_peak_during_run_mb": round(peak / 2**20, 2),
        "kernel_state_mb": round(sum(x.nbytes for x in fb._state() if isinstance(x, np.ndarray)) / 2**20, 2),
        "rss_before_run_mb": rss0,
        "rss_after_run_mb": rss1,
    }
    times, _ = timed(lambda: run_kernel_chunked(arrays, cfg, flags, vals), repeat)
    out["kernel"] = rate_stats(n, times)
    run_kernel_chunked(warm, cfg, flags, vals, flow=True)
    times, _ = timed(lambda: run_kernel_chunked(arrays, cfg, flags, vals, flow=True), repeat)
    out["kernel_flow"] = rate_stats(n, times)
    run_kernel_count(warm, cfg, threshold, flow=False)
    times, res = timed(lambda: run_kernel_count(arrays, cfg, threshold, flow=False), repeat)
    out["kernel_summary_only"] = rate_stats(n, times)
    out["valid_states"], out["hot_states"] = int(res[0]), int(res[1])
    times, _ = timed(lambda: run_kernel_count(arrays, cfg, threshold), repeat)
    out["kernel_summary_flow"] = rate_stats(n, times)
    if readable_events:
        m = min(n, readable_events)
        events = list(iter_events(arrays, 0, m))
        times, _ = timed(lambda: run_readable(events, cfg), max(1, min(3, repeat // 2)))
        out["readable"] = rate_stats(m, times)
        out["readable"]["events"] = m
        del events
    out["memory"]["maxrss_process_mb"] = maxrss_mb()
    return out


def main(argv: list[str] | None = None) -> dict:
    args = stream_arguments(__doc__.splitlines()[0]).parse_args(argv)
    n_syn = args.events or (1_000_000 if args.quick else 10_000_000)
    repeat = args.repeat or (3 if args.quick else 5)
    result: dict = {"benchmark": "book+signals", "machine": print_machine("benchmark 1: book + signals"), "streams": []}
    settings = load_settings(ROOT / "config" / "backtest.toml")
    cfg = settings.signal
    threshold = settings.strategy.enter_threshold
    print(f"   signal config: config/backtest.toml [signal] depth_levels={cfg.depth_levels} distance_weighted={cfg.distance_weighted} ofi_window_s={cfg.ofi_window_s}")

    if real_data_present():
        arrays, info = load_binance(BTC_FILES, args.cache)
        print(f"   real data: {len(arrays):,} events ({'cache ' + info['path'] if info['cached'] else 'parsed and cached'})")
        result["streams"].append(measure("binance spot BTCUSDT (real)", arrays, cfg, max(3 * repeat, 15), len(arrays), threshold))
        del arrays
    else:
        print("   real data: ../shared/data not present, skipped")

    t = time.perf_counter()
    syn = synthetic_arrays(n_syn, seed=args.seed)
    gen_s = time.perf_counter() - t
    print(f"   synthetic: {n_syn:,} events generated in {gen_s:.2f} s (seed {args.seed}, {syn.nbytes / 2**20:.0f} MiB of arrays)")
    res = measure(f"synthetic seed {args.seed}", syn, cfg, repeat, 200_000, threshold)
    res["generate_s"] = round(gen_s, 3)
    result["streams"].append(res)

    for s in result["streams"]:
        print(f"   -- {s['stream']}: {s['events']:,} events ({s['counts']}), {s['distinct_prices']:,} distinct prices, arrays {s['event_arrays_mb']} MiB")
        for key, label in (("kernel", "kernel, per-event SignalState out"), ("kernel_flow", "kernel, per-event, with flow features"),
                           ("kernel_summary_only", "kernel, summary only"),
                           ("kernel_summary_flow", "kernel, summary, with flow features"), ("readable", "readable OrderBook+SignalEngine")):
            if key in s:
                r = s[key]
                extra = f" (first {r['events']:,} events)" if key == "readable" else ""
                print(f"      {label:36s} best {fmt_rate(r['best_events_per_s'])}, median {fmt_rate(r['median_events_per_s'])} over {r['runs']} runs{extra}")
        m = s["memory"]
        print(f"      memory: tracemalloc peak during a kernel run {m['tracemalloc_peak_during_run_mb']} MiB; kernel state {m['kernel_state_mb']} MiB; "
              f"RSS {m['rss_before_run_mb']} -> {m['rss_after_run_mb']} MiB across the run; process max RSS (getrusage) {m['maxrss_process_mb']} MiB")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
