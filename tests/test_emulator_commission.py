"""The emulator's commission asset (``--commission-asset quote|base|bnb``) and fee rebates, through ccxt.

Every fill's commission is checked where a client sees it (ccxt ``fetch_my_trades``, the order's
FULL response, the user data stream, ``/admin/state``) and the balances must move by exactly what
the trades say.
"""

from __future__ import annotations

import asyncio
import json
from decimal import ROUND_UP, Decimal

import aiohttp
import ccxt
import pytest

from bot.config.settings import MarketSection
from bot.core.events import BookSnapshot
from bot.emulator.cli import build_parser, config_from_args
from bot.emulator.commission import CommissionPolicy
from bot.emulator.market import MarketState
from bot.emulator.matching import Engine, SymbolRules
from bot.emulator.server import parse_balances
from waiting import eventually
from emulator_helpers import SYMBOL, admin, emulator, emulator_and_client, wait_for, write_recording

D = Decimal
E8 = D("0.00000001")
RATE = D("0.001")


def up(x: Decimal) -> Decimal:
    return x.quantize(E8, rounding=ROUND_UP)


def raw_balances(balance: dict) -> dict[str, Decimal]:
    """Free balances from the exchange's own answer (strings, exact), not ccxt's floats."""
    return {row["asset"]: D(row["free"]) for row in balance["info"]["balances"]}


def expected_change(trades: list[dict]) -> dict[str, Decimal]:
    """What the trades say the free balances moved by: the assets traded, less each commission in its asset."""
    out: dict[str, Decimal] = {}
    for t in trades:
        info = t["info"]
        sign = 1 if info["isBuyer"] else -1
        out["BTC"] = out.get("BTC", D(0)) + sign * D(info["qty"])
        out["USDT"] = out.get("USDT", D(0)) - sign * D(info["quoteQty"])
        asset = info["commissionAsset"]
        out[asset] = out.get(asset, D(0)) - D(info["commission"])
    return out


def fee_rule(mode: str, trade: dict) -> tuple[str, Decimal]:
    info = trade["info"]
    qty, quote = D(info["qty"]), D(info["quoteQty"])
    if mode == "bnb":
        return "BNB", up(quote * RATE / 500)
    if mode == "base" and info["isBuyer"]:
        return "BTC", up(qty * RATE)
    return "USDT", up(quote * RATE)


@pytest.mark.parametrize("mode", ["quote", "base", "bnb"])
async def test_market_buy_then_sell_fees_and_balances(mode):
    async with emulator_and_client(commission_asset=mode, balances="USDT=10000,BTC=0.5,BNB=2") as (emu, ex):
        start = raw_balances(await ex.fetch_balance())
        buy = await ex.create_order(SYMBOL, "market", "buy", 0.01)
        after_buy = raw_balances(await ex.fetch_balance())
        sell = await ex.create_order(SYMBOL, "market", "sell", 0.01)
        end = raw_balances(await ex.fetch_balance())
        trades = await ex.fetch_my_trades(SYMBOL)
        buys = [t for t in trades if t["order"] == buy["id"]]
        sells = [t for t in trades if t["order"] == sell["id"]]
        assert buys and sells and len(trades) == len(buys) + len(sells)
        for t in trades:
            currency, cost = fee_rule(mode, t)
            assert t["fee"]["currency"] == currency and D(t["info"]["commission"]) == cost
            assert t["fee"]["cost"] == pytest.approx(float(cost)) and cost > 0
        # the balances moved by exactly what the trades say, and by nothing else
        for asset in ("BTC", "USDT", "BNB"):
            assert after_buy[asset] - start[asset] == expected_change(buys).get(asset, D(0)), asset
            assert end[asset] - start[asset] == expected_change(trades).get(asset, D(0)), asset
        bought = sum((D(t["info"]["qty"]) for t in buys), D(0))
        buy_fees = sum((D(t["info"]["commission"]) for t in buys), D(0))
        spent = sum((D(t["info"]["quoteQty"]) for t in buys), D(0))
        if mode == "base":  # the buyer is credited qty - commission of base, and pays no quote fee
            assert after_buy["BTC"] - start["BTC"] == bought - buy_fees
            assert after_buy["USDT"] - start["USDT"] == -spent
        if mode == "bnb":  # quote and base untouched by fees, BNB debited
            received = sum((D(t["info"]["quoteQty"]) for t in sells), D(0))
            assert end["USDT"] - start["USDT"] == received - spent
            assert end["BTC"] == start["BTC"]
            assert start["BNB"] - end["BNB"] == sum((D(t["info"]["commission"]) for t in trades), D(0)) > 0
        else:
            assert end["BNB"] == start["BNB"]


