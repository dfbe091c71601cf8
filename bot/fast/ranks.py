"""Rank of each price among the distinct prices of a recording, as ``np.unique(.., return_inverse=True)``.

The compiled parser (:mod:`bot.fast.parse_binance`) turns every level's integer price into its
row of the price table. ``np.unique`` sorts all the levels for that (466 k on the spot BTCUSDT
recording, a tenth of the parse); a recording has far fewer distinct prices (45 k there), so
the levels are hashed to slots in one pass and only the distinct values are sorted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: a multiplicative hash's factor


@njit(cache=True, nogil=True)
def _hash_slots(units, bits):
    """Each unit's slot in an open-addressing table of ``2**bits`` slots: (keys, used, slot of
    each unit). One pass, no sort: a recording has a few ten thousand prices among its levels."""
    size = 1 << bits
    mask = size - 1
    keys = np.empty(size, np.int64)
    used = np.zeros(size, np.bool_)
    slot = np.empty(units.shape[0], np.int64)
    shift = np.uint64(64 - bits)
    for i in range(units.shape[0]):
        x = units[i]
        h = np.int64((np.uint64(x) * _GOLDEN) >> shift)
        while used[h] and keys[h] != x:
            h = (h + 1) & mask
        if not used[h]:
            used[h] = True
            keys[h] = x
        slot[i] = h
    return keys, used, slot


def ranks(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(units, return_inverse=True)`` sorting only the distinct prices, not every
    level (the sort of the levels was a tenth of the parse): hashed to slots, the few distinct
    values sorted, each level's rank looked up through its slot."""
    if units.size == 0:
        return np.unique(units, return_inverse=True)
    bits = max(4, int(2 * units.size - 1).bit_length())  # at least twice as many slots as units
    keys, used, slot = _hash_slots(units, bits)
    where = np.flatnonzero(used)
    distinct = keys[where]
    order = np.argsort(distinct, kind="stable")
    rank_of = np.empty(keys.shape[0], np.int64)
    rank_of[where[order]] = np.arange(where.shape[0], dtype=np.int64)
    return distinct[order], rank_of[slot]
