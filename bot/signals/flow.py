"""Trade flow: who is aggressing, and where the price stands against what traded.

* ``trade_imbalance`` = (B − S) / (B + S), B and S the buyer- and seller-aggressor volume over
  ``signal.trade_window_s`` (0 without trades), in [−1, 1];
* ``vwap`` = Σ p·q / Σ q over ``signal.vwap_window_s``; ``vwap_deviation`` = (mid − vwap) / vwap
  in bps, and ``vwap_deviation_z`` = that deviation over its own standard deviation across the
  book updates of the same window (0 until it varies): how stretched the price is.
"""

from __future__ import annotations

import math

from bot.core.events import Trade
from bot.signals.rolling import RollingMoments, RollingSum


class TradeFlow:
    __slots__ = ("_flow", "_vwap", "_dev")

    def __init__(self, trade_window_s: float, vwap_window_s: float):
        self._flow = RollingSum(int(trade_window_s * 1e9), 2)  # buy volume, sell volume
        self._vwap = RollingSum(int(vwap_window_s * 1e9), 2)  # p*q, q
        self._dev = RollingMoments(int(vwap_window_s * 1e9))

    def on_trade(self, trade: Trade) -> None:
        ts, q = trade.ts_local, trade.size
        if not q > 0.0 or not trade.price > 0.0:
            return
        buy = trade.side == "buy"
        self._flow.expire(ts)
        self._flow.add(ts, q if buy else 0.0, 0.0 if buy else q)
        self._vwap.expire(ts)
        self._vwap.add(ts, trade.price * q, q)

    def imbalance(self, now: int) -> float:
        flow = self._flow
        flow.expire(now)
        b, s = flow.sums
        total = b + s
        return (b - s) / total if total > 0.0 else 0.0

    def vwap(self, now: int) -> float:
        v = self._vwap
        v.expire(now)
        pq, q = v.sums
        return pq / q if q > 0.0 else math.nan

    def deviation(self, now: int, mid: float) -> tuple[float, float, float]:
        """(vwap, deviation in bps, deviation in its own standard deviations); NaN, 0, 0 without trades."""
        vwap = self.vwap(now)
        if not vwap > 0.0:
            return math.nan, 0.0, 0.0
        dev = (mid - vwap) / vwap * 1e4
        self._dev.add(now, dev)
        return vwap, dev, self._dev.zscore(dev)

    def clear(self) -> None:
        """Forget the deviation's history (the trade windows are facts of the tape and stay)."""
        self._dev.clear()
