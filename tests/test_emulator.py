"""The exchange emulator, exercised through the real ccxt client (REST and ccxt.pro websockets).

Most tests run the emulator in-process (``start_emulator``) on the built-in simulator; one runs
``python -m bot.emulator`` as a subprocess; one replays the real recording when it is mounted.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import ccxt
import ccxt.pro
import pytest

from bot.config.settings import MarketSection
from bot.core.events import BookDelta, BookSnapshot, Trade
from bot.emulator import EmulatorConfig, ccxt_config, parse_faults, start_emulator
from bot.emulator.faults import FaultError
from bot.emulator.market import MarketState
from bot.emulator.matching import Engine, SymbolRules
from bot.emulator.server import parse_balances
from conftest import shared_data_dir
from emulator_helpers import SYMBOL, admin, client, emulator, emulator_and_client, write_recording
from waiting import HANG_GUARD_S, clock_ms, eventually, first_success

ROOT = Path(__file__).resolve().parents[1]
D = Decimal


# ---------------------------------------------------------------------------- markets and books
async def test_load_markets_precision_and_limits_come_from_the_config():
    market = MarketSection(tick_size=D("0.1"), lot_size=D("0.001"), min_qty=D("0.002"), min_notional=D("10"))
    async with emulator_and_client(market=market) as (emu, ex):
        m = ex.market(SYMBOL)
        assert m["id"] == "BTCUSDT" and m["spot"] and m["active"] and m["type"] == "spot"
        assert m["precision"]["price"] == 0.1
        assert m["precision"]["amount"] == 0.001
        assert m["limits"]["amount"]["min"] == 0.002
        assert m["limits"]["cost"]["min"] == 10.0
        assert m["limits"]["price"]["min"] == 0.1
        assert list(ex.markets) == [SYMBOL]
        before = int(clock_ms())
        server_time = await ex.fetch_time()
        assert before <= server_time <= clock_ms()  # the server's clock is the wall clock at the call


async def test_fetch_order_book_is_sound_and_updates():
    async with emulator_and_client() as (emu, ex):
        first = await ex.fetch_order_book(SYMBOL, 10)
        assert 0 < len(first["bids"]) <= 10 and 0 < len(first["asks"]) <= 10
        assert first["bids"][0][0] < first["asks"][0][0]
        assert first["bids"] == sorted(first["bids"], reverse=True) and first["asks"] == sorted(first["asks"])
        await eventually(lambda: emu.market.update_id > first["nonce"] and emu.market.trades,
                         "the emulator's book to change and a first public trade")
        second = await ex.fetch_order_book(SYMBOL, 10)
        assert second["nonce"] > first["nonce"]
        assert second["bids"][0][0] < second["asks"][0][0]
        ticker = await ex.fetch_ticker(SYMBOL)
        assert ticker["bid"] < ticker["ask"] and ticker["last"] > 0
        trades = await ex.fetch_trades(SYMBOL, limit=20)
        assert trades and all(t["price"] > 0 for t in trades)


async def test_watch_order_book_matches_the_emulator_book_exactly():
    """The diff stream (U/u) + REST snapshot (lastUpdateId) reproduce the emulator's own book."""
    async with emulator_and_client() as (emu, ex):
        nonces = []
        matched = 0
        for _ in range(40):
            book = await ex.watch_order_book(SYMBOL)
            assert book["bids"][0][0] < book["asks"][0][0]
            nonces.append(book["nonce"])
            if book["nonce"] == emu.market.update_id:  # no change since this diff: compare everything
                own = emu.market.book
                assert [list(x) for x in own.bids(1000)] == [list(x) for x in book["bids"]]
                assert [list(x) for x in own.asks(1000)] == [list(x) for x in book["asks"]]
                matched += 1
                if matched >= 3:
                    break
        assert matched >= 1
        assert nonces == sorted(nonces) and nonces[-1] > nonces[0]
        trades = await ex.watch_trades(SYMBOL)
        assert trades[-1]["symbol"] == SYMBOL and trades[-1]["price"] > 0


