"""The emulator's USD-M and COIN-M perpetuals (``bot emulator --market usdm|coinm``), run as a real
process and driven by plain ccxt clients (``binanceusdm`` / ``binancecoinm``, REST and ccxt.pro),
pointed at it only by :func:`bot.exchange.urls.override_api_urls`.

Every amount the account books is checked exactly (Decimal) against a hand computation from the
fills the emulator reports: fees ``notional * rate`` in the settle asset, realized PnL linear
``(exit - entry) * qty * cs`` and inverse ``qty * cs * (1/entry - 1/exit)``, funding ``-notional *
rate``, and an isolated liquidation that takes exactly the isolated margin.
"""

from __future__ import annotations

import asyncio
import contextlib
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal
from typing import Iterator

import ccxt
import ccxt.async_support as ca
import ccxt.pro as cp
import pytest

from bot.emulator.process import EmulatorProcess
from bot.exchange.urls import override_api_urls
from waiting import eventually

D = Decimal
E8 = D("0.00000001")
KEY, SECRET = "futures-test-key", "futures-test-secret"
USDM, COINM = "BTC/USDT:USDT", "BTC/USD:BTC"
TAKER = D("0.0005")  # the futures default taker rate


def q8(x: Decimal) -> Decimal:
    return x.quantize(E8, rounding=ROUND_HALF_EVEN)


def fee8(x: Decimal) -> Decimal:
    return x.quantize(E8, rounding=ROUND_UP)


@contextlib.contextmanager
def futures_emulator(tmp_path, market: str, *extra: str) -> Iterator[EmulatorProcess]:
    proc = EmulatorProcess(["--sim", "--market", market, "--seed", "11", "--api-key", KEY, "--api-secret", SECRET,
                            "--log-level", "warning", *extra], stderr_path=tmp_path / f"emulator-{market}.err")
    try:
        yield proc
    finally:
        proc.stop()


def client(cls, proc: EmulatorProcess):
    """A plain ccxt client of ``cls`` whose every URL points at the emulator."""
    urls = override_api_urls(cls().describe()["urls"]["api"], proc.url, proc.ws_url)
    return cls({"urls": {"api": urls}, "apiKey": KEY, "secret": SECRET, "enableRateLimit": False, "timeout": 30_000,
                "options": {"fetchCurrencies": False}})


@contextlib.asynccontextmanager
async def clients(proc: EmulatorProcess, inverse: bool = False):
    rest = client(ca.binancecoinm if inverse else ca.binanceusdm, proc)
    pro = client(cp.binancecoinm if inverse else cp.binanceusdm, proc)
    try:
        await rest.load_markets()
        await pro.load_markets()
        yield rest, pro
    finally:
        await rest.close()
        await pro.close()


async def wallet(ex) -> Decimal:
    balance = await ex.fetch_balance()
    (asset,) = balance["info"]["assets"]
    return D(asset["walletBalance"])


async def sound_book(pro, symbol: str) -> None:
    """ccxt.pro keeps a book from the snapshot + diffs (checking ``pu``) that stays crossed-free and moves."""
    first = await pro.watch_order_book(symbol)
    nonce = first["nonce"]
    for _ in range(30):
        book = await pro.watch_order_book(symbol)
        assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
        assert book["bids"] == sorted(book["bids"], reverse=True) and book["asks"] == sorted(book["asks"])
        assert book["nonce"] >= nonce
        if book["nonce"] > nonce:
            return
    pytest.fail("the watched book never advanced")