async def test_every_report_of_a_fill_carries_the_commission_asset():
    """bnb mode: the FULL response, myTrades, executionReport n/N, /admin/state trades; BNB in every balance view."""
    async with emulator_and_client(commission_asset="bnb") as (emu, ex):
        async with aiohttp.ClientSession(headers={"X-MBX-APIKEY": emu.api_key}) as session:
            async with session.post(emu.base_url + "/api/v3/userDataStream") as resp:
                key = (await resp.json())["listenKey"]
            async with session.ws_connect(f"{emu.ws_url}/{key}") as ws:
                order = await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "bnb-1"})
                events = []
                while not any(e.get("e") == "executionReport" and e["X"] == "FILLED" for e in events):
                    events.append(await asyncio.wait_for(ws.receive_json(), 60))
                while not any(e.get("e") == "outboundAccountPosition" for e in events[-2:]):
                    events.append(await asyncio.wait_for(ws.receive_json(), 60))
        fills = order["info"]["fills"]
        assert fills and {f["commissionAsset"] for f in fills} == {"BNB"}
        assert order["fee"]["currency"] == "BNB"
        reports = [e for e in events if e.get("e") == "executionReport" and e["x"] == "TRADE"]
        assert [(e["n"], e["N"]) for e in reports] == [(f["commission"], "BNB") for f in fills]
        positions = [e for e in events if e.get("e") == "outboundAccountPosition"]
        assert "BNB" in {row["a"] for row in positions[-1]["B"]}
        mine = (await ex.fetch_my_trades(SYMBOL))
        assert [(t["info"]["commission"], t["info"]["commissionAsset"]) for t in mine] == \
            [(f["commission"], "BNB") for f in fills]
        _, state = await admin(emu, "GET", "/admin/state")
        assert [(t["commission"], t["commissionAsset"]) for t in state["trades"]] == [(f["commission"], "BNB") for f in fills]
        paid = sum((D(f["commission"]) for f in fills), D(0))
        assert D(state["balances"]["BNB"]["free"]) == 1 - paid  # 1 BNB by default in bnb mode
        balance = await ex.fetch_balance()
        assert D(str(balance["BNB"]["free"])) == 1 - paid


async def test_bnb_short_falls_back_to_the_received_asset():
    async with emulator_and_client(commission_asset="bnb", balances="USDT=10000,BTC=0.5,BNB=0.0001") as (emu, ex):
        buy = await ex.create_order(SYMBOL, "market", "buy", 0.01)
        sell = await ex.create_order(SYMBOL, "market", "sell", 0.01)
        trades = await ex.fetch_my_trades(SYMBOL)
        for t in trades:  # each fill's fee (about 0.0003 BNB) is more than the 0.0001 BNB held
            currency, cost = fee_rule("base", t)
            assert t["fee"]["currency"] == currency and D(t["info"]["commission"]) == cost
        assert {t["fee"]["currency"] for t in trades if t["order"] == buy["id"]} == {"BTC"}
        assert {t["fee"]["currency"] for t in trades if t["order"] == sell["id"]} == {"USDT"}
        end = raw_balances(await ex.fetch_balance())
        assert end["BNB"] == D("0.0001")
        change = expected_change(trades)
        assert end["BTC"] == D("0.5") + change["BTC"] and end["USDT"] == D(10000) + change["USDT"]


