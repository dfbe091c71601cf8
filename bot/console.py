"""The terminal side of the commands: progress bars with an ETA and a live status line (rich), on stderr.

One module for every command that shows progress (``bot tune``, ``bot research``, ``bot
backtest``, the recorder) and for the daemon's status line, so they look and behave alike:

- Animation only on a terminal: a bar or a status line is drawn when the stream (stderr by
  default) is a TTY. Piped or redirected output never gets a control character: a bar there is
  either silent or, when the caller asks for it (``plain_every_s``), a plain line every few
  seconds and one at the end.
- stdout is never touched: results (``--json``) stay clean. While a bar or the status line is
  drawn, lines written to ``sys.stderr`` (log lines) are printed above it instead of through it.
- Drawing runs in rich's refresh thread. The caller's updates only store numbers (a bar) or a
  reference to the latest value (a status line): the status line's text is rendered in that
  thread, so a caller on a latency-critical path (the daemon's event loop) pays an assignment.

Public API::

    with progress(total, "replay", unit="bytes") as bar:   # total None: no ETA, a spinner and a count
        bar.advance(n)            # or bar.update(completed=x, total=y, note="12/48 trials")
    with status_line(render) as line:                      # render(value) -> str, called ~1 Hz off-thread
        line.set(value)
    is_terminal(stream)                                    # what decides whether anything is drawn
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

__all__ = ["Bar", "StatusLine", "clock", "human_size", "is_terminal", "progress", "status_line"]


def is_terminal(stream: TextIO | None = None) -> bool:
    """True when ``stream`` (stderr by default) is a terminal: the only case anything is animated."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def clock(seconds: float | None) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _console(stream: TextIO) -> Any:
    from rich.console import Console

    return Console(file=stream, force_terminal=True, highlight=False, soft_wrap=False)


def human_size(value: float) -> str:
    """A byte count as every command shows one: ``812 B``, ``1.5 kB``, ``23.4 MB`` (1000-based, SI)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"  # pragma: no cover - the loop returns


class Bar:
    """The handle ``progress()`` yields: the caller says how far the work is; drawing is elsewhere.

    ``mode``: ``"rich"`` (an animated bar on a terminal), ``"plain"`` (a text line every
    ``every_s`` seconds and at the end, for logs and pipes) or ``"off"`` (nothing)."""

    def __init__(self, total: float | None, description: str, unit: str, stream: TextIO, mode: str, every_s: float):
        self.total = total
        self.completed = 0.0
        self.description = description
        self.unit = unit
        self.note = ""
        self.stream = stream
        self.mode = mode
        self.every_s = every_s
        self.started = time.monotonic()
        self.initial = 0.0  # done before this run (a resumed sweep): not counted in the rate
        self._last_plain = self.started
        self._rich: Any = None
        self._task: Any = None

    # ---------------------------------------------------------------- what callers call
    def advance(self, amount: float = 1.0, note: str | None = None) -> None:
        self.update(completed=self.completed + amount, note=note)

    def update(self, completed: float | None = None, total: float | None = None, note: str | None = None,
               description: str | None = None) -> None:
        if completed is not None:
            self.completed = float(completed)
        if total is not None:
            self.total = float(total)
        if note is not None:
            self.note = note
        if description is not None:
            self.description = description
        if self.mode == "rich":
            self._rich.update(self._task, completed=self.completed, total=self.total, note=self.note, description=self.description)
        elif self.mode == "plain":
            now = time.monotonic()
            if now - self._last_plain >= self.every_s:
                self._last_plain = now
                self._plain_line()

    # ---------------------------------------------------------------- what it shows
    def eta_s(self) -> float | None:
        """Seconds left at the average rate so far (None while nothing is done or the total is unknown)."""
        done_now = self.completed - self.initial
        if not self.total or done_now <= 0:
            return None
        elapsed = time.monotonic() - self.started
        return max(self.total - self.completed, 0.0) * elapsed / done_now

    def line(self) -> str:
        """The plain-text form: ``description 42% 1.2 MB/3.0 MB  elapsed 0:00:10  ETA 0:00:14``."""
        fmt = human_size if self.unit == "bytes" else (lambda v: f"{v:,.0f}")
        elapsed = clock(time.monotonic() - self.started)
        note = f" {self.note}" if self.note else ""
        if not self.total:
            return f"{self.description}{note} {fmt(self.completed)}{'' if self.unit == 'bytes' else ' ' + self.unit}  elapsed {elapsed}".rstrip()
        frac = min(self.completed / self.total, 1.0)
        eta = "0:00:00" if frac >= 1.0 else clock(self.eta_s())
        amount = "" if self.note else f" {fmt(self.completed)}/{fmt(self.total)}" + ("" if self.unit in ("bytes", "") else f" {self.unit}")
        return f"{self.description} {frac * 100:3.0f}%{amount}{note}  elapsed {elapsed}  ETA {eta}"

    def _plain_line(self) -> None:
        try:
            print(self.line(), file=self.stream, flush=True)
        except (OSError, ValueError):
            self.mode = "off"

    # ---------------------------------------------------------------- lifetime (progress() drives it)
    def _start(self) -> None:
        if self.mode == "plain":
            self._plain_line()
            return
        if self.mode != "rich":
            return
        from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        if self.total:
            amount = DownloadColumn() if self.unit == "bytes" else TextColumn(
                "{task.completed:,.0f}/{task.total:,.0f}" + (f" {self.unit}" if self.unit else ""))
            columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                       TextColumn("{task.fields[note]}") if self.note_only() else amount,
                       TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
        else:
            columns = [SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[note]}"),
                       DownloadColumn() if self.unit == "bytes" else TextColumn("{task.completed:,.0f}" + (f" {self.unit}" if self.unit else "")),
                       TextColumn("elapsed"), TimeElapsedColumn()]
        # stdout is left alone (it may be a pipe holding the JSON result); stderr lines print above the bar
        self._rich = Progress(*columns, console=_console(self.stream), refresh_per_second=4, speed_estimate_period=60.0,
                              redirect_stdout=False, redirect_stderr=True, transient=False)
        self._task = self._rich.add_task(self.description, total=self.total, completed=self.completed, note=self.note)
        self._rich.start()

    def note_only(self) -> bool:
        """The caller counts its own units in ``note`` (e.g. trials, while the bar runs on weights)."""
        return self.unit == ""

    def _stop(self, finished: bool) -> None:
        if self.mode == "rich":
            with contextlib.suppress(Exception):
                self._rich.update(self._task, completed=self.completed, total=self.total, note=self.note)
                self._rich.stop()
        elif self.mode == "plain" and finished:
            self._plain_line()
        self.mode = "off"


@contextlib.contextmanager
def progress(total: float | None, description: str, *, unit: str = "items", enabled: bool = True,
             stream: TextIO | None = None, plain_every_s: float | None = None, force: bool = False,
             completed: float = 0.0, note: str = "") -> Iterator[Bar]:
    """A progress bar with an ETA on ``stream`` (stderr) while the block runs.

    ``total`` None: the total is not known (a spinner, the count and the elapsed time, no ETA);
    ``unit="bytes"`` shows sizes, ``unit=""`` shows the caller's ``note`` in place of the
    count (a bar driven by weights that counts something else). On a terminal the bar is
    animated; elsewhere nothing is written, unless ``plain_every_s`` asks for a plain line that
    often (and one at the end). ``enabled=False`` (``--quiet``) shows nothing anywhere; ``force``
    draws the bar even off a terminal (tests, ``--progress``). ``completed``: done before this
    run (a resumed job), shown but left out of the rate the ETA is computed from."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        mode = "off"
    elif force or is_terminal(stream):
        mode = "rich"
    else:
        mode = "plain" if plain_every_s is not None else "off"
    bar = Bar(total, description, unit, stream, mode, plain_every_s or 0.0)
    bar.completed = bar.initial = float(completed)
    bar.note = note
    bar._start()
    finished = False
    try:
        yield bar
        finished = True
    finally:
        bar._stop(finished)


