"""The small interface through which a tool beside the daemon (bot.ops: metrics, dashboard, alerts) watches it.

The daemon knows nothing of HTTP, Prometheus or webhooks: it holds an optional
:class:`Observer`, starts it once trading is about to begin, hands it the heartbeat state it
writes for ``bot status`` once a second, and stops it on the way out. On the decision path it
only appends the tick-to-decision time of each market event to ``latencies`` (a list the
observer drains). An observer that raises is logged and dropped; it never stops trading.

Controls (pause entries, flatten, kill switch) are :class:`DaemonView.control`: they go through
the account's risk manager, as every limit does, and the next decision applies them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.engine.startup import DaemonError
from bot.log import mask_secrets

if TYPE_CHECKING:
    from bot.engine.account_engine import AccountEngine
    from bot.engine.lanes import Lane


CONTROLS = ("pause", "flatten", "kill")


@dataclass
class DaemonView:
    """What an observer may read (in memory, never the database on the decision path) and do."""

    run_id: str
    mode: str
    db_path: Path
    initial_equity: float
    engine: "AccountEngine"
    lanes: list["Lane"]

    def control(self, action: str, source: str) -> tuple[bool, str]:
        """Apply an operator control through the risk manager; (done, what happened)."""
        if action not in CONTROLS:
            return False, f"unknown control {action!r}; known: {', '.join(CONTROLS)}"
        lane0 = self.engine.lanes[0]
        done, message = lane0.risk.operator_control(action, f"{action} requested by the operator ({source})")
        if done:
            now = max(lane.now for lane in self.engine.lanes)
            lane0.store.record_risk_event(self.run_id, now, "operator", action, message)
            lane0.log.warning("operator control", action=action, source=source, result=message)
        return done, message


class Observer(Protocol):
    latencies: list[int] | None
    """Tick-to-decision times (ns) the daemon appends after each market event; None: not wanted."""

    async def start(self, view: DaemonView) -> None:
        """Called once before the feeds start; raise ``OSError``/``RuntimeError`` with one line to refuse the start."""

    def heartbeat(self, state: dict[str, Any], now_ns: int) -> None:
        """The state just written for ``bot status`` (once a second). Must return quickly."""

    async def stop(self, status: str, reason: str) -> None:
        """The run ended with ``status``; flush what is pending within a bounded time."""


class ObserverHooks:
    """The daemon's side of the interface (a mixin of :class:`~bot.engine.daemon.Daemon`)."""

    observer: Observer | None
    latencies: list[int] | None
    observer_broken = False  # its heartbeat raised once: no more calls (it is still stopped at the end)
    run_id: str
    mode: str
    initial_equity: float
    lock: Any
    log: Any

    async def _start_observer(self, engine: "AccountEngine", lanes: list["Lane"]) -> None:
        """The operator surface (bot.ops), if attached: a server that cannot listen refuses the start."""
        if self.observer is None:
            return
        view = DaemonView(self.run_id, self.mode, self.lock.db_path, self.initial_equity, engine, lanes)
        try:
            await self.observer.start(view)
        except (OSError, RuntimeError, ValueError) as exc:
            self.observer = None
            raise DaemonError(str(exc)) from None
        self.latencies = self.observer.latencies

    async def _stop_observer(self, status: str, reason: str) -> None:
        observer, self.observer, self.latencies = self.observer, None, None
        if observer is None:
            return
        try:
            await asyncio.wait_for(observer.stop(status, reason), timeout=15)
        except Exception as exc:  # noqa: BLE001 - the run is closed already; the surface only goes away
            self.log.warning("operator surface did not stop cleanly", error=f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}")

    def _observe(self, state: dict[str, Any], now: int) -> None:
        observer = self.observer
        if observer is None or self.observer_broken:
            return
        try:
            observer.heartbeat(state, now)
        except Exception as exc:  # noqa: BLE001 - watching the daemon never stops it
            self.log.error("operator surface failed; its heartbeat is switched off, trading goes on",
                           error=f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}", exc_info=True)
            self.observer_broken = True
            self.latencies = None


class Observers:
    """Several observers as one (``bot run``'s console and bot.ops): each is called in turn.

    Started in the order given; one that refuses the start has the ones started before it
    stopped again (the daemon stops only an observer whose start succeeded). A heartbeat that
    raises drops that observer alone. ``latencies`` are the first member's that wants them."""

    def __init__(self, *observers: Observer | None):
        self.items: list[Observer] = [o for o in observers if o is not None]
        self.started: list[Observer] = []
        self.log: Any = None

    @property
    def latencies(self) -> list[int] | None:  # type: ignore[override]
        return next((o.latencies for o in self.items if o.latencies is not None), None)

    async def start(self, view: DaemonView) -> None:
        for observer in self.items:
            try:
                await observer.start(view)
            except BaseException:
                await self.stop("failed", "an observer refused to start")
                raise
            self.started.append(observer)

    def heartbeat(self, state: dict[str, Any], now_ns: int) -> None:
        for observer in list(self.started):
            try:
                observer.heartbeat(state, now_ns)
            except Exception as exc:  # noqa: BLE001 - watching the daemon never stops it
                self.started.remove(observer)
                if self.log is not None:
                    self.log.error("an observer failed; its heartbeat is switched off, trading goes on",
                                   observer=type(observer).__name__, error=f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}")

    async def stop(self, status: str, reason: str) -> None:
        started, self.started = self.started, []
        for observer in reversed(started):
            try:
                await observer.stop(status, reason)
            except Exception as exc:  # noqa: BLE001 - every member is stopped
                if self.log is not None:
                    self.log.warning("an observer did not stop cleanly", observer=type(observer).__name__,
                                     error=f"{type(exc).__name__}: {mask_secrets(str(exc))[:200]}")
