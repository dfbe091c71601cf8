"""Benchmark 3: daemon tick-to-decision latency against the local exchange emulator.

Method. The real daemon (:class:`bot.engine.daemon.Daemon`, live mode, unchanged) runs in this
process against ``python -m bot emulator --sim`` (a subprocess on 127.0.0.1). The only
instrumentation is from outside: ``bot.engine.daemon.Engine`` is replaced, in this process, by a
subclass whose ``on_event`` records, for every event, ``time.time_ns()`` when the call starts and
when it returns. ``event.ts_local`` is the ``time.time_ns()`` the feed stamped when it received the
update from ccxt, just before putting it on the daemon's queue. So

* tick-to-decision = return of ``Engine.on_event`` - ``event.ts_local``: the engine's work (book,
  signals, risk, strategy, and when it decides, the order handed to the venue: in live mode
  ``LiveVenue.submit`` registers it and starts the asyncio task that sends it);
* tick-to-order-sent = the call of ``ExchangeClient.create_order`` for that order (in the task,
  after the write-ahead commit to SQLite, before ccxt signs and sends the request) -
  ``event.ts_local``; the HTTP round trip is not included;
* processing = return - start of ``on_event`` (``perf_counter_ns``);
* feed hand-off = start of ``on_event`` - ``event.ts_local`` (the feed calls the engine directly;
  this is building the snapshot from ccxt's book);
* frame-to-decision = return of ``Engine.on_event`` - the ``time.time_ns()`` at which ccxt's
  websocket client was handed the first depth frame not yet seen by the engine (stamped by
  wrapping ``Client.handle_text_or_binary_message``, so it includes ccxt's JSON decoding and its
  order book update: everything in this process after aiohttp has read the frame).

Book updates reach the daemon as ccxt ``watch_order_book`` snapshots of the top
``exchange.book_levels`` levels (Binance's 100 ms diff stream: about 10 a second, whatever the
emulator's speed), plus public trades. Parsing the websocket message inside ccxt happens before
``ts_local``: tick-to-decision leaves it out, frame-to-decision includes it. The first 2 s are dropped (start-up). Percentiles are over all
book updates, and separately over the updates on which an order was sent and those without.
With fewer than 1,000 samples p99.9 is close to the maximum. ``--mode paper`` runs the same
daemon with the paper venue (the order is handed to the simulated venue, no SQLite flush).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from common import print_machine, write_json
from daemon_common import BENCH_KEY, BENCH_SECRET, Emulator, write_config


def percentiles(values: list[int]) -> dict:
    if not values:
        return {"n": 0}
    a = np.asarray(values, dtype=np.float64) / 1e6  # ms
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
        "p99_9_ms": round(float(np.percentile(a, 99.9)), 4),
        "max_ms": round(float(a.max()), 4),
        "mean_ms": round(float(a.mean()), 4),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="30 s instead of 100 s")
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--speed", type=float, default=1.0, help="emulator speed (1 = real time)")
    p.add_argument("--mode", choices=["live", "paper"], default="live")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    seconds = args.seconds or (30.0 if args.quick else 100.0)
    result: dict = {"benchmark": "tick-to-decision", "machine": print_machine("benchmark 3: daemon tick-to-decision latency"), "seconds": seconds, "mode": args.mode}
    work = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    os.environ["BOT__EXCHANGE__API_KEY"] = BENCH_KEY
    os.environ["BOT__EXCHANGE__API_SECRET"] = BENCH_SECRET

    import bot.engine.daemon as daemon_mod
    from bot.config.settings import load_settings
    from bot.engine.engine import Engine
    from bot.log import configure

    from ccxt.async_support.base.ws.client import Client

    from bot.exchange.client import ExchangeClient

    records: list[tuple] = []
    order_ticks: dict[str, tuple[int, int]] = {}  # client order id -> (tick ts_local, frame stamp)
    sent_at: dict[str, int] = {}  # client order id -> time_ns when create_order was called
    create_order = ExchangeClient.create_order

    async def timed_create_order(self, order):  # type: ignore[no-untyped-def]
        sent_at.setdefault(order.client_order_id, time.time_ns())
        return await create_order(self, order)
    first_unseen_depth_frame = [0]  # time_ns of the oldest depth frame not yet reflected in a decision
    handle_frame = Client.handle_text_or_binary_message

    def stamped_handle(self, data):  # type: ignore[no-untyped-def]
        if not first_unseen_depth_frame[0] and isinstance(data, (str, bytes)) and ("depthUpdate" in data if isinstance(data, str) else b"depthUpdate" in data):
            first_unseen_depth_frame[0] = time.time_ns()
        return handle_frame(self, data)

    class TimedEngine(Engine):
        def on_event(self, event):  # type: ignore[no-untyped-def]
            start = time.time_ns()
            c0 = time.perf_counter_ns()
            orders = self.stats.orders
            seq = self.ids.seq
            super().on_event(event)
            c1 = time.perf_counter_ns()
            end = time.time_ns()
            frame = 0
            if type(event).__name__ == "BookSnapshot":
                frame, first_unseen_depth_frame[0] = first_unseen_depth_frame[0], 0
            records.append((type(event).__name__, event.ts_local, start, end, c1 - c0, self.stats.orders - orders, frame))
            for s in range(seq + 1, self.ids.seq + 1):
                order_ticks[f"{self.run_id}-{s}"] = (event.ts_local, frame)

    emu = Emulator(work, "--speed", str(args.speed))
    try:
        cfg = write_config(work, emu.url, mode=args.mode, duration=seconds)
        settings = load_settings(cfg)
        configure(settings.run.log_dir, settings.run.log_level, settings.run.console_log_level)
        daemon_mod.Engine = TimedEngine  # instrumentation from outside: the daemon builds this subclass
        Client.handle_text_or_binary_message = stamped_handle
        ExchangeClient.create_order = timed_create_order  # type: ignore[method-assign]
        try:
            daemon = daemon_mod.Daemon(settings, settings.run.db, live=args.mode == "live")
            print(f"   daemon ({args.mode} mode) against the emulator at {emu.url} (--sim --speed {args.speed}) for {seconds:.0f} s ...", flush=True)
            t = time.perf_counter()
            asyncio.run(daemon.run())
            wall = time.perf_counter() - t
        finally:
            daemon_mod.Engine = Engine
            Client.handle_text_or_binary_message = handle_frame
            ExchangeClient.create_order = create_order  # type: ignore[method-assign]
        state = emu.state()
    finally:
        emu.stop()

    if not records:
        raise SystemExit("no events reached the engine")
    t0 = records[0][1] + 2_000_000_000
    kept = [r for r in records if r[1] >= t0]
    book = [r for r in kept if r[0] == "BookSnapshot"]
    orders = [r for r in book if r[5] > 0]
    trades = [r for r in kept if r[0] == "Trade"]
    result.update({
        "wall_s": round(wall, 2),
        "events": len(kept),
        "book_updates": len(book),
        "trades": len(trades),
        "orders_sent": sum(r[5] for r in kept),
        "exchange_orders": len(state.get("orders", [])),
        "tick_to_decision_book": percentiles([r[3] - r[1] for r in book]),
        "tick_to_decision_order_sent": percentiles([r[3] - r[1] for r in orders]),
        "tick_to_decision_no_order": percentiles([r[3] - r[1] for r in book if r[5] == 0]),
        "processing_book": percentiles([r[4] for r in book]),
        "processing_order_sent": percentiles([r[4] for r in orders]),
        "queue_wait_book": percentiles([r[2] - r[1] for r in book]),
        "frame_to_decision_book": percentiles([r[3] - r[6] for r in book if r[6]]),
        "frame_to_decision_order_sent": percentiles([r[3] - r[6] for r in orders if r[6]]),
        "tick_to_order_sent": percentiles([sent_at[c] - t for c, (t, _) in order_ticks.items() if c in sent_at and t >= t0]),
        "frame_to_order_sent": percentiles([sent_at[c] - f for c, (t, f) in order_ticks.items() if c in sent_at and f and t >= t0]),
        "tick_to_return_trade": percentiles([r[3] - r[1] for r in trades]),
    })
    print(f"   {len(kept):,} events after start-up: {len(book):,} book updates, {len(trades):,} trades; {result['orders_sent']} orders sent "
          f"({result['exchange_orders']} on the exchange)")
    for key, label in (("tick_to_decision_book", "tick-to-decision, all book updates"), ("tick_to_decision_order_sent", "tick-to-decision, updates that sent an order"),
                       ("tick_to_decision_no_order", "tick-to-decision, updates without an order"),
                       ("processing_book", "on_event processing, book updates"), ("processing_order_sent", "on_event processing, order sent"),
                       ("queue_wait_book", "feed hand-off (receipt -> on_event start)"),
                       ("frame_to_decision_book", "frame-to-decision (incl. ccxt parsing), all"), ("frame_to_decision_order_sent", "frame-to-decision, updates that sent an order"),
                       ("tick_to_order_sent", "tick-to-order-sent (create_order called)"), ("frame_to_order_sent", "frame-to-order-sent"),
                       ("tick_to_return_trade", "trades: receipt -> on_event return")):
        x = result[key]
        if x["n"]:
            print(f"      {label:46s} n={x['n']:5d}  p50 {x['p50_ms']:.3f} ms  p99 {x['p99_ms']:.3f} ms  p99.9 {x['p99_9_ms']:.3f} ms  max {x['max_ms']:.3f} ms")
        else:
            print(f"      {label:46s} n=0")
    write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
