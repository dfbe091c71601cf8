"""What the risk manager publishes about when it could act next (beside the strategy's wake).

:meth:`bot.risk.manager.RiskManager.on_mark` acts (flattens, halts, lifts a halt) only when one of
these is met: equity below the floors the drawdown limit (a fraction of the running peak) and
the daily-loss limit (a fraction of the day's first equity) set, the executable exit
price through the stop or the take-profit, a new UTC day, or every event while the kill switch
file is watched or a flattening halt holds a position. Anything else leaves its decisions
unchanged, so an accelerated replay may skip such events (it must still track the equity peak,
which only raises the floor). A property test holds ``on_mark`` to it.

Beside it, where :meth:`~bot.risk.manager.RiskManager.liquidation_hit` (the modelled liquidation
of a perpetual, backtest and paper) could find the mark through the liquidation price: at or
below ``liquidation_below`` (a long) or at or above ``liquidation_above`` (a short). The band is
:meth:`bot.risk.account_rules.AccountRules.liquidation_band`, beside ``liquidation_hit`` itself.
Isolated margin: the price is the same float ``liquidation_hit`` computes (it depends only on
the position and its entry); cross margin: the wallet behind the position moves with the mark,
so the wake says every mark while a position is open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True, slots=True)
class RiskWake:
    peak_fraction: float  # equity strictly below peak x this halts (drawdown); 0 while halted
    day_floor: float  # equity strictly below this halts (daily loss); -inf while halted
    exit_floor: float  # the exit side's price at or below this exits (long: stop; short: take-profit)
    exit_cap: float  # ... at or above this exits (long: take-profit; short: stop)
    day_end: int  # ns: a new UTC day resets the daily budget and may lift a halt
    every_event: bool  # the kill switch is watched while no halt holds, or a flattening halt is working off a position
    liquidation_below: float = -INF  # a mark at or below this may liquidate the position (long); +inf: every mark
    liquidation_above: float = INF  # a mark at or above this may liquidate the position (short)

    def admits(self, equity: float, peak: float, exit_price: float, now: int) -> bool:
        """Could ``on_mark`` act at this equity (``peak`` its running maximum, this equity
        included), exit-side price and time?"""
        return (self.every_event or now >= self.day_end or equity < peak * self.peak_fraction or equity < self.day_floor
                or exit_price <= self.exit_floor or exit_price >= self.exit_cap)

    def may_liquidate(self, mark: float) -> bool:
        """Could ``liquidation_hit`` find a liquidation at this mark?"""
        return mark <= self.liquidation_below or mark >= self.liquidation_above


def risk_wake(risk: Any, portfolio: Any, day_ns: int) -> RiskWake:
    cfg = risk.cfg
    halt = risk.halt
    watching = halt is None and (risk.kill_switch_file is not None or cfg.kill_switch)
    busy = halt is not None and halt.flatten and not portfolio.is_flat
    lo, hi = -INF, INF
    if not portfolio.is_flat:
        stop = float(portfolio.stop_price) if portfolio.stop_price is not None else None
        target = float(portfolio.take_profit_price) if portfolio.take_profit_price is not None else None
        if portfolio.qty > 0:
            lo, hi = (stop if stop is not None else -INF), (target if target is not None else INF)
        else:
            lo, hi = (target if target is not None else -INF), (stop if stop is not None else INF)
    # the same float expressions as on_mark's, so a replay comparing against them agrees bit for bit
    fraction = (1.0 - cfg.max_drawdown) if halt is None else 0.0
    floor = risk.day_start_equity * (1.0 - cfg.daily_loss_limit) if halt is None else -INF
    liq_lo, liq_hi = risk.account_rules.liquidation_band(portfolio)
    return RiskWake(fraction, floor, lo, hi, (risk.day + 1) * day_ns, watching or busy, liq_lo, liq_hi)

