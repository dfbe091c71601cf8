"""One emulator serving two spot symbols, through the real ccxt client: both listed, each with its
own book, trades, orders and streams, one account; bad symbols answered as Binance does, and bad
``--symbol`` options refused in one line."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal

import ccxt
import pytest

from bot.config.settings import MarketSection
from emulator_helpers import admin, client, emulator, write_recording
from waiting import HANG_GUARD_S, eventually

TWO = [MarketSection(symbol="BTC/USDT"), MarketSection(symbol="ETH/USDT")]


async def test_two_symbols_are_listed_and_trade_from_one_account():
    async with emulator(markets=TWO, balances="USDT=10000,BTC=0,ETH=0") as emu, client(emu) as ex:
        assert {"BTC/USDT", "ETH/USDT"} <= set(ex.markets)
        books = {s: await ex.fetch_order_book(s, 5) for s in ("BTC/USDT", "ETH/USDT")}
        assert all(b["bids"] and b["asks"] for b in books.values())
        assert emu.listing.find("ETHUSDT").market is not emu.listing.find("BTCUSDT").market
        btc = await ex.create_order("BTC/USDT", "market", "buy", 0.002, params={"newClientOrderId": "same-id"})
        eth = await ex.create_order("ETH/USDT", "market", "buy", 0.003, params={"newClientOrderId": "other-id"})
        assert btc["symbol"] == "BTC/USDT" and eth["symbol"] == "ETH/USDT" and btc["id"] != eth["id"]
        bal = await ex.fetch_balance()
        assert Decimal(str(bal["BTC"]["total"])) == Decimal("0.002") and Decimal(str(bal["ETH"]["total"])) == Decimal("0.003")
        assert bal["USDT"]["total"] < 10000
        # resting orders route by symbol: the open ones of each, and all of them without a symbol
        limit = await ex.create_order("ETH/USDT", "limit", "buy", 0.001, books["ETH/USDT"]["bids"][-1][0] - 100)
        assert [o["id"] for o in await ex.fetch_open_orders("ETH/USDT")] == [limit["id"]]
        assert await ex.fetch_open_orders("BTC/USDT") == []
        ex.options["warnOnFetchOpenOrdersWithoutSymbol"] = False
        assert [o["symbol"] for o in await ex.fetch_open_orders()] == ["ETH/USDT"]
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(limit["id"], "BTC/USDT")
        await ex.cancel_order(limit["id"], "ETH/USDT")
        mine = {s: await ex.fetch_my_trades(s) for s in ("BTC/USDT", "ETH/USDT")}
        assert mine["BTC/USDT"] and mine["ETH/USDT"]
        ids = [t["id"] for t in mine["BTC/USDT"] + mine["ETH/USDT"]]
        assert len(ids) == len(set(ids)), "trade ids name one symbol's trade"
        status, state = await admin(emu, "GET", "/admin/state")
        assert status == 200 and state["symbols"] == ["BTCUSDT", "ETHUSDT"]
        assert {o["symbol"] for o in state["orders"]} == {"BTCUSDT", "ETHUSDT"} and len(state["trades"]) == len(ids)
        tickers = await ex.fetch_tickers()
        assert {"BTC/USDT", "ETH/USDT"} <= set(tickers)


async def test_streams_are_per_symbol_on_one_connection():
    async with emulator(markets=TWO) as emu, client(emu) as ex:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            book = await ex.watch_order_book(symbol)
            assert book["symbol"] == symbol and book["bids"]
        for symbol in ("BTC/USDT", "ETH/USDT"):
            first = (await ex.watch_order_book(symbol))["nonce"]

            async def moved(symbol: str = symbol, first: int = first) -> bool:
                return (await ex.watch_order_book(symbol))["nonce"] > first

            await eventually(moved, f"a depth update of {symbol}")
        trades = await ex.watch_trades("ETH/USDT")
        assert trades and all(t["symbol"] == "ETH/USDT" for t in trades)
        assert {"btcusdt@depth@100ms", "ethusdt@depth@100ms"} <= set(emu.hub.subs)


async def test_orders_on_the_user_stream_name_their_symbol():
    async with emulator(markets=TWO) as emu, client(emu) as ex:
        for symbol in ("BTC/USDT", "ETH/USDT"):
            watcher = asyncio.ensure_future(ex.watch_orders())
            await eventually(lambda: emu.hub._user_conns() and any("orders" in str(h) for c in ex.clients.values() for h in c.futures),
                             "the user data stream to be subscribed and ccxt to wait for orders")
            placed = await ex.create_order(symbol, "market", "buy", 0.001)
            reported = await asyncio.wait_for(watcher, HANG_GUARD_S)
            assert [(o["id"], o["symbol"]) for o in reported][-1] == (placed["id"], symbol)


async def test_an_unknown_symbol_is_binances_invalid_symbol():
    async with emulator(markets=TWO) as emu, client(emu) as ex:
        for call in (lambda: ex.public_get_depth({"symbol": "DOGEUSDT"}),
                     lambda: ex.private_post_order({"symbol": "DOGEUSDT", "side": "BUY", "type": "MARKET", "quantity": "1"})):
            with pytest.raises(ccxt.BadSymbol):
                await call()


async def test_recordings_of_two_symbols_replay_side_by_side(tmp_path):
    btc, eth = tmp_path / "btc.gz", tmp_path / "eth.gz"
    write_recording(btc, seconds=1.0, mid=50_000.0, symbol="btcusdt")
    write_recording(eth, seconds=1.0, mid=3_000.0, symbol="ethusdt")
    async with emulator(markets=TWO, data=[str(eth), str(btc)], speed=5.0) as emu, client(emu) as ex:
        btc_book = await ex.fetch_order_book("BTC/USDT")
        eth_book = await ex.fetch_order_book("ETH/USDT")
        assert btc_book["bids"][0][0] > 40_000 > 4_000 > eth_book["bids"][0][0]


def emulator_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", "emulator", "--port", "0", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, fragment", [
    (["--sim", "--symbol", "BTC/USDT", "--symbol", "BTC/USDT"], "given twice"),
    (["--sim", "--symbol", "BTC/USDT,ETH/USDT:USDT"], "is a perpetual: serve it with --market usdm"),
    (["--sim", "--market", "usdm", "--symbol", "BTC/USDT:USDT,ETH/USDT:USDT"], "served on spot only"),
    (["--sim", "--market", "usdm", "--symbol", "ETH/USDT"], 'use symbol = "ETH/USDT:USDT"'),
    (["--sim", "--symbol", "BTC/USDT", "--symbol", "ETHUSDT"], "must look like BASE/QUOTE"),
])
def test_bad_symbol_options_are_one_line(args, fragment):
    proc = emulator_cli(*args)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], proc.stderr


def test_a_recording_of_a_symbol_not_served_is_one_line(tmp_path):
    btc, doge = tmp_path / "btc.gz", tmp_path / "doge.gz"
    write_recording(btc, symbol="btcusdt")
    write_recording(doge, mid=0.1, symbol="dogeusdt")
    proc = emulator_cli("--data", str(btc), str(doge), "--symbol", "BTC/USDT,ETH/USDT")
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and " INFO " not in ln]
    assert proc.returncode == 1 and len(lines) == 1 and "DOGEUSDT" in lines[0] and "ETHUSDT" in lines[0], proc.stderr
