"""Compiled trade-flow and depth features: :mod:`bot.signals.flow`, :mod:`bot.signals.depth` and
:class:`~bot.signals.rolling.RollingSum` over flat arrays, for :mod:`bot.fast.kernel`.

Three time windows, each a :class:`RollingSum` of two values, live as ring segments of one pair
of arrays (``wts[base + slot]``, ``wv[0|1, base + slot]``; capacity a power of two, bounded by a
pre-pass over the timestamps, :func:`bot.fast.sizing.ring_capacity`):

* ``W_FLOW``: buyer- and seller-aggressor volume over ``signal.trade_window_s`` (trades);
* ``W_VWAP``: p·q and q over ``signal.vwap_window_s`` (trades);
* ``W_DEV``: the VWAP deviation and its square over the same window (valid book updates), the
  :class:`~bot.signals.rolling.RollingMoments` behind ``vwap_deviation_z``.

Each window follows ``RollingSum`` statement for statement: entries at or before ``now - window``
leave from the front, each removal subtracts its values from the running sums, the sums are set
to 0.0 whenever the window empties and recomputed exactly (:func:`fsum`, CPython's
``math.fsum``, which numba does not provide) once ``RESUM_EVERY`` removals have accumulated.
Expiry happens at the same calls as in the readable code (before each add, and where the
features are read), so the sums are the same floats at every event.

These functions are inlined into :mod:`bot.fast.kernel`'s compiled code. numba's on-disk cache
checks only the source file of the function it caches, so the cache directory is keyed on every
module of this package (:mod:`bot.fast`): an edit here compiles afresh.
"""

from __future__ import annotations

import math

import numpy as np

from bot.fast.jitopts import jit, jit_inline
from bot.signals.rolling import RESUM_EVERY

W_FLOW, W_VWAP, W_DEV = 0, 1, 2
N_WINDOWS = 3

# integer state slots (from I_BASE in the kernel's I array): per window head, count, removals
WI_HEAD, WI_COUNT, WI_REMOVED = 0, 1, 2
WI_DEPTH_LAST_TS = 3 * N_WINDOWS  # DepthDepletion.last_ts
WI_SIZE = WI_DEPTH_LAST_TS + 1
# float state slots (from F_BASE): per window the two sums, then the depth means and the features
WF_DEPTH_MEAN_BID = 2 * N_WINDOWS
WF_DEPTH_MEAN_ASK = WF_DEPTH_MEAN_BID + 1
WF_TRADE_IMBALANCE = WF_DEPTH_MEAN_BID + 2
WF_VWAP = WF_DEPTH_MEAN_BID + 3
WF_VWAP_DEVIATION = WF_DEPTH_MEAN_BID + 4
WF_VWAP_DEVIATION_Z = WF_DEPTH_MEAN_BID + 5
WF_DEPLETION_BID = WF_DEPTH_MEAN_BID + 6
WF_DEPLETION_ASK = WF_DEPTH_MEAN_BID + 7
WF_DEPLETION = WF_DEPTH_MEAN_BID + 8
WF_SIZE = WF_DEPLETION + 1
# SignalState fields in the order of the WF_ feature slots (run_signals' extra output rows)
FLOW_ROWS = ("trade_imbalance", "vwap", "vwap_deviation", "vwap_deviation_z", "depth_depletion_bid", "depth_depletion_ask", "depth_depletion")
N_FLOW_ROWS = len(FLOW_ROWS)

# integer parameters (from a base in the kernel's pi array): per window its length in ns, ring base, ring mask
WP_NS, WP_BASE, WP_MASK = 0, 1, 2
WP_SIZE = 3 * N_WINDOWS

PARTIALS = 2112  # fsum's partials never exceed the 2098 bit positions of a double (non-overlapping)


# --------------------------------------------------------------------------- exact sum
@jit
def fsum(v, base, head, count, mask, part):
    """``math.fsum`` of ``v[base + ((head + k) & mask)]`` for k < count, with CPython's algorithm
    (Shewchuk's non-overlapping partials, then a round-half-even fix-up across the last two) so
    the result is the same correctly rounded float. ``part``: scratch of PARTIALS floats."""
    n = 0
    special = 0.0
    inf_sum = 0.0
    for k in range(count):
        x = v[base + ((head + k) & mask)]
        xsave = x
        i = 0
        for j in range(n):  # branch-free: the swap is a select, the store unconditional (i <= j)
            y = part[j]
            swap = abs(x) < abs(y)
            a = y if swap else x
            b = x if swap else y
            hi = a + b
            yr = hi - a
            lo = b - yr
            part[i] = lo
            i += lo != 0.0
            x = hi
        n = i
        if x != 0.0:
            if not math.isfinite(x):
                if math.isfinite(xsave):
                    raise OverflowError("intermediate overflow in fsum")
                if math.isinf(xsave):
                    inf_sum += xsave
                special += xsave
                n = 0
            else:
                if n >= PARTIALS:
                    raise ValueError("fsum partials exceeded")
                part[n] = x
                n += 1
    if special != 0.0:
        if math.isnan(inf_sum):
            raise ValueError("-inf + inf in fsum")
        return special
    hi = 0.0
    if n > 0:
        n -= 1
        hi = part[n]
        lo = 0.0
        while n > 0:
            x = hi
            n -= 1
            y = part[n]
            hi = x + y
            yr = hi - x
            lo = y - yr
            if lo != 0.0:
                break
        if n > 0 and ((lo < 0.0 and part[n - 1] < 0.0) or (lo > 0.0 and part[n - 1] > 0.0)):
            y = lo * 2.0
            x = hi + y
            yr = x - hi
            if y == yr:
                hi = x
    return hi


