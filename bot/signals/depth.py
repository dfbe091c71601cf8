"""Depth depletion: how far top-N depth on each side has fallen against its own recent mean.

For each side, with D the summed size of the top ``signal.depth_levels`` levels and M its
exponential moving mean over time (time constant ``signal.depth_mean_s``: weight
1 − exp(−Δt / τ) for the new value),

    depletion = 1 − D / M        (0 at the mean, → 1 when the side is exhausted, < 0 when deeper)

``depth_depletion`` = ask depletion − bid depletion, in [−∞, 1] minus [−∞, 1]: positive when the
asks are thinner than usual relative to the bids (supply exhausted: upward pressure), negative
when the bids are.
"""

from __future__ import annotations

import math


class DepthDepletion:
    __slots__ = ("tau_ns", "mean_bid", "mean_ask", "last_ts")

    def __init__(self, mean_s: float):
        self.tau_ns = mean_s * 1e9
        self.mean_bid = 0.0
        self.mean_ask = 0.0
        self.last_ts = 0

    def update(self, ts: int, bid_depth: float, ask_depth: float) -> tuple[float, float]:
        """(bid depletion, ask depletion) against the means before this update, then the means move."""
        if self.last_ts == 0 or self.mean_bid <= 0.0 or self.mean_ask <= 0.0:
            self.mean_bid, self.mean_ask, self.last_ts = bid_depth, ask_depth, ts
            return 0.0, 0.0
        bid = 1.0 - bid_depth / self.mean_bid
        ask = 1.0 - ask_depth / self.mean_ask
        w = 1.0 - math.exp(-(ts - self.last_ts) / self.tau_ns) if ts > self.last_ts else 0.0
        self.mean_bid += w * (bid_depth - self.mean_bid)
        self.mean_ask += w * (ask_depth - self.mean_ask)
        self.last_ts = ts
        return bid, ask

    def clear(self) -> None:
        self.mean_bid = self.mean_ask = 0.0
        self.last_ts = 0
