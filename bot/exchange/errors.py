"""How to react to each ccxt error class.

* Retry with backoff: the request did not change anything on the exchange, or only read —
  ``RateLimitExceeded`` / ``DDoSProtection`` (HTTP 429/418), ``ExchangeNotAvailable`` (5xx),
  ``RequestTimeout``, ``InvalidNonce`` (clock drift), other ``NetworkError``.
* Never blindly retry an order create that failed with a network error: it may have reached the
  exchange. The order client resolves it by looking the client order id up first.
* Fail clearly: ``AuthenticationError`` (bad keys, permissions), ``InvalidOrder`` /
  ``InsufficientFunds`` / ``BadRequest`` (the same request would fail again).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import ccxt

if TYPE_CHECKING:
    from bot.config.settings import ExchangeSection

BACKOFF_MAX_DOUBLINGS = 64  # far past any retry_max_delay_s; keeps 2**n a float a long outage cannot overflow


def backoff_s(cfg: "ExchangeSection", failures: int) -> float:
    """The exponential backoff after ``failures`` failures in a row: ``retry_base_delay_s``
    doubled each time, at most ``retry_max_delay_s``. The one rule for every retry: the feed's and
    the recorder's stream reconnects wait exactly this, a REST call's retry a jittered share of it
    (:meth:`bot.exchange.client.ExchangeClient.call`)."""
    return min(cfg.retry_base_delay_s * 2.0 ** min(failures, BACKOFF_MAX_DOUBLINGS), cfg.retry_max_delay_s)

RETRYABLE: tuple[type[BaseException], ...] = (ccxt.OperationFailed,)
"""Every ccxt network-level error (rate limits, 5xx, timeouts, nonce) and Binance's "internal
error, please try again" (-1001, which ccxt raises as the parent class OperationFailed) is worth
another try."""

MAY_HAVE_REACHED_EXCHANGE: tuple[type[BaseException], ...] = (
    ccxt.RequestTimeout,
    ccxt.ExchangeNotAvailable,
)
"""A write that failed this way has an unknown outcome (Binance: 5xx means "execution status
UNKNOWN"); plain connection errors are included by :func:`outcome_unknown`."""

FATAL: tuple[type[BaseException], ...] = (ccxt.AuthenticationError, ccxt.PermissionDenied)


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)


def is_rate_limit(exc: BaseException) -> bool:
    return isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection))


def outcome_unknown(exc: BaseException) -> bool:
    """True when a write may or may not have been executed: look it up before trying again."""
    return isinstance(exc, ccxt.OperationFailed) and not is_rate_limit(exc) and not isinstance(exc, ccxt.InvalidNonce)


def is_duplicate_order(exc: BaseException) -> bool:
    """Binance answers -2010 "Duplicate order sent." when a client order id is reused."""
    return isinstance(exc, ccxt.InvalidOrder) and "duplicate" in str(exc).lower()
