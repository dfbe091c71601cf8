"""A paper daemon trading the emulator with its operator surface on (bot.ops), for the ops tests."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from daemon_harness import Emulator, daemon_env, start_daemon, write_config

from waiting import wait_until

TOKEN = "opsTESTtoken-4d1f9a7c2b6e8f30"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ops_config(tmp: Path, emu: Emulator, *, port: int | None, extra: str = "", duration: float = 600) -> Path:
    config = write_config(tmp, emu, mode="paper", duration=duration)
    text = config.read_text()
    if port is not None:
        text += f"\n[http]\nhost = \"127.0.0.1\"\nport = {port}\n"
    config.write_text(text + extra)
    return config


def ops_env(token: str | None = TOKEN) -> dict[str, str]:
    env = daemon_env()
    if token is not None:
        env["BOT__HTTP__TOKEN"] = token
    return env


def get(url: str, token: str | None = TOKEN, method: str = "GET") -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of a request to the daemon; HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def answering(url: str, proc: subprocess.Popen, tmp: Path, tag: str = "daemon") -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the daemon exited with {proc.returncode}: {(tmp / f'{tag}.out').read_text()[-3000:]}")
    try:
        return get(url)[0] == 200
    except OSError:
        return False


def start_ops_daemon(tmp: Path, config: Path, port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start the paper daemon and wait until its server answers /metrics with the token."""
    proc = start_daemon(tmp, config, env=env or ops_env())
    wait_until(lambda: answering(f"http://127.0.0.1:{port}/metrics", proc, tmp), "the daemon's /metrics to answer")
    return proc


def bot_status(db: Path, cwd: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(db), "--json"], capture_output=True, text=True, cwd=cwd, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)
