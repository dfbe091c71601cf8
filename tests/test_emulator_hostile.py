"""Hostile answers from the emulator (``/admin/override``, ``--override FILE``, ``/admin/ws_inject``), through ccxt.

These are the tools the bot's own tests use to run it against garbage; here they are checked to
do what they say: which requests they hit, what the client then receives, and that the real
handler runs (or not) as the mode says.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error

import aiohttp
import ccxt
import ccxt.async_support
import pytest

from bot.emulator.override import OverrideError, deep_merge, parse_override
from bot.emulator.process import EmulatorProcess
from emulator_helpers import SYMBOL, admin, client, emulator, emulator_and_client


async def override(emu, **spec) -> int:
    status, body = await admin(emu, "POST", "/admin/override", json.dumps(spec))
    assert status == 200, body
    return body["id"]


async def overrides(emu) -> list[dict]:
    return (await admin(emu, "GET", "/admin/override"))[1]["overrides"]


# ---------------------------------------------------------------------------- modes
async def test_merge_changes_the_answer_and_the_order_is_really_placed():
    async with emulator_and_client() as (emu, ex):
        oid = await override(emu, method="POST", path="/api/v3/order", mode="merge",
                             body={"symbol": "ETHUSDT", "fills": {"commission": "NaN"}})
        order = await ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "merged-1"})
        assert order["info"]["symbol"] == "ETHUSDT"
        assert order["info"]["fills"] and all(f["commission"] == "NaN" for f in order["info"]["fills"])  # into every fill
        assert all(f["commissionAsset"] == "USDT" for f in order["info"]["fills"])  # the rest is the real answer
        _, state = await admin(emu, "GET", "/admin/state")
        placed = [o for o in state["orders"] if o["clientOrderId"] == "merged-1"]
        assert placed and placed[0]["symbol"] == "BTCUSDT" and placed[0]["status"] == "FILLED"
        assert str(placed[0]["orderId"]) == order["id"]
        assert [(o["id"], o["fired"], o["active"]) for o in await overrides(emu)] == [(oid, 1, False)]
        again = await ex.create_order(SYMBOL, "market", "buy", 0.001)  # times defaults to 1
        assert again["info"]["symbol"] == "BTCUSDT"


async def test_merge_into_a_list_and_a_list_body_replaces_it():
    async with emulator_and_client() as (emu, ex):
        await ex.create_order(SYMBOL, "market", "buy", 0.002)
        await override(emu, method="GET", path="/api/v3/myTrades", mode="merge", body={"commissionAsset": "XYZ"})
        trades = await ex.fetch_my_trades(SYMBOL)
        assert trades and {t["fee"]["currency"] for t in trades} == {"XYZ"}
        price = float(ex.price_to_precision(SYMBOL, emu.market.book.best_bid * 0.9))
        await ex.create_order(SYMBOL, "limit", "buy", 0.001, price)
        await override(emu, method="GET", path="/api/v3/openOrders", mode="merge", body=[])
        assert await ex.fetch_open_orders(SYMBOL) == []
        assert len(await ex.fetch_open_orders(SYMBOL)) == 1


async def test_run_replace_runs_the_handler_but_answers_an_error():
    async with emulator_and_client() as (emu, ex):
        await override(emu, method="POST", path="/api/v3/order", mode="run_replace", status=500,
                       body={"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})
        with pytest.raises(ccxt.OperationFailed):
            await ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "ghost-1"})
        found = await ex.fetch_order(None, SYMBOL, {"origClientOrderId": "ghost-1"})
        assert found["status"] == "closed" and found["filled"] == 0.001


async def test_replace_does_not_run_the_handler():
    async with emulator_and_client() as (emu, ex):
        await override(emu, method="POST", path="/api/v3/order", mode="replace",
                       body={"symbol": "BTCUSDT", "orderId": 7, "status": "NEW", "clientOrderId": "fake"})
        order = await ex.create_order(SYMBOL, "market", "buy", 0.001, None, {"clientOrderId": "not-placed"})
        assert order["id"] == "7" and order["clientOrderId"] == "fake"
        assert emu.engine.orders == {}
        await override(emu, method="GET", path="/api/v3/account", mode="replace", body={"balances": []}, times=0)
        for _ in range(3):  # times 0: until cleared
            assert "USDT" not in (await ex.fetch_balance())["total"]
        status, body = await admin(emu, "DELETE", "/admin/override")
        assert status == 200 and body == {"cleared": 2}
        assert (await ex.fetch_balance())["USDT"]["free"] == 10000


async def test_raw_garbage_on_exchange_info():
    async with emulator() as emu:
        # a 5xx with garbage: load_markets raises
        await override(emu, path="/api/v3/exchangeInfo", mode="raw", body="not json{", status=502)
        async with client(emu, load=False) as ex:
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.load_markets()
        # status 200 with garbage: ccxt (4.5) does not raise, it loads no markets at all
        await override(emu, path="/api/v3/exchangeInfo", mode="raw", body="not json{")
        async with client(emu, load=False) as ex:
            assert await ex.load_markets() == {}
            with pytest.raises(ccxt.BadSymbol):
                ex.market(SYMBOL)
        await override(emu, path="/api/v3/exchangeInfo", mode="raw", body="")
        async with aiohttp.ClientSession() as session:
            async with session.get(emu.base_url + "/api/v3/exchangeInfo") as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                assert await resp.text() == "" and "X-MBX-USED-WEIGHT-1M" in resp.headers
        assert [o["fired"] for o in await overrides(emu)] == [1, 1, 1]


# ---------------------------------------------------------------------------- which requests
async def test_match_and_times():
    async with emulator_and_client() as (emu, ex):
        await override(emu, method="post", path="/api/v3/order", mode="replace", status=400, times=2,
                       match={"SIDE": "SELL", "type": "MARKET"},
                       body={"code": -2010, "msg": "Account has insufficient balance for requested action."})
        buy = await ex.create_order(SYMBOL, "market", "buy", 0.001)
        assert buy["status"] == "closed"
        for _ in range(2):
            with pytest.raises(ccxt.InsufficientFunds):
                await ex.create_order(SYMBOL, "market", "sell", 0.001)
        sell = await ex.create_order(SYMBOL, "market", "sell", 0.001)  # used up
        assert sell["status"] == "closed"
        (listed,) = await overrides(emu)
        assert (listed["fired"], listed["active"], listed["match"]) == (2, False, {"side": "SELL", "type": "MARKET"})
        # the first active matching override, in the order added, applies
        await override(emu, path="/api/v3/time", mode="replace", body={"serverTime": 1})
        await override(emu, path="/api/v3/time", mode="replace", body={"serverTime": 2})
        assert await ex.fetch_time() == 1 and await ex.fetch_time() == 2
        assert await ex.fetch_time() > 2


async def test_signed_endpoints_still_need_a_valid_signature():
    async with emulator_and_client() as (emu, ex):
        await override(emu, method="GET", path="/api/v3/account", mode="replace", body={"balances": []})
        async with aiohttp.ClientSession() as session:
            async with session.get(emu.base_url + "/api/v3/account") as resp:  # no key, no signature
                assert resp.status == 401 and (await resp.json())["code"] == -2014
        async with client(emu, secret="wrong") as bad:
            with pytest.raises(ccxt.AuthenticationError, match="-1022"):
                await bad.fetch_balance()
        assert (await overrides(emu))[0]["fired"] == 0
        assert (await ex.fetch_balance())["total"] == {}  # signed: overridden
        assert (await overrides(emu))[0]["fired"] == 1


async def test_bad_overrides_are_refused():
    async with emulator() as emu:
        for spec in ({"path": "/admin/state", "mode": "replace", "body": {}}, {"path": "/api/v3/time", "mode": "swap", "body": 1},
                     {"path": "/api/v3/time", "mode": "raw", "body": {"not": "a string"}},
                     {"path": "/api/v3/time", "mode": "replace", "body": 1, "times": -1},
                     {"path": "/api/v3/time", "mode": "replace"}, {"path": "/api/v3/time", "mode": "replace", "body": 1, "typo": 1}):
            status, body = await admin(emu, "POST", "/admin/override", json.dumps(spec))
            assert status == 400 and body["error"], spec
        status, body = await admin(emu, "POST", "/admin/override", "not json")
        assert status == 400
        assert await overrides(emu) == []
        status, _ = await admin(emu, "GET", "/admin/state")  # admin endpoints are never overridden
        assert status == 200


def test_override_parsing_and_merge_rules():
    o = parse_override({"path": "/api/v3/order", "mode": "merge", "body": {}, "match": {"Quantity": 0.5, "test": True}})
    assert (o.method, o.status, o.times, o.match) == ("*", None, 1, {"quantity": "0.5", "test": "true"})
    assert parse_override({"path": "/api/v3/time", "mode": "raw", "body": ""}).status == 200
    with pytest.raises(OverrideError):
        parse_override([1])
    answer = {"a": {"b": 1, "c": 2}, "l": [{"x": 1}, {"x": 2}], "s": 1}
    assert deep_merge(answer, {"a": {"b": 9}, "l": {"y": 0}, "s": None, "n": [1]}) == \
        {"a": {"b": 9, "c": 2}, "l": [{"x": 1, "y": 0}, {"x": 2, "y": 0}], "s": None, "n": [1]}
    assert deep_merge([{"x": 1}, 3], {"x": 0}) == [{"x": 0}, 3]
    assert deep_merge(answer, ["replaced"]) == ["replaced"]
    assert answer["a"] == {"b": 1, "c": 2}  # inputs are not changed


# ---------------------------------------------------------------------------- as a process
def test_override_file_is_active_from_the_first_request(tmp_path):
    spec = tmp_path / "hostile.json"
    spec.write_text(json.dumps([{"method": "GET", "path": "/api/v3/exchangeInfo", "mode": "merge", "times": 0,
                                 "body": {"symbols": {"status": "BREAK"}}}]))
    emu = EmulatorProcess(["--sim", "--override", str(spec), "--log-level", "warning"], stderr_path=tmp_path / "emu.err")

    async def markets() -> dict:
        ex = ccxt.async_support.binance(_config(emu))
        try:
            return await ex.load_markets()
        finally:
            await ex.close()

    try:
        assert asyncio.run(markets())[SYMBOL]["active"] is False  # status BREAK from the very first call
        (listed,) = emu.overrides()
        assert listed["fired"] == 1 and listed["active"]
        assert emu.clear_overrides() == 1
        assert asyncio.run(markets())[SYMBOL]["active"] is True
        new_id = emu.override({"path": "/api/v3/time", "mode": "replace", "body": {"serverTime": 5}})
        assert [o["id"] for o in emu.overrides()] == [new_id]
        with pytest.raises(ValueError, match="mode"):
            emu.override({"path": "/api/v3/time", "mode": "nope", "body": 1})
        assert emu.ws_inject({"kind": "raw", "text": "x"}) == 0  # no websocket open
        with pytest.raises(urllib.error.HTTPError):
            emu.admin("/admin/nothing-here")
    finally:
        emu.stop()


def _config(emu: EmulatorProcess) -> dict:
    from bot.emulator import ccxt_config
    from bot.emulator.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    return ccxt_config(emu.url, emu.ws_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, pro=False, rate_limit=False)


def test_cli_refuses_a_bad_override_file(tmp_path, capsys):
    from bot.emulator.cli import main

    bad = tmp_path / "bad.json"
    for text in ("[{", json.dumps([{"path": "/api/v3/time", "mode": "nope", "body": 1}]), json.dumps("x")):
        bad.write_text(text)
        assert main(["--sim", "--override", str(bad)]) == 1
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.strip().splitlines()) == 1 and "--override" in out.err
    assert main(["--sim", "--override", str(tmp_path / "missing.json")]) == 1


# ---------------------------------------------------------------------------- websockets
async def _next_text(ws, predicate, limit: int = 40) -> str:
    for _ in range(limit):
        text = await asyncio.wait_for(ws.receive_str(), 60)
        if predicate(text):
            return text
    raise AssertionError("frame not seen")


async def test_ws_inject_raw_reaches_market_streams_only():
    async with emulator_and_client() as (emu, ex):
        frame = '{"stream":"btcusdt@depth@100ms","data":'
        async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": emu.api_key}) as session:
            async with session.post(emu.base_url + "/api/v3/userDataStream") as resp:
                key = (await resp.json())["listenKey"]
            async with session.ws_connect(emu.ws_url + "/btcusdt@depth@100ms") as ws, \
                    session.ws_connect(f"{emu.ws_url}/{key}") as user:
                await ws.receive_str()  # subscribed and streaming
                status, body = await admin(emu, "POST", "/admin/ws_inject", json.dumps({"kind": "raw", "text": frame}))
                assert status == 200 and body == {"connections": 1}
                assert await _next_text(ws, lambda t: not t.startswith('{"e":"depthUpdate"')) == frame
                await ex.create_order(SYMBOL, "market", "buy", 0.001)
                first_user = await asyncio.wait_for(user.receive_str(), 5)
                assert json.loads(first_user)["e"] == "executionReport"  # the raw frame did not go there
        status, body = await admin(emu, "POST", "/admin/ws_inject", json.dumps({"kind": "raw"}))
        assert status == 400 and "text" in body["error"]


@pytest.mark.parametrize("side", ["bid", "ask"])
async def test_ws_inject_depth_price_keeps_update_ids_valid(side):
    async with emulator() as emu, aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.ws_url + "/btcusdt@depth@100ms") as ws:
            last_u = json.loads(await ws.receive_str())["u"]
            status, body = await admin(emu, "POST", "/admin/ws_inject",
                                       json.dumps({"kind": "depth_price", "price": "NaN", "side": side}))
            assert status == 200 and body == {"connections": 1}
            key = "b" if side == "bid" else "a"
            poisoned = None
            for _ in range(20):
                msg = json.loads(await asyncio.wait_for(ws.receive_str(), 60))
                assert msg["U"] == last_u + 1  # no gap, before, at and after the poisoned message
                last_u = msg["u"]
                if msg[key] and msg[key][0][0] == "NaN":
                    poisoned = msg
                    break
            assert poisoned is not None and poisoned["U"] <= poisoned["u"]
            # a level a client must store (a zero quantity would be a deletion it may skip)
            assert float(poisoned[key][0][1]) > 0
            assert all(level[0] != "NaN" for level in poisoned["a" if key == "b" else "b"])
            later = json.loads(await asyncio.wait_for(ws.receive_str(), 60))  # once only
            assert later["U"] == last_u + 1 and "NaN" not in json.dumps(later)
        status, body = await admin(emu, "POST", "/admin/ws_inject", json.dumps({"kind": "depth_price", "price": "NaN", "side": "mid"}))
        assert status == 400


async def test_ccxt_pro_book_sees_the_injected_price():
    """What the bot's feed receives: ccxt.pro parses the string into a float NaN level."""
    async with emulator_and_client() as (emu, ex):
        await ex.watch_order_book(SYMBOL)
        # a diff that arrives before ccxt's snapshot is in place is dropped by ccxt as old (a
        # loaded machine): arm the injection again until one reaches the synced book
        for _ in range(10):
            status, body = await admin(emu, "POST", "/admin/ws_inject", json.dumps({"kind": "depth_price", "price": "NaN"}))
            assert body["connections"] == 1
            for _ in range(30):
                book = await ex.watch_order_book(SYMBOL)
                if any(p != p for p, _ in book["bids"]):
                    return
        raise AssertionError("NaN level never reached ccxt")
