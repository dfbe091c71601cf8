"""Where two runs' orders and fills part: the comparison behind ``bot compare``.

Both sides are the stored rows of one run (the paper run, and its replay under the same run id,
so client order ids agree when the decisions do), per instrument, in decision order: orders by
``(ts, client_order_id)``, fills by ``(ts, id)``. The n-th order of one side is compared with the
n-th of the other, field by field, as stored (amounts and prices are exact decimal strings, so
equal means equal to the last digit); the same for fills. What is reported:

* the counts on each side, and how many compared pairs differ in any field;
* the first difference: which order or fill (its position, client order id, time), which field,
  both values, or that one side has no such row (one run made more decisions);
* the time deltas (replay minus paper, ns) and price deltas (replay minus paper, in quote
  currency) of the compared pairs: the largest in size, and how many were not zero.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

ORDER_FIELDS = ("client_order_id", "ts", "side", "amount", "order_type", "price", "reason", "reduce_only", "status", "filled",
                "stop_price", "take_profit_price")
FILL_FIELDS = ("client_order_id", "ts", "side", "price", "amount", "fee", "liquidity", "trade_id", "fee_currency", "realized")
ORDER_COLUMNS = ORDER_FIELDS
FILL_COLUMNS = FILL_FIELDS


def rows_of(conn: Any, table: str, run_id: str, symbol: str, default_symbol: str) -> list[dict[str, Any]]:
    """One instrument's orders or fills of a run, in decision order (``conn``: an sqlite3 connection).

    Rows written before rows named their instrument (``symbol`` NULL) belong to the run's first symbol."""
    fields = ORDER_COLUMNS if table == "orders" else FILL_COLUMNS
    order = "ts, client_order_id" if table == "orders" else "ts, id"
    have = {row[1] for row in conn.execute(f"PRAGMA table_info([{table}])")}
    cols = ", ".join(f"[{f}]" if f in have else f"NULL AS [{f}]" for f in fields)
    cur = conn.execute(f"SELECT {cols} FROM [{table}] WHERE run_id = ? AND coalesce(symbol, ?) = ? ORDER BY {order}",
                       [run_id, default_symbol, symbol])
    return [dict(zip(fields, row)) for row in cur.fetchall()]


def _price_delta(a: Any, b: Any) -> Decimal | None:
    if a is None or b is None:
        return None
    try:
        return Decimal(str(b)) - Decimal(str(a))
    except InvalidOperation:
        return None


def compare_rows(kind: str, paper: list[dict[str, Any]], replay: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, Any]:
    """The comparison of one instrument's orders (``kind`` ``order``) or fills (``fill``)."""
    differing = 0
    first: dict[str, Any] | None = None
    max_dt, nonzero_dt = 0, 0
    max_dp, nonzero_dp = Decimal(0), 0
    for i, (p, r) in enumerate(zip(paper, replay)):
        fields_off = [f for f in fields if p.get(f) != r.get(f)]
        dt = int(r["ts"]) - int(p["ts"])
        if dt:
            nonzero_dt += 1
            max_dt = dt if abs(dt) > abs(max_dt) else max_dt
        dp = _price_delta(p.get("price"), r.get("price"))
        if dp:
            nonzero_dp += 1
            max_dp = dp if abs(dp) > abs(max_dp) else max_dp
        if fields_off:
            differing += 1
            if first is None:
                f = fields_off[0]
                first = {
                    "kind": kind, "index": i, "client_order_id": p.get("client_order_id"), "ts": int(p["ts"]),
                    "field": f, "paper": p.get(f), "replay": r.get(f), "fields": fields_off,
                }
    n = min(len(paper), len(replay))
    if first is None and len(paper) != len(replay):
        longer, side = (paper, "paper") if len(paper) > len(replay) else (replay, "replay")
        extra = longer[n]
        first = {
            "kind": kind, "index": n, "client_order_id": extra.get("client_order_id"), "ts": int(extra["ts"]),
            "field": None, "paper": extra if side == "paper" else None, "replay": extra if side == "replay" else None,
            "fields": [], "only_in": side,
        }
    return {
        "paper": len(paper),
        "replay": len(replay),
        "compared": n,
        "differing": differing,
        "first_difference": first,
        "max_time_delta_ns": max_dt,
        "time_deltas_nonzero": nonzero_dt,
        "max_price_delta": str(max_dp),
        "price_deltas_nonzero": nonzero_dp,
    }


def diverged(part: dict[str, Any]) -> bool:
    return part["paper"] != part["replay"] or part["differing"] > 0


def first_of(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The earliest first difference (by the paper row's time; a missing row counts at its own time)."""
    found = [p["first_difference"] for p in parts if p["first_difference"] is not None]
    return min(found, key=lambda d: (d["ts"], 0 if d["kind"] == "order" else 1)) if found else None
