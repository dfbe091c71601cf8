"""Orders by their latest status, per run, kept as the store records them (for the daemon's metrics).

Memory stays bounded over a long run: an order is remembered by id only while it is open, and
a final one (filled, canceled, rejected, expired) only among the last few thousand, so that a
second record of the same final order is not counted twice.
"""

from __future__ import annotations

FINAL = frozenset({"filled", "canceled", "rejected", "expired"})
RECENT_FINAL = 4096


class OrderCounts:
    def __init__(self) -> None:
        self.by_run: dict[str, dict[str, int]] = {}
        self._open: dict[tuple[str, str], str] = {}
        self._final: dict[tuple[str, str], None] = {}  # insertion-ordered: the oldest goes first

    def record(self, run_id: str, client_order_id: str, status: str) -> None:
        key = (run_id, client_order_id)
        counts = self.by_run.setdefault(run_id, {})
        previous = self._open.pop(key, None)
        if previous is None and key in self._final:
            return  # a final order recorded again: counted already
        if previous is not None:
            counts[previous] -= 1
        counts[status] = counts.get(status, 0) + 1
        if status in FINAL:
            self._final[key] = None
            if len(self._final) > RECENT_FINAL:
                del self._final[next(iter(self._final))]
        else:
            self._open[key] = status

    def of(self, run_id: str) -> dict[str, int]:
        return {k: v for k, v in self.by_run.get(run_id, {}).items() if v}
