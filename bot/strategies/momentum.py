"""``momentum`` (alias ``threshold``) and ``taker``: ride the imbalance with market orders.

Enter when |score| >= ``enter_threshold``; exit when the score falls back through
``exit_threshold`` or after ``max_holding_s``. ``taker`` also needs the expected move to clear
the cost of a round trip paid as taker: ``|score| * expected_move_bps > 2 * taker_fee_bps +
spread_bps + 2 * slippage_bps + cost_margin_bps`` (the spread once: half on the way in, half out).
"""

from __future__ import annotations

import math

from bot.core.orders import Intent, IntentKind
from bot.signals.features import SignalState
from bot.strategies.base import INF, Context, Strategy, Wake
from bot.strategies.registry import register


class MomentumStrategy(Strategy):
    name = "momentum"

    def __init__(self, cfg, taker_fee_bps: float = 0.0, taker: bool = False):  # type: ignore[no-untyped-def]
        self.cfg = cfg
        self.taker = taker
        self._fixed_cost_bps = 2.0 * taker_fee_bps + 2.0 * cfg.slippage_bps + cfg.cost_margin_bps
        self._cooldown_ns = int(cfg.cooldown_s * 1e9)
        self._max_hold_ns = int(cfg.max_holding_s * 1e9)
        self._next_entry_ts = 0

    def on_state(self, ctx: Context) -> Intent | None:
        return self.decide(ctx.state, ctx.position.sign, ctx.position.opened_ts, ctx.now)

    def decide(self, state: SignalState, position_sign: int, opened_ts: int, now: int) -> Intent | None:
        if not state.valid:
            return None
        score = state.score
        cfg = self.cfg
        if position_sign == 0:
            if now < self._next_entry_ts or abs(score) < cfg.enter_threshold:
                return None
            if self.taker and not self.clears_cost(state):
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

    def wake(self, ctx: Context) -> Wake:
        cfg, sign = self.cfg, ctx.position.sign
        if sign == 0:
            return Wake(score_above=cfg.enter_threshold, score_below=-cfg.enter_threshold if cfg.allow_short else -INF,
                        not_before=self._next_entry_ts)
        deadline = ctx.position.opened_ts + self._max_hold_ns
        # the exits are strict (score < exit): the next float below is the band's edge
        if sign > 0:
            return Wake(score_below=math.nextafter(cfg.exit_threshold, -INF), deadline=deadline)
        return Wake(score_above=math.nextafter(-cfg.exit_threshold, INF), deadline=deadline)

    def clears_cost(self, state: SignalState) -> bool:
        """Does the expected move beat fees, spread, slippage and the margin?"""
        spread_bps = state.spread / state.mid * 1e4 if state.mid > 0 else math.inf
        return abs(state.score) * self.cfg.expected_move_bps > self._fixed_cost_bps + spread_bps

    def on_entry(self, now: int) -> None:
        self.cool_down(now)

    def on_reject(self, what: str, now: int) -> None:
        if what != IntentKind.EXIT.value:
            self.cool_down(now)

    def cool_down(self, now: int) -> None:
        """No new entry before ``cooldown_s`` has passed (after an entry or a rejected one)."""
        self._next_entry_ts = now + self._cooldown_ns

    @property
    def next_entry_ts(self) -> int:
        """No entry before this time (the cooldown); read by the fast replay's scan."""
        return self._next_entry_ts

    @property
    def max_hold_ns(self) -> int:
        return self._max_hold_ns

    def fast_path_params(self) -> dict[str, float] | None:
        cfg = self.cfg
        return {"enter_threshold": cfg.enter_threshold, "exit_threshold": cfg.exit_threshold,
                "max_hold_ns": self._max_hold_ns, "allow_short": 1.0 if cfg.allow_short else 0.0}


@register("momentum", "threshold")
def _momentum(settings, market):  # type: ignore[no-untyped-def]
    return MomentumStrategy(settings.strategy, settings.execution.taker_fee_bps)


@register("taker")
def _taker(settings, market):  # type: ignore[no-untyped-def]
    return MomentumStrategy(settings.strategy, settings.execution.taker_fee_bps, taker=True)
