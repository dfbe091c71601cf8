"""The emulator as a child process: start it, wait for its READY line, talk to its admin API, stop it.

Used by ``bot demo``, the daemon tests and the benchmarks, which all need a real emulator process
on 127.0.0.1 next to the bot.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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

    def admin(self, path: str, body: str | None = None) -> Any:
        """GET (or POST ``body`` to) an ``/admin/...`` endpoint and return its JSON."""
        req = urllib.request.Request(self.url + path, data=body.encode() if body is not None else None, method="POST" if body is not None else "GET")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        return self.admin("/admin/state")

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
