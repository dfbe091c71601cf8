"""A strategy that lives outside the bot: one file and one registration (tests/test_strategy_plugins.py).

It ignores every signal: long for ``hold_s``, then flat for ``wait_s``, again and again. It is
the smallest thing that exercises the plug-in path end to end: registration, the engine's
dispatch of its intents, the risk manager's sizing and the venue's fills.
"""

from __future__ import annotations

from bot.core.orders import Intent, IntentKind
from bot.strategies.base import INF, Context, Strategy, Wake
from bot.strategies.registry import register


class ClockStrategy(Strategy):
    name = "toy_clock"

    def __init__(self, hold_s: float, wait_s: float):
        self.hold_ns = int(hold_s * 1e9)
        self.wait_ns = int(wait_s * 1e9)
        self.next_entry = 0

    def on_state(self, ctx: Context) -> Intent | None:
        state, now, position = ctx.state, ctx.now, ctx.position
        if not state.valid:
            return None
        if position.sign == 0:
            return Intent(IntentKind.ENTER_LONG, now, "toy_clock", state.score) if now >= self.next_entry else None
        if now - position.opened_ts >= self.hold_ns:
            return Intent(IntentKind.EXIT, now, "toy_clock_exit", state.score)
        return None

    def wake(self, ctx: Context) -> Wake:
        if ctx.position.sign == 0:
            return Wake(score_above=-INF, not_before=self.next_entry)
        return Wake(deadline=ctx.position.opened_ts + self.hold_ns)

    def on_entry(self, now: int) -> None:
        self.next_entry = now + self.hold_ns + self.wait_ns

    def on_reject(self, what: str, now: int) -> None:
        self.next_entry = now + self.wait_ns


@register("toy_clock")
def build(settings, market):  # type: ignore[no-untyped-def]
    params = settings.strategy.params
    return ClockStrategy(float(params.get("hold_s", 2.0)), float(params.get("wait_s", 1.0)))