# --------------------------------------------------------------------------- RollingSum
# Each operation loads a window's state into locals once and stores it once: a store to the
# state arrays in between would order every later load behind it (numba cannot tell LLVM that
# the arrays do not overlap), which made the kernel twice as slow.
@jit_inline
def _expired(wts, wv, part, base, mask, horizon, head, count, removed, s0, s1):
    """``RollingSum.expire``'s loop and drift rules on a window's state (returned, not stored)."""
    while count > 0 and wts[base + head] <= horizon:
        s0 -= wv[0, base + head]
        s1 -= wv[1, base + head]
        head = (head + 1) & mask
        count -= 1
        removed += 1
    if count == 0:
        s0 = 0.0
        s1 = 0.0
        removed = 0
    elif removed >= RESUM_EVERY:
        s0 = fsum(wv[0], base, head, count, mask, part)
        s1 = fsum(wv[1], base, head, count, mask, part)
        removed = 0
    return head, count, removed, s0, s1


@jit_inline
def win_update(k, now, add, v0, v1, I, ib, F, fb, wts, wv, part, pi, pb):
    """``RollingSum.expire(now)`` on window ``k``, then, if ``add``, ``RollingSum.add(now, v0, v1)``;
    returns the window's two sums and its length."""
    p = pb + 3 * k
    mask = pi[p + WP_MASK]
    base = pi[p + WP_BASE]
    s = ib + 3 * k
    f = fb + 2 * k
    head = I[s + WI_HEAD]
    count = I[s + WI_COUNT]
    removed = I[s + WI_REMOVED]
    s0 = F[f]
    s1 = F[f + 1]
    if count > 0 and (wts[base + head] <= now - pi[p + WP_NS] or removed >= RESUM_EVERY):
        head, count, removed, s0, s1 = _expired(wts, wv, part, base, mask, now - pi[p + WP_NS], head, count, removed, s0, s1)
    elif count == 0:
        s0 = 0.0
        s1 = 0.0
        removed = 0
    elif not add:
        return s0, s1, count  # nothing left the window: the state stands
    if add:
        if count > mask:
            raise ValueError("flow window ring capacity exceeded")
        slot = base + ((head + count) & mask)
        wts[slot] = now
        wv[0, slot] = v0
        wv[1, slot] = v1
        count += 1
        s0 += v0
        s1 += v1
    F[f] = s0
    F[f + 1] = s1
    I[s + WI_HEAD] = head
    I[s + WI_COUNT] = count
    I[s + WI_REMOVED] = removed
    return s0, s1, count


@jit_inline
def win_clear(k, I, ib, F, fb):
    """``RollingSum.clear()`` on window ``k``."""
    s = ib + 3 * k
    I[s + WI_HEAD] = 0
    I[s + WI_COUNT] = 0
    I[s + WI_REMOVED] = 0
    F[fb + 2 * k] = 0.0
    F[fb + 2 * k + 1] = 0.0


@jit_inline
def moments_add(t, x, I, ib, F, fb, wts, wv, part, pi, pb):
    """``RollingMoments.add(t, x)`` then ``.zscore(x)`` on window W_DEV."""
    s1, s2, count = win_update(W_DEV, t, True, x, x * x, I, ib, F, fb, wts, wv, part, pi, pb)
    mean = s1 / count  # RollingMoments.mean_std (count >= 1 after the add)
    var = s2 / count - mean * mean
    std = math.sqrt(var) if var > 0.0 else 0.0
    return (x - mean) / std if std > 0.0 else 0.0


# --------------------------------------------------------------------------- features
@jit_inline
def observe_trade(t, price, q, buy, I, ib, F, fb, wts, wv, part, pi, pb):
    """``TradeFlow.on_trade``: a trade enters the flow and VWAP windows (trades are facts of the
    tape: they count whatever the book's state)."""
    if not q > 0.0 or not price > 0.0:
        return
    if buy:
        win_update(W_FLOW, t, True, q, 0.0, I, ib, F, fb, wts, wv, part, pi, pb)
    else:
        win_update(W_FLOW, t, True, 0.0, q, I, ib, F, fb, wts, wv, part, pi, pb)
    win_update(W_VWAP, t, True, price * q, q, I, ib, F, fb, wts, wv, part, pi, pb)


