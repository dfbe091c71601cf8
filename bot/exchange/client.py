"""The bot's only door to an exchange: a ccxt.pro client wrapped with retries and idempotent orders.

Request weight is ccxt's own rate limiter's job (``enableRateLimit``); on top of it an
asyncio-throttle ``Throttler`` caps how many orders per second *we* send, whatever the exchange
would allow, so a bug in a strategy cannot flood the exchange.

Orders are idempotent by client order id. ``create_order`` never sends the same order twice: when
a create fails in a way that leaves its outcome unknown (timeout, 5xx, dropped connection) the
client looks the id up on the exchange; only if the exchange says it does not exist is it sent
again, under the same id, and a "duplicate order" answer is resolved by looking it up once more.

"Does not exist" is only believed once the request can no longer arrive: the exchange refuses a
signed request older than ``exchange.recv_window_ms`` (Binance: ``serverTime - timestamp >
recvWindow`` -> -1021), so a lookup started that long (plus a margin for clock offset) after the
request was signed is final. Before that, a slow request could still be executed after an
earlier "not found", and sending again would trade twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import ccxt.pro as ccxtpro
from asyncio_throttle import Throttler

from bot.config.settings import Settings
from bot.core.market import Market, to_decimal
from bot.core.orders import Fill, Order, Side
from bot.exchange.errors import backoff_s, is_duplicate_order, is_rate_limit, is_retryable, outcome_unknown
from bot.exchange.urls import override_api_urls
from bot.exchange.validate import ExchangeResponseError, check_balances, check_book, number
from bot.log import get_logger, register_secret

FEE_PRICE_TTL_S = 10.0
"""How long a fee asset's market price (BNB) is reused before it is fetched again."""

T = TypeVar("T")
BANNED_UNTIL = re.compile(r"banned until (\d{10,})")


ACCEPTANCE_MARGIN_MS = 1_000
"""Added to recvWindow: the exchange's clock may run behind ours (Binance refuses timestamps more
than 1 s ahead of its own), and a request passes the timestamp check before it is executed."""


class ExchangeFailure(Exception):
    """An exchange call failed for good (after retries, or for a reason retrying cannot fix)."""


class OrderOutcomeUnknown(ExchangeFailure):
    """A create request may have reached the exchange and its lookup failed: the order is neither
    known to be placed nor known to be absent. Resolve it with :meth:`ExchangeClient.lookup_settled`."""


DERIVATIVE_CLIENTS = {("binance", "linear"): "binanceusdm", ("binance", "inverse"): "binancecoinm"}
"""Binance's perpetuals live on other hosts and APIs (USD-M ``/fapi``, COIN-M ``/dapi``): ccxt
has one class for each, and ``market.exchange = "binance"`` picks the one of ``market.type``."""


def ccxt_exchange_name(exchange: str, market_type: str) -> str:
    return DERIVATIVE_CLIENTS.get((exchange, market_type), exchange)


