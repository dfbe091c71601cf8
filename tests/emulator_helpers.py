"""Helpers for tests that run the exchange emulator and talk to it through the real ccxt client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any, AsyncIterator

import aiohttp
import ccxt.pro

from bot.emulator import EmulatorConfig, RunningEmulator, ccxt_config, start_emulator

SYMBOL = "BTC/USDT"


@contextlib.asynccontextmanager
async def emulator(**config: Any) -> AsyncIterator[RunningEmulator]:
    emu = await start_emulator(EmulatorConfig(**config))
    try:
        yield emu
    finally:
        await emu.stop()


@contextlib.asynccontextmanager
async def client(emu: RunningEmulator, api_key: str | None = None, secret: str | None = None,
                 timeout_ms: int = 30_000, load: bool = True) -> AsyncIterator[ccxt.pro.binance]:
    ex = ccxt.pro.binance(ccxt_config(emu.base_url, emu.ws_url, api_key or emu.api_key,
                                      secret or emu.api_secret, timeout_ms=timeout_ms, rate_limit=False))
    try:
        if load:
            await ex.load_markets()
        yield ex
    finally:
        await ex.close()


@contextlib.asynccontextmanager
async def emulator_and_client(**config: Any) -> AsyncIterator[tuple[RunningEmulator, ccxt.pro.binance]]:
    async with emulator(**config) as emu, client(emu) as ex:
        yield emu, ex


async def admin(emu_or_url: RunningEmulator | str, method: str, path: str, body: str | None = None) -> Any:
    base = emu_or_url if isinstance(emu_or_url, str) else emu_or_url.base_url
    async with aiohttp.ClientSession() as session:
        async with session.request(method, base + path, data=body) as resp:
            text = await resp.text()
            return resp.status, json.loads(text)


async def wait_for(predicate, timeout: float = 60.0, interval: float = 0.02) -> bool:
    """Poll until ``predicate()`` holds; ``timeout`` only guards against a hang (it is generous on purpose)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return predicate()