# ---------------------------------------------------------------------------- orders
async def test_market_buy_with_client_order_id_fills_and_moves_balances():
    async with emulator_and_client(balances="USDT=10000,BTC=0") as (emu, ex):
        ask = emu.market.book.best_ask
        order = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "mkt-buy-1"})
        assert order["clientOrderId"] == "mkt-buy-1"
        assert order["status"] == "closed" and order["filled"] == 0.01
        assert order["average"] >= ask
        fetched = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "mkt-buy-1"})
        assert fetched["id"] == order["id"] and fetched["status"] == "closed" and fetched["filled"] == 0.01
        by_id = await ex.fetch_order(order["id"], SYMBOL)
        assert by_id["clientOrderId"] == "mkt-buy-1"
        trades = await ex.fetch_my_trades(SYMBOL)
        mine = [t for t in trades if t["order"] == order["id"]]
        assert mine and sum(t["amount"] for t in mine) == pytest.approx(0.01)
        assert all(t["side"] == "buy" and t["takerOrMaker"] == "taker" and t["fee"]["currency"] == "USDT" for t in mine)
        cost = sum(D(t["info"]["quoteQty"]) for t in mine)
        fee = sum(D(t["info"]["commission"]) for t in mine)
        assert fee == (cost * D("0.001")).quantize(D("0.00000001"))
        balance = await ex.fetch_balance()
        assert balance["BTC"]["total"] == pytest.approx(0.01)
        assert D(str(balance["USDT"]["free"])) == D(10000) - cost - fee
        # in --sim mode the taker order consumed the simulator's liquidity: our trades are public
        public = await ex.fetch_trades(SYMBOL, limit=50)
        assert {t["id"] for t in mine} <= {t["id"] for t in public}


async def test_resting_limit_order_is_open_and_cancel_works():
    async with emulator_and_client() as (emu, ex):
        price = ex.price_to_precision(SYMBOL, emu.market.book.best_bid * 0.95)
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, float(price), {"clientOrderId": "rest-1"})
        assert order["status"] == "open" and order["filled"] == 0
        open_orders = await ex.fetch_open_orders(SYMBOL)
        assert [o["id"] for o in open_orders] == [order["id"]]
        balance = await ex.fetch_balance()
        locked = D(price) * D("0.01") * D("1.001")
        assert D(str(balance["USDT"]["used"])) == locked
        canceled = await ex.cancel_order(order["id"], SYMBOL)
        assert canceled["status"] == "canceled"
        assert await ex.fetch_open_orders(SYMBOL) == []
        assert (await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "rest-1"}))["status"] == "canceled"
        balance = await ex.fetch_balance()
        assert balance["USDT"]["used"] == 0 and balance["USDT"]["free"] == 10000
        with pytest.raises(ccxt.OrderNotFound):
            await ex.cancel_order(order["id"], SYMBOL)
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_order("123", SYMBOL)


async def test_duplicate_client_order_id_of_an_open_order_is_refused():
    async with emulator_and_client() as (emu, ex):
        price = float(ex.price_to_precision(SYMBOL, emu.market.book.best_bid * 0.9))
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "dup-1"})
        with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
            await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "dup-1"})
        assert len(await ex.fetch_open_orders(SYMBOL)) == 1  # nothing was booked twice
        await ex.cancel_all_orders(SYMBOL)
        # like Binance, the id may be reused once no open order has it
        again = await ex.create_order(SYMBOL, "limit", "buy", 0.001, price, {"clientOrderId": "dup-1"})
        assert again["status"] == "open"


async def test_order_rejections_map_to_ccxt_exceptions():
    async with emulator_and_client(balances="USDT=100,BTC=0.001") as (emu, ex):
        bid, ask = emu.market.book.best_bid, emu.market.book.best_ask
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(SYMBOL, "market", "buy", 0.01)
        with pytest.raises(ccxt.InsufficientFunds):
            await ex.create_order(SYMBOL, "market", "sell", 0.01)
        # NOTIONAL: Binance -1013 "Filter failure: NOTIONAL", which ccxt maps to BadRequest
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
            await ex.create_order(SYMBOL, "limit", "buy", 0.0001, round(bid * 0.9, 2))
        # LOT_SIZE / PRICE_FILTER: ccxt finds the filter name in the body -> InvalidOrder
        base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
        with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
            await ex.private_post_order({**base, "quantity": "0.000015", "price": f"{bid * 0.9:.2f}"})
        with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
            await ex.private_post_order({**base, "quantity": "0.001", "price": f"{bid * 0.9:.2f}5"})
        with pytest.raises(ccxt.BadRequest):  # -1102 mandatory parameter
            await ex.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.001"})
        with pytest.raises(ccxt.BadSymbol):
            await ex.private_post_order({**base, "symbol": "ETHUSDT", "quantity": "0.001", "price": "100.00"})
        # post-only that would take -> -2010 "Order would immediately match and take."
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            await ex.create_order(SYMBOL, "limit", "sell", 0.001, round(bid - 0.2, 2), {"postOnly": True})
        maker = await ex.create_order(SYMBOL, "limit", "sell", 0.001, round(ask + 5, 2), {"postOnly": True})
        assert maker["status"] == "open" and maker["postOnly"]
        assert emu.engine.state()["balances"]["USDT"]["locked"] == "0.00000000"


