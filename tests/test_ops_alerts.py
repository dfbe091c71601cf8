"""Webhook alerts from a running paper daemon: a halt and the kill switch reach a local aiohttp
receiver as JSON; webhooks that hang or refuse never stop trading (and are logged)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from aiohttp import web

from daemon_harness import count, query, stop
from ops_helpers import bot_status, free_port, get, ops_config, ops_env, start_ops_daemon
from daemon_harness import start_daemon
from waiting import wait_until


class Receiver:
    """An aiohttp server in its own thread: ``/hook`` keeps every JSON body, ``/hang`` never answers,
    ``/fail`` answers 500."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.hits = {"hang": 0, "fail": 0}
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        self.closing = asyncio.Event()

        async def hook(request: web.Request) -> web.Response:
            self.got.append(await request.json())
            return web.json_response({"ok": True})

        async def hang(request: web.Request) -> web.Response:
            self.hits["hang"] += 1
            await self.closing.wait()  # no answer until the receiver closes
            return web.Response()

        async def fail(request: web.Request) -> web.Response:
            self.hits["fail"] += 1
            return web.Response(status=500, text="down")

        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_post("/hang", hang)
        app.router.add_post("/fail", fail)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def kinds(self) -> list[str]:
        return [a["kind"] for a in list(self.got)]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.closing.set)
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def alerts_section(*urls: str, **keys: Any) -> str:
    body = "\n[alerts]\nwebhooks = [" + ", ".join(f'"{u}"' for u in urls) + "]\n"
    return body + "".join(f"{k} = {v}\n" for k, v in keys.items())


def test_a_halt_reaches_the_webhook(tmp_path, emulator, receiver):
    # a daily loss limit one round trip's fees exceed: the daemon halts itself after its first trade
    config = ops_config(tmp_path, emulator, port=None, extra=alerts_section(receiver.url("hook"), "http://127.0.0.1:9/dead", retries=1, timeout_s=1))
    config.write_text(config.read_text().replace("daily_loss_limit = 0.5", "daily_loss_limit = 0.00001"))
    proc = start_daemon(tmp_path, config, env=ops_env(None))
    try:
        halt = wait_until(lambda: next((a for a in list(receiver.got) if a["kind"] == "halt"), None), "the halt's alert at the webhook")
    finally:
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    assert halt["rule"] == "daily_loss_limit" and "day loss" in halt["detail"] and halt["source"] == "imbalance-bot"
    db = tmp_path / "bot.db"
    assert halt["run_id"] == query(db, "select run_id from runs")[0][0]
    assert query(db, "select rule from risk_events where kind = 'halt'") == [("daily_loss_limit",)]
    kinds = wait_until(lambda: "stopped" in receiver.kinds() and receiver.kinds(), "the stop's alert")
    assert kinds[0] == "started" and kinds.count("halt") == 1
    assert "alert not delivered" in (tmp_path / "logs" / "bot.log").read_text()  # the dead one: logged, nothing else


def test_the_kill_switch_control_alerts_and_flattens(tmp_path, emulator, receiver):
    port = free_port()
    config = ops_config(tmp_path, emulator, port=port, extra="control = true\n" + alerts_section(receiver.url("hook")))
    db = tmp_path / "bot.db"
    proc = start_ops_daemon(tmp_path, config, port)
    try:
        wait_until(lambda: count(db, "select count(*) from fills") >= 1, "a fill")
        code, body, _ = get(f"http://127.0.0.1:{port}/api/kill", method="POST")
        assert code == 200, body
        killed = wait_until(lambda: next((a for a in list(receiver.got) if a["kind"] == "kill_switch"), None), "the kill switch's alert")
        assert killed["rule"] == "kill_switch"
        wait_until(lambda: bot_status(db, tmp_path)["position"] in ("0", "0E-8") or float(bot_status(db, tmp_path)["position"]) == 0,
                   "the position to be flat")
        orders = count(db, "select count(*) from orders")
        assert query(db, "select rule from risk_events where kind = 'operator'") == [("kill",)]
        assert ("kill_switch",) in query(db, "select rule from risk_events where kind = 'halt'")
        # entries stay refused: the next heartbeat's status still says halted and no order was added
        wait_until(lambda: bot_status(db, tmp_path)["halt"] is not None, "the halt in bot status")
        assert count(db, "select count(*) from orders") == orders
    finally:
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]


def test_dead_webhooks_never_stop_trading(tmp_path, emulator, receiver):
    # one that never answers, one that answers 500, one where nothing listens: the start alert is
    # retried on all three while the daemon trades on
    urls = (receiver.url("hang"), receiver.url("fail"), "http://127.0.0.1:9/nothing")
    config = ops_config(tmp_path, emulator, port=None, extra=alerts_section(*urls, retries=3, timeout_s=1, queue_size=2))
    db = tmp_path / "bot.db"
    proc = start_daemon(tmp_path, config, env=ops_env(None))
    try:
        wait_until(lambda: receiver.hits["hang"] >= 1 and receiver.hits["fail"] >= 2, "the start alert to be tried and retried")
        fills = count(db, "select count(*) from fills")
        wait_until(lambda: count(db, "select count(*) from fills") >= fills + 4, "four more fills while the webhooks fail")
        log = tmp_path / "logs" / "bot.log"
        wait_until(lambda: log.exists() and log.read_text().count("alert not delivered") >= 3, "each failed webhook to be logged")
        assert proc.poll() is None
    finally:
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    assert query(db, "select status from runs") == [("completed",)]
    assert "Traceback" not in (tmp_path / "daemon.out").read_text()
