"""How to point the real ccxt ``binance`` client (REST and ccxt.pro) at the emulator.

Only configuration, no patching::

    from bot.emulator.client import ccxt_config
    import ccxt.pro
    ex = ccxt.pro.binance(ccxt_config(emu.base_url, emu.ws_url, emu.api_key, emu.api_secret))

What :func:`ccxt_config` sets, and why:

* ``urls.api``: every REST base URL of ccxt's binance (``public``/``private`` ``/api/v3``, ``v1``,
  ``sapi``, ``fapi*``, ``dapi*``, ``eapi*``, ``papi*`` ...) is rewritten to the same path on the
  emulator, so nothing can reach the real exchange; the emulator serves the spot ones.
  ``urls.api.ws``: every websocket URL (``spot``, ``margin``, ``linear``, ... and ``ws-api``)
  becomes the emulator's ``/ws`` (ccxt.pro appends a stream index, ``/ws/0``); the ``ws-api``
  URLs become ``/ws-api/v3`` on the emulator.
* ``options.fetchMarkets = {"types": ["spot"]}``: ``load_markets`` asks only the spot
  ``exchangeInfo`` (the default also loads USD-M/COIN-M futures markets).
* ``options.fetchCurrencies = False``: the default calls the SAPI wallet endpoint
  ``capital/config/getall`` when keys are set; currencies then come from the markets.
* ``options.fetchMargins = False``: the default calls SAPI ``margin/allPairs`` and
  ``margin/isolated/allPairs`` during ``load_markets`` when keys are set.
* ``options.defaultType = "spot"``.

Error mapping caveat: ccxt applies its *spot-specific* exception table only when the URL starts
with ``https://api.binance.com/``; against the emulator only the global table applies. For every
code the emulator sends the two agree, so the classes are those the real exchange produces:
-1003 with HTTP 429/418 -> ``DDoSProtection`` (ccxt checks the status before the code, so not
``RateLimitExceeded``), -1021 -> ``InvalidNonce``, -1022/-2014/-2015 -> ``AuthenticationError``
(-2015 becomes ``DDoSProtection`` once the client has authenticated successfully, a ccxt rule
for Binance's temporary bans), -1013 LOT_SIZE / PRICE_FILTER -> ``InvalidOrder`` (matched in the
body), -1013 NOTIONAL -> ``BadRequest`` (ccxt maps -1013 to BadRequest), -1121 -> ``BadSymbol``,
-2010 -> ``InvalidOrder`` (``InsufficientFunds`` for the balance message,
``OrderImmediatelyFillable`` for LIMIT_MAKER), -2011/-2013 -> ``OrderNotFound``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from bot.exchange.urls import override_api_urls


@lru_cache(maxsize=2)
def _binance_api_urls(pro: bool) -> dict:
    """ccxt's own URL table for binance (building a client to read it is slow, so cache it)."""
    if pro:
        import ccxt.pro as cp

        return cp.binance().describe()["urls"]["api"]
    import ccxt

    return ccxt.binance().describe()["urls"]["api"]


def ccxt_config(base_url: str, ws_url: str, api_key: str | None = None, secret: str | None = None,
                timeout_ms: int = 10_000, options: dict | None = None, pro: bool = True,
                rate_limit: bool = True) -> dict:
    """Config dict for ``ccxt.binance`` / ``ccxt.async_support.binance`` / ``ccxt.pro.binance``.

    ``rate_limit=False`` turns off ccxt's client-side throttle (binance: 50 ms per unit of
    request cost), which tests use to run fast; the bot keeps it on.
    """
    urls = override_api_urls(_binance_api_urls(pro), base_url, ws_url)
    opts = {
        "defaultType": "spot",
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
    }
    if options:
        opts.update(options)
    return _with_keys({"urls": {"api": urls}, "options": opts, "timeout": timeout_ms, "enableRateLimit": rate_limit}, api_key, secret)


def _with_keys(config: dict[str, Any], api_key: str | None, secret: str | None) -> dict[str, Any]:
    """``config`` with the account's key and secret, when given."""
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    return config


def make_rest_client(base_url: str, ws_url: str, api_key: str | None = None, secret: str | None = None, **kw: Any):
    """An async ``ccxt.async_support.binance`` talking to the emulator (close it with ``await ex.close()``)."""
    import ccxt.async_support as ca

    return ca.binance(ccxt_config(base_url, ws_url, api_key, secret, pro=False, **kw))


def make_pro_client(base_url: str, ws_url: str, api_key: str | None = None, secret: str | None = None, **kw: Any):
    """A ``ccxt.pro.binance`` (REST + websockets) talking to the emulator (close with ``await ex.close()``)."""
    import ccxt.pro as cp

    return cp.binance(ccxt_config(base_url, ws_url, api_key, secret, pro=True, **kw))


FUTURES_CLASSES = {"usdm": "binanceusdm", "coinm": "binancecoinm"}


def futures_exceptions(market: str, klass: Any = None) -> dict:
    """ccxt ``exceptions`` config that makes errors from the emulator's ``/fapi`` / ``/dapi`` map to the
    classes the real exchange's do.

    ccxt applies its USD-M / COIN-M error tables only to URLs starting ``https://fapi.binance.com/``
    (``dapi``), so against ``http://127.0.0.1`` -2019 "Margin is insufficient." is a plain
    ``ExchangeError`` instead of ``InsufficientFunds`` and -2022 "ReduceOnly Order is rejected." one
    instead of ``InvalidOrder``. Merged into the client's global table (ccxt deep-merges the config
    into its description), that market's table applies to every URL, as it would on the exchange.
    """
    if klass is None:
        import ccxt

        klass = getattr(ccxt, FUTURES_CLASSES[market])
    table = klass().describe()["exceptions"].get("linear" if market == "usdm" else "inverse", {})
    return {"exact": dict(table.get("exact", {})), "broad": dict(table.get("broad", {}))}


def futures_ccxt_config(base_url: str, ws_url: str, api_key: str | None = None, secret: str | None = None,
                        market: str = "usdm", timeout_ms: int = 10_000, rate_limit: bool = True) -> dict:
    """Config dict for ``ccxt.binanceusdm`` (``market="usdm"``) or ``ccxt.binancecoinm`` (``"coinm"``),
    sync, async or pro, against an emulator started with ``--market usdm|coinm``: every URL moved to
    it, no SAPI currency list, and :func:`futures_exceptions`."""
    import ccxt.pro as cp

    klass = getattr(cp, FUTURES_CLASSES[market])
    config: dict[str, Any] = {
        "urls": {"api": override_api_urls(klass().describe()["urls"]["api"], base_url, ws_url)},
        "options": {"fetchCurrencies": False},
        "exceptions": futures_exceptions(market, klass),
        "timeout": timeout_ms,
        "enableRateLimit": rate_limit,
    }
    return _with_keys(config, api_key, secret)