async def test_ioc_fok_and_market_orders_that_exhaust_the_book():
    async with emulator_and_client(balances="USDT=100000000,BTC=1000") as (emu, ex):
        # limit prices 20 ticks through the touch stay marketable while the simulator moves on
        fok = await ex.create_order(SYMBOL, "limit", "buy", 50, round(emu.market.book.best_ask + 0.2, 2), {"timeInForce": "FOK"})
        assert fok["status"] == "expired" and fok["filled"] == 0
        ioc = await ex.create_order(SYMBOL, "limit", "buy", 50, round(emu.market.book.best_ask + 0.2, 2), {"timeInForce": "IOC"})
        assert ioc["status"] == "expired" and 0 < ioc["filled"] < 50
        big = await ex.create_order(SYMBOL, "market", "sell", 99)  # more than the whole bid side
        assert big["status"] == "expired" and 0 < big["filled"] < 99  # the remainder expires, as on Binance
        book = await ex.fetch_order_book(SYMBOL)
        assert book["bids"][0][0] < book["asks"][0][0]  # the simulator refilled the side we emptied


async def test_quote_order_qty_market_buy():
    async with emulator_and_client() as (emu, ex):
        order = await ex.create_market_buy_order_with_cost(SYMBOL, 100)
        assert order["status"] == "closed"
        assert 95 < order["cost"] <= 100
        assert D(order["info"]["executedQty"]) % D("0.00001") == 0


# ---------------------------------------------------------------------------- auth
async def test_wrong_secret_and_wrong_key_are_authentication_errors():
    async with emulator() as emu:
        async with client(emu, secret="not-the-secret") as ex:
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await ex.fetch_balance()
        async with client(emu, api_key="not-the-key") as ex:
            with pytest.raises(ccxt.AuthenticationError, match="-2015"):
                await ex.fetch_balance()
        async with client(emu) as ex:
            assert (await ex.fetch_balance())["USDT"]["free"] == 10000


async def test_stale_or_future_timestamp_is_invalid_nonce():
    async with emulator_and_client() as (emu, ex):
        ex.options["timeDifference"] = 15_000  # our clock 15 s behind the server, recvWindow 10 s
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await ex.fetch_balance()
        ex.options["timeDifference"] = -30_000  # 30 s ahead (more than 1 s ahead however late the request arrives)
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await ex.fetch_balance()
        ex.options["timeDifference"] = 0
        await ex.fetch_balance()


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize("spec, error", [
    ("rate_limit=1", ccxt.DDoSProtection),  # 429 -1003; ccxt checks the status first: DDoSProtection
    ("ban=1", ccxt.DDoSProtection),  # 418
    ("server_error=1", ccxt.ExchangeNotAvailable),  # 503
    ("server_error=1@504", ccxt.RequestTimeout),
    ("internal_error=1", ccxt.OperationFailed),  # 500 -1001
    ("slow=1@30", ccxt.RequestTimeout),  # held 30 s (released when the emulator stops), client timeout 500 ms
])
async def test_each_rest_fault_gives_the_ccxt_exception(spec, error):
    async with emulator() as emu, client(emu) as ex:
        emu.set_faults(spec)
        usual = ex.timeout
        if spec.startswith("slow"):
            ex.timeout = 500  # only the held request: the others answer at once, however busy the machine
        with pytest.raises(error):
            await ex.fetch_order_book(SYMBOL)
        ex.timeout = usual
        emu.set_faults("")
        assert (await ex.fetch_order_book(SYMBOL))["bids"]


