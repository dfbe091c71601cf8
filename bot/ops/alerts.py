"""Alerts to webhooks: halts, the kill switch, repeated exchange errors, a stale feed, a daily summary.

:class:`AlertRules` turns the heartbeat state (once a second) into alerts; it only compares a
few numbers with the previous heartbeat. :class:`Webhooks` sends them: a bounded queue (when
full the oldest alert is dropped and that is logged), one background task that POSTs each alert
as JSON to every URL, retrying with exponential backoff. Nothing here can block a decision or
stop the daemon: a failed POST is a log line.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from typing import Any

import aiohttp

from bot.config.settings import AlertsSection
from bot.log import get_logger, mask_secrets

DAY_S = 86_400


def alert(kind: str, run_id: str, mode: str, message: str, **fields: Any) -> dict[str, Any]:
    return {"source": "imbalance-bot", "kind": kind, "run_id": run_id, "mode": mode, "ts": round(time.time(), 3), "message": message, **fields}


class AlertRules:
    """What is worth telling an operator, from consecutive heartbeat states."""

    def __init__(self, cfg: AlertsSection, max_book_age_s: float, run_id: str, mode: str, errors_of: Any):
        self.cfg = cfg
        self.stale_after_s = cfg.stale_feed_s or max_book_age_s
        self.run_id, self.mode = run_id, mode
        self.errors_of = errors_of  # () -> {kind: count}: the exchange error counters
        self.halt_seen: tuple[str, str] | None = None
        self.stale: set[str] = set()
        self.sound_once: set[str] = set()  # a feed still starting up is not a stale feed
        self.error_times: deque[tuple[float, int]] = deque()
        self.errors_alerted_at = 0.0
        self.last_errors = 0
        self.day: int | None = None  # the UTC day of the first heartbeat, then of the last summary
        self.day_start: dict[str, Any] | None = None

    def _alert(self, kind: str, message: str, **fields: Any) -> dict[str, Any]:
        return alert(kind, self.run_id, self.mode, message, **fields)

    def check(self, state: dict[str, Any], now_s: float | None = None) -> list[dict[str, Any]]:
        now_s = time.time() if now_s is None else now_s
        out: list[dict[str, Any]] = []
        if self.day_start is None:
            self.day_start = state
        halt = state.get("halt")
        key = (halt["rule"], halt["detail"]) if halt else None
        if key != self.halt_seen:
            if halt:
                kind = "kill_switch" if halt["rule"] == "kill_switch" else "halt"
                out.append(self._alert(kind, f"trading halted: {halt['rule']}: {halt['detail']}", rule=halt["rule"], detail=halt["detail"],
                                       equity=state.get("equity"), pnl=state.get("pnl")))
            elif self.halt_seen is not None:
                out.append(self._alert("resume", f"halt {self.halt_seen[0]} lifted: trading allowed", rule=self.halt_seen[0]))
            self.halt_seen = key
        for inst in state.get("instruments") or []:
            sym, age = inst.get("symbol"), inst.get("book_age_s")
            stale = inst.get("book_status") != "sound" or age is None or age > self.stale_after_s
            if not stale:
                self.sound_once.add(sym)
            if stale and sym not in self.stale and (sym in self.sound_once or float(state.get("uptime_s") or 0) > 2 * self.stale_after_s + 10):
                self.stale.add(sym)
                out.append(self._alert("stale_feed", f"{sym}: no tradable book (status {inst.get('book_status')}, age {age} s)",
                                       instrument=sym, book_status=inst.get("book_status"), book_age_s=age))
            elif not stale and sym in self.stale:
                self.stale.discard(sym)
                out.append(self._alert("feed_ok", f"{sym}: the book is sound again", instrument=sym))
        errors = self.errors_of()
        total = sum(errors.values())
        if total > self.last_errors:
            self.error_times.append((now_s, total - self.last_errors))
        self.last_errors = total
        while self.error_times and self.error_times[0][0] < now_s - self.cfg.error_window_s:
            self.error_times.popleft()
        recent = sum(n for _, n in self.error_times)
        if recent >= self.cfg.exchange_errors and now_s - self.errors_alerted_at >= self.cfg.error_window_s:
            self.errors_alerted_at = now_s
            out.append(self._alert("exchange_errors", f"{recent} exchange errors in the last {self.cfg.error_window_s:g} s",
                                   count=recent, by_kind=errors))
        day = int(now_s // DAY_S)
        if self.day is None:
            self.day = day
        elif day != self.day:
            self.day = day
            if self.cfg.daily_summary:
                out.append(self.summary(state, "daily_summary"))
            self.day_start = state
        return out

    def summary(self, state: dict[str, Any], kind: str = "daily_summary") -> dict[str, Any]:
        start = self.day_start or state
        day_pnl = round(float(state.get("equity") or 0) - float(start.get("equity") or 0), 8)
        return self._alert(kind, f"equity {state.get('equity')}, day PnL {day_pnl}, run PnL {state.get('pnl')}",
                           equity=state.get("equity"), pnl=state.get("pnl"), day_pnl=day_pnl, orders=state.get("orders"),
                           fills=state.get("fills"), halt=state.get("halt"), position=state.get("position"),
                           instruments=[{k: i.get(k) for k in ("symbol", "position", "orders", "fills")} for i in state.get("instruments") or []])


class Webhooks:
    """A bounded queue of alerts and the task that POSTs them, retried with backoff."""

    def __init__(self, cfg: AlertsSection):
        self.cfg = cfg
        self.urls = list(cfg.webhooks)
        self.queue: deque[dict[str, Any]] = deque()
        self.wake = asyncio.Event()
        self.log = get_logger("bot.ops.alerts")
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing = False

    def put(self, item: dict[str, Any]) -> None:
        """Never blocks: when the queue is full the oldest alert goes."""
        if not self.urls:
            return
        if len(self.queue) >= self.cfg.queue_size:
            old = self.queue.popleft()
            self.dropped += 1
            self.log.warning("alert queue full: oldest alert dropped", kind=old.get("kind"), queue_size=self.cfg.queue_size)
        self.queue.append(item)
        self.wake.set()

    def start(self) -> None:
        if self.urls and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alerts")

    async def _run(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        try:
            while True:
                if not self.queue:
                    if self._closing:
                        return
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                item = self.queue.popleft()
                await asyncio.gather(*(self._send(url, item) for url in self.urls))
        finally:
            await self._session.close()

    async def _send(self, url: str, item: dict[str, Any]) -> None:
        delay = 0.5
        for attempt in range(self.cfg.retries + 1):
            try:
                assert self._session is not None
                async with self._session.post(url, json=item) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    problem = f"HTTP {resp.status}"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is retried, then logged
                problem = f"{type(exc).__name__}: {mask_secrets(str(exc))[:160]}"
            if attempt < self.cfg.retries and not self._closing:
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, 30.0)
            else:
                break
        self.failed += 1
        self.log.warning("alert not delivered", kind=item.get("kind"), url=_safe_url(url), problem=problem, attempts=attempt + 1)

    async def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (retries cut short), then stop; give up after ``timeout``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self.wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except (TimeoutError, asyncio.TimeoutError):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.log.warning("alerts still queued at stop were not sent", left=len(self.queue))


def _safe_url(url: str) -> str:
    """A webhook URL for the log without its query (Slack-style URLs carry a token in the path or query)."""
    head = url.split("?", 1)[0]
    scheme, _, rest = head.partition("://")
    host = rest.split("/", 1)[0]
    return f"{scheme}://{host}/..." if "/" in rest else head
