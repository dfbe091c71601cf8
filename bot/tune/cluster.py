"""``bot tune --executor dask``: trials on a Dask distributed cluster (imported only for that flag).

The executor keeps the :class:`~bot.tune.executor.TrialExecutor` contract: it submits
:func:`~bot.tune.trials.run_trial` once per spec to the cluster and yields each result in this
process as it arrives, where the sweep commits it. Workers only compute: a trial backtests into
its own temporary database on the worker and returns the rows, so no worker ever opens the
sweep's database and the main process stays its only writer (that is what makes a resumed sweep
score every trial exactly once, whatever the cluster does).

Two ways to get a cluster:

* ``scheduler=None``: a :class:`distributed.LocalCluster` on 127.0.0.1 with ``workers`` worker
  processes of one thread each (trials are CPU-bound Python: threads would share one GIL),
  started here and closed by :meth:`DaskTrialExecutor.close`;
* ``scheduler="tcp://HOST:8786"``: an existing cluster (``dask scheduler`` / ``dask worker``);
  its size is whatever workers joined it, and it is left running.

Dask's API shapes used here (``Client.submit``, ``as_completed``, ``Client.cancel``,
``WorkerPlugin.setup``) are from the distributed documentation (distributed.dask.org).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import signal
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin, as_completed

from bot.tune.executor import ClusterError, TrialFn
from bot.tune.trials import TrialSpec

CONNECT_TIMEOUT_S = 10.0
"""How long to try a ``--scheduler`` address, and to wait for a first worker, before giving up."""


def code_fingerprint() -> str:
    """SHA-256 over the ``bot`` package's source files (relative paths and bytes), 16 hex digits.

    A worker whose engine differs from the tune process's would score trials differently and
    silently mix two versions in one leaderboard; comparing this on every worker refuses that.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class TrialWorkerSetup(WorkerPlugin):
    """Runs on every worker that joins (also later ones): the trials' engine logs go to the log file.

    Like the local pool's workers, a trial logs warnings and errors only (one sweep runs hundreds
    of backtests), to ``bot.log`` in ``log_dir`` as seen from the worker. Registering it also
    proves each worker can import ``bot`` at all, and runs the same ``bot`` code as the tune
    process (:func:`code_fingerprint`): a worker that cannot fails here, before any trial.
    """

    name = "bot-tune-trial-setup"

    def __init__(self, log_dir: str, log_level: str, *, own_cluster: bool = False, code: str | None = None):
        self.log_dir = log_dir
        self.log_level = log_level
        self.own_cluster = own_cluster
        self.code = code_fingerprint() if code is None else code

    def setup(self, worker: Any) -> None:
        from bot.log import configure

        here = code_fingerprint()
        if here != self.code:
            raise RuntimeError(f"this worker's bot code ({here} at {Path(__file__).resolve().parents[1]}) differs from "
                               f"the tune process's ({self.code})")

        levels = ["debug", "info", "warning", "error"]
        level = self.log_level if levels.index(self.log_level) >= levels.index("warning") else "warning"
        configure(self.log_dir, level, "error")
        if self.own_cluster:
            # closing our local cluster mid-trial (Ctrl-C) cancels the running task: said by the
            # sweep already, not once more per worker (a user's own `dask worker` keeps its logging)
            logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)
            if threading.current_thread() is threading.main_thread():  # a worker the nanny restarted
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    def teardown(self, worker: Any) -> None:
        """The worker is closing (our local cluster shut down mid-trial): drop the trial's private database."""
        from bot.tune.trials import remove_scratch

        remove_scratch()


