"""``bot tune --executor dask``: sweeps on a real Dask cluster on 127.0.0.1.

The cluster is what the README tells people to start on their machines: a ``dask scheduler``
process and a ``dask worker`` process with two worker processes of one thread each. The sweep
must give the figures the local pool gives, survive an interruption (a trial budget, then
SIGINT) and resume without scoring any trial twice, and its trials must really run in the
cluster's worker processes.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.cli.main import main as bot_main
from test_tune import clean_subprocess_env, db_rows, sim_config, trials_committed_or_exited, write
from waiting import HANG_GUARD_S, wait_until

distributed = pytest.importorskip("distributed", reason="distributed is not installed: pip install -e '.[test]' brings it")

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")  # the CLI the README shows, from this environment
SPACE = '[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3, 5, 10]\n"strategy.enter_threshold" = [0.4, 0.5]\n'
TRIALS = 6 * 2 * 2
FIGURES = ("pnl_net", "sharpe", "max_drawdown", "trades", "turnover", "fees", "events", "first_event_ts", "last_event_ts")


pytestmark = pytest.mark.usefixtures("clean_bot_env")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=HANG_GUARD_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Any:
    """A scheduler and two worker processes (1 thread each), as separate processes on 127.0.0.1."""
    if not DASK.exists():
        pytest.skip(f"no dask command next to {sys.executable}")
    home = tmp_path_factory.mktemp("cluster")
    info = home / "scheduler.json"
    env = clean_subprocess_env()
    logs = (home / "scheduler.log").open("w"), (home / "workers.log").open("w")
    scheduler = subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(info)],
                                 cwd=home, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    workers = None
    try:
        def address() -> str | None:
            assert scheduler.poll() is None, f"dask scheduler exited: {(home / 'scheduler.log').read_text()}"
            try:
                return json.loads(info.read_text())["address"]
            except (OSError, ValueError, KeyError):
                return None

        addr = wait_until(address, "the dask scheduler to write its address")
        workers = subprocess.Popen([str(DASK), "worker", addr, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard", "--local-directory", str(home / "work")],
                                   cwd=home, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        with distributed.Client(addr, timeout=HANG_GUARD_S) as client:
            client.wait_for_workers(2, timeout=HANG_GUARD_S)
            pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        yield {"address": addr, "worker_pids": pids}
    finally:
        for proc in (workers, scheduler):
            if proc is not None:
                _stop(proc)
        for log in logs:
            log.close()


def tune_args(tmp_path: Path, db: Path, *extra: str) -> list[str]:
    config = sim_config(tmp_path, duration_s=120.0)
    space = write(tmp_path / "space.toml", SPACE)
    return ["-m", "bot", "tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(db), "--json", *extra]


def run_tune(tmp_path: Path, db: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run([sys.executable, *tune_args(tmp_path, db, *extra)], cwd=tmp_path, env=clean_subprocess_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(proc.stdout)


def figures(db: Path) -> dict[str, tuple]:
    """Every trial's scored figures by trial key."""
    rows = db_rows(db, f"select key, {', '.join(FIGURES)} from trials")
    return {r[0]: r[1:] for r in rows}


def trial_pids(db: Path) -> list[int]:
    return [json.loads(r)["pid"] for (r,) in db_rows(db, "select result_json from trials")]


