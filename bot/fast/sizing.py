"""What the compiled kernel needs from the config and the stream before a run: the signal
parameters (the same normalized weights as :class:`~bot.signals.features.SignalEngine`) and the
ring sizes of its time windows, bounded by one pre-pass over the timestamps, so memory does not
grow with the stream (:class:`bot.fast.book.FastBook`)."""

from __future__ import annotations

import numpy as np

from bot.config.settings import SignalSection
from bot.fast import flow_kernel as FK
from bot.fast import kernel as K
from bot.fast.columnar import EventArrays
from bot.signals.features import score_weights

SCORE_FLOW_TERMS = {"trade_imbalance": FK.X_TRADE_IMBALANCE, "vwap_deviation": FK.X_VWAP_DEVIATION, "depth_depletion": FK.X_DEPTH_DEPLETION}
"""The score terms beyond the book's that the kernel adds (its ``PI_EXTRA`` bit each, weights from ``PF_W_FLOW`` in this order);
a score weighing any other feature replays readable (:func:`bot.fast.backtest.fast_path_refusal`)."""


def signal_params(cfg: SignalSection) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights, float parameters and the extra-score bits (``kernel.PI_EXTRA``) of
    :class:`~bot.signals.features.SignalEngine` for the kernel. Score terms of other features
    (mlofi, liquidations, basis) are not in the kernel: such configs replay readable
    (:func:`bot.fast.backtest.fast_path_refusal`)."""
    w = np.array([1.0 / (i + 1) if cfg.distance_weighted else 1.0 for i in range(cfg.depth_levels)], dtype=np.float64)
    w_obi, w_ofi, w_micro, extra = score_weights(cfg)
    pf = np.zeros(K.PF_SIZE, dtype=np.float64)
    pf[K.PF_W_OBI] = w_obi
    pf[K.PF_W_OFI] = w_ofi
    pf[K.PF_W_MICRO] = w_micro
    pf[K.PF_OFI_SCALE] = cfg.ofi_scale
    pf[K.PF_TAU_NS] = cfg.depth_mean_s * 1e9  # DepthDepletion.tau_ns
    bits = 0
    for name, weight in extra:
        if name in SCORE_FLOW_TERMS:
            bits |= SCORE_FLOW_TERMS[name]
            pf[K.PF_W_FLOW + list(SCORE_FLOW_TERMS).index(name)] = weight
    return w, pf, bits


def max_in_window(arrays: EventArrays, window_ns: int, sel: int = K.SEL_ALL, chunk: int = 1 << 22) -> int:
    """:func:`bot.fast.kernel.max_in_window` of the stream's timestamps, in chunks that release
    the mapped pages behind them (a memory-mapped stream is never resident as a whole)."""
    st = np.zeros(3, dtype=np.int64)
    n = len(arrays)
    best = 0
    for i0 in range(0, n, chunk):
        best = int(K.max_in_window(arrays.ts, arrays.kind, sel, window_ns, i0, min(n, i0 + chunk), st))
        if best < 0:
            break
        arrays.release(int(st[1]))
    arrays.release(n)
    return best


def ring_capacity(arrays: EventArrays, window_ns: int, sel: int = K.SEL_ALL) -> int:
    """A power of two above the most (selected) events in any ``window_ns``: the ring for a
    window that takes at most one entry per such event. One pass over the timestamps, kept in
    ``arrays.derived`` (a tuning job replays the same arrays often); timestamps that go back:
    bounded by the whole stream."""
    key = ("max_in_window", window_ns, sel)
    bound = arrays.derived.get(key)
    if bound is None:
        bound = arrays.derived[key] = max_in_window(arrays, window_ns, sel)
    need = bound + 1 if bound >= 0 else len(arrays) + 1
    cap = 1
    while cap < need:
        cap <<= 1
    return cap