class DaskTrialExecutor:
    """Runs trials on a Dask cluster; :meth:`start` before :meth:`run`, :meth:`close` at the end."""

    def __init__(self, scheduler: str | None = None, workers: int = 2, *, log_dir: str = "logs", log_level: str = "info",
                 connect_timeout_s: float | None = None):
        self.scheduler = scheduler
        self.workers = workers
        self.log_dir = log_dir
        self.log_level = log_level
        self.connect_timeout_s = CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._futures: dict[Any, TrialSpec] = {}

    # ------------------------------------------------------------------ lifetime
    def start(self) -> None:
        """Start the local cluster or connect to ``scheduler``; :class:`ClusterError` says why not."""
        # Dask's own info lines (workers joining, comms closing) would drown the sweep's progress
        logging.getLogger("distributed").setLevel(logging.WARNING)
        if self.scheduler is None:
            try:
                # no dashboard, and its HTTP server on a free port: not 8787, which another cluster may hold
                with _sigint_ignored():  # inherited by the worker processes started now
                    self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                                 host="127.0.0.1", dashboard_address=None,
                                                 scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
                self._client = Client(self._cluster)
            except Exception as exc:  # ports, process limits: said in one line, not a traceback
                self.close()
                raise ClusterError(f"--executor dask: could not start a local Dask cluster with {self.workers} "
                                   f"worker(s): {type(exc).__name__}: {exc}") from None
        else:
            try:
                self._client = Client(self.scheduler, timeout=self.connect_timeout_s)
            except ValueError as exc:  # refused by Dask before any connection: the address's form
                self.close()
                raise ClusterError(f"--scheduler {self.scheduler} is not a scheduler address ({exc}): "
                                   "give it as tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786") from None
            except Exception as exc:
                self.close()
                raise ClusterError(f"--scheduler {self.scheduler}: cannot reach a Dask scheduler there within "
                                   f"{self.connect_timeout_s:g} s ({type(exc).__name__}: {exc}); start one with "
                                   "`dask scheduler` and give its tcp://HOST:PORT") from None
            try:
                self._client.wait_for_workers(1, timeout=self.connect_timeout_s)
            except Exception:
                self.close()
                raise ClusterError(f"--scheduler {self.scheduler}: the scheduler has no workers after "
                                   f"{self.connect_timeout_s:g} s; start some with `dask worker {self.scheduler}`") from None
        try:
            self._client.register_plugin(TrialWorkerSetup(self.log_dir, self.log_level, own_cluster=self._cluster is not None))
        except Exception as exc:
            where = self.scheduler or "the local cluster"
            self.close()
            raise ClusterError(f"--executor dask: a worker of {where} cannot set up bot trials "
                               f"({type(exc).__name__}: {exc}); install the same imbalance-bot on every worker") from None

    @property
    def address(self) -> str:
        return self._client.scheduler.address if self._client is not None else (self.scheduler or "")

    @property
    def slots(self) -> int:
        """Trials the cluster runs at once now (its worker threads): the TPE search's batch size."""
        if self._client is None:
            return max(1, self.workers)
        return max(1, sum(self._client.nthreads().values()))

    def close(self) -> None:
        """Disconnect; a local cluster is shut down (its worker processes end), a remote one is left running."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing is best effort: the sweep's result is already committed
                pass
        if cluster is not None:
            # a worker still inside a cancelled trial does not stop by itself (its thread runs on):
            # the nanny kills it after a few seconds, as intended here, so its warning says nothing
            logging.getLogger("distributed.nanny").setLevel(logging.ERROR)
            try:
                cluster.close()
            except Exception:
                pass

    def __enter__(self) -> "DaskTrialExecutor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the contract
    def run(self, fn: TrialFn, specs: Iterable[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any] | BaseException]]:
        if self._client is None:
            raise RuntimeError("DaskTrialExecutor.run() before start()")
        specs = list(specs)
        if not specs:
            return
        # a fresh key per submission: a trial cancelled by an earlier, interrupted run may still be
        # known to a long-lived scheduler under its old key
        futures = {self._client.submit(fn, spec, key=f"bot-trial-{spec.key[:16]}-{uuid.uuid4().hex[:8]}", pure=False): spec
                   for spec in specs}
        self._futures = futures
        try:
            # as_completed waits in 0.1 s steps: Ctrl-C / SIGTERM reach this thread meanwhile
            for fut in as_completed(list(futures)):
                spec = futures.pop(fut)
                exc = fut.exception()
                result: dict[str, Any] | BaseException = exc if exc is not None else fut.result()
                fut.release()  # the worker drops its copy of the result (it holds the run's rows)
                yield spec, result
        finally:
            if futures:
                self.stop()

    def stop(self) -> None:
        """Cancel every trial not yet handed back.

        Dask cannot interrupt a task that a worker is running: on a remote cluster such a trial
        runs to its end and its result is dropped (nothing is written: only this process writes the
        database). A local cluster's workers end when :meth:`close` shuts it down.
        """
        futures, self._futures = list(self._futures), {}
        if futures and self._client is not None:
            try:
                self._client.cancel(futures, force=True)
            except Exception:  # already disconnected: nothing left to cancel
                pass


@contextlib.contextmanager
def _sigint_ignored():  # type: ignore[no-untyped-def]
    """Ignore SIGINT while the local cluster starts its worker processes, which keep it ignored.

    As with the local pool, Ctrl-C in a terminal reaches every process of the group, and only the
    main process should act on it (it cancels, commits nothing partial, and shuts the cluster
    down); a worker that took it would die with a traceback of its own. A Ctrl-C during those
    seconds of start-up is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