def comparable(leaderboard: dict[str, Any]) -> Any:
    """The leaderboard without what differs between two databases of the same plan (run ids, paths)."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("run_id", "run_ids", "db", "db_path", "wall_time_s")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(leaderboard)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory) -> dict[str, Any]:
    """The same plan run uninterrupted by the default local executor (the process pool)."""
    home = tmp_path_factory.mktemp("local")
    db = home / "tune.db"
    _, report = run_tune(home, db, "--workers", "2")
    assert report["complete"] and report["sweep"]["executor"] == "local"
    return {"figures": figures(db), "leaderboard": report["leaderboard"]}


def no_double_scoring(db: Path) -> None:
    """Every trial key once, with its own run, and no stored run without its trial."""
    trials = db_rows(db, "select key, run_id from trials")
    assert len(trials) == len({k for k, _ in trials}) == len({r for _, r in trials})
    runs = {r for (r,) in db_rows(db, "select run_id from runs")}
    assert runs == {r for _, r in trials}, "a run was stored without its trial, or twice"
    assert db_rows(db, "select count(*) from runs where status != 'completed'") == [(0,)]


# --------------------------------------------------------------------------- the sweep on a cluster
def test_cli_sweep_on_a_running_cluster_matches_the_local_executor(tmp_path, cluster, local_reference):
    db = tmp_path / "tune.db"
    _, report = run_tune(tmp_path, db, "--executor", "dask", "--scheduler", cluster["address"])
    assert report["complete"] and report["sweep"]["trials_run"] == TRIALS
    assert report["sweep"]["executor"] == "dask" and report["sweep"]["workers"] == 2  # the cluster's threads

    assert figures(db) == local_reference["figures"], "the cluster scored a trial differently from the local pool"
    assert comparable(report["leaderboard"]) == comparable(local_reference["leaderboard"])
    no_double_scoring(db)

    # the trials ran in the cluster's two worker processes, not in the tune process
    pids = trial_pids(db)
    assert len(set(pids)) >= 2, f"all trials ran in one process: {set(pids)}"
    assert set(pids) <= cluster["worker_pids"], f"trials ran outside the cluster's workers: {set(pids)} vs {cluster['worker_pids']}"


def test_interrupted_dask_sweep_resumes_and_scores_every_trial_once(tmp_path, cluster, local_reference):
    db = tmp_path / "tune.db"
    scratch = tmp_path / "tmp"  # where the local cluster's trials put their private databases
    scratch.mkdir()
    env = {**clean_subprocess_env(), "TMPDIR": str(scratch)}
    # 1. a local cluster (no --scheduler) of 2 worker processes, stopped by Ctrl-C: SIGINT to the
    #    whole process group, as a terminal sends it, once some trials are committed
    args = tune_args(tmp_path, db, "--executor", "dask", "--workers", "2")
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    try:
        wait_until(lambda: trials_committed_or_exited(proc, db, 3), "the sweep on a local cluster to commit three trials", interval=0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=HANG_GUARD_S)  # a hang guard, not a speed bound
    assert proc.returncode == 130, f"expected an interrupted sweep (rc {proc.returncode}): {err}"
    assert "interrupted (SIGINT)" in err and "re-run the same command to resume" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, "a worker took the Ctrl-C itself:\n" + err
    assert json.loads(out)["complete"] is False
    kept = dict(db_rows(db, "select key, run_id from trials"))
    assert 3 <= len(kept) < TRIALS
    local_pids = set(trial_pids(db))
    assert proc.pid not in local_pids and not local_pids & cluster["worker_pids"]
    no_double_scoring(db)
    assert not list(scratch.glob("bot-tune-*")), "a cancelled trial left its private database behind"

    # 2. the running cluster, stopped by a trial budget
    _, second = run_tune(tmp_path, db, "--executor", "dask", "--scheduler", cluster["address"], "--max-trials", "4")
    assert second["complete"] is False and second["sweep"]["trials_resumed"] == len(kept)
    assert second["sweep"]["trials_run"] == 4 and db_rows(db, "select count(*) from trials") == [(len(kept) + 4,)]
    kept = dict(db_rows(db, "select key, run_id from trials"))
    no_double_scoring(db)

    # 3. resumed on the cluster: only the missing trials run, nothing finished is recomputed
    _, third = run_tune(tmp_path, db, "--executor", "dask", "--scheduler", cluster["address"])
    assert third["complete"] and third["sweep"]["trials_resumed"] == len(kept)
    assert third["sweep"]["trials_run"] == TRIALS - len(kept)
    after = dict(db_rows(db, "select key, run_id from trials"))
    assert len(after) == TRIALS and all(after[k] == v for k, v in kept.items()), "a finished trial was scored again"
    no_double_scoring(db)
    assert figures(db) == local_reference["figures"], "no result lost or changed by the interruptions"
    assert comparable(third["leaderboard"]) == comparable(local_reference["leaderboard"])


# --------------------------------------------------------------------------- bad inputs
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_worker_scheduler():
    """A scheduler that no worker has joined."""
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"}) as empty:
        yield empty.scheduler_address


@pytest.mark.parametrize("case", ["scheduler-without-dask", "workers-with-scheduler", "workers-0", "malformed", "unreachable",
                                  "no-workers", "not-installed"])
def test_bad_executor_inputs_are_one_clear_line(tmp_path, capsys, monkeypatch, request, case):
    from bot.tune import cluster as cluster_module

    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT_S", 2.0)  # the refusals below need no 10 s of patience
    free = f"tcp://127.0.0.1:{_free_port()}"
    flags, expected = {
        "scheduler-without-dask": (["--scheduler", free], f"--scheduler {free} needs --executor dask"),
        "workers-with-scheduler": (["--executor", "dask", "--scheduler", free, "--workers", "2"],
                                   "--workers 2 does not apply with --scheduler"),
        "workers-0": (["--executor", "dask", "--workers", "0"], "--workers 0 runs trials in this process"),
        "malformed": (["--executor", "dask", "--scheduler", "127.0.0.1"], "--scheduler 127.0.0.1 is not a scheduler address"),
        "unreachable": (["--executor", "dask", "--scheduler", free], f"--scheduler {free}: cannot reach a Dask scheduler"),
        "no-workers": (None, "the scheduler has no workers"),
        "not-installed": (["--executor", "dask", "--workers", "1"], "--executor dask needs Dask distributed, which is not installed"),
    }[case]
    if case == "no-workers":
        flags = ["--executor", "dask", "--scheduler", request.getfixturevalue("no_worker_scheduler")]
    if case == "not-installed":
        monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
        monkeypatch.delitem(sys.modules, "bot.tune.cluster")
    config = sim_config(tmp_path, duration_s=60.0)
    space = write(tmp_path / "space.toml", SPACE)
    db = tmp_path / "t.db"
    code = bot_main(["tune", "--config", str(config), "--space", str(space), "--sim", "--db", str(db), "--quiet", *flags])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert not db.exists(), "nothing runs before the executor is ready"


def test_only_the_dask_executor_imports_dask(tmp_path):
    """`bot --help` and a local sweep never import dask (it costs its import time and is optional)."""
    config = sim_config(tmp_path, duration_s=60.0)
    space = write(tmp_path / "space.toml", '[search]\nfolds = 2\n[params]\n"signal.depth_levels" = [3]\n')
    code = (
        "import contextlib, io, sys\n"
        "from bot.cli.main import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        f"rc = main(['tune', '--config', {str(config)!r}, '--space', {str(space)!r}, '--sim', '--db', 't.db', '--workers', '0', '--quiet', '--json'])\n"
        "print('RESULT', rc, sorted(m for m in ('dask', 'distributed') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=clean_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "RESULT 0 []", proc.stdout[-500:]


def test_a_worker_running_other_bot_code_is_refused(tmp_path, monkeypatch):
    """Workers must run the tune process's code: a different engine would mix two versions in one leaderboard."""
    from bot.tune.cluster import DaskTrialExecutor, TrialWorkerSetup, code_fingerprint
    from bot.tune.executor import ClusterError

    assert code_fingerprint() == code_fingerprint() and len(code_fingerprint()) == 16
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None,
                                  scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"}) as other:
        def executor() -> DaskTrialExecutor:
            return DaskTrialExecutor(other.scheduler_address, log_dir=str(tmp_path / "logs"), connect_timeout_s=HANG_GUARD_S)

        same = executor()
        same.start()  # the same code: accepted
        same.close()

        original = TrialWorkerSetup.__init__

        def claiming_other_code(self, *args, **kwargs):  # as the tune process of another checkout would
            original(self, *args, **{**kwargs, "code": "0123456789abcdef"})

        monkeypatch.setattr(TrialWorkerSetup, "__init__", claiming_other_code)
        with pytest.raises(ClusterError) as info:
            executor().start()
    message = str(info.value)
    assert "differs from the tune process's (0123456789abcdef)" in message and "install the same imbalance-bot" in message
    assert "\n" not in message
