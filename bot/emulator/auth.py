"""Binance request signing, checked the way Binance checks it.

A SIGNED endpoint needs the ``X-MBX-APIKEY`` header (missing -> ``-2014 API-key format
invalid.``, unknown -> ``-2015 Invalid API-key, IP, or permissions for action.``, both HTTP 401),
a ``timestamp`` (missing -> ``-1102``) and a ``signature``: the lower-case hex HMAC-SHA256,
keyed with the secret, of *totalParams* = the raw query string followed directly by the raw
request body, each without its ``signature=`` parameter (wrong -> ``-1022 Signature for this
request is not valid.``). The request is accepted when ``timestamp < serverTime + 1000`` and
``serverTime - timestamp <= recvWindow`` (default 5000, at most 60000); otherwise ``-1021``.
"""

from __future__ import annotations

import hashlib
import hmac

from bot.emulator.errors import BinanceError, missing
from bot.emulator.market import now_ms


# What each REST endpoint checks (the others are public): "signed" = API key + signature + timestamp,
# "key" = the API key only. The handlers check it themselves; this table is for the override layer,
# which must check it before a hostile answer replaces the handler.
ENDPOINT_AUTH = {(m, "/api/v3/" + p): "signed" for m, p in (
    ("GET", "account"), ("GET", "account/commission"), ("POST", "order"), ("POST", "order/test"), ("GET", "order"),
    ("DELETE", "order"), ("GET", "openOrders"), ("DELETE", "openOrders"), ("GET", "allOrders"), ("GET", "myTrades"))}
ENDPOINT_AUTH.update({(m, "/api/v3/userDataStream"): "key" for m in ("POST", "PUT", "DELETE")})
ENDPOINT_AUTH[("GET", "/api/v3/historicalTrades")] = "key"


def _strip_signature(raw: str) -> tuple[str, str | None]:
    if not raw:
        return "", None
    parts = raw.split("&")
    signature = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


def sign(payload: str, secret: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_api_key(headers, api_key: str) -> None:
    key = headers.get("X-MBX-APIKEY")
    if not key:
        raise BinanceError(-2014, "API-key format invalid.", status=401)
    if not hmac.compare_digest(key, api_key):
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)


def verify(headers, raw_query: str, raw_body: str, params: dict[str, str], api_key: str, secret: str) -> None:
    """Raise :class:`BinanceError` unless the request is signed correctly and in time."""
    check_api_key(headers, api_key)
    ts_raw = params.get("timestamp")
    if not ts_raw:
        raise missing("timestamp")
    try:
        ts = int(ts_raw)
    except ValueError:
        raise BinanceError(-1100, "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.") from None
    recv_raw = params.get("recvWindow")
    recv_window = 5000
    if recv_raw:
        try:
            recv_window = int(float(recv_raw))
        except ValueError:
            raise BinanceError(-1100, "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}$'.") from None
        if recv_window > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
    query, sig_q = _strip_signature(raw_query)
    body, sig_b = _strip_signature(raw_body)
    signature = sig_q or sig_b
    if not signature:
        raise missing("signature")
    expected = sign(query + body, secret)
    if not hmac.compare_digest(expected, signature.lower()):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    server = now_ms()
    if ts >= server + 1000:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server - ts > recv_window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")


def ws_value(value: object) -> str:
    """A WebSocket API parameter as it appears in the signed payload (JSON true -> ``true``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def verify_ws(params: dict, api_key: str, secret: str) -> None:
    """WebSocket API signature: HMAC-SHA256 of ``k=v&...`` over all params but ``signature``, sorted by key."""
    key = params.get("apiKey")
    if not key:
        raise missing("apiKey")
    if not hmac.compare_digest(str(key), api_key):
        raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=401)
    signature = params.get("signature")
    if not signature:
        raise missing("signature")
    payload = "&".join(f"{k}={ws_value(v)}" for k, v in sorted(params.items()) if k != "signature")
    if not hmac.compare_digest(sign(payload, secret), str(signature).lower()):
        raise BinanceError(-1022, "Signature for this request is not valid.")
    ts_raw = params.get("timestamp")
    if ts_raw is None:
        raise missing("timestamp")
    ts = int(ts_raw)
    recv_window = int(float(params.get("recvWindow") or 5000))
    server = now_ms()
    if ts >= server + 1000:
        raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    if server - ts > recv_window:
        raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
