"""``mean_reversion``: enter against an imbalance the features say is exhausted.

The opposite bet to momentum. A move is *stretched* when the mid stands ``enter_z`` or more of
its own standard deviations from the rolling trade VWAP (``vwap_deviation_z``), and *exhausted*
when the aggressive flow that drove it has reversed (``trade_imbalance`` against the move by
``flow_reversal``) and, optionally, the book's pressure has turned (``depth_depletion`` against
the move by ``depletion_min``). Then it fades the move with a market order, and exits when the
price is back within ``exit_z`` of its VWAP or after ``strategy.max_holding_s``. Sizing and stops
are the risk manager's, as for every strategy.

Its conditions are not bands of the score: its wake publishes a band of ``vwap_deviation_z``
instead (every entry and exit needs z beyond one), and the compiled replay computes the features
it reads (:mod:`bot.fast.flow_kernel`), so it replays fast.
"""

from __future__ import annotations

from bot.core.orders import Intent, IntentKind
from bot.strategies.base import INF, Context, Strategy, Wake
from bot.strategies.registry import register


class MeanReversionStrategy(Strategy):
    name = "mean_reversion"
    reads_features = ("vwap_deviation_z", "trade_imbalance", "depth_depletion")

    def __init__(self, cfg, allow_short: bool, cooldown_s: float, max_holding_s: float):  # type: ignore[no-untyped-def]
        self.cfg = cfg
        self.allow_short = allow_short
        self._cooldown_ns = int(cooldown_s * 1e9)
        self._max_hold_ns = int(max_holding_s * 1e9)
        self._next_entry_ts = 0

    def on_state(self, ctx: Context) -> Intent | None:
        state, now, position = ctx.state, ctx.now, ctx.position
        if not state.valid:
            return None
        cfg = self.cfg
        z, flow, depletion = state.vwap_deviation_z, state.trade_imbalance, state.depth_depletion
        sign = position.sign
        if sign == 0:
            if now < self._next_entry_ts:
                return None
            dep = cfg.depletion_min
            if z >= cfg.enter_z and flow <= -cfg.flow_reversal and (dep is None or depletion <= -dep) and self.allow_short:
                return Intent(IntentKind.ENTER_SHORT, now, "stretched_up", z)
            if z <= -cfg.enter_z and flow >= cfg.flow_reversal and (dep is None or depletion >= dep):
                return Intent(IntentKind.ENTER_LONG, now, "stretched_down", z)
            return None
        if now - position.opened_ts >= self._max_hold_ns:
            return Intent(IntentKind.EXIT, now, "max_holding", z)
        if (sign > 0 and z >= -cfg.exit_z) or (sign < 0 and z <= cfg.exit_z):
            return Intent(IntentKind.EXIT, now, "reverted", z)
        return None

    def wake(self, ctx: Context) -> Wake:
        """Flat: after the cooldown, once ``vwap_deviation_z`` is stretched (the flow and depth
        conditions only narrow that); in a position: the time stop, or z back inside ``exit_z``."""
        cfg, position = self.cfg, ctx.position
        sign = position.sign
        if sign == 0:
            return Wake(not_before=self._next_entry_ts, feature="vwap_deviation_z",
                        feature_above=cfg.enter_z if self.allow_short else INF, feature_below=-cfg.enter_z)
        deadline = position.opened_ts + self._max_hold_ns
        if sign > 0:
            return Wake(deadline=deadline, feature="vwap_deviation_z", feature_above=-cfg.exit_z)
        return Wake(deadline=deadline, feature="vwap_deviation_z", feature_below=cfg.exit_z)

    def on_entry(self, now: int) -> None:
        self._next_entry_ts = now + self._cooldown_ns

    def on_reject(self, what: str, now: int) -> None:
        if what != IntentKind.EXIT.value:
            self._next_entry_ts = now + self._cooldown_ns


@register("mean_reversion")
def _build(settings, market):  # type: ignore[no-untyped-def]
    s = settings.strategy
    return MeanReversionStrategy(s.mean_reversion, s.allow_short, s.cooldown_s, s.max_holding_s)
