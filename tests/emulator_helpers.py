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
