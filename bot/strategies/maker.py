"""``maker``: post-only quotes around a fair price skewed by the score and by inventory.

    fair = mid + score * signal_skew_ticks * tick - (position / cap) * inventory_skew_ticks * tick
    bid  = fair - quote_offset_ticks * tick, rounded down to the tick, never at or above the best ask
    ask  = fair + quote_offset_ticks * tick, rounded up to the tick, never at or below the best bid

A side is pulled when order flow runs against it (tanh(OFI / ofi_scale) beyond ``pull_ofi``:
selling pressure pulls the bid, buying pressure the ask), when the position cap is reached on
that side, and (without shorting) the ask is only quoted to sell inventory. Optional pulls read
the streamed features: ``pull_flow`` (trade imbalance against the side) and ``pull_depletion``
(that side's depth drained against its rolling mean), ``pull_microprice`` (the touch queue's
microprice offset pointing at the side: thin bids pull the bid), ``pull_move_bps`` (a fast mid
move). With ``fill_cooldown_s`` a side that just filled waits that long before it quotes again
(a fill is evidence of one-sided flow; without it the maker keeps buying all the way down a
sweep). A resting quote is moved once its target is ``requote_ticks`` away.
"""

from __future__ import annotations

import math
from collections import deque

from bot.strategies.base import Context, Quotes, Strategy, Wake
from bot.strategies.registry import register

NO_QUOTES = {"buy": None, "sell": None}


class MakerStrategy(Strategy):
    name = "maker"

    def __init__(self, cfg, signal_cfg, tick: float):  # type: ignore[no-untyped-def]
        self.cfg = cfg
        self.tick = tick
        self.reads_features = Strategy.reads_features + (("trade_imbalance",) if cfg.pull_flow else ()) + (
            ("depth_depletion",) if cfg.pull_depletion else ()) + (("microprice_offset",) if cfg.pull_microprice else ())
        self.ofi_scale = signal_cfg.ofi_scale
        self._cooldown_ns = int(cfg.cooldown_s * 1e9)
        self._blocked_until = {"buy": 0, "sell": 0}
        self._window_ns = int(cfg.pull_window_s * 1e9)
        self._mids: deque[tuple[int, float]] = deque()
        self._quiet_from = 0
        self._fill_cooldown_ns = int(cfg.fill_cooldown_s * 1e9)
        self._last_position = 0.0

    def on_state(self, ctx: Context) -> Quotes:
        book = ctx.book
        targets = self.quotes(ctx.state, book.best_bid, book.best_ask, float(ctx.position.qty), ctx.position_cap(), ctx.now)
        return Quotes(targets["buy"], targets["sell"], self.cfg.quote_notional, self.cfg.requote_ticks * self.tick - 1e-12)

    def wake(self, ctx: Context) -> Wake:
        return Wake(every_event=True)

    def quotes(self, state, best_bid: float, best_ask: float, position: float, cap: float, now: int) -> dict[str, float | None]:  # type: ignore[no-untyped-def]
        """Target price per side (``"buy"``/``"sell"``); None means no quote on that side."""
        if not state.valid or cap <= 0:
            return dict(NO_QUOTES)
        cfg, tick = self.cfg, self.tick
        if self._fill_cooldown_ns and position != self._last_position:
            # a fill is evidence of one-sided flow: the side that filled waits before it quotes again
            # (any change of the position counts, the risk manager's exits too; a longer wait stays)
            side = "buy" if position > self._last_position else "sell"
            self._blocked_until[side] = max(self._blocked_until[side], now + self._fill_cooldown_ns)
        self._last_position = position
        inventory = max(-1.0, min(1.0, position / cap))
        fair = state.mid + (state.score * cfg.signal_skew_ticks - inventory * cfg.inventory_skew_ticks) * tick
        bid = math.floor((fair - cfg.quote_offset_ticks * tick) / tick + 1e-9) * tick
        ask = math.ceil((fair + cfg.quote_offset_ticks * tick) / tick - 1e-9) * tick
        bid = min(bid, best_ask - tick)
        ask = max(ask, best_bid + tick)
        flow = math.tanh(state.ofi / self.ofi_scale)
        want_bid = flow > -cfg.pull_ofi and inventory < 1.0 and now >= self._blocked_until["buy"]
        want_ask = flow < cfg.pull_ofi and now >= self._blocked_until["sell"] and (inventory > -1.0 if cfg.allow_short else position > 0)
        gate = cfg.quote_min_score
        if gate > 0:  # a side that opens or adds needs the score's support; one that reduces inventory does not
            if position >= 0 and state.score < gate:
                want_bid = False
            if position <= 0 and state.score > -gate:
                want_ask = False
        if cfg.pull_flow > 0:  # aggressive sellers hit bids, buyers lift asks: stand aside from the side they hit
            want_bid = want_bid and state.trade_imbalance > -cfg.pull_flow
            want_ask = want_ask and state.trade_imbalance < cfg.pull_flow
        if cfg.pull_depletion > 0:  # a side whose depth has drained against its own mean is about to give way
            want_bid = want_bid and state.depth_depletion_bid < cfg.pull_depletion
            want_ask = want_ask and state.depth_depletion_ask < cfg.pull_depletion
        if cfg.pull_microprice > 0:  # the touch queue says which way the next tick goes: stand aside from the side it points at
            want_bid = want_bid and state.microprice_offset > -cfg.pull_microprice
            want_ask = want_ask and state.microprice_offset < cfg.pull_microprice
        if cfg.pull_move_bps > 0 and self._moving(state.mid, now):
            want_bid = want_ask = False
        return {"buy": bid if want_bid else None, "sell": ask if want_ask else None}

    def _moving(self, mid: float, now: int) -> bool:
        """The mid moved ``pull_move_bps`` within ``pull_window_s``: a sweep runs over resting
        quotes, so stay out until the window has passed quietly."""
        window = self._window_ns
        marks = self._mids
        marks.append((now, mid))
        while marks and marks[0][0] < now - window:
            marks.popleft()
        lo = min(m for _, m in marks)
        hi = max(m for _, m in marks)
        if (hi - lo) / mid * 1e4 >= self.cfg.pull_move_bps:
            self._quiet_from = now + window
        return now < self._quiet_from

    def on_reject(self, what: str, now: int) -> None:
        if what in self._blocked_until:
            self.cool_down(what, now)

    def cool_down(self, side: str, now: int) -> None:
        """No quote on ``side`` for ``cooldown_s`` (after a rejected one)."""
        self._blocked_until[side] = now + self._cooldown_ns


@register("maker")
def _maker(settings, market):  # type: ignore[no-untyped-def]
    return MakerStrategy(settings.strategy, settings.signal, float(market.tick_size))