async def test_rate_limit_response_is_binance_shaped():
    import aiohttp

    async with emulator(faults="rate_limit=1") as emu:
        async with aiohttp.ClientSession() as session:
            async with session.get(emu.base_url + "/api/v3/time") as resp:
                assert resp.status == 429 and resp.headers["Retry-After"] == "1"
                assert (await resp.json())["code"] == -1003
            async with session.get(emu.base_url + "/admin/state") as resp:  # admin is never faulted
                assert resp.status == 200


async def test_ban_for_a_while_then_recover():
    async with emulator() as emu, client(emu) as ex:
        emu.set_faults("ban=1@1")
        with pytest.raises(ccxt.DDoSProtection):
            await ex.fetch_time()
        emu.set_faults("ban=0.0001@1,seed=1")  # no new bans drawn, the current one lasts 1 s
        banned_until_ms = int(emu.faults.banned_until * 1000)
        with pytest.raises(ccxt.DDoSProtection, match=f"banned until {banned_until_ms}"):
            await ex.fetch_time()
        served, _ = await first_success(ex.fetch_time, ccxt.DDoSProtection, "the 1 s ban to expire")
        assert served >= banned_until_ms  # refused until the ban's end, served from then on
        assert await ex.fetch_time() >= served


async def test_reject_fault_refuses_new_orders():
    async with emulator_and_client(faults="reject=1") as (emu, ex):
        with pytest.raises(ccxt.InvalidOrder, match="-2010"):
            await ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert emu.engine.orders == {}


async def test_timeout_after_accept_books_the_order_once():
    """The client times out but the order exists: the bot must look it up, not send it again."""
    async with emulator() as emu, client(emu) as ex:
        status, body = await admin(emu, "POST", "/admin/faults", "timeout_after_accept=1@30")  # held 30 s, or until stop
        assert status == 200 and body["faults"]["timeout_after_accept"] == 1.0
        usual, ex.timeout = ex.timeout, 700  # only this request: its answer is held far longer
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "never-twice"})
        ex.timeout = usual
        await admin(emu, "POST", "/admin/faults", "")
        found = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "never-twice"})
        assert found["status"] == "closed" and found["filled"] == 0.002
        status, state = await admin(emu, "GET", "/admin/state")
        assert [o["clientOrderId"] for o in state["orders"]] == ["never-twice"]
        assert state["faults_injected"]["timeout_after_accept"] == 1
        # @0: the connection is dropped without an answer
        emu.set_faults("timeout_after_accept=1@0")
        with pytest.raises(ccxt.NetworkError):
            await ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "dropped"})
        emu.set_faults("")
        assert (await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "dropped"}))["status"] == "closed"


async def test_admin_faults_rejects_a_bad_spec():
    async with emulator() as emu:
        status, body = await admin(emu, "POST", "/admin/faults", "rate_limit=2")
        assert status == 400 and "probability" in body["error"]
        status, body = await admin(emu, "POST", "/admin/balances", "USDT=5,BTC=1")
        assert body["balances"]["USDT"]["free"] == "5.00000000"


def test_fault_spec_grammar():
    spec = parse_faults("rate_limit=0.1, ban=0.01@30, server_error=0.2@502, slow=0.5@2, ws_drop=30, gap=10, "
                        "reject=0.05, timeout_after_accept=0.1, latency=20, weight_limit=1200, internal_error=0.1, seed=3")
    assert (spec.rate_limit, spec.ban, spec.ban_seconds, spec.server_error_status) == (0.1, 0.01, 30.0, 502)
    assert (spec.slow, spec.slow_seconds, spec.ws_drop, spec.gap, spec.seed) == (0.5, 2.0, 30.0, 10.0, 3)
    assert spec.timeout_after_accept_seconds == 30.0 and spec.latency_ms == 20 and spec.weight_limit == 1200
    assert parse_faults("") == parse_faults("none")
    for bad in ("nope=1", "rate_limit", "rate_limit=x", "slow=0.5", "server_error=1@404", "gap=-1"):
        with pytest.raises(FaultError):
            parse_faults(bad)
    assert parse_balances("USDT=10000, btc=0.5") == {"USDT": D(10000), "BTC": D("0.5")}