@jit_inline
def update_flow(t, mid, b_depth, a_depth, tau_ns, I, ib, F, fb, wts, wv, part, pi, pb):
    """The flow and depth part of ``SignalEngine.update`` for a valid book at ``t``:
    ``TradeFlow.imbalance``, ``TradeFlow.deviation`` and ``DepthDepletion.update``."""
    b, s, _ = win_update(W_FLOW, t, False, 0.0, 0.0, I, ib, F, fb, wts, wv, part, pi, pb)
    total = b + s
    F[fb + WF_TRADE_IMBALANCE] = (b - s) / total if total > 0.0 else 0.0

    pq, q, _ = win_update(W_VWAP, t, False, 0.0, 0.0, I, ib, F, fb, wts, wv, part, pi, pb)
    vwap = pq / q if q > 0.0 else np.nan
    if not vwap > 0.0:
        F[fb + WF_VWAP] = np.nan
        F[fb + WF_VWAP_DEVIATION] = 0.0
        F[fb + WF_VWAP_DEVIATION_Z] = 0.0
    else:
        dev = (mid - vwap) / vwap * 1e4
        F[fb + WF_VWAP] = vwap
        F[fb + WF_VWAP_DEVIATION] = dev
        F[fb + WF_VWAP_DEVIATION_Z] = moments_add(t, dev, I, ib, F, fb, wts, wv, part, pi, pb)

    last = I[ib + WI_DEPTH_LAST_TS]
    mb = F[fb + WF_DEPTH_MEAN_BID]
    ma = F[fb + WF_DEPTH_MEAN_ASK]
    if last == 0 or mb <= 0.0 or ma <= 0.0:
        F[fb + WF_DEPTH_MEAN_BID] = b_depth
        F[fb + WF_DEPTH_MEAN_ASK] = a_depth
        I[ib + WI_DEPTH_LAST_TS] = t
        bid = 0.0
        ask = 0.0
    else:
        bid = 1.0 - b_depth / mb
        ask = 1.0 - a_depth / ma
        w = 1.0 - math.exp(-(t - last) / tau_ns) if t > last else 0.0
        F[fb + WF_DEPTH_MEAN_BID] = mb + w * (b_depth - mb)
        F[fb + WF_DEPTH_MEAN_ASK] = ma + w * (a_depth - ma)
        I[ib + WI_DEPTH_LAST_TS] = t
    F[fb + WF_DEPLETION_BID] = bid
    F[fb + WF_DEPLETION_ASK] = ask
    F[fb + WF_DEPLETION] = ask - bid


@jit_inline
def reset_flow(I, ib, F, fb):
    """``SignalEngine.reset``'s flow part: the deviation's moments and the depth means go (the
    trade windows stay), and the features return to ``SignalState()``'s defaults."""
    win_clear(W_DEV, I, ib, F, fb)
    I[ib + WI_DEPTH_LAST_TS] = 0
    F[fb + WF_DEPTH_MEAN_BID] = 0.0
    F[fb + WF_DEPTH_MEAN_ASK] = 0.0
    F[fb + WF_TRADE_IMBALANCE] = 0.0
    F[fb + WF_VWAP] = np.nan
    F[fb + WF_VWAP_DEVIATION] = 0.0
    F[fb + WF_VWAP_DEVIATION_Z] = 0.0
    F[fb + WF_DEPLETION_BID] = 0.0
    F[fb + WF_DEPLETION_ASK] = 0.0
    F[fb + WF_DEPLETION] = 0.0


# bits of the kernel's "extra score terms" parameter: which flow features have a weight
X_TRADE_IMBALANCE, X_VWAP_DEVIATION, X_DEPTH_DEPLETION = 1, 2, 4


@jit_inline
def add_flow_score(score, F, fb, pf, pfb, extra):
    """``SignalEngine.update``'s ``score += w * _input(name)`` for the flow features, in the
    readable order, each only when its weight is not zero (bits of ``extra``); the weights are
    ``pf[pfb + 0..2]``. (Adding a zero term would turn a -0.0 score into 0.0.)"""
    if extra & X_TRADE_IMBALANCE:
        score += pf[pfb] * F[fb + WF_TRADE_IMBALANCE]
    if extra & X_VWAP_DEVIATION:
        score += pf[pfb + 1] * math.tanh(F[fb + WF_VWAP_DEVIATION_Z] * 0.5)
    if extra & X_DEPTH_DEPLETION:
        x = F[fb + WF_DEPLETION]
        x = x if x < 1.0 else 1.0  # min(1.0, x)
        x = x if x > -1.0 else -1.0  # max(-1.0, x)
        score += pf[pfb + 2] * x
    return score
