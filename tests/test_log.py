"""The JSON log: what a line carries, what it never carries, rotation, levels, library lines."""

from __future__ import annotations

import json
import logging
import threading
from decimal import Decimal
from pathlib import Path

import pytest

import bot.log as botlog
from bot.log import bind_run, configure, get_logger, register_secret


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def log_dir(tmp_path):
    yield tmp_path / "logs"
    configure(tmp_path / "logs-after", "info", "error")  # release the files of this test


def test_a_line_carries_run_context_logger_level_and_time(log_dir):
    path = configure(log_dir, "info", "error")
    bind_run("run-abc", "backtest")
    log = get_logger("bot.engine")
    log.info("order sent", client_order_id="run-abc-1", amount="0.001", score=0.25, price=Decimal("60000.10"))
    log.debug("not written at info")
    log.warning("a warning", run_id="explicit wins")
    lines = _lines(path)
    assert [line["event"] for line in lines] == ["order sent", "a warning"]
    first = lines[0]
    assert first["run_id"] == "run-abc" and first["mode"] == "backtest"
    assert first["logger"] == "bot.engine" and first["level"] == "info"
    assert first["client_order_id"] == "run-abc-1" and first["score"] == 0.25
    assert first["price"] == "Decimal('60000.10')"  # not JSON: written by repr, never raises
    assert first["timestamp"].endswith("Z") and len(first["timestamp"]) == len("2026-01-01T00:00:00.000000Z")
    assert lines[1]["level"] == "warning" and lines[1]["run_id"] == "explicit wins"


def test_secrets_never_reach_a_line(log_dir):
    path = configure(log_dir, "debug", "error")
    bind_run("run-s", "live")
    secret = "s3cr3t-value-that-is-long"
    register_secret(secret)
    log = get_logger("bot.exchange")
    log.info("call", api_secret="plain", apiKey="k", detail=f"url?signature=1&key={secret}", n=1)
    log.info("call again", api_secret="plain", detail="nothing here")  # keys are remembered, not skipped
    logging.getLogger("ccxt.base").warning("library said %s", secret)
    text = path.read_text(encoding="utf-8")
    assert secret not in text and "plain" not in text
    lines = _lines(path)
    assert lines[0]["api_secret"] == "***" and lines[0]["apiKey"] == "***" and "***" in lines[0]["detail"]
    assert lines[1]["api_secret"] == "***" and lines[1]["detail"] == "nothing here"
    library = lines[2]
    assert library["logger"] == "ccxt.base" and library["level"] == "warning" and library["run_id"] == "run-s"
    assert library["event"] == "library said ***"


def test_exceptions_and_values_json_cannot_hold_are_written(log_dir):
    path = configure(log_dir, "info", "error")
    log = get_logger("bot.daemon")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    log.info("huge", n=1 << 70)  # beyond 64 bits: the stdlib encoder takes over
    lines = _lines(path)
    assert lines[0]["level"] == "error" and "ValueError: boom" in lines[0]["exception"]
    assert lines[1]["n"] == 1 << 70


def test_rotation_by_bytes_keeps_every_line_whole(log_dir, monkeypatch):
    monkeypatch.setattr(botlog, "MAX_BYTES", 4_000)
    path = configure(log_dir, "info", "error")
    log = get_logger("bot.engine")
    threads = [
        threading.Thread(target=lambda k=k: [log.info("tick", thread=k, i=i, pad="x" * 50) for i in range(150)])
        for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = [path] + [Path(f"{path}.{i}") for i in range(1, botlog.BACKUP_COUNT + 1)]
    present = [f for f in files if f.exists()]
    assert len(present) == botlog.BACKUP_COUNT + 1  # older files beyond the backups are dropped
    for f in present:
        assert f.stat().st_size <= 4_000
        lines = _lines(f)  # every line parses: none was split by a rotation or another thread
        assert lines
    # the newest lines are all there, in order per thread
    newest = _lines(path)
    for k in range(3):
        seen = [line["i"] for line in newest if line["thread"] == k]
        assert seen == sorted(seen)


def test_levels_are_checked_per_destination(log_dir, capsys):
    path = configure(log_dir, "warning", "error")
    log = get_logger("bot.engine")
    assert not botlog.enabled_for("info") and botlog.enabled_for("warning")
    log.info("dropped")
    log.warning("file only")
    log.error("file and console")
    assert [line["event"] for line in _lines(path)] == ["file only", "file and console"]
    err = capsys.readouterr().err
    assert "file and console" in err and "file only" not in err
