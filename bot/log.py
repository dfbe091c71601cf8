"""Structured logging: JSON lines to ``logs/bot.log`` (rotating) and readable lines on the console.

Every line of a run carries its ``run_id`` (:func:`bind_run`, a context variable). Secrets never
reach a log line: values of keys that look secret are replaced, and the exact secret strings the
process knows about (registered by the exchange layer) are masked wherever they appear.

Why not structlog's stdlib integration. Routed through ``logging`` with a ``ProcessorFormatter``
a line cost 0.14-0.22 ms: a ``LogRecord`` built three times, the stdlib caller lookup, and
``RotatingFileHandler`` formatting every record twice (once to decide whether to rotate). The
engine writes a line per order and fill, on the path from book update to order, so here the
bot's own lines go from structlog's processors straight to one :class:`_Sink`, which renders
JSON once, writes it and flushes (a line survives ``kill -9``), and rotates by counted bytes.
Lines below the configured levels are dropped by structlog's filtering logger before any work.
Other libraries' stdlib logging (aiohttp, ccxt, the emulator's modules) reaches the same sink
through :class:`_StdlibBridge`, with the same context and redaction.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson


def _import_structlog():  # type: ignore[no-untyped-def]
    """``import structlog``, without the rich modules it would import for pretty tracebacks.

    When rich is installed (the bot's progress bars use it), structlog's ``dev`` and
    ``tracebacks`` modules import ``rich.traceback`` and ``rich.pretty`` at import time: 0.1 s of
    every command's start-up (measured: 0.22 s against 0.11 s for the import). The bot never
    renders a traceback with rich (the console renderer gets ``plain_traceback``; a traceback
    goes to the log file only), so rich is hidden while structlog is imported, and structlog
    behaves as it does without rich. Imported any later, rich itself works as usual.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        import structlog as module

        return module
    sys.modules["rich"] = None  # type: ignore[assignment]  # ``import rich`` now raises ImportError
    try:
        import structlog as module
    finally:
        del sys.modules["rich"]
    return module


structlog = _import_structlog()

_SECRET_KEY_PARTS = ("secret", "api_key", "apikey", "password", "signature", "token")
_known_secrets: set[str] = set()
_safe_keys: set[str] = set()  # keys seen and found not secret: one set difference per line skips them
_context: ContextVar[dict[str, Any]] = ContextVar("bot_log_context", default={})  # run_id, mode

MAX_BYTES = 20 * 1024 * 1024
BACKUP_COUNT = 5

def _encode(event: dict[str, Any]) -> bytes:
    """One JSON line with its newline, as UTF-8 (orjson: ~1 us for a typical line against ~5 us
    for the stdlib encoder).

    What orjson refuses (integers beyond 64 bits, say) goes through the stdlib encoder: a log
    line must never raise into the code that wrote it."""
    try:
        return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        return (json.dumps(event, default=repr) + "\n").encode()

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50, "fatal": 50}


def register_secret(value: str | None) -> None:
    """Mask this exact string in every later log line (API keys, secrets)."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def _mask(value: Any) -> Any:
    if _known_secrets and isinstance(value, str):
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, "***")
    return value


def mask_secrets(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (for messages that leave the
    process other than through a log line: error output, stored reasons)."""
    return _mask(text)


def _exc_summary(exc_info: Any) -> str:
    """One line for an exception: ``Type: message`` (masked)."""
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
    if exc is None:
        return ""
    text = " ".join(str(exc).split())
    return _mask(f"{type(exc).__name__}: {text}"[:300])


def _key_is_secret(key: str) -> bool:
    lower = key.lower()
    return any(part in lower for part in _SECRET_KEY_PARTS)


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    unknown = event.keys() - _safe_keys
    for key in unknown:
        if _key_is_secret(key):
            event[key] = "***"
        elif len(_safe_keys) < 10_000:  # keys are code identifiers; bound it anyway
            _safe_keys.add(key)
    if _known_secrets:
        for key, value in event.items():
            if isinstance(value, str):
                event[key] = _mask(value)
    return event


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text (swapped as one object)


def _timestamp(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """ISO 8601 UTC with microseconds; the date and time part is formatted once per second."""
    global _second
    ns = time.time_ns()
    sec = ns // 1_000_000_000
    cached = _second
    if sec != cached[0]:
        cached = _second = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    event["timestamp"] = f"{cached[1]}.{ns // 1000 % 1_000_000:06d}Z"
    return event


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}: expected one of debug, info, warning, error, critical") from None


