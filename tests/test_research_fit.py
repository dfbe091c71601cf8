"""``bot research --fit``: the fitted score uses only data before the split, and the bot runs it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.config.settings import load_settings
from bot.data.sim import simulate
from bot.research.features import extract_features
from bot.research.fit import fit_model, model_toml

ROOT = Path(__file__).resolve().parents[1]
SPOT = ROOT.parent / "shared" / "data" / "hftbacktest-binance" / "spot"


@pytest.fixture(scope="module")
def sim_features():
    s = load_settings(ROOT / "config" / "demo.toml", sim={"duration_s": 240.0})
    return extract_features(simulate(s.sim, s.market), s.signal, levels=5)


def test_the_fit_never_sees_data_after_the_split(sim_features):
    fs = sim_features
    fit = fit_model(fs, 1.0, 0.5)
    split = fit["split_ts"]
    later = fs.ts > split
    assert later.sum() > 100 and (~later).sum() > 100
    rng = np.random.default_rng(3)
    # another future: prices and every feature after the split replaced
    bid_px, ask_px = fs.bid_px.copy(), fs.ask_px.copy()
    shift = rng.normal(0, 5.0, later.sum())[:, None]
    bid_px[later] += shift
    ask_px[later] += shift
    feats = {k: v.copy() for k, v in fs.signal_features.items()}
    for v in feats.values():
        v[later] = rng.normal(0, 1.0, later.sum())
    other = dataclasses.replace(fs, bid_px=bid_px, ask_px=ask_px, signal_features=feats)
    again = fit_model(other, 1.0, 0.5)
    assert again["model"] == fit["model"], "the coefficients moved with data after the split"
    assert again["n_train"] == fit["n_train"]
    assert again["r2_oos"] != fit["r2_oos"], "the out-of-sample score is measured on the later data"


def test_the_written_model_is_a_config_the_bot_runs(sim_features, tmp_path):
    fit = fit_model(sim_features, 1.0, 0.5)
    config = tmp_path / "fitted.toml"
    config.write_text((ROOT / "config" / "demo.toml").read_text() + "\n" + model_toml(fit, "the simulator"))
    s = load_settings(config)
    assert s.signal.model is not None and s.signal.model.coefficients == pytest.approx(fit["model"]["coefficients"])
    out = subprocess.run([sys.executable, "-m", "bot", "backtest", "--config", str(config), "--sim", "--db", str(tmp_path / "bt.db"), "--json"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["events"] > 0 and summary["stats"]["decisions"] >= 0


def test_research_fit_on_a_shared_recording_beats_nothing_out_of_sample(tmp_path):
    files = [SPOT / "btcusdt_20240808.gz", SPOT / "btcusdt_20240809.gz"]
    if not all(f.is_file() for f in files):
        pytest.skip("../shared/data not present (real Binance recordings)")
    out = subprocess.run([sys.executable, "-m", "bot", "research", "--config", str(ROOT / "config" / "backtest.toml"), "--data", *map(str, files),
                          "--out", str(tmp_path / "r"), "--fit", "1", "--quiet"], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    fit = report["fit"]
    assert fit["n_train"] > 1000 and fit["ic_test"] > 0.3 and fit["r2_oos"] > 0
    assert (tmp_path / "r" / "signal_model.toml").read_text().count("[signal.model]") == 1
    names = set(report["predictive"]["horizons"][0]["features"])
    assert {"trade_imbalance", "vwap_deviation", "depth_depletion", "mlofi"} <= names
