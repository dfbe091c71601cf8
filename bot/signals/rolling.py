"""Time-windowed running statistics, O(1) amortized per update (the hot path allocates one tuple).

Running sums drift by float error as values enter and leave; each window forgets the error
whenever it empties and recomputes its sums exactly every ``RESUM_EVERY`` removals.
"""

from __future__ import annotations

import math
from collections import deque

RESUM_EVERY = 4096


class RollingSum:
    """Sums of ``k`` values over the last ``window_ns`` (entries at or before ``now - window`` leave)."""

    __slots__ = ("window_ns", "items", "sums", "_removed", "k")

    def __init__(self, window_ns: int, k: int = 1):
        self.window_ns = window_ns
        self.k = k
        self.items: deque[tuple] = deque()
        self.sums = [0.0] * k
        self._removed = 0

    def add(self, ts: int, *values: float) -> None:
        self.items.append((ts, *values))
        sums = self.sums
        for i, v in enumerate(values):
            sums[i] += v

    def expire(self, now: int) -> None:
        horizon = now - self.window_ns
        items, sums = self.items, self.sums
        while items and items[0][0] <= horizon:
            old = items.popleft()
            for i in range(self.k):
                sums[i] -= old[i + 1]
            self._removed += 1
        if not items:
            self.sums = [0.0] * self.k
            self._removed = 0
        elif self._removed >= RESUM_EVERY:
            self.sums = [math.fsum(it[i + 1] for it in items) for i in range(self.k)]
            self._removed = 0

    def clear(self) -> None:
        self.items.clear()
        self.sums = [0.0] * self.k
        self._removed = 0


class RollingMoments:
    """Mean and standard deviation of samples over the last ``window_ns`` (population std)."""

    __slots__ = ("_s",)

    def __init__(self, window_ns: int):
        self._s = RollingSum(window_ns, 2)

    def add(self, ts: int, x: float) -> None:
        s = self._s
        s.expire(ts)
        s.add(ts, x, x * x)

    @property
    def n(self) -> int:
        return len(self._s.items)

    def mean_std(self) -> tuple[float, float]:
        n = len(self._s.items)
        if n == 0:
            return 0.0, 0.0
        s1, s2 = self._s.sums
        mean = s1 / n
        var = s2 / n - mean * mean
        return mean, math.sqrt(var) if var > 0.0 else 0.0

    def zscore(self, x: float) -> float:
        """``x`` against the window (0 until two samples differ)."""
        mean, std = self.mean_std()
        return (x - mean) / std if std > 0.0 else 0.0

    def clear(self) -> None:
        self._s.clear()


class Persistence:
    """The weakest level a signed signal has held for ``window_ns``: ``sign * min |x|`` over the
    updates of the last ``window_ns``, once the sign has stayed the same for at least that long,
    else 0 (a spike must last before it counts)."""

    __slots__ = ("window_ns", "since", "sign", "mins")

    def __init__(self, window_ns: int):
        self.window_ns = window_ns
        self.since = 0
        self.sign = 0
        self.mins: deque[tuple[int, float]] = deque()  # increasing |x|: a monotone min-queue

    def update(self, ts: int, x: float) -> float:
        sign = (x > 0.0) - (x < 0.0)
        if sign != self.sign:
            self.sign, self.since = sign, ts
            self.mins.clear()
        if sign == 0:
            return 0.0
        a = abs(x)
        mins = self.mins
        while mins and mins[-1][1] >= a:
            mins.pop()
        mins.append((ts, a))
        horizon = ts - self.window_ns
        while mins[0][0] <= horizon:
            mins.popleft()  # the newest update always stays (its ts > horizon)
        if ts - self.since < self.window_ns:
            return 0.0
        return sign * mins[0][1]

    def clear(self) -> None:
        self.sign, self.since = 0, 0
        self.mins.clear()
