"""Parsing a recording: the compiled parser against the reference reader.

    .venv/bin/python benchmarks/bench_parse.py [--repeat 5] [--json FILE]

Figures, on the shared spot BTCUSDT recording (two gzip files, 99,574 lines, 26.6 MB of text):

* ``gunzip``: decompression alone (stdlib zlib, one core), and ``inflate``: the same with the
  decompressor the compiled parser uses (:data:`bot.fast.inflate.INFLATE`, ISA-L when installed):
  the floor of any single-threaded parser of these files;
* ``compiled``: :func:`bot.fast.parse_binance.parse` in a warm process (numba's cache loaded),
  gzip to columnar arrays, lines/s and MB/s of text;
* ``reader``: :func:`bot.data.binance.read_binance` plus :func:`encode_events`, the path every
  recording took before and the one a recording with problems still takes.

The whole command (``bot backtest`` with an empty and a filled cache) is ``bench_command.py``.

Best and median of the repeats are given: the machine may be shared with other work.
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import BTC_FILES, fmt_rate, print_machine, rate_stats, real_data_present, timed, write_json  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    info = print_machine("bench_parse: gzip recording -> columnar events")
    if not real_data_present():
        print("   the shared recording is not present (../shared/data): nothing to measure")
        return 0
    from bot.data.binance import ReaderStats, read_binance
    from bot.fast.columnar import encode_events
    from bot.fast.inflate import GZIP_WBITS, INFLATE
    from bot.fast.parse_binance import parse

    text_mb = sum(len(gzip.decompress(f.read_bytes())) for f in BTC_FILES) / 1e6
    res: dict = {"machine": info, "files": [str(f) for f in BTC_FILES], "text_mb": round(text_mb, 2)}

    times, _ = timed(lambda: [gzip.decompress(f.read_bytes()) for f in BTC_FILES], args.repeat)
    res["gunzip"] = {"best_s": round(min(times), 4), "best_mb_per_s": round(text_mb / min(times), 1)}
    times, _ = timed(lambda: [INFLATE.decompressobj(GZIP_WBITS).decompress(f.read_bytes()) for f in BTC_FILES], args.repeat)
    res["inflate"] = {"module": INFLATE.__name__, "best_s": round(min(times), 4), "best_mb_per_s": round(text_mb / min(times), 1)}

    times, out = timed(lambda: parse(BTC_FILES, "BTCUSDT", "spot"), args.repeat, warmup=1)
    assert out is not None, "the shared recording should parse compiled"
    lines = out[1]["lines"]
    res["lines"] = lines
    res["events"] = len(out[0])
    res["compiled"] = {**rate_stats(lines, times), "best_mb_per_s": round(text_mb / min(times), 1)}

    def reader() -> int:
        arrays = encode_events(read_binance(BTC_FILES, ReaderStats()))
        return len(arrays)

    times, _ = timed(reader, max(2, args.repeat // 2))
    res["reader"] = rate_stats(lines, times)

    c, r = res["compiled"], res["reader"]
    print(f"   text {text_mb:.1f} MB, {lines:,} lines, {res['events']:,} events")
    print(f"   gunzip alone:        {res['gunzip']['best_s']:.3f} s  ({res['gunzip']['best_mb_per_s']} MB/s)")
    print(f"   inflate alone:       {res['inflate']['best_s']:.3f} s  ({res['inflate']['best_mb_per_s']} MB/s, {res['inflate']['module']})")
    print(f"   compiled parser:     {fmt_rate(c['best_events_per_s'])} lines best, {fmt_rate(c['median_events_per_s'])} median "
          f"({c['best_mb_per_s']} MB/s of text)")
    print(f"   reader + encode:     {fmt_rate(r['best_events_per_s'])} lines best, {fmt_rate(r['median_events_per_s'])} median")
    print(f"   load average after:  {os.getloadavg()[0]:.2f}")
    write_json(args.json, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
