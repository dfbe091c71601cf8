"""The peer side of ``bench_peers.py``: hftbacktest on a Binance USD-M recording, run in its own venv.

    .venv-peers/bin/python benchmarks/peer_hftbacktest.py --data FILE.gz --cache DIR --params JSON

This file imports hftbacktest, numpy and numba only, never ``bot``: it runs under the peer's
interpreter (hftbacktest 2.4.4 pins numpy<2.3, which the bot's venv outgrows).
It prints progress lines, then one line ``PEER_RESULT {json}`` that ``bench_peers.py`` reads.

What it does, timed step by step (``time.perf_counter``):

1. imports (hftbacktest loads its Rust library and numba);
2. converts the raw collector file with hftbacktest's own Binance futures converter
   (``hftbacktest.data.utils.binancefutures.convert``) into its event array, once: the result is
   cached as ``.npz`` in ``--cache`` keyed by the file's name, size and mtime; later runs load it;
3. compiles the strategy (numba): a warm-up run on the first rows of the data, so that the
   timed replay below is replay only; hftbacktest's backtester is a numba jitclass holding
   ctypes pointers, so a strategy taking it is compiled again in every new process (with
   ``@njit(cache=True)`` numba warns that it cannot cache a function using ctypes pointers);
4. replays the whole array through ``HashMapMarketDepthBacktest`` with the strategy.

The strategy is written here for this comparison (the shape of the API from hftbacktest's
docstrings; no code taken from its examples): on every feed event, the top-N depth imbalance
(sum of bid sizes - sum of ask sizes) / (their sum) over the best N price levels of each side;
flat: buy at market at imbalance >= enter, sell at <= -enter (no new entry within ``cooldown_s``
of the last one); long: sell it all once the imbalance falls below ``exit`` or after
``max_holding_s``; short: the mirror image. Orders are MARKET, sized to ``order_notional`` of
quote currency at the mid, truncated to the lot; one order in flight at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

T_START = time.perf_counter()

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from hftbacktest import (  # noqa: E402
    BUY_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    GTC,
    MARKET,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from hftbacktest.data.utils import binancefutures  # noqa: E402

T_IMPORTED = time.perf_counter()

# counters the strategy returns (index into its int64 array)
STEPS, ORDERS, ENTRIES, EXITS, EXIT_SIGNAL, EXIT_TIME = range(6)


@njit
def imbalance_taker(hbt, levels, enter, exit_, cooldown_ns, max_hold_ns, order_notional, out):
    """Replay to the end; ``out`` receives the counters above. Returns the last return code."""
    depth = hbt.depth(0)
    lot = depth.lot_size
    next_entry = np.int64(0)
    opened = np.int64(0)
    pending = np.uint64(0)  # order id in flight, 0 for none
    order_id = np.uint64(0)
    sign = 0
    rc = 0
    while True:
        rc = hbt.wait_next_feed(True, 60_000_000_000)
        if rc == 1 or rc < 0:
            break
        out[STEPS] += 1
        now = hbt.current_timestamp
        if pending != 0:
            order = hbt.orders(0).get(pending)
            # in flight until the exchange's answer is back: NONE (sent, not acknowledged), NEW,
            # PARTIALLY_FILLED; done at EXPIRED, FILLED, CANCELED, REJECTED
            if order is not None and (order.status == 0 or order.status == 1 or order.status == 5):
                continue
            pending = np.uint64(0)
            hbt.clear_inactive_orders(0)
            pos = hbt.position(0)
            new_sign = 1 if pos > lot * 0.5 else (-1 if pos < -lot * 0.5 else 0)
            if new_sign != 0 and sign == 0:
                opened = now
            sign = new_sign
        depth = hbt.depth(0)
        bb = depth.best_bid_tick
        ba = depth.best_ask_tick
        if bb >= ba or bb <= -(1 << 62) or ba >= (1 << 62):
            continue  # no two-sided book yet
        bsum = 0.0
        n = 0
        t = bb
        while n < levels and t > bb - 100_000:
            q = depth.bid_qty_at_tick(t)
            if q > 0.0:
                bsum += q
                n += 1
            t -= 1
        asum = 0.0
        n = 0
        t = ba
        while n < levels and t < ba + 100_000:
            q = depth.ask_qty_at_tick(t)
            if q > 0.0:
                asum += q
                n += 1
            t += 1
        total = bsum + asum
        imb = (bsum - asum) / total if total > 0.0 else 0.0
        pos = hbt.position(0)
        if sign == 0:
            if now < next_entry or abs(imb) < enter:
                continue
            mid = (depth.best_bid + depth.best_ask) * 0.5
            qty = np.floor(order_notional / mid / lot + 1e-9) * lot
            if qty <= 0.0:
                continue
            order_id += 1
            if imb >= enter:
                hbt.submit_buy_order(0, order_id, depth.best_ask, qty, GTC, MARKET, False)
            else:
                hbt.submit_sell_order(0, order_id, depth.best_bid, qty, GTC, MARKET, False)
            pending = order_id
            next_entry = now + cooldown_ns
            out[ORDERS] += 1
            out[ENTRIES] += 1
            continue
        timed_out = now - opened >= max_hold_ns
        signal = (sign > 0 and imb < exit_) or (sign < 0 and imb > -exit_)
        if timed_out or signal:
            order_id += 1
            if sign > 0:
                hbt.submit_sell_order(0, order_id, depth.best_bid, abs(pos), GTC, MARKET, False)
            else:
                hbt.submit_buy_order(0, order_id, depth.best_ask, abs(pos), GTC, MARKET, False)
            pending = order_id
            out[ORDERS] += 1
            out[EXITS] += 1
            if timed_out:
                out[EXIT_TIME] += 1
            else:
                out[EXIT_SIGNAL] += 1
    return rc


def converted(data: Path, cache: Path) -> tuple[np.ndarray, dict]:
    """The recording as hftbacktest's event array: converted once, then loaded from the cache."""
    st = data.stat()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{data.name.removesuffix('.gz')}-{st.st_size}-{int(st.st_mtime)}.npz"
    t = time.perf_counter()
    if target.exists():
        arr = np.load(target)["data"]
        return arr, {"cached": True, "load_s": round(time.perf_counter() - t, 3), "convert_s": None, "npz": str(target)}
    # 'opt' default: depth diffs, the REST snapshot and trades; bookTicker is not part of its book
    arr = binancefutures.convert(str(data), buffer_size=20_000_000)
    convert_s = time.perf_counter() - t
    tmp = target.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, data=arr)
    tmp.replace(target)
    return arr, {"cached": False, "convert_s": round(convert_s, 3), "save_s": round(time.perf_counter() - t - convert_s, 3),
                 "load_s": None, "npz": str(target)}


