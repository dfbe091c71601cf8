"""What the risk manager publishes about when it could act next (beside the strategy's wake).

:meth:`bot.risk.manager.RiskManager.on_mark` acts (flattens, halts, lifts a halt) only when one of
these is met: equity below the floor the drawdown and daily-loss limits set, the executable exit
price through the stop or the take-profit, a new UTC day, or every event while the kill switch
file is watched or a flattening halt holds a position. Anything else leaves its decisions
unchanged, so an accelerated replay may skip such events (it must still track the equity peak,
which only raises the floor). A property test holds ``on_mark`` to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True, slots=True)
class RiskWake:
    equity_floor: float  # equity strictly below this halts (drawdown or daily loss)
    exit_floor: float  # the exit side's price at or below this exits (long: stop; short: take-profit)
    exit_cap: float  # ... at or above this exits (long: take-profit; short: stop)
    day_end: int  # ns: a new UTC day resets the daily budget and may lift a halt
    every_event: bool  # the kill switch file is watched, or a flattening halt is still working off a position

    def admits(self, equity: float, exit_price: float, now: int) -> bool:
        return (self.every_event or equity < self.equity_floor or now >= self.day_end
                or exit_price <= self.exit_floor or exit_price >= self.exit_cap)


def risk_wake(risk: Any, portfolio: Any, day_ns: int) -> RiskWake:
    cfg = risk.cfg
    floor = max(risk.peak_equity * (1.0 - cfg.max_drawdown), risk.day_start_equity * (1.0 - cfg.daily_loss_limit))
    halt = risk.halt
    watching = risk.kill_switch_file is not None or cfg.kill_switch
    busy = halt is not None and halt.flatten and not portfolio.is_flat
    lo, hi = -INF, INF
    if not portfolio.is_flat:
        stop = float(portfolio.stop_price) if portfolio.stop_price is not None else None
        target = float(portfolio.take_profit_price) if portfolio.take_profit_price is not None else None
        if portfolio.qty > 0:
            lo, hi = (stop if stop is not None else -INF), (target if target is not None else INF)
        else:
            lo, hi = (target if target is not None else -INF), (stop if stop is not None else INF)
    if halt is not None:
        floor = -INF  # halted already: no new halt from equity
    return RiskWake(floor, lo, hi, (risk.day + 1) * day_ns, watching or busy)
