"""Helpers of the report tests: real backtests of the shared recording, and a reader of the HTML
pages' charts (what is drawn and the data beside it), so a test can compare both with the database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
SPOT = shared_data_dir() / "hftbacktest-binance" / "spot"
SPOT_BTC = [SPOT / "btcusdt_20240808.gz", SPOT / "btcusdt_20240809.gz"]
SPOT_ALL = SPOT_BTC + [SPOT / "ethusdt_20240808.gz", SPOT / "ethusdt_20240809.gz"]
needs_spot = pytest.mark.skipif(not all(f.exists() for f in SPOT_ALL),
                                reason=f"{SPOT} not present: the shared spot recordings are needed for real backtests")


def bot(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m bot ARGS`` in ``cwd`` without the caller's BOT__ overrides."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    return subprocess.run([sys.executable, "-m", "bot", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**clean, **(env or {})}, timeout=600)


def backtest(cwd: Path, db: Path, config: str = "backtest.toml", files: list[Path] = SPOT_BTC,
             env: dict[str, str] | None = None) -> Path:
    """A real backtest of the shared recording into ``db`` (it must complete)."""
    proc = bot(cwd, "backtest", "--config", ROOT / "config" / config, "--data", *files, "--db", db, "--json", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return db


def write_equity_run(db: Path, ts: Sequence[int], values: Sequence[float], mid: float = 30_000.0) -> Path:
    """A finished paper run of just these equity rows, written through the Store (a long run
    without waiting days for one)."""
    from bot.store import Store

    with Store(db) as store:
        store.start_run("long", mode="paper", config={"market": {"symbol": "BTC/USDT"}}, git_rev="t", data_files=[],
                        initial_equity=10_000.0, symbol="BTC/USDT")
        for t, e in zip(ts, values):
            store.record_equity("long", int(t), float(e), mid, 0.0, float(e))
        store.finish_run("long", status="completed", stats={})
    return db


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``error:`` line of a refused command (exit 1, no traceback)."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


class _Charts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.charts: dict[str, dict[str, Any]] = {}
        self._figure: str | None = None
        self._series: str | None = None
        self._script: str | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure" and "chart" in (a.get("class") or ""):
            self._figure = a["id"]
            self.charts[self._figure] = {"lines": {}, "markers": {}, "bars": {}, "data": None}
        elif self._figure is None:
            return
        elif tag == "script" and a.get("class") == "chart-data":
            self._script, self._buf = a["data-chart"], []
        elif tag == "polyline":
            pts = [tuple(map(float, p.split(","))) for p in (a.get("points") or "").split()]
            self.charts[self._figure]["lines"][a["data-series"]] = pts
        elif tag == "g" and a.get("data-series"):
            self._series = a["data-series"]
        elif tag == "path" and self._series:
            m = re.match(r"M([-\d.]+) ([-\d.]+)", a["d"] or "")
            self.charts[self._figure]["markers"].setdefault(self._series, []).append((float(m.group(1)), float(m.group(2))))
        elif tag == "rect" and self._series:
            box = tuple(float(a[k] or 0) for k in ("x", "y", "width", "height"))
            self.charts[self._figure]["bars"].setdefault(self._series, []).append(box)

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._series = None
        elif tag == "script" and self._script:
            self.charts[self._script]["data"] = json.loads("".join(self._buf))
            self._script = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._script:
            self._buf.append(data)


def read_charts(html: str) -> dict[str, dict[str, Any]]:
    """Every chart of a page by id: ``data`` (the JSON beside it), ``lines`` (polyline points by
    series), ``markers`` (triangle points by series), ``bars`` ((x, y, width, height) by series)."""
    parser = _Charts()
    parser.feed(html)
    return parser.charts


def to_data(chart: dict[str, Any], px: float, py: float) -> tuple[float, float]:
    """A drawn point mapped back to data coordinates through the chart's domains."""
    d = chart["data"]
    (x0, x1), (y0, y1), box = d["x_domain"], d["y_domain"], d["plot"]
    x = x0 + (px - box["left"]) / box["width"] * (x1 - x0)
    y = y0 + (box["top"] + box["height"] - py) / box["height"] * (y1 - y0)
    return x, y


def pixel(chart: dict[str, Any]) -> tuple[float, float]:
    """What 0.01 px (the drawing's rounding) is worth in x and y data units."""
    d = chart["data"]
    return (0.01 * (d["x_domain"][1] - d["x_domain"][0]) / d["plot"]["width"],
            0.01 * (d["y_domain"][1] - d["y_domain"][0]) / d["plot"]["height"])


def series(chart: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in chart["data"]["series"] if s["name"] == name)


def drawn_line_is_data(chart: dict, name: str) -> None:
    """The polyline of series ``name``, mapped back through the chart's domains, is its data."""
    data = series(chart, name)
    drawn = chart["lines"][name]
    assert len(drawn) == len(data["x"])
    ex, ey = pixel(chart)
    for (px, py), x, y in zip(drawn, data["x"], data["y"]):
        dx, dy = to_data(chart, px, py)
        assert abs(dx - x) <= ex and abs(dy - y) <= ey, (name, x, y, dx, dy)


def self_contained(html: str) -> None:
    """Nothing on the page is fetched at view time, and no code runs."""
    assert "<script src" not in html and "<link" not in html and "<img" not in html and "@import" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}, "nothing is loaded at view time"
    for script in re.findall(r"<script([^>]*)>", html):
        assert 'type="application/json"' in script, "no code runs: the charts are SVG"
