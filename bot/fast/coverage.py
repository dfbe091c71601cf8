"""What the compiled scan covers: which configs, strategies and recordings replay on it, and why
the others go to the readable engine (a note on stderr says which rule refused them).

Split from :mod:`bot.fast.backtest` (the replay itself) because callers that only ask the question
(``bot backtest`` choosing its engine, the tuner, the tests) need none of the replay's machinery.
"""

from __future__ import annotations

from bot.config.settings import Settings, SignalSection
from bot.fast import flow_kernel as FK
from bot.fast import kernel as K
from bot.fast.columnar import EventArrays
from bot.fast.sizing import SCORE_FLOW_TERMS
from bot.signals.features import score_weights

KERNEL_FEATURES = frozenset(K.OUT_ROWS)
"""The SignalState fields the kernel computes (bit for bit, :mod:`bot.fast.kernel`, :mod:`bot.fast.flow_kernel`): its output rows."""
FLOW_FEATURES = frozenset(FK.FLOW_ROWS)


def reads_flow(cfg: SignalSection, strategy: object) -> bool:
    """Whether a replay needs the kernel's flow features: the score weighs one of them or the
    strategy reads one (``reads_features``). Else the kernel leaves them out (a third of its
    per-event time on the BTCUSDT recording, most of it the exact re-sums of the 60 s windows)."""
    weighed = {name for name, _ in score_weights(cfg)[3]}
    return bool((weighed | set(getattr(strategy, "reads_features", ()))) & FLOW_FEATURES)


def _score_refusal(cfg: SignalSection) -> str | None:
    """The score's parts the kernel does not compute: weights on mlofi, liquidations or the
    basis (their features are not in the kernel), the z-score filter, persistence, a fitted model.
    Weights on trade_imbalance, vwap_deviation and depth_depletion are (``add_flow_score``)."""
    other = [name for name, _ in score_weights(cfg)[3] if name not in SCORE_FLOW_TERMS]
    if other:
        return f"the score weighs features the compiled scan does not compute ({', '.join(other)})"
    if cfg.zscore_window_s or cfg.persist_ms or cfg.model is not None:
        return "the score uses a filter or a fitted model the compiled scan does not compute (signal.zscore_window_s, signal.persist_ms, [signal.model])"
    return None


def fast_path_refusal(settings: Settings) -> str | None:
    """Why the compiled scan cannot replay this config, or None when it can. It replays one
    instrument, spot or perpetual (linear or inverse: it values the position with
    ``Portfolio.equity``'s float expression and stops at funding times and where the modelled
    liquidation could hit), and computes the features in :data:`KERNEL_FEATURES`, so several
    instruments, a score using any other feature, a noise filter or a fitted model, and a
    strategy that reads other features replay on the readable engine. See also :func:`arrays_refusal`."""
    if len(settings.instruments) != 1:
        return "several instruments ([[markets]]) replay on the readable engine"
    reason = _score_refusal(settings.signal)
    if reason is not None:
        return reason
    from bot.core.market import market_from_section
    from bot.strategies import build

    reads = set(getattr(build(settings, market_from_section(settings.instruments[0])), "reads_features", ()))
    if not reads <= KERNEL_FEATURES:
        return f"strategy.mode {settings.strategy.mode!r} reads features the compiled scan does not compute ({', '.join(sorted(reads - KERNEL_FEATURES))})"
    return None


def replays_market(settings: Settings) -> bool:
    """Whether the compiled scan covers the config (see :func:`fast_path_refusal`)."""
    return fast_path_refusal(settings) is None


def arrays_refusal(arrays: EventArrays) -> str | None:
    """Why the compiled scan cannot replay these events, or None. The columnar encoding leaves
    out a perpetual's mark-price and liquidation messages (``meta["skipped"]``), which the
    readable engine sees (mark-price funding, the events' own clock for due orders): a recording
    that has them is replayed readable, from its files."""
    skipped = {k: v for k, v in (arrays.meta.get("skipped") or {}).items() if v}
    if skipped:
        what = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in sorted(skipped.items()))
        return f"the recording has perpetual messages the compiled scan does not replay ({what})"
    return None
