"""The operator's surface of a running daemon: Prometheus metrics, a dashboard with a JSON API, webhook alerts.

A tool layer beside the product: the daemon holds an :class:`~bot.engine.observer.Observer`
(this package's :class:`Ops`, attached by ``bot run``) and knows nothing of HTTP. ``[http]
port`` turns on the server (``/metrics``, ``/``, ``/api/``), ``[alerts] webhooks`` the alerts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.config.settings import Settings
from bot.log import get_logger, register_secret
from bot.ops.alerts import AlertRules, Webhooks, alert
from bot.ops.api import Api
from bot.ops.metrics import Metrics, exchange_errors
from bot.ops.server import OpsServer

if TYPE_CHECKING:
    from bot.engine.observer import DaemonView

__all__ = ["Ops", "build", "config_problem"]


def config_problem(settings: Settings) -> str | None:
    """One line when the config asks for something this package cannot do safely."""
    http = settings.http
    if http.port is not None and (http.token is None or not http.token.get_secret_value().strip()):
        return ("http.port is set but no token is: set BOT__HTTP__TOKEN in the environment (or .env); "
                "every page, API call and /metrics needs it")
    if http.port is not None and len(http.token.get_secret_value().strip()) < 12:
        return "BOT__HTTP__TOKEN is too short: use at least 12 characters (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
    if http.control and http.port is None:
        return "http.control = true needs http.port (the controls are served by the daemon's HTTP server)"
    return None


def build(settings: Settings) -> "Ops | None":
    """The observer for ``settings``, or None when neither ``[http] port`` nor webhooks are set."""
    if settings.http.port is None and not settings.alerts.webhooks:
        return None
    return Ops(settings)


class Ops:
    """Metrics, server and alerts in the daemon's event loop (see :mod:`bot.engine.observer`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.log = get_logger("bot.ops")
        self.metrics = Metrics()
        self.latencies: list[int] | None = self.metrics.latencies if settings.http.port is not None else None
        self.webhooks = Webhooks(settings.alerts)
        self.rules: AlertRules | None = None
        self.api: Api | None = None
        self.server: OpsServer | None = None
        self.view: "DaemonView | None" = None
        self.last_state: dict[str, Any] = {}

    @property
    def port(self) -> int | None:
        return self.server.port if self.server is not None else None

    async def start(self, view: "DaemonView") -> None:
        self.view = view
        http = self.settings.http
        self.rules = AlertRules(self.settings.alerts, self.settings.risk.max_book_age_s, view.run_id, view.mode, lambda: exchange_errors(view))
        self.webhooks.start()
        symbols = ",".join(lane.symbol for lane in view.lanes)
        self.webhooks.put(alert("started", view.run_id, view.mode, f"daemon started: {view.mode} {symbols}, equity {view.initial_equity}",
                                instruments=symbols.split(","), equity=view.initial_equity))
        if http.port is None:
            return
        if http.token is None:
            raise RuntimeError(config_problem(self.settings) or "http.token is not set")
        token = http.token.get_secret_value()
        register_secret(token)
        self.metrics.attach(view)
        self.api = Api(view, http.control)
        self.server = OpsServer(token, self.api, self.metrics, http.control)
        port = await self.server.start(http.host, http.port)
        self.log.info("operator surface listening", url=f"http://{http.host}:{port}/", control=http.control,
                      webhooks=len(self.settings.alerts.webhooks))

    def heartbeat(self, state: dict[str, Any], now_ns: int) -> None:
        self.last_state = state
        if self.latencies is not None:
            self.metrics.drain()
        if self.api is not None:
            self.api.heartbeat(state)
        if self.rules is not None and self.webhooks.urls:
            for item in self.rules.check(state, now_ns / 1e9):
                self.log.info("alert", kind=item["kind"], message=item["message"])
                self.webhooks.put(item)

    async def stop(self, status: str, reason: str) -> None:
        try:
            if self.view is not None and self.webhooks.urls:
                self.webhooks.put(alert("stopped", self.view.run_id, self.view.mode, f"daemon stopped: {status}" + (f": {reason}" if reason else ""),
                                        status=status, reason=reason, equity=self.last_state.get("equity"), pnl=self.last_state.get("pnl")))
            await self.webhooks.close()
        finally:
            try:
                if self.server is not None:
                    await self.server.stop()
            finally:
                if self.api is not None:
                    await self.api.reader.close()
