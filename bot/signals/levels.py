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


def ofi_term(pb: float, pbq: float, pa: float, paq: float, b: float, bq: float, a: float, aq: float) -> float:
    """CKS (2014) eq. 4: the order-flow contribution e_n of best quotes moving from
    (pb, pbq, pa, paq) to (b, bq, a, aq): bid-side inflow minus ask-side inflow."""
    e = 0.0
    if b >= pb:
        e += bq
    if b <= pb:
        e -= pbq
    if a <= pa:
        e -= aq
    if a >= pa:
        e += paq
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
                e += ofi_term(pb[m][0], pb[m][1], pa[m][0], pa[m][1], bids[m][0], bids[m][1], asks[m][0], asks[m][1])
            if e != 0.0:
                self._sum.add(ts, e)
        self._prev_b, self._prev_a = bids, asks
        self._sum.expire(ts)
        return self._sum.sums[0]

    def clear(self) -> None:
        self._prev_b = self._prev_a = None
        self._sum.clear()