# ---------------------------------------------------------------------------- websocket faults
async def test_gap_makes_watch_order_book_raise_checksum_error_then_resync():
    """ccxt.pro checks U == previous u + 1; on a gap it raises ChecksumError (an InvalidNonce),
    drops its book and the subscription; calling watch_order_book again resubscribes and
    rebuilds the book from a fresh REST snapshot."""
    async with emulator_and_client() as (emu, ex):
        await ex.watch_order_book(SYMBOL)
        status, _ = await admin(emu, "POST", "/admin/gap")
        assert status == 200
        with pytest.raises(ccxt.ChecksumError):
            for _ in range(50):
                await ex.watch_order_book(SYMBOL)
        assert emu.hub.gaps_injected >= 1
        book = await ex.watch_order_book(SYMBOL)
        assert book["bids"][0][0] < book["asks"][0][0]
        for _ in range(3):
            book = await ex.watch_order_book(SYMBOL)
        assert book["nonce"] <= emu.market.update_id


async def test_periodic_gap_fault():
    async with emulator_and_client(faults="gap=0.3") as (emu, ex):
        errors = 0

        async def two_gaps_seen() -> bool:
            nonlocal errors
            try:
                await ex.watch_order_book(SYMBOL)
            except ccxt.InvalidNonce:
                errors += 1
            return errors >= 2

        await eventually(two_gaps_seen, "two gaps (one every 0.3 s) to reach the client", interval=0)
        assert errors >= 2


async def test_ws_drop_raises_network_error_and_a_retry_reconnects():
    async with emulator_and_client(faults="ws_drop=0.5") as (emu, ex):
        await ex.watch_order_book(SYMBOL)
        with pytest.raises(ccxt.NetworkError):
            for _ in range(100):
                await ex.watch_order_book(SYMBOL)
        emu.set_faults("")
        book = await ex.watch_order_book(SYMBOL)
        assert book["bids"][0][0] < book["asks"][0][0]
        trades = await ex.watch_trades(SYMBOL)
        assert trades
        assert emu.hub.drops_injected >= 1


# ---------------------------------------------------------------------------- matching, unit level
def _replay_engine(**balances: str) -> tuple[MarketState, Engine]:
    market = MarketState()
    rules = SymbolRules.from_market(MarketSection())
    engine = Engine(rules, market, parse_balances(balances or {"USDT": "10000", "BTC": "1"}))
    market.apply_event(BookSnapshot(0, 0, ((100.0, 1.0), (99.0, 2.0)), ((101.0, 1.0), (102.0, 2.0)), 1))
    return market, engine


def test_resting_buy_fills_as_maker_when_the_ask_crosses_it():
    market, engine = _replay_engine()
    order, _ = engine.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                 "quantity": "0.5", "price": "100.50"})
    assert order.status == "NEW" and engine.balances["USDT"][1] == D("50.30025")
    market.apply_event(BookDelta(0, 0, (), ((100.4, 0.2),), 2, 2))
    assert order.status == "PARTIALLY_FILLED" and order.executed_qty == D("0.2")
    assert order.fills[0].price == D("100.50") and order.fills[0].is_maker
    market.apply_event(BookDelta(0, 0, (), ((100.3, 0.1),), 3, 3))  # more liquidity crosses
    assert order.executed_qty == D("0.3")
    market.apply_event(BookDelta(0, 0, (), ((101.0, 1.5),), 4, 4))  # not crossing: nothing
    assert order.executed_qty == D("0.3")
    # a public sell trading through 100.50 fills the rest (up to its size)
    market.apply_event(Trade(0, 0, 100.2, 0.5, "sell", 1))
    assert order.status == "FILLED" and order.executed_qty == D("0.5")
    usdt_free, usdt_locked = engine.balances["USDT"]
    assert usdt_locked == 0
    assert usdt_free == D(10000) - D("0.5") * D("100.5") * D("1.001")
    assert engine.balances["BTC"] == [D("1.5"), D(0)]


def test_replay_mode_does_not_take_the_same_liquidity_twice():
    market, engine = _replay_engine()
    for _ in range(2):
        engine.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.8"})
    first, second = engine.orders.values()
    assert [f.price for f in first.fills] == [D(101)]
    assert [(f.price, f.qty) for f in second.fills] == [(D(101), D("0.2")), (D(102), D("0.6"))]
    assert market.book.best_ask_size == 1.0  # the recording is authoritative: the book is unchanged
    market.apply_event(BookDelta(0, 0, (), ((101.0, 0.0),), 2, 2))  # the level goes away
    market.apply_event(BookDelta(0, 0, (), ((101.0, 3.0),), 3, 3))  # and comes back fresh
    engine.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.8"})
    assert [f.price for f in list(engine.orders.values())[-1].fills] == [D(101)]


