"""Hostile REST answers on demand: overrides of what an endpoint answers, for tests of a client against garbage.

An override is a JSON object::

    {"method": "POST", "path": "/api/v3/order", "mode": "merge", "body": {"symbol": "ETHUSDT"},
     "status": 200, "times": 1, "match": {"side": "SELL"}}

==========  ==========================================================================================
key         meaning
==========  ==========================================================================================
``method``  HTTP method (any case); missing or ``"*"``: any method
``path``    the exact request path, under ``/api/``, ``/sapi/``, ``/fapi/`` or ``/dapi/`` (admin endpoints are never overridden)
``mode``    ``merge``: the real handler runs (an order is really placed), then its JSON answer is
            deep-merged with ``body``: dict keys are replaced recursively; where the answer (or a
            value inside it) is a list and ``body`` there is a dict, the dict is merged into every
            element that is a dict; any other ``body`` value (list, string, number, null) replaces
            the value. The status stays the real one unless ``status`` is given.
            ``run_replace``: the real handler runs (side effects happen), the answer is ``body`` as
            JSON. ``replace``: the real handler does not run; the answer is ``body`` as JSON.
            ``raw``: the real handler does not run; the answer is the string ``body`` verbatim (e.g.
            ``not json{`` or ``""``) with content type ``application/json``.
``body``    required; a string for ``raw``
``status``  HTTP status of the answer, 100..599 (default: the real one for ``merge``, else 200)
``times``   how many requests it applies to (default 1); 0 = until cleared
``match``   optional filter on the request's parameters (query string and form body): every
            ``name: value`` pair must be present, names compared case-insensitively, values as
            exact strings (a JSON number or boolean is compared as its text: ``true``/``false``)
==========  ==========================================================================================

The first active override matching the request, in the order added, applies. Overrides act after
the emulator's faults and, on a SIGNED (or API-key) endpoint, only once the request passed the
endpoint's auth check: an unsigned request still gets the real -1022/-2014 error. Headers the real
handler set (order counters) are kept by ``merge`` / ``run_replace``; every answer gets the usual
``X-MBX-USED-WEIGHT-1M``.

Admin endpoints: ``POST /admin/override`` (body: one override) answers ``{"id": N}`` (400 ``{"error":
...}`` for a bad one); ``GET /admin/override`` answers ``{"overrides": [...]}``, each with its ``id``,
how many times it ``fired`` and whether it is still ``active``; ``DELETE /admin/override`` removes
all (``{"cleared": n}``). ``--override FILE`` loads a JSON list of overrides active from the first
request. Websocket injection (``POST /admin/ws_inject``) is :mod:`bot.emulator.ws_inject`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from bot.emulator.ws_inject import admin_ws_inject

if TYPE_CHECKING:
    from bot.emulator.ws import Hub

__all__ = ["MODES", "Override", "OverrideError", "Overrides", "add_admin_routes", "deep_merge", "load_override_file",
           "parse_override"]

MODES = ("merge", "run_replace", "replace", "raw")
METHODS = ("GET", "POST", "PUT", "DELETE", "*")
_KEYS = {"method", "path", "mode", "body", "status", "times", "match"}
_DROPPED_HEADERS = {"content-type", "content-length", "content-encoding"}


class OverrideError(ValueError):
    """An override object that does not make sense."""


@dataclass
class Override:
    id: int
    method: str  # upper case, "*" = any
    path: str
    mode: str
    body: Any
    status: int | None  # None: the real status (merge only)
    times: int  # 0 = until cleared
    match: dict[str, str]  # lower-case parameter name -> exact value
    fired: int = 0

    @property
    def active(self) -> bool:
        return self.times == 0 or self.fired < self.times

    def matches(self, method: str, path: str, params: dict[str, str]) -> bool:
        return (self.active and path == self.path and self.method in ("*", method)
                and all(params.get(k) == v for k, v in self.match.items()))

    def to_dict(self) -> dict:
        return {"id": self.id, "method": self.method, "path": self.path, "mode": self.mode, "body": self.body,
                "status": self.status, "times": self.times, "match": dict(self.match), "fired": self.fired,
                "active": self.active}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise OverrideError(f"match values must be strings or numbers, got {value!r}")


def parse_override(spec: object, id: int = 0) -> Override:
    """Check one override object (see the module docstring); raise :class:`OverrideError`."""
    if not isinstance(spec, dict):
        raise OverrideError(f"an override must be a JSON object, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise OverrideError(f"unknown override key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    method = spec.get("method") or "*"
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise OverrideError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    path = spec.get("path")
    if not isinstance(path, str) or not path.startswith(("/api/", "/sapi/", "/fapi/", "/dapi/")):
        raise OverrideError(f"path must be a REST path under /api/, /sapi/, /fapi/ or /dapi/, got {path!r}")
    mode = spec.get("mode")
    if mode not in MODES:
        raise OverrideError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if "body" not in spec:
        raise OverrideError("body is required (a string for mode raw)")
    body = spec["body"]
    if mode == "raw" and not isinstance(body, str):
        raise OverrideError("mode raw needs body to be a string (the answer, verbatim)")
    status = spec.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        raise OverrideError(f"status must be an integer in 100..599, got {status!r}")
    if status is None and mode != "merge":
        status = 200
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 0:
        raise OverrideError(f"times must be an integer >= 0 (0 = until cleared), got {times!r}")
    match = spec.get("match") or {}
    if not isinstance(match, dict):
        raise OverrideError(f"match must be an object of parameter: value, got {match!r}")
    return Override(id=id, method=method.upper(), path=path, mode=mode, body=body, status=status, times=times,
                     match={str(k).lower(): _text(v) for k, v in match.items()})


def load_override_file(path: str) -> list[dict]:
    """The overrides of ``--override FILE`` (a JSON list of objects), checked; ValueError otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"--override: cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ValueError(f"--override: {path} is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError(f"--override: {path} must hold a JSON list of override objects")
    for n, spec in enumerate(data, 1):
        try:
            parse_override(spec)
        except OverrideError as exc:
            raise ValueError(f"--override: {path}, override {n}: {exc}") from None
    return data


