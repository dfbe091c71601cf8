"""Strategies: how the score becomes intents (threshold/taker) or quotes (maker).

They only state intent; the risk manager decides whether and how much. They are deliberately
stateless about money: they know the position and when it was opened, nothing else.
"""

from __future__ import annotations

import math

from bot.config.settings import SignalSection, StrategySection
from bot.core.orders import Intent, IntentKind
from bot.signals.features import SignalState


class ThresholdStrategy:
    """Enter when |score| >= ``enter_threshold``; exit when the score falls back through ``exit_threshold``.

    In ``taker`` mode an entry also needs the expected move to clear the cost of a round trip
    paid as taker: ``|score| * expected_move_bps > 2 * taker_fee_bps + spread_bps
    + 2 * slippage_bps + cost_margin_bps`` (the spread once: half on the way in, half out).
    """

    def __init__(self, cfg: StrategySection, taker_fee_bps: float = 0.0):
        self.cfg = cfg
        self.taker = cfg.mode == "taker"
        self._fixed_cost_bps = 2.0 * taker_fee_bps + 2.0 * cfg.slippage_bps + cfg.cost_margin_bps
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
            if abs(score) < cfg.enter_threshold:
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

    def clears_cost(self, state: SignalState) -> bool:
        """Does the expected move beat fees, spread, slippage and the margin?"""
        spread_bps = state.spread / state.mid * 1e4 if state.mid > 0 else math.inf
        return abs(state.score) * self.cfg.expected_move_bps > self._fixed_cost_bps + spread_bps

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


class MakerStrategy:
    """Post-only quotes around a fair price.

    fair = mid + score * signal_skew_ticks * tick - (position / cap) * inventory_skew_ticks * tick
    bid  = fair - quote_offset_ticks * tick, rounded down to the tick, never at or above the best ask
    ask  = fair + quote_offset_ticks * tick, rounded up to the tick, never at or below the best bid

    A side is pulled when order flow runs against it (tanh(OFI / ofi_scale) beyond ``pull_ofi``:
    selling pressure pulls the bid, buying pressure the ask), when the position cap is reached on
    that side, and (without shorting) the ask is only quoted to sell inventory.
    """

    def __init__(self, cfg: StrategySection, signal_cfg: SignalSection, tick: float):
        self.cfg = cfg
        self.tick = tick
        self.ofi_scale = signal_cfg.ofi_scale
        self._cooldown_ns = int(cfg.cooldown_s * 1e9)
        self._blocked_until = {"buy": 0, "sell": 0}

    def quotes(self, state: SignalState, best_bid: float, best_ask: float, position: float, cap: float, now: int) -> dict[str, float | None]:
        """Target price per side (``"buy"``/``"sell"``); None means no quote on that side."""
        if not state.valid or cap <= 0:
            return {"buy": None, "sell": None}
        cfg, tick = self.cfg, self.tick
        inventory = max(-1.0, min(1.0, position / cap))
        fair = state.mid + (state.score * cfg.signal_skew_ticks - inventory * cfg.inventory_skew_ticks) * tick
        bid = math.floor((fair - cfg.quote_offset_ticks * tick) / tick + 1e-9) * tick
        ask = math.ceil((fair + cfg.quote_offset_ticks * tick) / tick - 1e-9) * tick
        bid = min(bid, best_ask - tick)
        ask = max(ask, best_bid + tick)
        flow = math.tanh(state.ofi / self.ofi_scale)
        want_bid = flow > -cfg.pull_ofi and inventory < 1.0 and now >= self._blocked_until["buy"]
        want_ask = flow < cfg.pull_ofi and now >= self._blocked_until["sell"] and (inventory > -1.0 if cfg.allow_short else position > 0)
        return {"buy": bid if want_bid else None, "sell": ask if want_ask else None}

    def moved(self, resting_price: float, target: float) -> bool:
        return abs(resting_price - target) >= self.cfg.requote_ticks * self.tick - 1e-12

    def cool_down(self, side: str, now: int) -> None:
        """No quote on ``side`` for ``cooldown_s`` (after a rejected one)."""
        self._blocked_until[side] = now + self._cooldown_ns