# ---------------------------------------------------------------------------- as a process / with data
async def test_runs_as_a_subprocess_and_prints_ready():
    env = {**os.environ, "BOT_EMULATOR_API_KEY": "proc-key", "BOT_EMULATOR_API_SECRET": "proc-secret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.emulator", "--sim", "--port", "0", "--seed", "3", "--balances", "USDT=500,BTC=0",
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout=HANG_GUARD_S)).decode().strip()
        assert line.startswith("EMULATOR READY http://127.0.0.1:")
        base_url, ws_url = line.split()[2:4]
        assert ws_url == base_url.replace("http://", "ws://") + "/ws"
        ex = ccxt.pro.binance(ccxt_config(base_url, ws_url, "proc-key", "proc-secret"))
        try:
            await ex.load_markets()
            book = await ex.watch_order_book(SYMBOL)
            assert book["bids"][0][0] < book["asks"][0][0]
            order = await ex.create_order(SYMBOL, "market", "buy", 0.001)
            assert order["status"] == "closed"
            assert (await ex.fetch_balance())["BTC"]["free"] == pytest.approx(0.001)
        finally:
            await ex.close()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), timeout=HANG_GUARD_S) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_cli_refuses_bad_options(capsys):
    from bot.emulator.cli import main

    assert main(["--sim", "--faults", "rate_limit=7"]) == 1
    out = capsys.readouterr()
    assert "probability" in out.err and out.out == ""
    assert main(["--data", "/nonexistent.gz"]) == 1
    assert main(["--sim", "--balances", "USDT=lots"]) == 1
    with pytest.raises(SystemExit) as exc:
        main([])  # --sim or --data is required
    assert exc.value.code == 2


@pytest.mark.data
async def test_replays_the_real_recording():
    data = shared_data_dir() / "hftbacktest-binance" / "spot" / "btcusdt_20240808.gz"
    if not data.is_file():
        pytest.skip(f"recording not mounted: {data}")
    started_ms = int(clock_ms())
    async with emulator_and_client(data=[str(data)], speed=20.0) as (emu, ex):
        book = await ex.fetch_order_book(SYMBOL, 5)
        assert 40_000 < book["bids"][0][0] < book["asks"][0][0] < 80_000
        watched = await ex.watch_order_book(SYMBOL)
        assert watched["bids"][0][0] < watched["asks"][0][0]
        order = await ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert order["status"] == "closed" and order["filled"] == 0.01
        assert 40_000 < order["average"] < 80_000
        # timestamps are re-based to now: stamped when the emulator applied them, not in 2024
        stamped = (await ex.fetch_trades(SYMBOL, limit=5))[-1]["timestamp"]
        assert started_ms <= stamped <= clock_ms()
    eth = shared_data_dir() / "hftbacktest-binance" / "spot" / "ethusdt_20240808.gz"
    with pytest.raises(ValueError, match="ETHUSDT"):
        await start_emulator(EmulatorConfig(data=[str(eth)]))


# ---------------------------------------------------------------------------- replay of a small synthetic recording
async def test_replay_follows_the_recording_and_our_orders_do_not_move_it(tmp_path):
    rec = tmp_path / "btcusdt_synthetic.gz"
    write_recording(rec, seconds=1.0, step_ms=50)
    started_ms = int(clock_ms())
    async with emulator_and_client(data=[str(rec)], speed=1.0) as (emu, ex):
        first = await ex.fetch_order_book(SYMBOL)
        assert first["bids"][0][0] < first["asks"][0][0]
        order = await ex.create_order(SYMBOL, "market", "buy", 0.1)
        assert order["status"] == "closed" and order["filled"] == 0.1
        await eventually(lambda: emu.feed.done, "the replay to reach the recording's end")
        done_ms = clock_ms()
        book = await ex.fetch_order_book(SYMBOL)
        # 20 steps of one tick each: the book ends where the recording ends, untouched by our order
        assert book["bids"][0] == [50_000.19, 2.0] and book["asks"][0][0] == 50_000.20
        trades = await ex.fetch_trades(SYMBOL, limit=100)
        assert len(trades) == 20
        stamps = [t["timestamp"] for t in trades]  # stamped when replayed: within this run, not in 2024
        assert started_ms <= min(stamps) and max(stamps) <= done_ms


