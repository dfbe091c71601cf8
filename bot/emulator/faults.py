"""Fault injection for the exchange emulator.

Grammar of a fault SPEC (``--faults SPEC``, ``POST /admin/faults``): comma-separated items, each
``name=value``; spaces are ignored; an empty SPEC (or ``none``) turns every fault off. A
probability ``P`` is a number in [0, 1] and is drawn independently per REST request (or per new
order, for the order faults) from one seeded RNG.

==========================  =====================================================================
item                        effect
==========================  =====================================================================
``rate_limit=P``            REST request answered HTTP 429, ``Retry-After: 1``, body
                            ``{"code":-1003,"msg":"Too much request weight used; ..."}``
``ban=P[@SECONDS]``         HTTP 418 ``{"code":-1003,"msg":"Way too much request weight used; IP
                            banned until <ms>. ..."}``; with ``@SECONDS`` every request is 418
                            until the ban expires (default: only the drawn request)
``server_error=P[@STATUS]`` HTTP 503 (or 500/502/504 with ``@STATUS``) with a gateway-style
                            plain-text body (``Service Unavailable.``): ccxt raises
                            ``ExchangeNotAvailable`` (``RequestTimeout`` for 504)
``internal_error=P``        HTTP 500 ``{"code":-1001,"msg":"Internal error; unable to process your
                            request. Please try again."}``: ccxt raises ``OperationFailed``
``slow=P@SECONDS``          the request waits SECONDS before it is handled (the client may time
                            out first; the request is then still executed)
``latency=MS``              every REST request waits MS milliseconds before it is handled
``reject=P``                a valid new order is refused with ``{"code":-2010,"msg":"Order was
                            rejected by the matching engine."}`` (nothing is booked)
``timeout_after_accept=P[@SECONDS]``
                            a new order is accepted, booked and matched, but the response is held
                            back SECONDS (default 30) so the client times out; ``@0`` instead
                            drops the TCP connection without any response
``weight_limit=N``          real request-weight accounting: more than N weight in the current
                            minute gives HTTP 429 -1003 with ``Retry-After`` (0 = off)
``ws_drop=SECONDS``         every SECONDS, every open websocket connection is closed by the server
``gap=SECONDS``             every SECONDS, one depth diff message is not sent on each diff stream,
                            so the next message has ``U != previous u + 1``
``seed=N``                  reseed the fault RNG (default 0)
==========================  =====================================================================

``/admin/*`` endpoints are never faulted. Faults never apply to ``/api/v3/ping`` and ``time``
only when ``rate_limit``/``ban``/``server_error`` say so (they are drawn for every REST request).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, fields

__all__ = ["FaultSpec", "FaultError", "FaultState", "parse_faults"]


class FaultError(ValueError):
    """A fault SPEC that does not parse."""


@dataclass
class FaultSpec:
    rate_limit: float = 0.0
    ban: float = 0.0
    ban_seconds: float = 0.0
    server_error: float = 0.0
    server_error_status: int = 503
    internal_error: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.0
    latency_ms: float = 0.0
    reject: float = 0.0
    timeout_after_accept: float = 0.0
    timeout_after_accept_seconds: float = 30.0
    weight_limit: int = 0
    ws_drop: float = 0.0
    gap: float = 0.0
    seed: int | None = None
    text: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _prob(name: str, value: str) -> float:
    try:
        p = float(value)
    except ValueError:
        raise FaultError(f"{name}: probability must be a number, got {value!r}") from None
    if not 0.0 <= p <= 1.0:
        raise FaultError(f"{name}: probability must be in [0, 1], got {value}")
    return p


def _nonneg(name: str, value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise FaultError(f"{name}: must be a number, got {value!r}") from None
    if x < 0:
        raise FaultError(f"{name}: must be >= 0, got {value}")
    return x


def _split_at(name: str, value: str) -> tuple[str, str | None]:
    if "@" in value:
        a, b = value.split("@", 1)
        return a, b
    return value, None


def parse_faults(spec: str | None) -> FaultSpec:
    """Parse a SPEC (see the module docstring); raise :class:`FaultError` on any mistake."""
    out = FaultSpec(text=(spec or "").strip())
    if spec is None:
        return out
    text = spec.replace(" ", "").strip()
    if text in ("", "none", "off"):
        out.text = ""
        return out
    for item in text.split(","):
        if not item:
            continue
        if "=" not in item:
            raise FaultError(f"fault item {item!r} is not name=value")
        name, value = item.split("=", 1)
        name = name.lower()
        if name == "rate_limit":
            out.rate_limit = _prob(name, value)
        elif name == "ban":
            p, secs = _split_at(name, value)
            out.ban = _prob(name, p)
            out.ban_seconds = _nonneg(name, secs) if secs is not None else 0.0
        elif name == "server_error":
            p, status = _split_at(name, value)
            out.server_error = _prob(name, p)
            if status is not None:
                try:
                    out.server_error_status = int(status)
                except ValueError:
                    raise FaultError(f"server_error: status must be an integer, got {status!r}") from None
                if not 500 <= out.server_error_status <= 599:
                    raise FaultError(f"server_error: status must be 5xx, got {status}")
        elif name == "internal_error":
            out.internal_error = _prob(name, value)
        elif name == "slow":
            p, secs = _split_at(name, value)
            if secs is None:
                raise FaultError("slow: give slow=P@SECONDS")
            out.slow = _prob(name, p)
            out.slow_seconds = _nonneg(name, secs)
        elif name == "latency":
            out.latency_ms = _nonneg(name, value)
        elif name == "reject":
            out.reject = _prob(name, value)
        elif name == "timeout_after_accept":
            p, secs = _split_at(name, value)
            out.timeout_after_accept = _prob(name, p)
            if secs is not None:
                out.timeout_after_accept_seconds = _nonneg(name, secs)
        elif name == "weight_limit":
            try:
                out.weight_limit = int(value)
            except ValueError:
                raise FaultError(f"weight_limit: must be an integer, got {value!r}") from None
        elif name == "ws_drop":
            out.ws_drop = _nonneg(name, value)
        elif name == "gap":
            out.gap = _nonneg(name, value)
        elif name == "seed":
            try:
                out.seed = int(value)
            except ValueError:
                raise FaultError(f"seed: must be an integer, got {value!r}") from None
        else:
            raise FaultError(
                f"unknown fault {name!r} (known: rate_limit, ban, server_error, internal_error, slow, latency, "
                "reject, timeout_after_accept, weight_limit, ws_drop, gap, seed)"
            )
    return out


class FaultState:
    """The faults in force plus their RNG and the ban clock."""

    def __init__(self, spec: FaultSpec | str | None = None, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.spec = FaultSpec()
        self.banned_until = 0.0
        self.injected: dict[str, int] = {}
        self.set(spec)

    def set(self, spec: FaultSpec | str | None) -> FaultSpec:
        if spec is None or isinstance(spec, str):
            spec = parse_faults(spec)
        self.spec = spec
        if spec.seed is not None:
            self.rng.seed(spec.seed)
        if spec.ban == 0.0:
            self.banned_until = 0.0
        return spec

    def draw(self, p: float) -> bool:
        return p > 0.0 and (p >= 1.0 or self.rng.random() < p)

    def count(self, name: str) -> None:
        self.injected[name] = self.injected.get(name, 0) + 1

    def ban_active(self, now: float | None = None) -> bool:
        return self.banned_until > (time.time() if now is None else now)
