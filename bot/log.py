"""Structured logging: JSON lines to ``logs/bot.log`` (rotating) and readable lines on the console.

Every line of a run carries its ``run_id`` (bound with structlog's contextvars). Secrets never
reach a log line: values of keys that look secret are replaced, and the exact secret strings the
process knows about (registered by the exchange layer) are masked wherever they appear.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any

import structlog

_SECRET_KEY_PARTS = ("secret", "api_key", "apikey", "password", "signature", "token")
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask this exact string in every later log line (API keys, secrets)."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, "***")
    return value


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(part in key.lower() for part in _SECRET_KEY_PARTS):
            event[key] = "***"
        else:
            event[key] = _mask(event[key])
    return event


def configure(log_dir: str | Path = "logs", level: str = "info", console_level: str = "warning") -> Path:
    """Set up structlog once per process; returns the JSON log file path."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "bot.log"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        # drop lines below every handler's level before any processor runs (hot paths log a lot)
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=20 * 1024 * 1024, backupCount=5, encoding="utf-8")
    file_handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
            foreign_pre_chain=shared,
        )
    )
    file_handler.setLevel(level.upper())
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())],
            foreign_pre_chain=shared,
        )
    )
    console.setLevel(console_level.upper())
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bot_handler", False):
            root.removeHandler(handler)
            handler.close()
    for handler in (file_handler, console):
        handler._bot_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(min(logging.getLevelName(level.upper()), logging.getLevelName(console_level.upper())))
    for noisy in ("asyncio", "ccxt", "urllib3", "aiohttp", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def bind_run(run_id: str, mode: str) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(run_id=run_id, mode=mode)


def get_logger(name: str = "bot") -> Any:
    return structlog.get_logger(name)