def deep_merge(answer: Any, patch: Any) -> Any:
    """``answer`` with ``patch`` merged in (see ``merge`` in the module docstring); inputs are not changed."""
    if not isinstance(patch, dict):
        return patch
    if isinstance(answer, dict):
        out = dict(answer)
        for key, value in patch.items():
            out[key] = deep_merge(answer[key], value) if key in answer else value
        return out
    if isinstance(answer, list):
        return [deep_merge(x, patch) if isinstance(x, dict) else x for x in answer]
    return patch


def _json(data: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status, content_type="application/json",
                        headers=headers)


def _kept_headers(resp: web.StreamResponse) -> dict[str, str]:
    return {k: v for k, v in resp.headers.items() if k.lower() not in _DROPPED_HEADERS}


async def request_params(request: web.Request) -> dict[str, str]:
    """Query string and form body parameters, names in lower case (the last of a repeated name wins)."""
    params = {k.lower(): v for k, v in parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)}
    if request.body_exists and "json" not in (request.content_type or ""):
        for k, v in parse_qsl(await request.text(), keep_blank_values=True):
            params[k.lower()] = v
    return params


Run = Callable[[], Awaitable[web.StreamResponse]]
Authorize = Callable[[], Awaitable["web.StreamResponse | None"]]


class Overrides:
    """The overrides in force, in the order added."""

    def __init__(self) -> None:
        self.items: list[Override] = []
        self._next_id = 1

    def add(self, spec: object) -> Override:
        override = parse_override(spec, self._next_id)
        self._next_id += 1
        self.items.append(override)
        return override

    def clear(self) -> int:
        n = len(self.items)
        self.items = []
        return n

    def list(self) -> list[dict]:
        return [o.to_dict() for o in self.items]

    def find(self, method: str, path: str, params: dict[str, str]) -> Override | None:
        return next((o for o in self.items if o.matches(method, path, params)), None)

    async def dispatch(self, request: web.Request, run: Run, authorize: Authorize) -> web.StreamResponse:
        """Answer ``request``: ``run()`` (the real handler) unless an override applies.

        ``authorize()`` runs the endpoint's auth check only; it returns None when the request passed
        or the error answer to send instead.
        """
        if not any(o.active for o in self.items):
            return await run()
        params = await request_params(request)
        if self.find(request.method, request.path, params) is None:
            return await run()
        denied = await authorize()
        if denied is not None:
            return denied
        override = self.find(request.method, request.path, params)  # again: another request may have used it up
        if override is None:
            return await run()
        override.fired += 1
        return await self._answer(override, run)

    @staticmethod
    async def _answer(o: Override, run: Run) -> web.StreamResponse:
        if o.mode == "raw":
            return web.Response(text=o.body, status=o.status or 200, content_type="application/json")
        if o.mode == "replace":
            return _json(o.body, o.status or 200)
        real = await run()
        if o.mode == "run_replace":
            return _json(o.body, o.status or 200, _kept_headers(real))
        if real.prepared or not isinstance(real, web.Response) or real.text is None:
            return real
        try:
            answer = json.loads(real.text)
        except ValueError:
            return real
        return _json(deep_merge(answer, o.body), o.status or real.status, _kept_headers(real))


def add_admin_routes(router: web.UrlDispatcher, overrides: Overrides, hub: "Hub") -> None:
    """``/admin/override`` (GET/POST/DELETE) and ``/admin/ws_inject`` (POST)."""

    async def admin_override(request: web.Request) -> web.Response:
        if request.method == "DELETE":
            return _json({"cleared": overrides.clear()}, 200)
        if request.method == "POST":
            try:
                spec = json.loads(await request.text())
                override = overrides.add(spec)
            except ValueError as exc:  # bad JSON or an OverrideError
                return _json({"error": str(exc)}, 400)
            return _json({"id": override.id}, 200)
        return _json({"overrides": overrides.list()}, 200)

    async def ws_inject(request: web.Request) -> web.Response:
        return await admin_ws_inject(request, hub)

    router.add_get("/admin/override", admin_override)
    router.add_post("/admin/override", admin_override)
    router.add_delete("/admin/override", admin_override)
    router.add_post("/admin/ws_inject", ws_inject)
