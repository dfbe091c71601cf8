"""Side by side with hftbacktest: the same USD-M recording, an equivalent top-5 imbalance taker.

    .venv/bin/python benchmarks/bench_peers.py            # needs the peer's venv (below)
    .venv/bin/python benchmarks/bench_peers.py --setup    # creates it first (pip, from the package index)

hftbacktest 2.4.4 pins numpy<2.3, which the bot's own venv outgrows, so it lives
in a venv of its own (``--peer-python``, default ``.venv-peers/bin/python``; the ``peers`` extra
of pyproject.toml names the version). Each engine runs twice as a user runs it, in a new process:

* the bot: ``bot backtest --config benchmarks/peers-usdm.toml --data FILE --json``, first with an
  empty ``BOT_FAST_CACHE`` (cold), then again (warm); its JSON says which engine ran, the
  command's wall time and its phases (``stats.command``);
* the peer: ``benchmarks/peer_hftbacktest.py`` under the peer's python, first with an empty
  cache (it converts the recording with hftbacktest's Binance futures converter), then again
  (it loads the converted ``.npz``); it times imports, conversion, compiling its strategy and
  the replay.

Both are given the same file; events/s of both rows are the recording's messages (the bot's
``events``) over each one's time, so the ratio is the inverse ratio of the times. The peer's own
unit (rows of its event array) is printed beside it. Figures on a shared machine move with its
load: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import fmt_rate, print_machine, run_bot, write_json  # noqa: E402

PEER = "hftbacktest==2.4.4"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hftbacktest-binance" / "usdm" / "btcusdt_20240808.gz"
DEFAULT_CONFIG = HERE / "peers-usdm.toml"
DEFAULT_PEER_PYTHON = ROOT / ".venv-peers" / "bin" / "python"


def setup_command(peer_python: Path) -> str:
    venv = peer_python.parent.parent
    return f"python3 -m venv {venv} && {peer_python} -m pip install {PEER}"


def peer_missing(peer_python: Path) -> str | None:
    """Why the peer cannot run (one line), or None."""
    if not peer_python.exists():
        return f"--peer-python {peer_python} does not exist"
    ok = subprocess.run([str(peer_python), "-c", "import hftbacktest"], cwd=HERE, capture_output=True).returncode == 0
    return None if ok else f"--peer-python {peer_python} cannot import hftbacktest"


def setup(peer_python: Path) -> None:
    venv = peer_python.parent.parent
    print(f"   creating {venv} and installing {PEER} (pip, from the package index)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # a venv's python makes one on its base interpreter
    subprocess.run([str(peer_python), "-m", "pip", "install", "--quiet", PEER], check=True)


def peer_params(config: Path) -> dict[str, Any]:
    """The peer's strategy and venue settings, read from the bot's config so both trade the same rule."""
    c = tomllib.loads(config.read_text())
    sig, st, risk, ex, mk = c["signal"], c["strategy"], c["risk"], c["execution"], c["market"]
    return {
        "levels": sig.get("depth_levels", 5), "enter": st["enter_threshold"], "exit": st["exit_threshold"],
        "cooldown_s": st["cooldown_s"], "max_holding_s": st["max_holding_s"], "order_notional": risk["max_order_notional"],
        "taker_fee_bps": ex["taker_fee_bps"], "maker_fee_bps": ex["maker_fee_bps"], "latency_ms": ex["latency_ms"],
        "tick_size": float(mk["tick_size"]), "lot_size": float(mk["lot_size"]),
    }


def run_ours(config: Path, data: Path, cache: Path, db: Path) -> dict[str, Any]:
    run = run_bot(["backtest", "--config", str(config), "--data", str(data), "--db", str(db), "--json"], cache=cache)
    wall, s = run.wall_s, run.json()
    c = s["stats"]["command"]
    return {"wall_s": round(wall, 3), "events": s["events"], "replay_s": c["replay_s"], "command": c,
            "command_wall_s": s["wall_time_s"], "events_per_s_json": s["events_per_s"],
            "orders": s["orders"], "fills": s["fills"], "fees": s["fees"], "pnl_gross": s["pnl_gross"]}


def run_peer(peer_python: Path, data: Path, cache: Path, params: dict[str, Any]) -> dict[str, Any]:
    cmd = [str(peer_python), str(HERE / "peer_hftbacktest.py"), "--data", str(data), "--cache", str(cache), "--params", json.dumps(params)]
    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("PEER_RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip() or out.stdout.strip()).splitlines()[-1:]
        raise SystemExit(f"bench_peers: the peer failed (exit {out.returncode}): {tail}")
    r = json.loads(lines[-1].removeprefix("PEER_RESULT "))
    r["wall_s"] = round(wall, 3)
    return r


DIFFERENCES = (
    "what differs: the bot's book takes the depth diffs, the bookTicker and the trades (all 3 streams); hftbacktest's converter "
    "keeps the depth diffs, the snapshot and the trades (it drops bookTicker by default), so its imbalance misses the L1 updates between diffs",
    "fills: the bot walks the book as it is latency_ms after the decision; the peer's order reaches its exchange model "
    "(PartialFillExchange, constant order latency latency_ms in, 0 back) and takes the book there; both charge taker_fee_bps on the traded value",
    "sizing: the bot's risk manager sizes (here always max_order_notional, with its limits, a 10 % stop and target out of reach); "
    "the peer sends max_order_notional at the mid, truncated to the lot, and has no risk limits",
    "decisions: the bot on every event (the readable engine) or where its strategy and risk manager can act (the fast path); "
    "the peer on every feed step or order answer of wait_next_feed, one order in flight, the holding time from when its fill is seen",
)


def table(ours: list[dict[str, Any]], peer: list[dict[str, Any]], events: int) -> list[str]:
    rows = ["| engine | events | whole process s | in-process replay s | events/s (whole) | events/s (replay) |", "|---|---|---|---|---|---|"]
    for label, o in zip(("cold", "warm"), ours):
        rows.append(f"| bot backtest ({o['command']['engine']} engine), {label} | {events:,} | {o['wall_s']:.2f} | {o['replay_s']:.3f} | "
                    f"{fmt_rate(events / o['wall_s'])} | {fmt_rate(events / o['replay_s']) if o['replay_s'] else 'n/a'} |")
    for label, p in zip(("cold: converts", "warm: cached .npz"), peer):
        rows.append(f"| hftbacktest {p['hftbacktest']}, {label} | {events:,} | {p['wall_s']:.2f} | {p['replay_s']:.3f} | "
                    f"{fmt_rate(events / p['wall_s'])} | {fmt_rate(events / p['replay_s'])} |")
    for label, o, p in zip(("cold", "warm"), ours, peer):
        rows.append(f"| ratio ours/peer, {label} | | | | x{p['wall_s'] / o['wall_s']:.2f} | "
                    f"{'x%.2f' % (p['replay_s'] / o['replay_s']) if o['replay_s'] else 'n/a'} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON, help=f"python of the peer's venv (default {DEFAULT_PEER_PYTHON.relative_to(ROOT)})")
    ap.add_argument("--setup", action="store_true", help=f"create the peer's venv at --peer-python first (python3 -m venv, pip install {PEER})")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="raw Binance USD-M collector recording (.gz)")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the bot's config; the peer's thresholds, fees and latency are read from it")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"bench_peers: --data {args.data} is absent (the shared recordings, ../shared/data): nothing to compare")
        return 2
    if not args.config.exists():
        print(f"bench_peers: --config {args.config} does not exist")
        return 2
    missing = peer_missing(args.peer_python)
    if missing and args.setup:
        setup(args.peer_python)
        missing = peer_missing(args.peer_python)
    if missing:
        print(f"bench_peers: {missing}; create it with: {setup_command(args.peer_python)}  (or run with --setup)")
        return 2
    info = print_machine("bench_peers: bot backtest beside hftbacktest, same recording, top-N imbalance taker")
    load_before = os.getloadavg()
    params = peer_params(args.config)
    print(f"   data {args.data} ({args.data.stat().st_size / 2**20:.1f} MiB); config {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}")
    print(f"   rule (both): imbalance over the top {params['levels']} levels; enter at |imb| >= {params['enter']}, exit below {params['exit']:g} "
          f"(short: above {-params['exit']:g}) or after {params['max_holding_s']:g} s; cooldown {params['cooldown_s']:g} s; "
          f"{params['order_notional']:g} USDT market orders; taker fee {params['taker_fee_bps']:g} bps; latency {params['latency_ms']:g} ms", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    ours, peer = [], []
    for i in range(2):  # cold, then warm: same cache directories
        ours.append(run_ours(args.config, args.data, tmp / "bot-cache", tmp / f"run{i}.db"))
        o = ours[-1]
        print(f"   bot run {i + 1}: {o['wall_s']:.2f} s whole process, engine {o['command']['engine']} "
              f"({o['command']['engine_reason'] or 'default'}); setup {o['command']['setup_s']} s, parse {o['command']['parse_s']} s, "
              f"replay {o['command']['replay_s']} s, store {o['command']['store_s']} s; {o['orders']} orders, {o['fills']} fills, fees {o['fees']:.2f}", flush=True)
        peer.append(run_peer(args.peer_python, args.data, tmp / "peer-cache", params))
        p = peer[-1]
        conv = f"converted in {p['conversion_convert_s']} s (+ saved {p['conversion_save_s']} s)" if not p["conversion_cached"] else f"cached .npz loaded in {p['conversion_load_s']} s"
        print(f"   peer run {i + 1}: {p['wall_s']:.2f} s whole process; imports {p['import_s']} s, {conv}, strategy compiled in {p['compile_s']} s, "
              f"replay {p['replay_s']} s ({p['rows']:,} rows, {p['steps']:,} feed steps); {p['orders']} orders, fees {p['state']['fee']:.2f}", flush=True)
    events = ours[0]["events"]
    load_after = os.getloadavg()
    print(f"\n## bot backtest beside hftbacktest ({args.data.name}, {events:,} recorded messages)\n")
    print("\n".join(table(ours, peer, events)))
    p = peer[-1]
    print(f"\nthe peer in its own unit: {p['rows']:,} rows of its event array ({p['depth_rows']:,} depth-level changes) in {p['replay_s']} s = "
          f"{fmt_rate(p['rows'] / p['replay_s'])} replay (rows); {p['steps']:,} feed steps = {fmt_rate(p['steps'] / p['replay_s'])}; "
          f"its whole process is mostly compiling its strategy ({p['compile_s']} s), which it does in every new process")
    print(f"engine of ours: {ours[-1]['command']['engine']}" + (f" ({ours[-1]['command']['engine_reason']})" if ours[-1]["command"]["engine_reason"] else ""))
    print(f"load average (1/5/15 min): before {tuple(round(x, 2) for x in load_before)}, after {tuple(round(x, 2) for x in load_after)}; "
          f"host speed reference {info['host_speed_ref_s']} s")
    for line in DIFFERENCES:
        print(f"- {line}")
    write_json(args.json, {"machine": info, "loadavg_before": load_before, "loadavg_after": load_after, "events": events,
                           "params": params, "ours": ours, "peer": peer,
                           "ratio_whole": [round(pp["wall_s"] / o["wall_s"], 3) for o, pp in zip(ours, peer)],
                           "ratio_replay": [round(pp["replay_s"] / o["replay_s"], 3) if o["replay_s"] else None for o, pp in zip(ours, peer)]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