def linear_entry(fills: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Quantity-weighted mean price, added one fill at a time as the emulator (and Binance) averages."""
    qty, entry = D(0), D(0)
    for price, q in fills:
        entry = price if qty == 0 else (qty * entry + q * price) / (qty + q)
        qty += q
    return entry


def inverse_entry(fills: list[tuple[Decimal, Decimal]]) -> Decimal:
    """Inverse contracts average harmonically (by value): total / sum(qty / price)."""
    qty, entry = D(0), D(0)
    for price, q in fills:
        entry = price if qty == 0 else (qty + q) / (qty / entry + q / price)
        qty += q
    return entry


def fills_of(trades: list[dict], order_id: str) -> list[tuple[Decimal, Decimal]]:
    return [(D(t["info"]["price"]), D(t["info"]["qty"])) for t in trades if t["order"] == order_id]


# ---------------------------------------------------------------------------- USD-M
async def test_usdm_linear_round_trip_books_pnl_and_fees_exactly(tmp_path):
    with futures_emulator(tmp_path, "usdm") as proc:
        async with clients(proc) as (ex, pro):
            m = ex.market(USDM)
            assert list(ex.markets) == [USDM]
            assert (m["id"], m["type"], m["linear"], m["inverse"], m["settle"]) == ("BTCUSDT", "swap", True, False, "USDT")
            assert m["contractSize"] == 1.0
            assert (m["precision"]["price"], m["precision"]["amount"]) == (0.1, 0.001)
            assert (m["limits"]["amount"]["min"], m["limits"]["cost"]["min"]) == (0.001, 100.0)

            await sound_book(pro, USDM)

            assert (await ex.set_leverage(10, USDM))["leverage"] == 10
            assert (await ex.set_margin_mode("cross", USDM))["msg"] == "success"
            with pytest.raises(ccxt.MarginModeAlreadySet):
                await ex.set_margin_mode("cross", USDM)
            start = await wallet(ex)
            assert start == D(10000)

            with pytest.raises(ccxt.BaseError, match="-4164"):  # ~30 USDT < the 100 USDT minimum notional
                await ex.create_order(USDM, "market", "buy", 0.001)
            with pytest.raises(ccxt.BaseError, match="-2019"):  # 50 BTC at 10x needs ~150k USDT of margin
                await ex.create_order(USDM, "market", "buy", 50)

            opened = await ex.create_order(USDM, "market", "buy", 0.01, None, {"newClientOrderId": "open-long-1"})
            assert (opened["status"], opened["filled"], opened["clientOrderId"]) == ("closed", 0.01, "open-long-1")
            (pos,) = await ex.fetch_positions([USDM])
            assert (pos["side"], pos["contracts"], pos["marginMode"]) == ("long", 0.01, "cross")
            assert pos["leverage"] == 10

            for side, amount in (("buy", 0.01), ("sell", 0.02)):  # would increase / would flip the long
                with pytest.raises(ccxt.BaseError, match="-2022"):
                    await ex.create_order(USDM, "market", side, amount, None, {"reduceOnly": True})

            closed = await ex.create_order(USDM, "market", "sell", 0.01, None, {"reduceOnly": True, "newClientOrderId": "close-1"})
            assert closed["status"] == "closed" and closed["reduceOnly"] is True
            assert await ex.fetch_positions([USDM]) == []

            trades = await ex.fetch_my_trades(USDM)
            assert {t["order"] for t in trades} == {opened["id"], closed["id"]}
            for t in trades:
                price, qty = D(t["info"]["price"]), D(t["info"]["qty"])
                assert t["fee"]["currency"] == "USDT"
                assert D(t["info"]["commission"]) == fee8(price * qty * TAKER)
            entry = linear_entry(fills_of(trades, opened["id"]))
            expected_pnl = sum((q8((price - entry) * qty * 1) for price, qty in fills_of(trades, closed["id"])), D(0))
            realized = sum((D(t["info"]["realizedPnl"]) for t in trades), D(0))
            assert realized == expected_pnl
            fees = sum((D(t["info"]["commission"]) for t in trades), D(0))
            assert await wallet(ex) == start + realized - fees

            assert (await ex.fetch_open_orders(USDM)) == []
            again = await ex.fetch_order(closed["id"], USDM)
            assert again["status"] == "closed" and again["clientOrderId"] == "close-1"


# ---------------------------------------------------------------------------- COIN-M
async def test_coinm_inverse_round_trip_in_whole_contracts_and_btc(tmp_path):
    with futures_emulator(tmp_path, "coinm") as proc:
        async with clients(proc, inverse=True) as (ex, pro):
            m = ex.market(COINM)
            assert (m["id"], m["type"], m["linear"], m["inverse"], m["settle"]) == ("BTCUSD_PERP", "swap", False, True, "BTC")
            assert m["contractSize"] == 100.0
            assert (m["precision"]["price"], m["precision"]["amount"]) == (0.1, 1.0)

            await sound_book(pro, COINM)
            await ex.set_leverage(5, COINM)
            start = await wallet(ex)
            assert start == D(1)

            opened = await ex.create_order(COINM, "market", "buy", 3)
            assert opened["filled"] == 3.0
            (pos,) = await ex.fetch_positions([COINM])
            assert (pos["side"], pos["contracts"], pos["contractSize"]) == ("long", 3.0, 100.0)
            with pytest.raises(ccxt.BaseError, match="-2022"):
                await ex.create_order(COINM, "market", "sell", 4, None, {"reduceOnly": True})
            closed = await ex.create_order(COINM, "market", "sell", 3, None, {"reduceOnly": True})
            assert closed["filled"] == 3.0
            assert await ex.fetch_positions([COINM]) == []

            trades = await ex.fetch_my_trades(COINM)
            cs = D(100)
            for t in trades:
                price, qty = D(t["info"]["price"]), D(t["info"]["qty"])
                assert qty == qty.to_integral_value()  # whole contracts
                assert t["fee"]["currency"] == "BTC" and t["info"]["commissionAsset"] == "BTC"
                assert D(t["info"]["commission"]) == fee8(qty * cs / price * TAKER)
            entry = inverse_entry(fills_of(trades, opened["id"]))
            expected_pnl = sum((q8(qty * cs * (1 / entry - 1 / price)) for price, qty in fills_of(trades, closed["id"])), D(0))
            realized = sum((D(t["info"]["realizedPnl"]) for t in trades), D(0))
            assert realized == expected_pnl
            fees = sum((D(t["info"]["commission"]) for t in trades), D(0))
            assert await wallet(ex) == start + realized - fees


# ---------------------------------------------------------------------------- funding
async def test_funding_is_paid_on_a_held_position_at_each_funding_time(tmp_path):
    rate = D("0.001")
    with futures_emulator(tmp_path, "usdm", "--funding-interval-s", "1", "--funding-rate", str(rate)) as proc:
        proc.mark(price=30000)  # a fixed mark makes every payment known in advance
        async with clients(proc) as (ex, pro):
            rate_info = await ex.fetch_funding_rate(USDM)
            assert rate_info["fundingRate"] == float(rate) and rate_info["markPrice"] == 30000.0
            start = await wallet(ex)
            await ex.create_order(USDM, "market", "buy", 0.02)
            payments = await eventually(lambda: ex.fetch_funding_history(USDM), "a funding payment on the long")
            expected = q8(-(D("0.02") * 1 * D(30000)) * rate)  # -notional * rate: a long pays a positive rate
            assert expected == D("-0.6")
            assert all(D(p["info"]["income"]) == expected and p["code"] == "USDT" for p in payments)
            await ex.create_order(USDM, "market", "sell", 0.02, None, {"reduceOnly": True})
            # the wallet is the deposit plus every booking: PnL, commissions and the funding seen so far
            income = proc.state()["income"]
            assert [r for r in income if r["incomeType"] == "FUNDING_FEE"][: len(payments)] == [p["info"] for p in payments]
            assert await wallet(ex) == start + sum((D(r["income"]) for r in income), D(0))
            funding_total = sum((D(r["income"]) for r in income if r["incomeType"] == "FUNDING_FEE"), D(0))
            assert funding_total == expected * len([r for r in income if r["incomeType"] == "FUNDING_FEE"])

            # a short receives a positive rate; POST /admin/funding {"settle": true} books one payment now
            proc.funding(interval_s=1e9)  # the next scheduled funding is years away: none while the short is open
            await ex.create_order(USDM, "market", "sell", 0.01)
            booked = proc.funding(settle=True)["payments"]
            short_payment = [r for r in proc.state()["income"] if r["incomeType"] == "FUNDING_FEE"][-1]
            assert D(short_payment["income"]) == q8(-(D("-0.01") * D(30000)) * rate) == D("0.3")
            assert booked == len([r for r in proc.state()["income"] if r["incomeType"] == "FUNDING_FEE"])


# ---------------------------------------------------------------------------- liquidation
async def test_isolated_position_is_liquidated_when_the_mark_crosses_its_liquidation_price(tmp_path):
    with futures_emulator(tmp_path, "usdm") as proc:
        async with clients(proc) as (ex, pro):
            await ex.set_leverage(20, USDM)  # the default config's margin mode is isolated
            start = await wallet(ex)
            opened = await ex.create_order(USDM, "market", "buy", 0.01)
            (pos,) = await ex.fetch_positions([USDM])
            assert pos["marginMode"] == "isolated"
            liq = D(pos["info"]["liquidationPrice"])
            isolated_wallet = D(pos["info"]["isolatedWallet"])
            entry = D(pos["info"]["entryPrice"])
            assert isolated_wallet == q8(D(opened["info"]["cumQuote"]) / 20)  # initial margin = notional / leverage
            assert 0 < liq < entry
            before = await wallet(ex)

            watch = asyncio.ensure_future(pro.watch_liquidations(USDM))
            await eventually(lambda: "btcusdt@forceOrder" in proc.state()["ws"]["streams"], "the forceOrder subscription")

            assert proc.mark(price=liq + 5)["liquidations"] == []  # above it: still open
            assert len(await ex.fetch_positions([USDM])) == 1
            answer = proc.mark(price=liq - 5)
            (record,) = answer["liquidations"]

            (event,) = await asyncio.wait_for(watch, 120)
            assert event["symbol"] == USDM and event["contracts"] == 0.01 and event["side"] == "sell"
            assert await ex.fetch_positions([USDM]) == []
            forced = await ex.fetch_order(str(record["orderId"]), USDM)
            assert forced["clientOrderId"].startswith("autoclose-") and forced["status"] == "closed"
            trades = await ex.fetch_my_trades(USDM)
            (liq_fill,) = [t for t in trades if t["order"] == forced["id"]]
            assert D(liq_fill["info"]["realizedPnl"]) == q8((D(liq_fill["info"]["price"]) - entry) * D("0.01"))
            # the isolated margin is gone entirely (realized loss + clearance fee), nothing more
            after = await wallet(ex)
            assert after == before - isolated_wallet
            income = proc.state()["income"]
            assert any(r["incomeType"] == "INSURANCE_CLEAR" for r in income)
            assert after == start + sum((D(r["income"]) for r in income), D(0))


def test_cli_refuses_a_market_that_does_not_fit_the_config(tmp_path, capsys):
    from bot.emulator.cli import main

    config = tmp_path / "linear.toml"
    config.write_text('[market]\nsymbol = "BTC/USDT:USDT"\ntype = "linear"\ntick_size = 0.1\nlot_size = 0.001\n')
    assert main(["--sim", "--config", str(config), "--market", "coinm"]) == 1
    assert "does not serve" in capsys.readouterr().err
    assert main(["--sim", "--market", "usdm", "--funding-interval-s", "0"]) == 1


async def test_futures_config_maps_errors_to_the_exchanges_classes(tmp_path):
    """ccxt keeps its futures error table for fapi.binance.com URLs; the emulator's helper config
    applies it to 127.0.0.1, so margin and reduce-only refusals raise what the real exchange's do."""
    from bot.emulator.client import futures_ccxt_config

    with futures_emulator(tmp_path, "usdm") as proc:
        ex = ca.binanceusdm(futures_ccxt_config(proc.url, proc.ws_url, KEY, SECRET, "usdm", rate_limit=False))
        try:
            await ex.load_markets()
            with pytest.raises(ccxt.InsufficientFunds, match="-2019"):
                await ex.create_order(USDM, "market", "buy", 5)  # 150k USDT of exposure at leverage 1
            with pytest.raises(ccxt.InvalidOrder, match="-2022"):
                await ex.create_order(USDM, "market", "sell", 0.01, None, {"reduceOnly": True})  # no position
        finally:
            await ex.close()


async def test_post_only_and_resting_limit_orders(tmp_path):
    with futures_emulator(tmp_path, "usdm") as proc:
        async with clients(proc) as (ex, pro):
            book = await ex.fetch_order_book(USDM, 5)
            best_bid, best_ask = book["bids"][0][0], book["asks"][0][0]
            with pytest.raises(ccxt.BaseError, match="-5022"):  # post only at the ask would take
                await ex.create_order(USDM, "limit", "buy", 0.01, best_ask, {"postOnly": True})
            price = round(best_bid - 500, 1)
            resting = await ex.create_order(USDM, "limit", "buy", 0.01, price, {"postOnly": True, "newClientOrderId": "maker-1"})
            assert resting["status"] == "open" and resting["timeInForce"] == "PO"
            (listed,) = await ex.fetch_open_orders(USDM)
            assert listed["id"] == resting["id"] and listed["price"] == price
            # the open order's initial margin is held: notional / leverage (1 in the default config)
            asset = (await ex.fetch_balance())["info"]["assets"][0]
            assert D(asset["openOrderInitialMargin"]) == D(str(price)) * D("0.01")
            canceled = await ex.cancel_order(resting["id"], USDM)
            assert canceled["status"] == "canceled"
            assert await ex.fetch_open_orders(USDM) == []


# ---------------------------------------------------------------------------- the account maths, in-process
@pytest.mark.parametrize("inverse", [False, True], ids=["linear", "inverse"])
@pytest.mark.parametrize("side", [1, -1], ids=["long", "short"])
@pytest.mark.parametrize("margin_type", ["ISOLATED", "CROSSED"])
def test_the_liquidation_price_is_where_margin_balance_meets_maintenance(inverse, side, margin_type):
    from bot.emulator.futures.account import FuturesAccount
    from bot.emulator.futures.contract import Contract, default_market

    contract = Contract.from_market(default_market("coinm" if inverse else "usdm"))
    acct = FuturesAccount(contract, D("0.05") if inverse else D(1000), leverage=10, margin_type=margin_type)
    qty = D(30) if inverse else D("0.3")  # 3000 USD of exposure either way
    acct.fill("BUY" if side > 0 else "SELL", qty, D(30000), D(0), 1, 0)
    liq = acct.liquidation_price()
    assert (liq < 30000) if side > 0 else (liq > 30000)
    gap = abs(acct.margin_balance(liq) - acct.maintenance(liq))
    assert gap <= D("0.0000001")  # equal but for the 8-decimal rounding of the bookings
    safer, worse = (liq + 1, liq - 1) if side > 0 else (liq - 1, liq + 1)
    assert not acct.must_liquidate(safer) and acct.must_liquidate(worse)


def test_cross_liquidation_never_leaves_a_negative_wallet():
    from bot.emulator.futures.account import FuturesAccount
    from bot.emulator.futures.contract import Contract, default_market

    acct = FuturesAccount(Contract.from_market(default_market("usdm")), D(100), leverage=20, margin_type="CROSSED")
    acct.fill("BUY", D("0.06"), D(30000), D(0), 1, 0)  # 1800 USDT of exposure on 100 USDT
    gap_down = D(25000)  # far past the liquidation price: the loss (300) exceeds the wallet
    realized = acct.fill("SELL", D("0.06"), gap_down, D(0), 2, 0)
    assert realized == D(-300) and acct.wallet == D(-200)
    cover = acct.clear_liquidation(D(0), acct.maintenance(gap_down), realized, 0)
    assert cover == D(-200) and acct.wallet == 0  # the insurance fund takes the rest
    assert acct.income[-1]["incomeType"] == "INSURANCE_CLEAR" and D(acct.income[-1]["income"]) == D(200)


def test_a_linear_config_without_market_flag_serves_usdm(tmp_path):
    from bot.emulator.cli import build_parser, config_from_args

    config = tmp_path / "linear.toml"
    config.write_text('[market]\nsymbol = "ETH/USDT:USDT"\ntype = "linear"\ntick_size = 0.01\nlot_size = 0.001\n'
                      'min_qty = 0.001\nmin_notional = 20\nleverage = 3\nmargin_mode = "cross"\n')
    cfg = config_from_args(build_parser().parse_args(["--sim", "--config", str(config)]))
    assert cfg.venue == "usdm" and cfg.market.symbol == "ETH/USDT:USDT" and cfg.market.leverage == 3
    assert (cfg.taker_fee, cfg.maker_fee) == (D("0.0005"), D("0.0002"))
    spot = config_from_args(build_parser().parse_args(["--sim"]))
    assert spot.venue == "spot" and (spot.taker_fee, spot.maker_fee) == (D("0.001"), D("0.001"))
    coinm = config_from_args(build_parser().parse_args(["--sim", "--market", "coinm"]))
    assert coinm.market.symbol == "BTC/USD:BTC" and coinm.market.contract_size == 100 and coinm.market.lot_size == 1
