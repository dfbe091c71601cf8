"""Trial executors: how trials are run. The sweep only needs :class:`TrialExecutor`.

Contract
--------
``executor.run(fn, specs)`` runs ``fn(spec)`` for every spec (in any order, with any
parallelism) and yields ``(spec, result_or_exception)`` in the caller's process as each one
finishes, so the caller can commit it at once. ``fn`` is :func:`bot.tune.trials.run_trial`: a
module-level function of one picklable :class:`~bot.tune.trials.TrialSpec` returning a JSON-able
dict. An executor may have a ``stop_requested`` :class:`threading.Event`: the sweep's Ctrl-C / SIGTERM
handler then only sets it, and ``run`` must end (stop yielding) soon after, at a point where
stopping is safe; without one, the handler raises KeyboardInterrupt wherever the main thread is.
``executor.stop()`` is called when the sweep is interrupted (Ctrl-C, SIGTERM, a failed
trial or a trial budget): it must cancel what has not started and stop what is running as fast
as it can; a result not yet yielded is simply recomputed on the next run.

Two executors ship: the local process pool below (the default) and, for ``--executor dask``,
:class:`bot.tune.cluster.DaskTrialExecutor` (a Dask distributed cluster; that module is the only
one importing ``distributed``, and only :func:`make_executor` imports it). A trial reads ``spec.data.files``
and ``spec.base_config`` (remote workers need them at the same paths, or a shared filesystem)
and writes nothing shared: it backtests into a private temporary database and returns the run's
rows in its result, which the main process moves into the sweep's database. So workers need no
access to the database, and the main process stays its only writer.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from bot.tune.trials import TrialSpec

TrialFn = Callable[[TrialSpec], dict[str, Any]]
EXECUTORS = ("local", "dask")


class ClusterError(Exception):
    """The cluster executor cannot run (distributed not installed, scheduler unreachable, no workers)."""


class TrialExecutor(Protocol):
    def run(self, fn: TrialFn, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any] | BaseException]]: ...

    def stop(self) -> None: ...


class InlineExecutor:
    """Runs trials one by one in this process (debugging, tests, ``--workers 0``)."""

    def run(self, fn: TrialFn, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any] | BaseException]]:
        for spec in specs:
            try:
                result: dict[str, Any] | BaseException = fn(spec)
            except Exception as exc:  # reported per trial, like the pool does
                result = exc
            yield spec, result

    def stop(self) -> None:
        pass


def _worker_terminated(signum, frame):  # type: ignore[no-untyped-def]
    """Stopped by the main process: drop the running trial's private database and exit at once."""
    from bot.tune.trials import remove_scratch

    remove_scratch()
    os._exit(128 + signum)