def build_ccxt(settings: Settings) -> Any:
    """A ``ccxt.pro`` client for ``market.exchange`` configured from settings (keys, URLs, timeouts)."""
    ex_cfg = settings.exchange
    market_cfg = settings.instruments[0]
    name = ccxt_exchange_name(market_cfg.exchange, market_cfg.type)
    klass = getattr(ccxtpro, name, None)
    if klass is None:
        raise ExchangeFailure(f"market.exchange: ccxt.pro has no exchange named {name!r}")
    config: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": ex_cfg.timeout_ms,
        "options": {"recvWindow": ex_cfg.recv_window_ms},
    }
    if market_cfg.type == "spot":
        config["options"]["defaultType"] = "spot"
    if ex_cfg.api_key is not None and ex_cfg.api_secret is not None:
        key, secret = ex_cfg.api_key.get_secret_value(), ex_cfg.api_secret.get_secret_value()
        register_secret(key)
        register_secret(secret)
        config["apiKey"], config["secret"] = key, secret
    if name == "binance" and market_cfg.type == "spot":
        # only the spot market list; no wallet/margin SAPI calls during load_markets
        config["options"].update({"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False})
    if ex_cfg.rest_url:
        ws_url = ex_cfg.ws_url or ex_cfg.rest_url.replace("http", "ws", 1).rstrip("/") + "/ws"
        config["urls"] = {"api": override_api_urls(klass().describe()["urls"]["api"], ex_cfg.rest_url, ws_url)}
    client = klass(config)
    if ex_cfg.sandbox:
        client.set_sandbox_mode(True)
    return client


def market_from_ccxt(info: dict[str, Any], steps: bool | None = None) -> Market:
    """Precision and limits from a ccxt market (binance reports precision as step sizes).

    Raises :class:`ExchangeFailure` naming the field when the exchange's market description is
    not usable (a missing, zero, negative or non-finite step: every amount and price the bot
    sends is rounded with these)."""
    if not isinstance(info, dict):
        raise ExchangeFailure(f"load_markets: the market is not an object ({type(info).__name__})")
    symbol = info.get("symbol")
    precision, limits = info.get("precision") or {}, info.get("limits") or {}
    if not isinstance(precision, dict) or not isinstance(limits, dict):
        raise ExchangeFailure(f"load_markets: market {symbol}: precision/limits are not objects")

    def step(value: Any, name: str) -> Decimal:
        if value is None:
            raise ExchangeFailure(f"load_markets: market {symbol} has no {name} precision (tick/lot size)")
        try:
            d = number(value, "load_markets", f"{symbol} precision.{name}", positive=True)
        except ExchangeResponseError as exc:
            raise ExchangeFailure(str(exc)) from None
        # ccxt's TICK_SIZE mode gives the step itself (1 is a step of one whole contract on COIN-M),
        # DECIMAL_PLACES mode the digits; ``steps`` None: guess (an integer >= 1 is digits)
        if steps:
            return d
        return Decimal(1).scaleb(-int(d)) if d >= 1 and d == d.to_integral_value() else d

    def limit(section: str) -> Decimal:
        value = (limits.get(section) or {}).get("min") if isinstance(limits.get(section) or {}, dict) else None
        try:
            return number(value or 0, "load_markets", f"{symbol} limits.{section}.min")
        except ExchangeResponseError as exc:
            raise ExchangeFailure(str(exc)) from None

    kind = "spot"
    if info.get("contract") or info.get("swap") or info.get("future"):
        kind = "inverse" if info.get("inverse") else "linear"
    contract_size = Decimal(1)
    if kind != "spot":
        try:
            contract_size = number(info.get("contractSize") or 1, "load_markets", f"{symbol} contractSize", positive=True)
        except ExchangeResponseError as exc:
            raise ExchangeFailure(str(exc)) from None
    return Market(
        symbol=str(symbol),
        tick_size=step(precision.get("price"), "price"),
        lot_size=step(precision.get("amount"), "amount"),
        min_qty=limit("amount"),
        min_notional=limit("cost"),
        base=str(info.get("base", "")),
        quote=str(info.get("quote", "")),
        exchange_symbol=str(info.get("id") or ""),
        kind=kind,
        contract_size=contract_size,
        settle=str(info.get("settle") or ""),
    )


class ExchangeClient:
    """Retrying, throttled calls for one symbol."""

    def __init__(self, settings: Settings, client: Any | None = None, instrument: int = 0):
        self.settings = settings
        self.cfg = settings.exchange
        self.instrument = settings.instruments[instrument]
        self.symbol = self.instrument.symbol
        self.ccxt = client if client is not None else build_ccxt(settings)
        self.order_throttle = Throttler(rate_limit=max(1, int(round(self.cfg.order_rate_per_s))), period=1.0 if self.cfg.order_rate_per_s >= 1 else 1.0 / self.cfg.order_rate_per_s)
        self.log = get_logger("bot.exchange")
        self.market: Market | None = None
        self.calls = 0
        self.retries = 0
        self.errors: dict[str, int] = {}  # failed calls by exception class (retried or not): the operator's metrics
        self._fee_prices: dict[str, tuple[float, Decimal]] = {}

    def for_instrument(self, instrument: int) -> "ExchangeClient":
        """The client of another instrument of the same account, sharing this one's ccxt instance
        (its rate limiter counts the account's request weight, its websocket connections carry
        every symbol's streams), order throttle and fee-price cache. Only the first is closed."""
        other = ExchangeClient(self.settings, self.ccxt, instrument)
        other.order_throttle = self.order_throttle
        other._fee_prices = self._fee_prices
        return other

    async def close(self) -> None:
        await self.ccxt.close()

    # ------------------------------------------------------------------ retry policy
    async def call(self, what: str, fn: Callable[[], Awaitable[T]], attempts: int | None = None) -> T:
        """Run ``fn`` with exponential backoff (full jitter) on retryable errors only."""
        attempts = attempts or self.cfg.retry_attempts
        for attempt in range(1, attempts + 1):
            self.calls += 1
            try:
                return await fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                kind = type(exc).__name__
                self.errors[kind] = self.errors.get(kind, 0) + 1
                if not is_retryable(exc) or attempt == attempts:
                    raise
                self.retries += 1
                wait = self._backoff(exc, backoff_s(self.cfg, attempt - 1))
                self.log.warning("exchange call failed, retrying", call=what, attempt=attempt, error=type(exc).__name__, detail=str(exc)[:200], wait_s=round(wait, 3))
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _backoff(self, exc: BaseException, delay: float) -> float:
        """Seconds to wait before the next try: full jitter up to ``delay`` (:func:`backoff_s`), or
        what the exchange asked for.

        A rate limit answer carries ``Retry-After``; a Binance IP ban (HTTP 418) names the time it
        ends. Retrying earlier only extends a ban, so those waits are honoured in full.
        """
        wait = random.uniform(0, delay)
        if is_rate_limit(exc):
            headers = getattr(self.ccxt, "last_response_headers", None) or {}
            retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
            try:
                wait = max(wait, float(retry_after)) if retry_after is not None else max(wait, 1.0)
            except ValueError:
                wait = max(wait, 1.0)
            banned = BANNED_UNTIL.search(str(exc))
            if banned:
                wait = max(wait, int(banned.group(1)) / 1000 - time.time() + 0.1)
        return wait

    # ------------------------------------------------------------------ reads
    async def load_market(self) -> Market:
        markets = await self.call("load_markets", lambda: self.ccxt.load_markets())
        if not isinstance(markets, dict) or not markets:
            raise ExchangeFailure(f"load_markets: {self.instrument.exchange} listed no markets (an empty or malformed exchangeInfo)")
        if self.symbol not in markets:
            raise ExchangeFailure(f"market.symbol {self.symbol!r} is not listed by {self.instrument.exchange}")
        market = market_from_ccxt(markets[self.symbol], steps=getattr(self.ccxt, "precisionMode", None) == ccxt.TICK_SIZE)
        if market.is_derivative:
            cfg = self.instrument
            if market.kind != cfg.type:
                raise ExchangeFailure(f"market.type is {cfg.type!r} but {self.symbol} is {market.kind} on the exchange")
            # what the bot sets on the exchange at start (leverage, margin mode) and the bracket it
            # estimates liquidation with come from the config; the contract from the exchange
            market = dataclasses.replace(
                market, leverage=cfg.leverage, margin_mode=cfg.margin_mode,
                maintenance_margin_rate=cfg.maintenance_margin_rate, maintenance_amount=cfg.maintenance_amount,
            )
        self.market = market
        return self.market

    async def fetch_order_book(self) -> dict[str, Any]:
        book = await self.call("fetch_order_book", lambda: self.ccxt.fetch_order_book(self.symbol, self.cfg.book_levels))
        check_book(book, "fetch_order_book", self.cfg.book_levels)
        return book

    async def fetch_balance(self) -> dict[str, Any]:
        return await self.call("fetch_balance", lambda: self.ccxt.fetch_balance())

    async def free_balances(self) -> dict[str, Decimal]:
        """Free amount per asset, checked, the market's base and quote required (ExchangeResponseError on garbage)."""
        market = self.market
        if market is None:
            required: tuple[str, ...] = ()
        else:
            required = (market.settle_currency,) if market.is_derivative else (market.base, market.quote)
        return check_balances(await self.fetch_balance(), "fetch_balance", required)

    async def fee_asset_price(self, asset: str) -> Decimal:
        """The market price of ``asset`` in the quote currency (to value a fee paid in it, e.g. BNB).

        The last trade price of ``ASSET/QUOTE`` from the exchange's ticker (the mid when there is
        none), cached for ``FEE_PRICE_TTL_S``. Raises :class:`ExchangeFailure` when the exchange
        lists no such market or the ticker is not a sane price.
        """
        market = self.market
        assert market is not None, "load_market() first"
        cached = self._fee_prices.get(asset)
        now = time.monotonic()
        if cached is not None and now - cached[0] < FEE_PRICE_TTL_S:
            return cached[1]
        pair = f"{asset}/{market.quote}"
        markets = getattr(self.ccxt, "markets", None) or {}
        if pair not in markets:
            raise ExchangeFailure(f"a fee is charged in {asset}, but {self.instrument.exchange} lists no {pair} market to value it in {market.quote}")
        ticker = await self.call("fetch_ticker", lambda: self.ccxt.fetch_ticker(pair))
        value = (ticker or {}).get("last") if isinstance(ticker, dict) else None
        if value is None and isinstance(ticker, dict) and ticker.get("bid") and ticker.get("ask"):
            value = (ticker["bid"] + ticker["ask"]) / 2
        try:
            price = number(value, "fetch_ticker", f"{pair} last", positive=True)
        except ExchangeResponseError as exc:
            raise ExchangeFailure(f"cannot value fees paid in {asset}: {exc}") from None
        self._fee_prices[asset] = (now, price)
        return price

    async def fetch_open_orders(self) -> list[dict[str, Any]]:
        return await self.call("fetch_open_orders", lambda: self.ccxt.fetch_open_orders(self.symbol))

    async def fetch_order(self, client_order_id: str) -> dict[str, Any] | None:
        """The exchange's view of our order, or None if the exchange never saw it."""
        try:
            return await self.call(
                "fetch_order", lambda: self.ccxt.fetch_order(None, self.symbol, {"origClientOrderId": client_order_id})
            )
        except ccxt.OrderNotFound:
            return None

    @property
    def acceptance_window_ns(self) -> int:
        """How long after signing a request the exchange may still execute it."""
        return (self.cfg.recv_window_ms + ACCEPTANCE_MARGIN_MS) * 1_000_000

    async def lookup_settled(self, client_order_id: str, signed_by_ns: int) -> dict[str, Any] | None:
        """The exchange's view of an order whose create requests were all signed by ``signed_by_ns``.

        Found: the order structure. Not found: looks again (every ``rest_poll_interval_s``) until a
        lookup *starts* after the requests' acceptance window, so a None answer is final: nothing
        sent for this id can be executed any more. Lookup errors propagate (after retries).
        """
        settled_at = signed_by_ns + self.acceptance_window_ns
        while True:
            started = time.time_ns()
            found = await self.fetch_order(client_order_id)
            if found is not None:
                return found
            if started >= settled_at:
                return None
            await asyncio.sleep(max(0.01, min((settled_at - time.time_ns()) / 1e9, self.cfg.rest_poll_interval_s)))

    async def fetch_order_trades(self, exchange_order_id: str) -> list[dict[str, Any]]:
        return await self.call(
            "fetch_my_trades", lambda: self.ccxt.fetch_my_trades(self.symbol, None, None, {"orderId": exchange_order_id})
        )

    # ------------------------------------------------------------------ writes
    async def create_order(self, order: Order) -> dict[str, Any]:
        """Place ``order`` exactly once; return the exchange's order structure.

        Raises :class:`ExchangeFailure` when the order is certainly not on the exchange (refused, or
        every attempt failed before it could be executed), and :class:`OrderOutcomeUnknown` when an
        attempt may have reached the exchange but looking it up failed. ``order.sent_ns`` is
        updated after every attempt (also when the task is cancelled mid-request).
        """
        market = self.market
        assert market is not None, "load_market() first"
        amount = market.amount_to_precision(order.amount)
        price = market.price_to_precision(order.price) if order.price is not None else None
        params: dict[str, Any] = {"newClientOrderId": order.client_order_id}
        if order.order_type == "limit_maker":
            params["postOnly"] = True
        if order.reduce_only and market.is_derivative:
            params["reduceOnly"] = True  # an exit can only shrink the position, never open the other way
        ccxt_type = "market" if order.order_type == "market" else "limit"
        for attempt in range(1, self.cfg.retry_attempts + 1):
            self.calls += 1
            try:
                async with self.order_throttle:
                    # the exchange-rounded decimal strings: no float can round them again on the way
                    return await self.ccxt.create_order(
                        self.symbol, ccxt_type, order.side.value, str(amount), str(price) if price is not None else None, params
                    )
            except Exception as exc:  # noqa: BLE001 - classified below
                order.sent_ns = time.time_ns()  # ccxt signed this attempt before it failed
                if is_duplicate_order(exc) or outcome_unknown(exc):
                    try:
                        found = await self.lookup_settled(order.client_order_id, order.sent_ns)
                    except Exception as lookup_exc:  # noqa: BLE001
                        raise OrderOutcomeUnknown(
                            f"create_order {order.client_order_id}: outcome unknown after {type(exc).__name__}, "
                            f"and the lookup failed: {type(lookup_exc).__name__}: {str(lookup_exc)[:200]}"
                        ) from lookup_exc
                    if found is not None:
                        self.log.warning("order create outcome resolved by lookup", client_order_id=order.client_order_id, error=type(exc).__name__)
                        return found
                    if is_duplicate_order(exc):
                        raise ExchangeFailure(f"exchange reports {order.client_order_id} as duplicate but cannot find it") from exc
                elif not is_retryable(exc):
                    raise
                if attempt == self.cfg.retry_attempts:
                    raise ExchangeFailure(f"create_order {order.client_order_id} failed after {attempt} attempts: {exc}") from exc
                self.retries += 1
                wait = self._backoff(exc, backoff_s(self.cfg, attempt - 1))
                self.log.warning("order create failed, retrying under the same client id", client_order_id=order.client_order_id, attempt=attempt, error=type(exc).__name__, wait_s=round(wait, 3))
                await asyncio.sleep(wait)
            except BaseException:
                order.sent_ns = time.time_ns()  # cancelled mid-request: it may still have been sent
                raise
        raise AssertionError("unreachable")

    async def cancel_order(self, client_order_id: str) -> dict[str, Any] | None:
        """Cancel by client id; None when the exchange no longer knows it (already final)."""
        try:
            return await self.call(
                "cancel_order", lambda: self.ccxt.cancel_order(None, self.symbol, {"origClientOrderId": client_order_id})
            )
        except ccxt.OrderNotFound:
            return None


def fills_from_trades(
    trades: list[dict[str, Any]], client_order_id: str, market: Market, asset_prices: dict[str, Decimal] | None = None
) -> list[Fill]:
    """ccxt trade structures (checked by :func:`bot.exchange.validate.check_trades`) -> our fills.

    Each fill keeps its fee in the asset the exchange charged (``fee_currency``) and its value in
    the quote currency (``fee_value``): a quote fee as is, a base-asset fee at the fill price (the
    base received is smaller by the fee; the portfolio books the net amount), a fee in any other
    asset at ``asset_prices[asset]`` (its market price in quote, e.g. BNB). A trade without a fee
    has fee 0 in quote. Raises KeyError for a fee asset missing from ``asset_prices``.
    """
    fills = []
    for t in trades:
        price = to_decimal(str(t["price"]))
        amount = to_decimal(str(t["amount"]))
        fee = Decimal(0)
        currency = market.settle_currency
        fee_info = t.get("fee") or {}
        if fee_info.get("cost") is not None:
            fee = to_decimal(str(fee_info["cost"]))
            currency = fee_info.get("currency") or market.settle_currency
        if currency == market.quote or (market.is_derivative and currency == market.settle_currency):
            value = fee  # derivatives: the fee is in the settle asset, what equity is counted in
        elif currency == market.base:
            value = fee * price
        else:
            value = fee * (asset_prices or {})[currency]
        fills.append(
            Fill(
                ts=int(t["timestamp"]) * 1_000_000 if t.get("timestamp") else 0,
                client_order_id=client_order_id,
                side=Side(t["side"]),
                price=price,
                amount=amount,
                fee=fee,
                liquidity="maker" if t.get("takerOrMaker") == "maker" else "taker",
                trade_id=str(t.get("id", "")),
                fee_currency=currency,
                fee_value=value,
                symbol=market.symbol,
                realized=_realized(t, market),
            )
        )
    return fills


def _realized(trade: dict[str, Any], market: Market) -> Decimal | None:
    """A derivative trade's realized PnL as the exchange settled it (Binance ``realizedPnl``)."""
    if not market.is_derivative:
        return None
    raw = (trade.get("info") or {}).get("realizedPnl") if isinstance(trade.get("info"), dict) else None
    if raw is None:
        return None
    try:
        return number(raw, "fetch_my_trades", "info.realizedPnl", allow_negative=True)
    except ExchangeResponseError:
        raise ExchangeFailure(f"fetch_my_trades: info.realizedPnl is not a number: {str(raw)[:40]!r}") from None
