"""``bot tune --method tpe``: Optuna's TPE proposes candidates from segment 0 only, resumably.

The walk-forward guarantee is tested directly: two recordings equal up to the end of segment 0
and different after it give the same TPE proposals (while their later folds' scores differ, so
the later data did matter), and an interrupted search resumes without scoring a trial twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.events import Trade
from bot.data.binance import ReaderStats, read_binance
from bot.data.own_format import Header, RecordingWriter
from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
BTC = shared_data_dir() / "hftbacktest-binance" / "spot" / "btcusdt_20240808.gz"
needs_data = pytest.mark.skipif(not BTC.exists(), reason="../shared/data not present: the shared Binance recording is needed")
SPACE = """
[search]
method = "tpe"
trials = 6
seed = 3
folds = 2
objective = "pnl_net"

[params]
"strategy.enter_threshold" = { min = 0.3, max = 0.8 }
"signal.depth_levels" = [3, 5, 10]
"""


def _bot(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _recordings(tmp: Path) -> tuple[Path, Path, int]:
    """A: 40k events of the shared recording; B: the same, minus every other trade after the
    first third of the time span (so segment 0 of 3 is identical, the rest differs)."""
    events = []
    for e in read_binance([BTC], ReaderStats()):
        events.append(e)
        if len(events) >= 40_000:
            break
    first, last = events[0].ts_local, events[-1].ts_local
    seg0_end = first + (last + 1 - first) // 3
    header = Header("binance", "BTC/USDT", "BTCUSDT", "spot", source="test")
    out = []
    for name, keep in (("a", lambda i, e: True),
                       ("b", lambda i, e: not (isinstance(e, Trade) and e.ts_local >= seg0_end and i % 2 and i < len(events) - 1))):
        w = RecordingWriter(tmp / name, header)
        for i, e in enumerate(events):
            if keep(i, e):
                w.write(e)
        w.close()
        assert len(w.files) == 1
        out.append(w.files[0])
    return out[0], out[1], seg0_end


def _proposals(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [p for (p,) in conn.execute("SELECT params_json FROM tpe_proposals ORDER BY n")]


def _tune(tmp: Path, data: Path, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp / "space.toml").write_text(SPACE)
    return _bot("tune", "--config", str(ROOT / "config" / "backtest.toml"), "--space", str(tmp / "space.toml"),
                "--data", str(data), "--db", str(db), "--out", str(db.with_suffix(".toml")), "--workers", "2", "--json", *extra, cwd=tmp)


@needs_data
def test_tpe_proposals_depend_on_segment_zero_only(tmp_path):
    a, b, _ = _recordings(tmp_path)
    ra, rb = _tune(tmp_path, a, tmp_path / "a.db"), _tune(tmp_path, b, tmp_path / "b.db")
    assert ra.returncode == 0, ra.stderr
    assert rb.returncode == 0, rb.stderr
    ja, jb = json.loads(ra.stdout), json.loads(rb.stdout)
    assert ja["complete"] and ja["sweep"]["method"] == "tpe" and ja["sweep"]["candidates"] == 6
    assert ja["sweep"]["trials_total"] == 6 * 2 * 2 == ja["sweep"]["trials"]
    assert ja["sweep"]["wall_time_s"] > 0 and ja["sweep"]["trials_per_s"] == pytest.approx(24 / ja["sweep"]["wall_time_s"], rel=0.05)
    pa, pb = _proposals(tmp_path / "a.db"), _proposals(tmp_path / "b.db")
    assert len(pa) >= 6 and pa == pb  # the same candidates: nothing after segment 0 shaped them
    # ... while the data after segment 0 does change the scores (else the test above proves nothing)
    oos = lambda j: [f["chosen_out_of_sample"]["pnl_net"] for f in j["leaderboard"]["folds"]]
    assert oos(ja) != oos(jb) or ja["leaderboard"]["walk_forward"] != jb["leaderboard"]["walk_forward"]
    assert Path(ja["best_config"]).is_file()


@needs_data
def test_an_interrupted_tpe_search_resumes_without_scoring_twice(tmp_path):
    a, _, _ = _recordings(tmp_path)
    db = tmp_path / "r.db"
    first = _tune(tmp_path, a, db, "--max-trials", "3")
    assert first.returncode == 0, first.stderr
    j1 = json.loads(first.stdout)
    assert j1["complete"] is False and j1["sweep"]["trials"] == 3
    kept = _proposals(db)
    second = _tune(tmp_path, a, db)
    assert second.returncode == 0, second.stderr
    j2 = json.loads(second.stdout)
    assert j2["complete"] and j2["sweep"]["trials"] == 24 - 3  # every trial scored exactly once
    assert _proposals(db)[: len(kept)] == kept
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM trials").fetchone() == (24, 24)
