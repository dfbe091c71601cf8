"""The daemon's HTTP server (aiohttp, in the daemon's event loop): ``/metrics``, the dashboard, ``/api/``.

Every route needs the token: ``Authorization: Bearer <token>``, or the session cookie a browser
gets once from ``/login?token=...`` (HttpOnly, SameSite=Strict; it holds a value derived from
the token, not the token). Without it: 401. The access log is off, so a token in a login URL
never reaches a log file. Controls (``POST /api/pause``, ``/api/flatten``, ``/api/kill``) answer
403 unless ``[http] control = true``; with it they go through the risk manager
(:meth:`bot.engine.observer.DaemonView.control`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.ops.dashboard import PAGE
from bot.ops.metrics import CONTENT_TYPE
from bot.store.jsonout import strict_json

if TYPE_CHECKING:
    from bot.ops.api import Api
    from bot.ops.metrics import Metrics

COOKIE = "bot_session"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=strict_json(data), status=status, content_type="application/json")


def _unauthorized(request: web.Request) -> web.Response:
    if request.path.startswith("/api/") or request.path == "/metrics":
        return web.Response(status=401, text='{"error": "unauthorized: send Authorization: Bearer <token>"}',
                            content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="imbalance-bot"'})
    return web.Response(status=401, content_type="text/plain", headers={"WWW-Authenticate": 'Bearer realm="imbalance-bot"'},
                        text="401 unauthorized: open /login?token=<BOT__HTTP__TOKEN> once, or send Authorization: Bearer <token>\n")


class OpsServer:
    def __init__(self, token: str, api: "Api", metrics: "Metrics", control: bool):
        self._token = token.encode()
        self._session = hmac.new(self._token, b"imbalance-bot dashboard session", hashlib.sha256).hexdigest().encode()
        self.api = api
        self.metrics = metrics
        self.control = control
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- auth ---------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer " and hmac.compare_digest(header[7:].strip().encode(), self._token):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._session)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/login" or self._authorized(request):
            return await handler(request)
        return _unauthorized(request)

    async def login(self, request: web.Request) -> web.StreamResponse:
        given = request.query.get("token", "")
        if not given or not hmac.compare_digest(given.encode(), self._token):
            return _unauthorized(request)
        resp = web.Response(status=302, headers={"Location": "/", "Cache-Control": "no-store"})
        resp.set_cookie(COOKIE, self._session.decode(), httponly=True, samesite="Strict", path="/")
        return resp

    # -- routes -------------------------------------------------------------------------------
    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    async def live(self, request: web.Request) -> web.Response:
        return _json(self.api.live())

    async def equity(self, request: web.Request) -> web.Response:
        return _json(self.api.equity_series())

    async def _from_db(self, fn: Callable[[], Awaitable[Any]]) -> web.Response:
        try:
            return _json(await fn())
        except LookupError as exc:
            return _json({"error": str(exc)}, status=503)
        except Exception as exc:  # noqa: BLE001 - the database is busy or changing: say so, try again next poll
            return _json({"error": f"{type(exc).__name__}: {str(exc)[:200]}"}, status=503)

    async def status(self, request: web.Request) -> web.Response:
        return await self._from_db(self.api.status)

    async def fills(self, request: web.Request) -> web.Response:
        return await self._from_db(self.api.fills)

    async def events(self, request: web.Request) -> web.Response:
        return await self._from_db(self.api.events)

    def _control(self, action: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            if not self.control:
                return _json({"error": "controls are off: set [http] control = true to allow them"}, status=403)
            done, message = self.api.view.control(action, f"POST /api/{action} from {request.remote}")
            return _json({"action": action, "done": done, "message": message}, status=200 if done else 409)
        return handle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=64 * 1024)
        app.router.add_get("/", self.page)
        app.router.add_get("/login", self.login)
        app.router.add_get("/metrics", self.metrics_text)
        app.router.add_get("/api/live", self.live)
        app.router.add_get("/api/equity", self.equity)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/api/fills", self.fills)
        app.router.add_get("/api/events", self.events)
        for action in ("pause", "flatten", "kill"):
            app.router.add_post(f"/api/{action}", self._control(action))
        return app

    async def start(self, host: str, port: int) -> int:
        """Listen; the port actually bound (``port = 0``: a free one). OSError names the address."""
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise OSError(f"http: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await runner.cleanup()