def _worker_init(log_dir: str, log_level: str) -> None:
    """Workers leave Ctrl-C to the main process (which stops them) and log warnings only to the file.

    A worker that got SIGINT itself would end its backtest as ``interrupted`` and could hand back a
    partial result; ignoring SIGINT makes the main process the only one that decides.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_terminated)
    from bot.log import configure

    levels = ["debug", "info", "warning", "error"]
    level = log_level if levels.index(log_level) >= levels.index("warning") else "warning"
    configure(log_dir, level, "error")


IN_FLIGHT_PER_WORKER = 3  # submitted trials per worker: enough to keep it busy while results are committed


class ProcessPoolTrialExecutor:
    """The default: a local :class:`concurrent.futures.ProcessPoolExecutor` (``fork`` where available)."""

    def __init__(self, workers: int | None = None, *, log_dir: str = "logs", log_level: str = "info"):
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.log_dir = log_dir
        self.log_level = log_level
        self._pool: cf.ProcessPoolExecutor | None = None
        # polled between waits, so a signal never interrupts the pool's own code (see the module docstring)
        self.stop_requested = threading.Event()

    def _context(self):  # type: ignore[no-untyped-def]
        # fork lets workers inherit the events the main process already loaded (bot.tune.trials cache)
        if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
            return multiprocessing.get_context("fork")
        return None

    def run(self, fn: TrialFn, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any] | BaseException]]:
        specs = list(specs)
        if not specs:
            return
        self._pool = pool = cf.ProcessPoolExecutor(
            max_workers=min(self.workers, len(specs)),
            mp_context=self._context(),
            initializer=_worker_init,
            initargs=(self.log_dir, self.log_level),
        )
        # a few trials per worker in flight, not all of them: cf.wait walks every future it is given
        # (locks, waiters) on each call, which cost the main process seconds per few hundred trials
        todo = iter(specs)
        futures: dict[cf.Future[Any], TrialSpec] = {}
        pending: set[cf.Future[Any]] = set()

        def submit() -> None:
            while len(pending) < IN_FLIGHT_PER_WORKER * self.workers:
                spec = next(todo, None)
                if spec is None:
                    return
                fut = pool.submit(fn, spec)
                futures[fut] = spec
                pending.add(fut)

        submit()
        try:
            while pending and not self.stop_requested.is_set():
                # a timeout keeps the main thread responsive to a stop request while it waits
                done, pending = cf.wait(pending, timeout=0.5, return_when=cf.FIRST_COMPLETED)
                if not self.stop_requested.is_set():
                    submit()
                for fut in done:
                    if self.stop_requested.is_set():
                        break
                    spec = futures.pop(fut)
                    exc = fut.exception()
                    yield spec, (exc if exc is not None else fut.result())
        finally:
            if pending or self.stop_requested.is_set():
                self.stop()
            else:
                pool.shutdown(wait=True)
            self._pool = None

    def stop(self) -> None:
        pool = self._pool
        if pool is None:
            return
        terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
            return
        # shutdown() forgets the worker processes and its manager thread: take them first
        procs = list((getattr(pool, "_processes", None) or {}).values())
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for proc in _still_running(procs, timeout=5.0):
            proc.kill()  # a worker that did not end on SIGTERM (stuck in C code)
        _still_running(procs, timeout=5.0)
        # The pool's manager thread reaps the workers too (waitpid from a second thread). Until it
        # has finished, ``is_alive()`` seen from here can still say True for a worker that is gone.
        if manager is not None:
            manager.join(timeout=5.0)
        for proc in procs:
            proc.join(timeout=1.0)


def _still_running(procs: list[Any], timeout: float) -> list[Any]:
    """Wait until every process has exited (its sentinel is ready, whoever reaps it); the ones that did not."""
    from multiprocessing.connection import wait

    deadline = time.monotonic() + timeout
    waiting = {proc.sentinel: proc for proc in procs}
    while waiting:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for sentinel in wait(list(waiting), timeout=left):
            waiting.pop(sentinel, None)  # type: ignore[call-overload]
    return list(waiting.values())


def make_executor(kind: str, *, workers: int, scheduler: str | None = None, log_dir: str = "logs",
                  log_level: str = "info") -> TrialExecutor:
    """The executor for ``bot tune --executor KIND`` (``local`` or ``dask``), ready to run.

    ``local``: this machine's process pool, or this process for ``workers == 0``. ``dask``: a
    started :class:`bot.tune.cluster.DaskTrialExecutor` (``close()`` it when done); ``distributed``
    is imported here, so no other command pays for it. Raises :class:`ClusterError`.
    """
    if kind == "local":
        return InlineExecutor() if workers == 0 else ProcessPoolTrialExecutor(workers, log_dir=log_dir, log_level=log_level)
    if kind != "dask":
        raise ClusterError(f"--executor must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    try:
        from bot.tune.cluster import DaskTrialExecutor
    except ImportError as exc:
        raise ClusterError(f"--executor dask needs Dask distributed, which is not installed here ({exc}): "
                           "pip install 'imbalance-bot[cluster]'") from None
    executor = DaskTrialExecutor(scheduler, workers, log_dir=log_dir, log_level=log_level)
    executor.start()
    return executor
