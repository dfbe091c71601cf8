"""Point a ccxt client at another host (the local emulator, a proxy) by rewriting its URL table.

ccxt keeps every REST and websocket base URL in ``describe()["urls"]["api"]`` (a nested dict).
Rewriting all of them, not just the spot ones, guarantees that nothing can reach the real
exchange by accident when an override is set.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


def override_api_urls(api_urls: Any, rest_base: str, ws_url: str, in_ws: bool = False) -> Any:
    """Return a copy of ccxt's ``urls["api"]`` with every REST URL moved to ``rest_base`` (path
    kept) and every websocket URL replaced by ``ws_url`` (``ws-api`` entries by ``<root>/ws-api/v3``)."""
    if isinstance(api_urls, dict):
        out = {}
        for key, value in api_urls.items():
            if key == "ws-api":
                root = ws_url[: -len("/ws")] if ws_url.endswith("/ws") else ws_url.rstrip("/")
                out[key] = override_api_urls(value, rest_base, root + "/ws-api/v3", True)
            else:
                out[key] = override_api_urls(value, rest_base, ws_url, in_ws or key == "ws")
        return out
    if isinstance(api_urls, str) and "://" in api_urls:
        if in_ws or api_urls.startswith("ws"):
            return ws_url
        return rest_base.rstrip("/") + urlsplit(api_urls).path
    return api_urls
