"""The emulator as a child process: start it, wait for its READY line, talk to its admin API, stop it.

Used by ``bot demo``, the daemon tests and the benchmarks, which all need a real emulator process
on 127.0.0.1 next to the bot. The daemon tests and the benchmarks also share the config and the
environment of a daemon pointed at it (:func:`write_daemon_config`, :func:`daemon_env`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class EmulatorProcess:
    """``python -m bot emulator ARGS --port 0``; ``url``/``ws_url`` are known once it is listening."""

    def __init__(self, args: list[str], *, cwd: str | Path | None = None, stderr_path: str | Path | None = None):
        self._err = open(stderr_path, "w") if stderr_path is not None else None
        self._stderr_path = stderr_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}  # the bot's settings are not the emulator's
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._err, text=True, cwd=cwd, env=env,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("EMULATOR READY"):
            self.stop()
            detail = Path(stderr_path).read_text()[-2000:] if stderr_path is not None else ""
            raise RuntimeError(f"the exchange emulator did not start ({line.strip() or 'no output'}) {detail}".rstrip())
        _, _, self.url, self.ws_url = line.split()

    def admin(self, path: str, body: str | dict | list | None = None, method: str | None = None) -> Any:
        """GET (or POST ``body`` to, or ``method``) an ``/admin/...`` endpoint and return its JSON.

        A dict or list ``body`` is sent as JSON. An HTTP error answer raises ``urllib.error.HTTPError``.
        """
        headers = {}
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers["Content-Type"] = "application/json"
        data = body.encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers,
                                     method=method or ("POST" if body is not None else "GET"))
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def _admin_checked(self, path: str, body: dict | None, method: str | None = None) -> Any:
        try:
            return self.admin(path, body, method)
        except urllib.error.HTTPError as exc:
            if exc.code != 400:
                raise
            raise ValueError(json.loads(exc.read() or b"{}").get("error", f"{path}: HTTP 400")) from None

    def override(self, spec: dict) -> int:
        """Add a REST override (see :mod:`bot.emulator.override`); return its id (ValueError if refused)."""
        return self._admin_checked("/admin/override", spec)["id"]

    def overrides(self) -> list[dict]:
        """The overrides in force, with how many times each fired."""
        return self.admin("/admin/override")["overrides"]

    def clear_overrides(self) -> int:
        """Remove every override; return how many there were."""
        return self.admin("/admin/override", method="DELETE")["cleared"]

    def ws_inject(self, spec: dict) -> int:
        """Inject a websocket frame (see :mod:`bot.emulator.ws_inject`); return the connections reached."""
        return self._admin_checked("/admin/ws_inject", spec)["connections"]

    def state(self) -> dict[str, Any]:
        return self.admin("/admin/state")

    # ---- futures (--market usdm|coinm, see bot.emulator.futures.venue)
    def mark(self, price: str | float | None = None, offset: str | float | None = None) -> dict[str, Any]:
        """Pin the mark price (``price``), or set it to book mid + ``offset``, or (neither) back to the mid;
        answers after the liquidation check at the new mark (``liquidations`` lists every one so far)."""
        body: dict[str, Any] = {}
        if price is not None:
            body["price"] = str(price)
        if offset is not None:
            body["offset"] = str(offset)
        return self._admin_checked("/admin/mark", body)

    def funding(self, rate: str | float | None = None, interval_s: float | None = None, settle: bool = False) -> dict[str, Any]:
        """Change the funding rate and / or interval; ``settle`` books one funding payment now."""
        body: dict[str, Any] = {"settle": settle}
        if rate is not None:
            body["rate"] = str(rate)
        if interval_s is not None:
            body["interval_s"] = interval_s
        return self._admin_checked("/admin/funding", body)

    def futures_state(self) -> dict[str, Any]:
        """Position, wallet, income, funding schedule and liquidations of a futures emulator."""
        return self.admin("/admin/futures")

    def faults(self, spec: str) -> None:
        self.admin("/admin/faults", spec)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self._err is not None and not self._err.closed:
            self._err.close()


# A daemon that trades the emulator's simulated market quickly: low thresholds, short holding,
# wide loss limits (so it keeps trading), fast retries and polling.
DAEMON_CONFIG = """
[run]
mode = "{mode}"
db = "{db}"
log_dir = "{logs}"
console_log_level = "warning"
duration_s = {duration}
cancel_open_orders_on_exit = true

[signal]
ofi_scale = 0.3

[strategy]
enter_threshold = 0.3
exit_threshold = 0.0
cooldown_s = 0.2
max_holding_s = 1.5
allow_short = false

[risk]
max_book_age_s = {max_age}
max_order_notional = 500.0
daily_loss_limit = 0.5
max_drawdown = 0.5

[exchange]
rest_url = "{url}"
timeout_ms = 3000
rest_poll_interval_s = 0.2
retry_base_delay_s = 0.1
retry_max_delay_s = 1.0
retry_attempts = 6
"""


def write_daemon_config(path: Path, url: str, *, mode: str, duration: float, max_book_age_s: float) -> Path:
    """Write :data:`DAEMON_CONFIG` for the emulator at ``url``; db and logs go beside ``path``."""
    workdir = path.parent
    path.write_text(DAEMON_CONFIG.format(mode=mode, db=workdir / "bot.db", logs=workdir / "logs", duration=duration, max_age=max_book_age_s, url=url))
    return path


def daemon_env(api_key: str, api_secret: str, pythonpath: str | None = None) -> dict[str, str]:
    """This process's environment without other ``BOT__`` settings, with the account's keys (and
    ``pythonpath`` in front of PYTHONPATH, when given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    env["BOT__EXCHANGE__API_KEY"] = api_key
    env["BOT__EXCHANGE__API_SECRET"] = api_secret
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
