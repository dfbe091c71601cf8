"""Binance-style API errors: ``{"code": -NNNN, "msg": "..."}`` with Binance's HTTP statuses.

The messages are Binance's own wording, because ccxt matches some of them exactly
(``Account has insufficient balance for requested action.`` -> ``InsufficientFunds``,
``Order would immediately match and take.`` -> ``OrderImmediatelyFillable``) and the filter
failures by substring (``LOT_SIZE`` / ``PRICE_FILTER`` -> ``InvalidOrder``).
"""

from __future__ import annotations


class BinanceError(Exception):
    def __init__(self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def missing(param: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")


def illegal(param: str, legal: str = "^([0-9]{1,20})(\\.[0-9]{1,20})?$") -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f"Filter failure: {name}")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TAKE = "Order would immediately match and take."
UNKNOWN_ORDER = "Unknown order sent."
ORDER_NOT_EXIST = "Order does not exist."
