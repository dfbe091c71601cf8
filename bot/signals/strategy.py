"""Threshold strategy: the score crosses a threshold, the strategy asks to enter or exit.

It only states intent; the risk manager decides whether and how much. It is deliberately
stateless about money: it knows the sign of the position and when it was opened, nothing else.
"""

from __future__ import annotations

from bot.config.settings import StrategySection
from bot.core.orders import Intent, IntentKind
from bot.signals.features import SignalState


class ThresholdStrategy:
    """Enter when |score| >= ``enter_threshold``; exit when the score falls back through ``exit_threshold``."""

    def __init__(self, cfg: StrategySection):
        self.cfg = cfg
        self._cooldown_ns = int(cfg.cooldown_s * 1e9)
        self._max_hold_ns = int(cfg.max_holding_s * 1e9)
        self._next_entry_ts = 0

    def decide(self, state: SignalState, position_sign: int, opened_ts: int, now: int) -> Intent | None:
        if not state.valid:
            return None
        score = state.score
        cfg = self.cfg
        if position_sign == 0:
            if now < self._next_entry_ts:
                return None
            if score >= cfg.enter_threshold:
                return Intent(IntentKind.ENTER_LONG, now, "signal", score)
            if cfg.allow_short and score <= -cfg.enter_threshold:
                return Intent(IntentKind.ENTER_SHORT, now, "signal", score)
            return None
        if now - opened_ts >= self._max_hold_ns:
            return Intent(IntentKind.EXIT, now, "max_holding", score)
        if position_sign > 0 and score < cfg.exit_threshold:
            return Intent(IntentKind.EXIT, now, "signal", score)
        if position_sign < 0 and score > -cfg.exit_threshold:
            return Intent(IntentKind.EXIT, now, "signal", score)
        return None

    def cool_down(self, now: int) -> None:
        """No new entry before ``cooldown_s`` has passed (after an entry or a rejected one)."""
        self._next_entry_ts = now + self._cooldown_ns
