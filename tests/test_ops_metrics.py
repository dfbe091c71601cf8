"""``/metrics`` of a paper daemon trading the emulator: parsed, equal to ``bot status``, behind the token,
and scraped by a real Prometheus server (the Debian package) whose HTTP API gives ``bot_equity`` back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon_harness import count, query, stop
from ops_helpers import TOKEN, bot_status, free_port, get, ops_config, ops_env, start_ops_daemon
from waiting import wait_until

PROMETHEUS = "/usr/bin/prometheus"
# bot_equity is the account's equity now; `bot status` reads the latest equity point, written once
# per store.equity_interval_s (1 s): between the two the price may move the open position's value.
# The positions here are at most max_order_notional (500 USDT): a 0.1 % move in a second is 0.5.
EQUITY_TOLERANCE = 0.5


def scrape(port: int, token: str | None = TOKEN) -> dict[str, list]:
    status, body, headers = get(f"http://127.0.0.1:{port}/metrics", token)
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain")
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_metrics_match_status_and_need_the_token(tmp_path, emulator):
    port = free_port()
    config = ops_config(tmp_path, emulator, port=port)
    db = tmp_path / "bot.db"
    proc = start_ops_daemon(tmp_path, config, port)
    try:
        # two filled orders (two fills alone may be one order filled in two parts)
        wait_until(lambda: count(db, "select count(*) from orders where status = 'filled'") >= 2, "two filled orders")

        def equal() -> dict | None:
            metrics = scrape(port)
            status = bot_status(db, tmp_path)
            equity = metrics["bot_equity"][0].value
            return {"metrics": metrics, "status": status} if abs(equity - status["equity"]) <= EQUITY_TOLERANCE else None

        seen = wait_until(equal, "bot_equity to equal `bot status --json` equity")
        metrics, status = seen["metrics"], seen["status"]
        symbol = status["symbol"]
        positions = {s.labels["instrument"]: s.value for s in metrics["bot_position"]}
        assert set(positions) == {symbol}
        assert {s.labels["instrument"] for s in metrics["bot_book_age_seconds"]} == {symbol}
        assert metrics["bot_book_age_seconds"][0].value < 5
        orders = {s.labels["status"]: s.value for s in metrics["bot_orders_total"]}
        assert sum(v for k, v in orders.items() if k != "rejected_by_risk") >= 2
        assert orders.get("filled", 0) >= 2
        assert sum(s.value for s in metrics["bot_fills_total"]) >= 2
        assert metrics["bot_halted"][0].value == 0
        text = get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert "# TYPE bot_exchange_errors_total counter" in text or "# TYPE bot_exchange_errors counter" in text
        latency_count = metrics["bot_decision_latency_seconds_count"][0].value
        assert latency_count > 0
        buckets = [s for s in metrics["bot_decision_latency_seconds_bucket"]]
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == latency_count
        # without the token, or with another one: 401, and nothing about the account in the answer
        for token in (None, TOKEN[::-1]):
            code, body, headers = get(f"http://127.0.0.1:{port}/metrics", token)
            assert code == 401 and b"bot_equity" not in body and "Bearer" in headers.get("WWW-Authenticate", "")
        code, _, _ = get(f"http://127.0.0.1:{port}/api/status", None)
        assert code == 401
        # /api/status is `bot status --json`'s own function: the same keys and the same run
        code, body, _ = get(f"http://127.0.0.1:{port}/api/status")
        api = json.loads(body)
        assert code == 200 and set(api) == set(status) and api["run_id"] == status["run_id"]
        # no controls unless [http] control = true
        code, _, _ = get(f"http://127.0.0.1:{port}/api/kill", method="POST")
        assert code == 403
    finally:
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
    haystacks = [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".db" and not p.name.startswith("emulator")]
    assert haystacks and not any(TOKEN.encode() in h for h in haystacks), "the token must never be logged or stored"
    assert not any(TOKEN.encode() in h for h in [(db).read_bytes()])


def test_port_without_a_token_refuses_to_start_with_one_line(tmp_path, emulator):
    config = ops_config(tmp_path, emulator, port=free_port())
    out = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True,
                         cwd=tmp_path, env=ops_env(None), timeout=60)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "BOT__HTTP__TOKEN" in lines[0] and "Traceback" not in out.stderr
    # and a token in the config file is refused: secrets come from the environment only
    config.write_text(config.read_text().replace("[http]\n", "[http]\ntoken = \"in-the-file-123456\"\n"))
    out = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True,
                         cwd=tmp_path, env=ops_env(), timeout=60)
    assert out.returncode == 1 and "http.token" in out.stderr and "BOT__HTTP__TOKEN" in out.stderr and "Traceback" not in out.stderr
    assert "in-the-file-123456" not in out.stderr


def test_a_port_in_use_is_one_line_and_the_run_is_marked_failed(tmp_path, emulator):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = ops_config(tmp_path, emulator, port=port)
        out = subprocess.run([sys.executable, "-m", "bot", "run", "--config", str(config)], capture_output=True, text=True,
                             cwd=tmp_path, env=ops_env(), timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "Traceback" not in out.stderr
    assert [r[0] for r in query(tmp_path / "bot.db", "select status from runs")] in ([], ["failed"])
    assert count(tmp_path / "bot.db", "select count(*) from orders") == 0


PROM_CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: imbalance-bot
    scrape_interval: 1s
    scrape_timeout: 1s
    authorization:
      type: Bearer
      credentials: {token}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def prometheus_query(port: int, query: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        code, body, _ = get(url, None)
    except OSError:
        return []
    if code != 200:
        return []
    data = json.loads(body)
    return data["data"]["result"] if data.get("status") == "success" else []


@pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason=f"{PROMETHEUS} is absent: install the Debian package prometheus (.ci/run does)")
def test_a_real_prometheus_scrapes_bot_equity(tmp_path, emulator):
    port, prom_port = free_port(), free_port()
    config = ops_config(tmp_path, emulator, port=port)
    db = tmp_path / "bot.db"
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    (prom_dir / "prometheus.yml").write_text(PROM_CONFIG.format(token=TOKEN, port=port))
    proc = start_ops_daemon(tmp_path, config, port)
    prom = None
    try:
        wait_until(lambda: count(db, "select count(*) from fills") >= 1, "a fill")
        prom_log = open(prom_dir / "prometheus.log", "w")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={prom_dir / 'prometheus.yml'}", f"--storage.tsdb.path={prom_dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
            stdout=prom_log, stderr=subprocess.STDOUT, cwd=prom_dir,
        )

        def scraped() -> list:
            if prom.poll() is not None:
                raise AssertionError(f"prometheus exited with {prom.returncode}: {(prom_dir / 'prometheus.log').read_text()[-2000:]}")
            return prometheus_query(prom_port, 'bot_equity{job="imbalance-bot"}')

        result = wait_until(scraped, "Prometheus to have scraped bot_equity from the daemon", interval=0.2)
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        up = wait_until(lambda: prometheus_query(prom_port, 'up{job="imbalance-bot"}'), "the target's up series")
        assert up[0]["value"][1] == "1", "Prometheus could not scrape the daemon (the bearer token?)"

        def matches() -> bool:
            value = float(prometheus_query(prom_port, 'bot_equity{job="imbalance-bot"}')[0]["value"][1])
            # Prometheus holds the sample of its last scrape (at most a second old), status the last equity point
            return abs(value - bot_status(db, tmp_path)["equity"]) <= 2 * EQUITY_TOLERANCE

        wait_until(matches, "Prometheus's bot_equity to equal `bot status --json` equity")
        positions = wait_until(lambda: prometheus_query(prom_port, "bot_position"), "bot_position in Prometheus")
        assert positions[0]["metric"]["instrument"] == bot_status(db, tmp_path)["symbol"]
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
        shutil.rmtree(prom_dir / "data", ignore_errors=True)
