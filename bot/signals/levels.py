"""Multi-level order flow imbalance: the CKS (2014) term at each of the best N levels.

For level m = 1..N, e_m is Cont, Kukanov & Stoikov's eq. 4 applied to the m-th best bid and ask
(price, size) of consecutive book states (Xu, Gould & Howison 2019, "Multi-level order-flow
imbalance in a limit order book"; Cont, Cucuringu & Zhang 2021, "Cross-impact of order flow
imbalance in equity markets", integrate the levels). Each level's terms are summed over
``signal.ofi_window_s``; ``mlofi`` is the sum over levels with equal weights (the simplest
integration; a fitted ``[signal.model]`` can weight them), in base units. A level missing now or
before contributes 0.
"""

from __future__ import annotations

from bot.signals.rolling import RollingSum


def _term(pb: float, qb0: float, pa: float, qa0: float, b: float, qb: float, a: float, qa: float) -> float:
    e = 0.0
    if b >= pb:
        e += qb
    if b <= pb:
        e -= qb0
    if a <= pa:
        e -= qa
    if a >= pa:
        e += qa0
    return e


class MultiLevelOFI:
    __slots__ = ("levels", "_prev_b", "_prev_a", "_sum")

    def __init__(self, levels: int, window_s: float):
        self.levels = levels
        self._prev_b: list | None = None
        self._prev_a: list | None = None
        self._sum = RollingSum(int(window_s * 1e9))

    def update(self, ts: int, bids: list, asks: list) -> float:
        """``bids``/``asks``: the book's best levels, (price, size) best first."""
        n = self.levels
        bids, asks = bids[:n], asks[:n]
        pb, pa = self._prev_b, self._prev_a
        if pb is not None and pa is not None:
            e = 0.0
            for m in range(min(n, len(bids), len(asks), len(pb), len(pa))):
                e += _term(pb[m][0], pb[m][1], pa[m][0], pa[m][1], bids[m][0], bids[m][1], asks[m][0], asks[m][1])
            if e != 0.0:
                self._sum.add(ts, e)
        self._prev_b, self._prev_a = bids, asks
        self._sum.expire(ts)
        return self._sum.sums[0]

    def clear(self) -> None:
        self._prev_b = self._prev_a = None
        self._sum.clear()
