"""Benchmark 2: full backtest pipeline (book, signals, strategy, risk, paper fills, store writes).

Real data (the Binance spot BTCUSDT recording, when ../shared/data is mounted), with
``config/backtest.toml``:

* ``parse``: :func:`bot.data.binance.read_binance` into a list of events (gzip + JSON);
* ``encode``: that list into columnar arrays; ``load``: the cached columns opened (memory-mapped);
* ``readable engine``: :func:`bot.engine.runner.run_backtest` over the pre-parsed list (engine
  only), and parse + engine together (what ``bot backtest`` does);
* ``fast``: :func:`bot.fast.backtest.run_backtest_fast` over the arrays, total and its replay part
  (kernel scan plus the readable engine on the events where it can act).

Each run writes its own SQLite store (runs, orders, fills, positions, round trips, equity, risk
events) like ``bot backtest``. Logging is configured as the CLI does (``bot.log.configure``: JSON
file at ``run.log_level``, console at error): with the config's ``info`` level every order writes
two or three log lines, and with ``warning`` (``--log-level warning``) they are not written.

Synthetic stream (default 10 million events, :mod:`bot.fast.synth`): the fast pipeline over the
whole stream, the readable engine over its first 200,000 events for comparison.

Events/s at the best and the median of ``--repeat`` runs; the machine may be shared.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import stream_arguments, BTC_FILES, ROOT, fmt_rate, maxrss_mb, print_machine, rate_stats, real_data_present, write_json

from bot.config.settings import load_settings
from bot.fast.backtest import run_backtest_fast
from bot.fast.colstore import open_columns
from bot.fast.columnar import encode_events, iter_events, load_binance
from bot.fast.synth import synthetic_arrays


def configure_logs(tmp: Path, level: str) -> None:
    from bot.log import configure

    configure(tmp / f"logs-{level}", level, "error")


def run_fast(settings, arrays, tmp: Path, tag: str, counter: list[int]) -> dict:
    counter[0] += 1
    timings: dict = {}
    summary = run_backtest_fast(settings, arrays, db_path=tmp / f"{tag}-{counter[0]}.db", data_files=[], timings=timings)
    summary["_timings"] = timings
    return summary


def run_readable(settings, events, tmp: Path, tag: str, counter: list[int]) -> dict:
    from bot.engine.runner import run_backtest

    counter[0] += 1
    return run_backtest(settings, events, db_path=tmp / f"{tag}-{counter[0]}.db", data_files=[])


def fast_figures(settings, arrays, tmp, tag, repeat, counter) -> dict:
    n = len(arrays)
    totals, replays, last, best = [], [], None, None
    for _ in range(repeat):
        t = time.perf_counter()
        last = run_fast(settings, arrays, tmp, tag, counter)
        totals.append(time.perf_counter() - t)
        replays.append(last["_timings"]["replay_s"])
        if best is None or totals[-1] < best[0]:
            best = (totals[-1], last["_timings"])
    out = {"total": rate_stats(n, totals), "replay": rate_stats(n, replays)}
    out["breakdown_of_best_run_s"] = {k: round(v, 4) for k, v in best[1].items()}
    out["orders"], out["fills"], out["rejects"] = last["orders"], last["fills"], last["rejects"]
    out["engine_events"] = last["stats"]["fast"]["engine_events"]
    out["engine_share"] = last["stats"]["fast"]["engine_share"]
    return out


def main(argv: list[str] | None = None) -> dict:
    args = stream_arguments(__doc__.splitlines()[0]).parse_args(argv)
    n_syn = args.events or (1_000_000 if args.quick else 10_000_000)
    repeat = args.repeat or (3 if args.quick else 5)
    result: dict = {"benchmark": "pipeline", "machine": print_machine("benchmark 2: full pipeline replay"), "real": None}
    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    counter = [0]
    settings = load_settings(ROOT / "config" / "backtest.toml")
    quiet = load_settings(ROOT / "config" / "backtest.toml", run={"log_level": "warning"})
    print(f"   config: config/backtest.toml (store batch {settings.store.batch_size}, equity every {settings.store.equity_interval_s}s); stores and logs in {tmp}")
    configure_logs(tmp, "info")

    # warm-up: compile (or load the numba cache for) the kernels on a small synthetic stream
    warm = synthetic_arrays(20_000, seed=1)
    run_fast(settings, warm, tmp, "warmup", counter)

    if real_data_present():
        from bot.data.binance import read_binance

        real: dict = {}
        # the fast runs first, from the cached arrays as `bot backtest --fast` does: the parsed
        # list of ~100k event objects the readable runs need would otherwise be alive during them
        # and make every full garbage collection (triggered by the engine's allocations) slower
        _, info = load_binance(BTC_FILES, args.cache)
        t = time.perf_counter()
        arrays = open_columns(info["path"])  # the cache: memory-mapped columns
        real["npz_load_s"] = round(time.perf_counter() - t, 4)  # (key kept for run_all: the cache's open time)
        real["fast_info_logs"] = fast_figures(settings, arrays, tmp, "real-fast", repeat, counter)
        configure_logs(tmp, "warning")
        real["fast_warning_logs"] = fast_figures(quiet, arrays, tmp, "real-fast-quiet", repeat, counter)
        configure_logs(tmp, "info")
        parse_times, events = [], None
        for _ in range(2 if args.quick else 3):
            t = time.perf_counter()
            events = list(read_binance(BTC_FILES))
            parse_times.append(time.perf_counter() - t)
        n = len(events)
        real["events"] = n
        real["parse"] = rate_stats(n, parse_times)
        t = time.perf_counter()
        encoded = encode_events(events)
        real["encode_s"] = round(time.perf_counter() - t, 4)
        if len(encoded) != len(arrays):
            raise SystemExit(f"the cached recording has {len(arrays)} events, the parse {len(encoded)}")
        del encoded
        slow_times = []
        for _ in range(2 if args.quick else 3):
            t = time.perf_counter()
            slow = run_readable(settings, events, tmp, "real-readable", counter)
            slow_times.append(time.perf_counter() - t)
        real["readable_engine"] = rate_stats(n, slow_times)
        real["readable_parse_plus_engine"] = rate_stats(n, [min(parse_times) + min(slow_times)])
        configure_logs(tmp, "warning")
        quiet_slow = []
        for _ in range(2 if args.quick else 3):
            t = time.perf_counter()
            run_readable(quiet, events, tmp, "real-readable-quiet", counter)
            quiet_slow.append(time.perf_counter() - t)
        real["readable_engine_warning_logs"] = rate_stats(n, quiet_slow)
        configure_logs(tmp, "info")
        real["orders"] = slow["orders"]
        real["same_result"] = all(slow[k] == real["fast_info_logs"][k] for k in ("orders", "fills", "rejects"))
        result["real"] = real
        del events
    else:
        print("   real data: ../shared/data not present, skipped")

    t = time.perf_counter()
    syn = synthetic_arrays(n_syn, seed=args.seed)
    gen_s = time.perf_counter() - t
    syn_res: dict = {"events": n_syn, "generate_s": round(gen_s, 3)}
    syn_res["fast_info_logs"] = fast_figures(settings, syn, tmp, "syn-fast", max(1, min(repeat, 3)), counter)
    configure_logs(tmp, "warning")
    syn_res["fast_warning_logs"] = fast_figures(quiet, syn, tmp, "syn-fast-quiet", max(1, min(repeat, 3)), counter)
    configure_logs(tmp, "info")
    m = min(n_syn, 200_000)
    prefix = list(iter_events(syn, 0, m))
    times = []
    for _ in range(2):
        t = time.perf_counter()
        run_readable(settings, prefix, tmp, "syn-readable", counter)
        times.append(time.perf_counter() - t)
    syn_res["readable_engine_prefix"] = rate_stats(m, times)
    syn_res["readable_engine_prefix"]["events"] = m
    result["synthetic"] = syn_res
    result["maxrss_process_mb"] = maxrss_mb()

    if result["real"]:
        r = result["real"]
        print(f"   -- real BTCUSDT, {r['events']:,} events, {r['orders']} orders (identical in both engines: {r['same_result']})")
        print(f"      parse (read_binance)           {r['parse']['best_s']:.3f} s   ({fmt_rate(r['parse']['best_events_per_s'])})")
        print(f"      encode to arrays               {r['encode_s']:.3f} s   (once; later runs open the mapped cache in {r['npz_load_s']:.3f} s)")
        for key, label in (("readable_engine", "readable engine, info logs"), ("readable_engine_warning_logs", "readable engine, warning logs"), ("readable_parse_plus_engine", "readable parse + engine")):
            x = r[key]
            print(f"      {label:30s} best {x['best_s']:.3f} s = {fmt_rate(x['best_events_per_s'])}, median {fmt_rate(x['median_events_per_s'])}")
        for key, label in (("fast_info_logs", "fast, info logs"), ("fast_warning_logs", "fast, warning logs")):
            x = r[key]
            b = x["breakdown_of_best_run_s"]
            print(f"      {label:30s} total best {x['total']['best_s']:.3f} s = {fmt_rate(x['total']['best_events_per_s'])} (median {fmt_rate(x['total']['median_events_per_s'])}); "
                  f"replay best {fmt_rate(x['replay']['best_events_per_s'])}; engine ran on {x['engine_events']} events ({x['engine_share']:.2%})")
            print(f"      {'':30s} best run: setup {b['setup_s']:.3f} s, kernel scan {b['scan_s']:.3f} s, engine {b['engine_s']:.3f} s, "
                  f"equity points {b['absorb_s']:.3f} s, finish {b['finish_s']:.3f} s; of which SQLite writes {b['store_write_s']:.3f} s")
    s = result["synthetic"]
    print(f"   -- synthetic, {s['events']:,} events (generated in {s['generate_s']:.2f} s)")
    for key, label in (("fast_info_logs", "fast, info logs"), ("fast_warning_logs", "fast, warning logs")):
        x = s[key]
        b = x["breakdown_of_best_run_s"]
        print(f"      {label:30s} total best {x['total']['best_s']:.2f} s = {fmt_rate(x['total']['best_events_per_s'])} (median {fmt_rate(x['total']['median_events_per_s'])}); "
              f"{x['orders']} orders; engine ran on {x['engine_events']:,} events ({x['engine_share']:.2%})")
        print(f"      {'':30s} best run: kernel scan {b['scan_s']:.2f} s, engine {b['engine_s']:.2f} s, equity points {b['absorb_s']:.2f} s; SQLite writes {b['store_write_s']:.2f} s")
    x = s["readable_engine_prefix"]
    print(f"      readable engine (first {x['events']:,})   best {fmt_rate(x['best_events_per_s'])}, median {fmt_rate(x['median_events_per_s'])}")
    print(f"   process max RSS (getrusage): {result['maxrss_process_mb']} MiB")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