def test_bnb_fallback_is_decided_per_fill():
    """BNB pays the first fill of an order and runs short for the second, which the base asset then pays."""
    market = MarketState()
    rules = SymbolRules.from_market(MarketSection())
    policy = CommissionPolicy("bnb", rules.base, rules.quote, D(500))
    engine = Engine(rules, market, parse_balances("USDT=10000,BTC=0,BNB=0.0003"), commission=policy)
    market.apply_event(BookSnapshot(0, 0, ((100.0, 1.0),), ((101.0, 1.0), (102.0, 1.0)), 1))
    order, body = engine.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "2"})
    first, second = order.fills
    assert (first.commission, first.commission_asset) == (up(D(101) * RATE / 500), "BNB")  # 0.000202
    assert (second.commission, second.commission_asset) == (D("0.001"), "BTC")  # 0.000204 BNB > 0.000098 left
    assert [f["commissionAsset"] for f in body["fills"]] == ["BNB", "BTC"]
    assert engine.balances["BNB"][0] == D("0.0003") - first.commission
    assert engine.balances["BTC"][0] == D(2) - D("0.001")
    assert engine.balances["USDT"][0] == D(10000) - D(203)


@pytest.mark.parametrize("mode", ["quote", "bnb"])
async def test_negative_maker_fee_is_a_rebate(tmp_path, mode):
    rec = tmp_path / "btcusdt_up.gz"
    write_recording(rec, seconds=4.0, step_ms=50)  # the bid rises one tick every 50 ms
    async with emulator_and_client(data=[str(rec)], maker_fee=D("-0.0001"), commission_asset=mode,
                                   balances="USDT=1000,BTC=1,BNB=0") as (emu, ex):
        start = raw_balances(await ex.fetch_balance())
        price = round(emu.market.book.best_bid + 0.05, 2)  # five ticks above the bid: rests, then gets crossed
        order = await ex.create_order(SYMBOL, "limit", "sell", 0.01, price)
        assert order["status"] == "open"
        assert await wait_for(lambda: not emu.engine.open, timeout=60)
        trades = await ex.fetch_my_trades(SYMBOL)
        assert trades and all(t["takerOrMaker"] == "maker" for t in trades)
        quote = sum((D(t["info"]["quoteQty"]) for t in trades), D(0))
        rebate = -(quote * D("0.0001"))
        if mode == "bnb":  # a rebate is credited even with no BNB at all
            rebate = rebate / 500
        rebate = rebate.quantize(E8, rounding="ROUND_DOWN")  # toward zero
        assert sum((D(t["info"]["commission"]) for t in trades), D(0)) == rebate < 0
        assert all(t["fee"]["cost"] < 0 and t["fee"]["currency"] == ("BNB" if mode == "bnb" else "USDT") for t in trades)
        end = raw_balances(await ex.fetch_balance())
        assert end["BTC"] == start["BTC"] - D("0.01")
        if mode == "bnb":
            assert end["USDT"] == start["USDT"] + quote and end["BNB"] == -rebate
        else:
            assert end["USDT"] == start["USDT"] + quote - rebate


@pytest.mark.parametrize("mode", ["quote", "base", "bnb"])
async def test_resting_buy_locks_the_fee_only_when_quote_pays_it(mode):
    async with emulator_and_client(commission_asset=mode) as (emu, ex):
        price = float(ex.price_to_precision(SYMBOL, emu.market.book.best_bid * 0.9))
        await ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        _, state = await admin(emu, "GET", "/admin/state")
        notional = D(str(price)) * D("0.01")
        expected = up(notional * D("1.001")) if mode == "quote" else notional
        assert D(state["balances"]["USDT"]["locked"]) == expected
        await ex.cancel_all_orders(SYMBOL)
        _, state = await admin(emu, "GET", "/admin/state")
        assert D(state["balances"]["USDT"]["locked"]) == 0 and D(state["balances"]["USDT"]["free"]) == 10000


