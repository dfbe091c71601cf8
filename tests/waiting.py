"""Waiting for conditions in tests, never for fixed sleeps.

A test waits for the thing it needs (a trial is running, the book has moved, a ban is over) by
polling it. The deadline only guards against a hang: it is long (minutes, not the expected
milliseconds), so a busy machine makes a test slower, never red, and when it does expire the
test fails with a message that says what never happened. How fast something happens is a
benchmark's figure (``benchmarks/``), not a test's assertion.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Long enough that no load on a 2-core machine reaches it; short enough that a hang ends the run.
HANG_GUARD_S = 120.0


def wait_until(predicate: Callable[[], T], what: str, *, timeout: float = HANG_GUARD_S, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test with
    ``what`` if it never does within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)


async def eventually(predicate: Callable[[], T | Awaitable[T]], what: str, *, timeout: float = HANG_GUARD_S,
                     interval: float = 0.02) -> T:
    """:func:`wait_until` for asyncio tests: the event loop keeps running while it waits, and
    ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def first_success(call: Callable[[], Awaitable[T]], retry_on: type[BaseException] | tuple[type[BaseException], ...],
                        what: str, *, timeout: float = HANG_GUARD_S, interval: float = 0.02) -> tuple[T, int]:
    """Call ``call()`` until it does not raise ``retry_on``; return its result and how many calls
    raised before it. Any other exception fails at once (it is not what was being waited out)."""
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call(), failures
        except retry_on as exc:
            failures += 1
            if time.monotonic() >= deadline:
                pytest.fail(f"gave up after {timeout:g} s and {failures} calls waiting for {what} (last error: {exc!r})")
        await asyncio.sleep(interval)


def clock_ms() -> float:
    """The wall clock in ms, as the emulator stamps times (``time.time()``); for bounds taken
    before and after a call, never for a fixed tolerance around "now"."""
    return time.time() * 1000

