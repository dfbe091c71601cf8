"""Derivative flow, when the stream has it: liquidations and the mark's premium.

* ``liquidation_flow``: forced orders over ``signal.liquidation_window_s``, in base units,
  signed by the forced order's side: + for forced buys (shorts liquidated: buying pressure),
  − for forced sells (longs liquidated);
* ``basis_bps`` = (mark − index) / index in bps and ``funding_rate`` (fraction per interval),
  from the latest mark-price message (0 until one came, or without an index).
"""

from __future__ import annotations

from bot.core.events import Liquidation, MarkPrice
from bot.signals.rolling import RollingSum


class DerivativeFlow:
    __slots__ = ("_liq", "basis_bps", "funding_rate")

    def __init__(self, window_s: float):
        self._liq = RollingSum(int(window_s * 1e9))
        self.basis_bps = 0.0
        self.funding_rate = 0.0

    def on_liquidation(self, event: Liquidation) -> None:
        if event.size > 0.0:
            self._liq.expire(event.ts_local)
            self._liq.add(event.ts_local, event.size if event.side == "buy" else -event.size)

    def on_mark(self, event: MarkPrice) -> None:
        if event.index_price > 0.0 and event.mark_price > 0.0:
            self.basis_bps = (event.mark_price - event.index_price) / event.index_price * 1e4
        self.funding_rate = event.funding_rate

    def liquidation_flow(self, now: int) -> float:
        self._liq.expire(now)
        return self._liq.sums[0]