def write_recording(path, seconds: float = 1.0, step_ms: int = 50, mid: float = 50_000.0, symbol: str = "btcusdt") -> None:
    """A small synthetic Binance raw-stream recording (hftbacktest collector format) for replay tests.

    One depth diff before the REST snapshot line (as a real recording starts), then every
    ``step_ms`` a diff that moves the best bid/ask up by one tick and a trade at the new ask.
    """
    import gzip

    t0 = 1_723_161_253_000_000_000
    sym = symbol.upper()
    lines = []
    uid = 100

    def diff(ts_ns: int, U: int, u: int, bids, asks) -> str:
        data = {"e": "depthUpdate", "E": ts_ns // 1_000_000, "s": sym, "U": U, "u": u,
                "b": [[f"{p:.2f}", f"{q:.8f}"] for p, q in bids], "a": [[f"{p:.2f}", f"{q:.8f}"] for p, q in asks]}
        return f"{ts_ns} " + json.dumps({"stream": f"{symbol}@depth@100ms", "data": data})

    lines.append(diff(t0, 99, 100, [(mid - 50, 1.0)], []))
    bids = [(round(mid - 0.01 * (i + 1), 2), 1.0 + i) for i in range(10)]
    asks = [(round(mid + 0.01 * i, 2), 1.0 + i) for i in range(10)]
    snap = {"lastUpdateId": uid, "bids": [[f"{p:.2f}", f"{q:.8f}"] for p, q in bids],
            "asks": [[f"{p:.2f}", f"{q:.8f}"] for p, q in asks]}
    lines.append(f"{t0 + 1_000_000} " + json.dumps(snap))
    steps = int(seconds * 1000 / step_ms)
    best_bid, best_ask = bids[0][0], asks[0][0]
    for k in range(1, steps + 1):
        ts = t0 + 1_000_000 + k * step_ms * 1_000_000
        new_bid, new_ask = round(best_bid + 0.01, 2), round(best_ask + 0.01, 2)
        lines.append(diff(ts, uid + 1, uid + 2, [(new_bid, 2.0)], [(best_ask, 0.0), (new_ask + 0.09, 3.0)]))
        uid += 2
        best_bid, best_ask = new_bid, new_ask
        trade = {"e": "trade", "E": ts // 1_000_000, "s": sym, "t": 1000 + k, "p": f"{best_ask:.2f}",
                 "q": "0.01000000", "T": ts // 1_000_000, "m": False, "M": True}
        lines.append(f"{ts + 1000} " + json.dumps({"stream": f"{symbol}@trade", "data": trade}))
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")


def write_usdm_recording(path, seconds: float = 1.0, step_ms: int = 50, mid: float = 50_000.0, symbol: str = "btcusdt") -> None:
    """:func:`write_recording` as a USD-M futures recording: ``@depth@0ms`` diffs carrying ``pu``."""
    import gzip

    write_recording(path, seconds, step_ms, mid, symbol)
    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts, body = line.rstrip("\n").split(" ", 1)
            obj = json.loads(body)
            if "@depth" in obj.get("stream", ""):
                obj["stream"] = obj["stream"].replace("@depth@100ms", "@depth@0ms")
                obj["data"]["pu"] = obj["data"]["U"] - 1  # the diffs chain U = previous u + 1
            out.append(f"{ts} {json.dumps(obj)}\n")
    with gzip.open(path, "wt") as fh:
        fh.writelines(out)


def write_coinm_recording(path, seconds: float = 1.0, step_ms: int = 50, mid: float = 50_000.0,
                          symbol: str = "btcusd_perp", mark_every: int = 4, liquidation_every: int = 7) -> dict[str, int]:
    """A small synthetic COIN-M (inverse perpetual) recording: what a ``BTCUSD_PERP`` collector writes.

    ``@depth@100ms`` diffs carrying ``pu`` (COIN-M has no ``@0ms`` stream, so ``pu`` alone must
    tell futures), a futures REST snapshot (``E``/``T``/``pair``), a bookTicker and a trade per
    step, a ``@markPrice@1s`` line every ``mark_every`` steps and a ``@forceOrder`` line every
    ``liquidation_every`` steps (alternating SELL/BUY; the first one has no fill yet, ``ap`` 0 and
    ``z`` 0, the later ones are filled at an ``ap`` off their limit ``p``). Sizes are integer
    contracts, prices on a 0.1 tick. Returns the number of lines written per stream kind.
    """
    import gzip

    t0 = 1_723_161_253_000_000_000
    sym = symbol.upper()
    pair = sym.partition("_")[0]
    lines: list[str] = []
    counts = {"depth": 0, "snapshot": 0, "bookTicker": 0, "trade": 0, "markPrice": 0, "forceOrder": 0}
    uid = 100

    def line(ts_ns: int, stream: str, data: dict) -> None:
        lines.append(f"{ts_ns} " + json.dumps({"stream": f"{symbol}@{stream}", "data": data}))
        counts[stream.partition("@")[0]] += 1

    def diff(ts_ns: int, U: int, u: int, pu: int, bids, asks) -> None:
        line(ts_ns, "depth@100ms", {"e": "depthUpdate", "E": ts_ns // 1_000_000, "T": ts_ns // 1_000_000 - 1, "s": sym,
                                    "ps": pair, "U": U, "u": u, "pu": pu,
                                    "b": [[f"{p:.1f}", f"{q:d}"] for p, q in bids], "a": [[f"{p:.1f}", f"{q:d}"] for p, q in asks]})

    diff(t0, 98, 100, 97, [(mid - 50, 1)], [])
    bids = [(round(mid - 0.1 * (i + 1), 1), 10 + i) for i in range(10)]
    asks = [(round(mid + 0.1 * i, 1), 10 + i) for i in range(10)]
    snap = {"lastUpdateId": uid, "E": t0 // 1_000_000, "T": t0 // 1_000_000, "symbol": sym, "pair": pair,
            "bids": [[f"{p:.1f}", f"{q:d}"] for p, q in bids], "asks": [[f"{p:.1f}", f"{q:d}"] for p, q in asks]}
    lines.append(f"{t0 + 1_000_000} " + json.dumps(snap))
    counts["snapshot"] += 1
    best_bid, best_ask = bids[0][0], asks[0][0]
    prev_u = uid
    liquidations = 0
    for k in range(1, int(seconds * 1000 / step_ms) + 1):
        ts = t0 + 1_000_000 + k * step_ms * 1_000_000
        ms = ts // 1_000_000
        new_bid, new_ask = round(best_bid + 0.1, 1), round(best_ask + 0.1, 1)
        diff(ts, prev_u + 1, prev_u + 3, prev_u, [(new_bid, 20)], [(best_ask, 0), (round(new_ask + 0.9, 1), 30)])
        prev_u += 3
        best_bid, best_ask = new_bid, new_ask
        line(ts + 500, "bookTicker", {"e": "bookTicker", "u": prev_u, "s": sym, "ps": pair, "b": f"{best_bid:.1f}", "B": "20",
                                      "a": f"{best_ask:.1f}", "A": "10", "T": ms, "E": ms})
        line(ts + 1000, "trade", {"e": "trade", "E": ms, "T": ms, "s": sym, "t": 5000 + k, "p": f"{best_ask:.1f}",
                                  "q": "3", "X": "MARKET", "m": False})
        if k % mark_every == 0:
            line(ts + 2000, "markPrice@1s", {"e": "markPriceUpdate", "E": ms, "s": sym, "p": f"{best_bid + 0.05:.2f}",
                                             "P": f"{best_bid:.2f}", "i": f"{best_bid - 1.5:.2f}", "r": "0.00010000",
                                             "T": (ms // 28_800_000 + 1) * 28_800_000})
        if k % liquidation_every == 0:
            side = "SELL" if liquidations % 2 == 0 else "BUY"
            limit = round(best_bid - 5.0 if side == "SELL" else best_ask + 5.0, 1)
            filled = liquidations > 0
            order = {"s": sym, "ps": pair, "S": side, "o": "LIMIT", "f": "IOC", "q": "12", "p": f"{limit:.1f}",
                     "ap": f"{(best_bid if side == 'SELL' else best_ask):.1f}" if filled else "0",
                     "X": "FILLED" if filled else "NEW", "l": "8" if filled else "0", "z": "8" if filled else "0", "T": ms}
            line(ts + 3000, "forceOrder", {"e": "forceOrder", "E": ms + 1, "o": order})
            liquidations += 1
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    return counts