async def test_bnb_mode_lists_and_prices_bnb():
    async with emulator_and_client(commission_asset="bnb", bnb_price=D("612.5")) as (emu, ex):
        assert set(ex.markets) == {SYMBOL, "BNB/USDT"}
        bnb = ex.market("BNB/USDT")
        assert bnb["active"] and bnb["base"] == "BNB" and bnb["quote"] == "USDT" and bnb["precision"]["price"] == 0.01
        ticker = await ex.fetch_ticker("BNB/USDT")
        assert ticker["last"] == ticker["bid"] == ticker["ask"] == 612.5
        tickers = await ex.fetch_tickers(["BNB/USDT", SYMBOL])
        assert tickers["BNB/USDT"]["last"] == 612.5 and tickers[SYMBOL]["bid"] < tickers[SYMBOL]["ask"]
        assert (await ex.fetch_bids_asks(["BNB/USDT"]))["BNB/USDT"]["ask"] == 612.5
        assert float((await ex.public_get_ticker_price({"symbol": "BNBUSDT"}))["price"]) == 612.5
        with pytest.raises(ccxt.BadSymbol):  # valued, not traded
            await ex.create_order("BNB/USDT", "market", "buy", 1)
        with pytest.raises(ccxt.BadSymbol):
            await ex.fetch_order_book("BNB/USDT")
        with pytest.raises(ccxt.BadSymbol):
            await ex.public_get_ticker_24hr({"symbol": "ETHUSDT"})


async def test_quote_mode_has_no_bnb_symbol():
    async with emulator_and_client() as (emu, ex):
        assert list(ex.markets) == [SYMBOL]
        with pytest.raises(ccxt.BadSymbol):
            await ex.public_get_ticker_24hr({"symbol": "BNBUSDT"})
        assert "BNB" not in (await ex.fetch_balance())["total"]


def test_cli_commission_options(capsys):
    from bot.emulator.cli import main

    args = build_parser().parse_args(["--sim", "--commission-asset", "BNB", "--bnb-price", "610", "--maker-fee", "-0.0001"])
    config = config_from_args(args)
    assert (config.commission_asset, config.bnb_price, config.maker_fee) == ("bnb", D(610), D("-0.0001"))
    assert config_from_args(build_parser().parse_args(["--sim"])).commission_asset == "quote"
    for bad, word in ((["--commission-asset", "usd"], "commission-asset"), (["--bnb-price", "-1"], "bnb-price"),
                      (["--bnb-price", "cheap"], "bnb-price"), (["--maker-fee", "2"], "fee")):
        assert main(["--sim", *bad]) == 1
        out = capsys.readouterr()
        assert out.out == "" and len(out.err.strip().splitlines()) == 1 and word in out.err, (bad, out.err)


async def test_bnb_mode_refuses_a_bnb_symbol():
    with pytest.raises(ValueError, match="without BNB"):
        async with emulator(commission_asset="bnb", market=MarketSection(symbol="BNB/USDT")):
            pass


async def test_ws_api_balance_includes_bnb():
    async with emulator_and_client(commission_asset="bnb") as (emu, ex):
        watcher = asyncio.ensure_future(ex.watch_balance())
        await eventually(lambda: emu.hub._user_conns() and any("balance" in str(h) for c in ex.clients.values() for h in c.futures),
                         "the user data stream to be subscribed and ccxt to wait for a balance update")
        await ex.create_order(SYMBOL, "market", "buy", 0.001)
        balance = await asyncio.wait_for(watcher, 60)
        assert balance["BNB"]["free"] < 1
        assert json.dumps(balance["info"]).count("BNB") >= 1