class StatusLine:
    """A line (or a few) redrawn about once a second at the bottom of the terminal.

    ``set(value)`` only stores ``value``; rich's refresh thread calls ``render(value)`` and
    draws the text, so the caller never waits for the terminal. Lines written to ``sys.stderr``
    meanwhile (log lines) appear above it. Off a terminal it draws nothing."""

    def __init__(self, render: Callable[[Any], str] | None = None, stream: TextIO | None = None,
                 refresh_per_second: float = 1.0, enabled: bool = True, force: bool = False):
        self.stream = sys.stderr if stream is None else stream
        self.render = render or str
        self.refresh_per_second = refresh_per_second
        self.enabled = enabled and (force or is_terminal(self.stream))
        self.value: Any = None
        self.errors = 0
        self._live: Any = None
        self._lock = threading.Lock()

    def set(self, value: Any) -> None:
        self.value = value  # one reference swap: drawing happens in the refresh thread

    def text(self) -> str:
        """What the line shows now ('' before the first ``set``)."""
        value = self.value
        if value is None:
            return ""
        try:
            return self.render(value)
        except Exception as exc:  # noqa: BLE001 - a formatting bug must not kill the refresh thread
            self.errors += 1
            return f"(status unavailable: {type(exc).__name__})"

    def __rich__(self) -> Any:
        from rich.text import Text

        return Text(self.text(), no_wrap=False, overflow="fold")  # a narrow terminal wraps it: nothing is cut off

    def start(self) -> "StatusLine":
        with self._lock:
            if not self.enabled or self._live is not None:
                return self
            from rich.live import Live

            self._live = Live(self, console=_console(self.stream), refresh_per_second=self.refresh_per_second, transient=True,
                              redirect_stdout=False, redirect_stderr=True, vertical_overflow="visible")
            self._live.start()
        return self

    def stop(self) -> None:
        """Remove the line (the terminal is left as before it was drawn); idempotent."""
        with self._lock:
            live, self._live = self._live, None
        if live is not None:
            with contextlib.suppress(Exception):
                live.stop()

    @property
    def active(self) -> bool:
        return self._live is not None

    def __enter__(self) -> "StatusLine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def status_line(render: Callable[[Any], str] | None = None, *, enabled: bool = True, stream: TextIO | None = None,
                refresh_per_second: float = 1.0, force: bool = False) -> StatusLine:
    """A :class:`StatusLine` (use it as a context manager, or ``start()``/``stop()``)."""
    return StatusLine(render, stream=stream, refresh_per_second=refresh_per_second, enabled=enabled, force=force)
