"""IC by horizon of every streamed feature on every shared recording: the README's feature table.

Each recording is one ``python -m bot research --config CONFIG --data FILES --out DIR --quiet``
process, as a user runs it; the table is read back from each run's ``report.json``
(``predictive.horizons[i].features[name].ic``), so the README shows what the command wrote.
Prints one markdown table per horizon set: a row per feature, a column per recording and
horizon (Spearman IC of the feature at t with mid(t+h) − mid(t); n/a where the recording has
no such data, e.g. liquidations on spot).

    .venv/bin/python benchmarks/feature_table.py [--jobs 2] [--json FILE] [--horizons 0.1 1 10 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from strategy_table import DATA, RECORDINGS, ROOT


def research(label: str, config: str, files: list[str], out: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT__")}
    cmd = [sys.executable, "-m", "bot", "research", "--config", str(ROOT / "config" / config),
           "--data", *(str(DATA / f) for f in files), "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        return {"label": label, "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    report = json.loads((out / "report.json").read_text())
    horizons = {h["horizon_s"]: {name: (f or {}).get("ic") for name, f in h["features"].items()}
                for h in report["predictive"]["horizons"]}
    return {"label": label, "horizons": horizons}


def markdown(results: list[dict[str, Any]], horizons: list[float]) -> str:
    ok = [r for r in results if "horizons" in r]
    features: list[str] = []
    for r in ok:
        for by_feature in r["horizons"].values():
            features += [f for f in by_feature if f not in features]
    hs = "/".join(f"{h:g}" for h in horizons)
    head = "| feature | " + " | ".join(f"{r['label']} ({hs} s)" for r in ok) + " |"
    lines = [head, "|---" * (len(ok) + 1) + "|"]
    for f in features:
        cells = []
        for r in ok:
            vals = [r["horizons"].get(h, {}).get(f) for h in horizons]
            cells.append(" / ".join("n/a" if v is None else f"{v:+.2f}" for v in vals))
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    for r in results:
        if "error" in r:
            lines.append(f"\n{r['label']}: error: {r['error']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--horizons", type=float, nargs="+", default=[0.1, 1.0, 10.0, 60.0])
    args = ap.parse_args()
    if not DATA.is_dir():
        print(f"shared recordings not found at {DATA}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(research, label, config, files, Path(tmp) / str(i))
                   for i, (label, config, files) in enumerate(RECORDINGS)]
        results = [f.result() for f in futures]
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results, args.horizons))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