async def test_replay_loop_starts_again(tmp_path):
    rec = tmp_path / "btcusdt_synthetic.gz"
    write_recording(rec, seconds=0.5, step_ms=50)
    async with emulator_and_client(data=[str(rec)], speed=5.0, loop=True) as (emu, ex):
        await eventually(lambda: emu.feed.passes >= 2, "the replay to start again")
        book = await ex.watch_order_book(SYMBOL)
        assert book["bids"][0][0] < book["asks"][0][0]


# ---------------------------------------------------------------------------- private websockets
def ccxt_is_watching(ex: ccxt.pro.binance, what: str) -> bool:
    """ccxt.pro has a pending future for a watch whose message hash names ``what`` (e.g.
    ``orders:BTC/USDT``, ``spot:balance``): an update sent from now on resolves it."""
    return any(what in str(h) for c in ex.clients.values() for h in c.futures)


async def test_ccxt_pro_private_streams_and_ws_orders():
    """ccxt.pro spot private streams go through the WebSocket API (userDataStream.subscribe.signature)."""
    async with emulator_and_client() as (emu, ex):
        watcher = asyncio.ensure_future(ex.watch_orders(SYMBOL))
        await eventually(lambda: emu.hub._user_conns() and ccxt_is_watching(ex, "orders"),
                         "the user data stream to be subscribed and ccxt to wait for orders")
        await ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "ws-watch-1"})
        orders = await asyncio.wait_for(watcher, HANG_GUARD_S)
        assert orders[-1]["clientOrderId"] == "ws-watch-1" and orders[-1]["status"] == "closed"
        balance = asyncio.ensure_future(ex.watch_balance())
        await eventually(lambda: ccxt_is_watching(ex, "balance"), "ccxt to wait for a balance update")
        await ex.create_order(SYMBOL, "market", "sell", 0.001)
        assert (await asyncio.wait_for(balance, HANG_GUARD_S))["BTC"]["free"] == pytest.approx(0.5)
        placed = await ex.create_order_ws(SYMBOL, "limit", "buy", 0.001, 20_000.0, {"clientOrderId": "ws-place-1"})
        assert placed["status"] == "open" and placed["clientOrderId"] == "ws-place-1"
        assert (await ex.cancel_order_ws(placed["id"], SYMBOL))["status"] == "canceled"
        with pytest.raises(ccxt.BadRequest, match="NOTIONAL"):
            await ex.create_order_ws(SYMBOL, "limit", "buy", 0.0001, 20_000.0)


async def test_weight_limit_fault_counts_binance_weights():
    async with emulator_and_client(faults="weight_limit=28") as (emu, ex):
        await ex.fetch_order_book(SYMBOL, 5)  # load_markets 20 + depth 5
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            await ex.fetch_order_book(SYMBOL, 5)


async def test_listen_key_user_data_stream():
    import aiohttp

    async with emulator_and_client() as (emu, ex):
        async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": emu.api_key}) as session:
            async with session.post(emu.base_url + "/api/v3/userDataStream") as resp:
                key = (await resp.json())["listenKey"]
            async with session.put(emu.base_url + "/api/v3/userDataStream", params={"listenKey": key}) as resp:
                assert resp.status == 200
            async with session.ws_connect(f"{emu.ws_url}/{key}") as ws:
                await ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "lk-1"})
                events = []
                while not any(e.get("e") == "executionReport" and e["X"] == "FILLED" for e in events):
                    events.append(await asyncio.wait_for(ws.receive_json(), HANG_GUARD_S))
                kinds = {e["e"] for e in events}
                assert {"executionReport", "outboundAccountPosition"} <= kinds
                filled = [e for e in events if e.get("X") == "FILLED"][0]
                assert filled["c"] == "lk-1" and filled["x"] == "TRADE" and filled["z"] == "0.00100000"
            async with session.delete(emu.base_url + "/api/v3/userDataStream", params={"listenKey": key}) as resp:
                assert resp.status == 200
            async with session.put(emu.base_url + "/api/v3/userDataStream", params={"listenKey": key}) as resp:
                assert (await resp.json())["code"] == -1125
