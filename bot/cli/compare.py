"""``bot compare``: replay a paper run from its recording and report where the replay's orders
and fills part from the run's (:mod:`bot.engine.replay`, :mod:`bot.store.divergence`).

Exit codes: 0 the replay matches the run (every order and fill, field by field), 1 a problem
with the input (unknown run, missing database, files that are not the run's recording), 2 wrong
usage, 3 the replay diverges (the report says where first).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_DIVERGED = 3


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('client_order_id')} at {value.get('ts')}"
    return "none" if value is None else str(value)


def describe(diff: dict[str, Any] | None) -> str:
    if diff is None:
        return "none"
    where = f"{diff['kind']} #{diff['index'] + 1} of {diff['symbol']} ({diff['client_order_id']}, paper ts {diff['ts']})"
    if diff.get("only_in"):
        return f"{where}: only the {diff['only_in']} has it"
    return f"{where}: {diff['field']} is {_shown(diff['paper'])} in the paper run, {_shown(diff['replay'])} in the replay"


def format_comparison(result: dict[str, Any]) -> str:
    verdict = "identical" if result["identical"] else "DIVERGED"
    lines = [f"run {result['run_id']}: replay of {result['events']} recorded events: {verdict}"]
    for inst in result["instruments"]:
        for kind in ("orders", "fills"):
            part = inst[kind]
            lines.append(
                f"  {inst['symbol']} {kind}: paper {part['paper']}, replay {part['replay']}, differing {part['differing']}; "
                f"largest time delta {part['max_time_delta_ns'] / 1e6:g} ms ({part['time_deltas_nonzero']} non-zero), "
                f"largest price delta {part['max_price_delta']} ({part['price_deltas_nonzero']} non-zero)"
            )
    if not result["identical"]:
        lines.append(f"  first difference: {describe(result['first_difference'])}")
    for source in result["known_divergence_sources"]:
        lines.append(f"  known divergence source: {source['source']}: {source['detail']}")
    return "\n".join(lines)


def cmd_compare(args: argparse.Namespace) -> int:
    from bot.engine.replay import ReplayError, compare_run
    from bot.log import configure
    from bot.store.jsonout import strict_json

    # the replay's own log lines repeat the paper run's: warnings and worse only, in logs/bot.log
    configure(args.log_dir, "warning", "error")
    try:
        result = compare_run(args.db, args.run, args.data)
    except ReplayError as exc:
        return _fail(str(exc))
    print(strict_json(result) if args.json else format_comparison(result))
    return 0 if result["identical"] else EXIT_DIVERGED


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare", help="replay a paper run from its recording and report where the replay's orders and fills differ from the run's",
        description="Rebuild paper run ID as it started (stored config, the exchange's markets, the restored account), replay the "
                    "recording it made (run.record_dir) through the same engine and paper fill model, and compare the two runs' "
                    "orders and fills decision by decision. Exit 0: identical; 1: bad input; 3: diverged.",
    )
    p.add_argument("--db", required=True, help="the paper run's database")
    p.add_argument("--run", required=True, metavar="ID", help="the paper run's id")
    p.add_argument("--data", nargs="+", metavar="FILE", help="the run's recording (default: every file under its run.record_dir/<run id>/)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--log-dir", default="logs", help="where the replay's warnings are logged (bot.log; default: logs)")
    p.set_defaults(func=cmd_compare)