class _Sink:
    """Where every line goes: the JSON file (rotating) at ``file_level``, the console at ``console_level``."""

    def __init__(self, path: Path, file_level: int, console_level: int):
        self.path = path
        self.file_level = file_level
        self.console_level = console_level
        self._lock = threading.Lock()
        # unbuffered: each line is one write(2), in the file before emit returns (survives kill -9)
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - closed by close()
        self._size = self._file.tell()
        self._console = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)

    def emit(self, level: int, event: dict[str, Any]) -> None:
        exc = event.get("exc_info")
        if level >= self.file_level:
            file_event = event
            if exc:
                file_event = structlog.processors.format_exc_info(None, "", dict(event))
                if "exception" in file_event:
                    file_event["exception"] = _mask(file_event["exception"])
            line = _encode(file_event)
            with self._lock:
                if self._file is None:
                    return
                if self._size + len(line) > MAX_BYTES and self._size > 0:
                    self._rotate()
                written = self._file.write(line)
                while written is not None and written < len(line):  # a short write (rare on files)
                    line = line[written:]
                    self._size += written
                    written = self._file.write(line)
                self._size += len(line)
        if level >= self.console_level:
            console = dict(event)
            if exc or "exception" in console:  # the console gets one line; the traceback is in the file
                console.pop("exc_info", None)
                console.pop("exception", None)
                if exc:
                    console["error"] = _exc_summary(exc)
            try:
                sys.stderr.write(self._console(None, "", console) + "\n")
                sys.stderr.flush()
            except (OSError, ValueError):  # closed or broken stderr: the file still has the line
                pass

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        for i in range(BACKUP_COUNT - 1, 0, -1):
            src = Path(f"{self.path}.{i}")
            if src.exists():
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class _SinkLogger:
    """structlog's "logger": one method per level name, each handing the event dict to the sink."""

    def __init__(self, name: str):
        self.name = name

    def _emit(self, level: int, event: dict[str, Any]) -> None:
        sink = _sink
        if sink is not None:
            sink.emit(level, event)

    def debug(self, event: dict[str, Any]) -> None:
        self._emit(10, event)

    def info(self, event: dict[str, Any]) -> None:
        self._emit(20, event)

    def warning(self, event: dict[str, Any]) -> None:
        self._emit(30, event)

    warn = warning

    def error(self, event: dict[str, Any]) -> None:
        self._emit(40, event)

    exception = error

    def critical(self, event: dict[str, Any]) -> None:
        self._emit(50, event)

    fatal = critical
    msg = info


def _logger_factory(*args: Any) -> _SinkLogger:
    return _SinkLogger(str(args[0]) if args else "bot")


_LEVEL_NAMES = {"warn": "warning", "exception": "error", "fatal": "critical", "msg": "info"}


def _prepare(logger: Any, method_name: str, event: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The one processor: the run's context, logger name, level, timestamp, redaction, then the
    sink call. One function instead of a chain of six: the chain's calls and structlog's
    contextvars scan were half of a line's cost."""
    context = _context.get()
    if context:
        event = {**context, **event}
    name = getattr(logger, "name", None)
    if name and "logger" not in event:
        event["logger"] = name
    event["level"] = _LEVEL_NAMES.get(method_name, method_name)
    _timestamp(logger, method_name, event)
    return (_redact(logger, method_name, event),), {}


class _StdlibBridge(logging.Handler):
    """Lines of stdlib loggers (libraries, the emulator) into the same sink, context and redaction."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink
        if sink is None:
            return
        try:
            event: dict[str, Any] = {"event": record.getMessage(), "logger": record.name}
            event.update(_context.get())
            event["level"] = record.levelname.lower()
            event["timestamp"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace("+00:00", "Z")
            if record.exc_info:
                event["exc_info"] = record.exc_info
            sink.emit(record.levelno, _redact(None, "", event))
        except Exception:  # noqa: BLE001 - a log line must never take the process down
            self.handleError(record)


_sink: _Sink | None = None


def _plain_tracebacks() -> None:
    """With rich installed (bot.console), structlog's console renderer prints tracebacks through
    rich, with every frame's local variables: a secret held in a local would reach the console.
    A line logged before :func:`configure` (structlog's default configuration) gets a plain
    traceback instead, as it did before rich was a dependency."""
    if structlog.is_configured():
        return
    processors = [
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback) if isinstance(p, structlog.dev.ConsoleRenderer) else p
        for p in structlog.get_config()["processors"]
    ]
    structlog.configure(processors=processors)


_plain_tracebacks()


class LogDirError(Exception):
    """The log directory cannot be created or written (``bot.cli.main`` turns it into one line)."""

    def __init__(self, log_dir: Path, reason: str):
        super().__init__(f"cannot write the log in {str(log_dir)!r} ({reason}): set run.log_dir in the config "
                         f"(or BOT__RUN__LOG_DIR) to a directory the bot may write")
        self.log_dir = log_dir


def configure(log_dir: str | Path = "logs", level: str = "info", console_level: str = "warning") -> Path:
    """Set up logging once per process (calling it again replaces the sink); returns the JSON log path.
    :class:`LogDirError` when the directory or its log file cannot be made (logging stays as it was)."""
    global _sink
    file_level, con_level = _level_number(level), _level_number(console_level)
    log_dir = Path(log_dir)
    path = log_dir / "bot.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        sink = _Sink(path, file_level, con_level)
    except OSError as exc:
        raise LogDirError(log_dir, exc.strerror or str(exc)) from None
    old, _sink = _sink, sink
    if old is not None:
        old.close()
    lowest = min(file_level, con_level)
    structlog.configure(
        processors=[_prepare],
        # below both levels a call is a no-op method: no processor runs
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_bot_handler", False):
            root.removeHandler(handler)
            handler.close()
    bridge = _StdlibBridge()
    bridge._bot_handler = True  # type: ignore[attr-defined]
    root.addHandler(bridge)
    root.setLevel(lowest)
    for noisy in ("asyncio", "ccxt", "urllib3", "aiohttp", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def enabled_for(level: str) -> bool:
    """Would a line at ``level`` be written anywhere (file or console)?"""
    sink = _sink
    if sink is None:
        return True
    return _level_number(level) >= min(sink.file_level, sink.console_level)


def bind_run(run_id: str, mode: str) -> None:
    """Every later line of this context (thread, task) carries ``run_id`` and ``mode``."""
    _context.set({"run_id": run_id, "mode": mode})


def get_logger(name: str = "bot") -> Any:
    """A logger for ``name``.

    Once :func:`configure` has run it is a bound logger: its level filter is fixed at that moment
    (a later ``configure`` changes where lines go, not which levels pass) and a call skips the lazy
    proxy's per-call lookup. Before ``configure`` it is structlog's lazy proxy, which picks up the
    configuration on each call.
    """
    if _sink is None:
        return structlog.get_logger(name)
    return structlog.get_logger(name).bind()