def backtest(arr: np.ndarray, p: dict):
    asset = (
        BacktestAsset()
        .data([arr])
        .linear_asset(1.0)
        .constant_order_latency(int(p["latency_ms"] * 1e6), 0)
        .risk_adverse_queue_model()
        .partial_fill_exchange()
        .trading_value_fee_model(p["maker_fee_bps"] / 1e4, p["taker_fee_bps"] / 1e4)
        .tick_size(p["tick_size"])
        .lot_size(p["lot_size"])
    )
    return HashMapMarketDepthBacktest([asset])


def run(arr: np.ndarray, p: dict) -> tuple[np.ndarray, int, object]:
    # the asset keeps a raw pointer to ``arr`` (BacktestAsset.add_data), not a reference: the
    # caller's ``arr`` must stay alive until close() below
    hbt = backtest(arr, p)
    out = np.zeros(6, np.int64)
    rc = imbalance_taker(hbt, int(p["levels"]), float(p["enter"]), float(p["exit"]), int(p["cooldown_s"] * 1e9),
                         int(p["max_holding_s"] * 1e9), float(p["order_notional"]), out)
    sv = hbt.state_values(0)
    state = {"position": float(sv.position), "balance": float(sv.balance), "fee": float(sv.fee),
             "num_trades": int(sv.num_trades), "trading_value": float(sv.trading_value)}
    hbt.close()
    return out, rc, state


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--params", required=True, help="JSON: levels, enter, exit, cooldown_s, max_holding_s, order_notional, fees, latency, tick, lot")
    args = ap.parse_args()
    p = json.loads(args.params)
    arr, conv = converted(Path(args.data), Path(args.cache))
    # warm-up on the snapshot and the first diffs: compiles the strategy for the backtester's type
    t = time.perf_counter()
    snap_end = int(np.nonzero((arr["ev"] & 0xFF) == DEPTH_SNAPSHOT_EVENT)[0][-1]) + 1 if np.any((arr["ev"] & 0xFF) == DEPTH_SNAPSHOT_EVENT) else 0
    head = arr[: snap_end + 5_000].copy()
    run(head, p)
    del head
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    out, rc, state = run(arr, p)
    replay_s = time.perf_counter() - t
    depth_rows = int(np.count_nonzero((arr["ev"] & 0xFF) == DEPTH_EVENT))
    bid_rows = int(np.count_nonzero(((arr["ev"] & 0xFF) == DEPTH_EVENT) & ((arr["ev"] & BUY_EVENT) != 0)))
    res = {
        "hftbacktest": sys.modules["hftbacktest"].__version__,
        "numpy": np.__version__,
        "numba": sys.modules["numba"].__version__,
        "rows": int(len(arr)),
        "depth_rows": depth_rows,
        "depth_bid_rows": bid_rows,
        "import_s": round(T_IMPORTED - T_START, 3),
        **{f"conversion_{k}": v for k, v in conv.items()},
        "compile_s": round(compile_s, 3),
        "replay_s": round(replay_s, 3),
        "steps": int(out[STEPS]),
        "orders": int(out[ORDERS]),
        "entries": int(out[ENTRIES]),
        "exits": int(out[EXITS]),
        "exits_signal": int(out[EXIT_SIGNAL]),
        "exits_max_holding": int(out[EXIT_TIME]),
        "return_code": int(rc),
        "state": state,
        "in_process_s": round(time.perf_counter() - T_START, 3),
    }
    print("PEER_RESULT " + json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
