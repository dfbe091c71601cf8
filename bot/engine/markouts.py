"""Markouts of maker fills: the spread a quote captured against what the market did next.

A maker fill at price ``p`` on side ``s`` (+1 buy, -1 sell) with the mid at ``m0``:

* spread captured, bps: ``s * (m0 - p) / m0 * 1e4`` (a bid filled below the mid earns it);
* adverse selection at horizon ``h``, bps: ``-s * (m_h - m0) / m0 * 1e4``, where ``m_h`` is the
  first mid at or after ``t + h`` (a bid filled just before the price falls was "run over");
* net at ``h``: captured minus adverse, the gross edge of a quote held to ``h``.

Means are weighted by the fills' notional. Fills whose horizon the run never reached are left
out of that horizon and counted (``unresolved``). Only maker fills are marked: the taker modes
pay the spread by design (their cost hurdle says how much).
"""

from __future__ import annotations

from collections import deque
from typing import Any

SEC = 1_000_000_000
HORIZONS_S = (1, 10)


class Markouts:
    __slots__ = ("pending", "fills", "notional", "captured", "adverse", "resolved")

    def __init__(self) -> None:
        self.pending: list[deque[tuple[int, int, float, float]]] = [deque() for _ in HORIZONS_S]
        self.fills = 0
        self.notional = 0.0
        self.captured = 0.0  # sum of bps x notional
        self.adverse = [0.0 for _ in HORIZONS_S]
        self.resolved = [0.0 for _ in HORIZONS_S]  # notional resolved per horizon

    @property
    def waiting(self) -> bool:
        return bool(self.pending[0]) or bool(self.pending[-1])

    def next_due(self) -> int | None:
        """The earliest time at which :meth:`on_mid` resolves a horizon (None: nothing waits):
        a mid before it changes nothing here."""
        due = [queue[0][0] for queue in self.pending if queue]
        return min(due) if due else None

    def on_fill(self, ts: int, buy: bool, price: float, value: float, mid: float) -> None:
        if not mid > 0 or not value > 0:
            return
        s = 1 if buy else -1
        self.fills += 1
        self.notional += value
        self.captured += s * (mid - price) / mid * 1e4 * value
        for queue, h in zip(self.pending, HORIZONS_S):
            queue.append((ts + h * SEC, s, mid, value))

    def on_mid(self, now: int, mid: float) -> None:
        for i, queue in enumerate(self.pending):
            while queue and queue[0][0] <= now:
                _, s, m0, value = queue.popleft()
                self.adverse[i] += -s * (mid - m0) / m0 * 1e4 * value
                self.resolved[i] += value

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"maker_fills": self.fills, "maker_notional": round(self.notional, 8),
                               "spread_captured_bps": round(self.captured / self.notional, 4) if self.notional else None}
        for i, h in enumerate(HORIZONS_S):
            adverse = self.adverse[i] / self.resolved[i] if self.resolved[i] else None
            captured = out["spread_captured_bps"]
            out[f"adverse_selection_{h}s_bps"] = round(adverse, 4) if adverse is not None else None
            out[f"net_{h}s_bps"] = round(captured - adverse, 4) if adverse is not None and captured is not None else None
            out[f"unresolved_{h}s"] = len(self.pending[i])
        return out
