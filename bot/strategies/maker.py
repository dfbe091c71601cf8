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
from dataclasses import dataclass

from bot.strategies.base import INF, Context, Quotes, Strategy, Wake, quote_stands
from bot.strategies.registry import register

NO_QUOTES = {"buy": None, "sell": None}


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What the quotes are a function of, besides the position, the cap and the clock (named as
    the bands that bound them: a SignalState field or the book's best price)."""

    mid: float
    score: float
    ofi: float
    trade_imbalance: float
    depth_depletion_bid: float
    depth_depletion_ask: float
    microprice_offset: float
    best_bid: float
    best_ask: float


EVERY = Wake(every_event=True)
_BOX_FACTORS = (0.45, 0.15, 0.05)  # half-fractions of the quotes' slack tried for the hold box, widest first


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
        self._requote_distance = cfg.requote_ticks * tick - 1e-12
        self._inputs_read = ("ofi", "mid") + (("score",) if cfg.quote_min_score > 0 else ()) + (
            ("trade_imbalance",) if cfg.pull_flow > 0 else ()) + (("depth_depletion_bid", "depth_depletion_ask") if cfg.pull_depletion > 0 else ()) + (
            ("microprice_offset",) if cfg.pull_microprice > 0 else ())
        """The inputs the side conditions read (:meth:`_check`)."""

    def on_state(self, ctx: Context) -> Quotes:
        book = ctx.book
        targets = self.quotes(ctx.state, book.best_bid, book.best_ask, float(ctx.position.qty), ctx.position_cap(), ctx.now)
        return Quotes(targets["buy"], targets["sell"], self.cfg.quote_notional, self._requote_distance)

    def quotes(self, state, best_bid: float, best_ask: float, position: float, cap: float, now: int) -> dict[str, float | None]:  # type: ignore[no-untyped-def]
        """Target price per side (``"buy"``/``"sell"``); None means no quote on that side."""
        if not state.valid or cap <= 0:
            return dict(NO_QUOTES)
        if self._fill_cooldown_ns and position != self._last_position:
            # a fill is evidence of one-sided flow: the side that filled waits before it quotes again
            # (any change of the position counts, the risk manager's exits too; a longer wait stays)
            side = "buy" if position > self._last_position else "sell"
            self._blocked_until[side] = max(self._blocked_until[side], now + self._fill_cooldown_ns)
        self._last_position = position
        x = _inputs(state, best_bid, best_ask)
        want_bid, want_ask = self._sides(x, position, cap, now)
        if self.cfg.pull_move_bps > 0 and self._moving(state.mid, now):
            want_bid = want_ask = False
        bid, ask = self._prices(x, _inventory(position, cap))
        return {"buy": bid if want_bid else None, "sell": ask if want_ask else None}

    def _sides(self, x: _Inputs, position: float, cap: float, now: int) -> tuple[bool, bool]:
        """Whether the bid and the ask may quote: every input's conditions (:meth:`_check`) and the clock's."""
        want_bid = now >= self._blocked_until["buy"]
        want_ask = now >= self._blocked_until["sell"]
        for name in self._inputs_read:
            bid_ok, ask_ok = self._check(name, cap if name == "mid" else getattr(x, name), position)
            want_bid, want_ask = want_bid and bid_ok, want_ask and ask_ok
        return want_bid, want_ask

    def _check(self, name: str, value: float, position: float) -> tuple[bool, bool]:
        """(bid may quote, ask may quote) as far as input ``name`` at ``value`` goes (for ``mid``:
        ``value`` is the cap at that mid). Each is monotone in the input, which is what lets
        :meth:`wake` check a band at its two ends."""
        cfg = self.cfg
        if name == "ofi":
            flow = math.tanh(value / self.ofi_scale)
            return flow > -cfg.pull_ofi, flow < cfg.pull_ofi
        if name == "mid":  # the inventory against the cap at that mid
            inventory = _inventory(position, value)
            return inventory < 1.0, (inventory > -1.0 if cfg.allow_short else position > 0)
        if name == "score":  # a side that opens or adds needs the score's support; one that reduces inventory does not
            gate = cfg.quote_min_score
            return not (position >= 0 and value < gate), not (position <= 0 and value > -gate)
        if name == "trade_imbalance":  # aggressive sellers hit bids, buyers lift asks: stand aside from the side they hit
            return value > -cfg.pull_flow, value < cfg.pull_flow
        if name == "depth_depletion_bid":  # a side whose depth has drained against its own mean is about to give way
            return value < cfg.pull_depletion, True
        if name == "depth_depletion_ask":
            return True, value < cfg.pull_depletion
        # microprice_offset: the touch queue says which way the next tick goes: stand aside from the side it points at
        return value > -cfg.pull_microprice, value < cfg.pull_microprice

    def _fair(self, x: _Inputs, inventory: float) -> float:
        cfg = self.cfg
        return x.mid + (x.score * cfg.signal_skew_ticks - inventory * cfg.inventory_skew_ticks) * self.tick

    def _prices(self, x: _Inputs, inventory: float) -> tuple[float, float]:
        """(bid, ask) targets: non-decreasing in the mid, the score and the best prices, non-increasing in the inventory."""
        cfg, tick = self.cfg, self.tick
        fair = self._fair(x, inventory)
        bid = math.floor((fair - cfg.quote_offset_ticks * tick) / tick + 1e-9) * tick
        ask = math.ceil((fair + cfg.quote_offset_ticks * tick) / tick - 1e-9) * tick
        return min(bid, x.best_ask - tick), max(ask, x.best_bid + tick)

    # ------------------------------------------------------------------ when the quotes could move
    def wake(self, ctx: Context) -> Wake:
        """Bands around the current state inside which the engine would leave both quotes as they
        are: each side stays quoted within ``requote_ticks`` of its resting order, or stays
        unquoted with nothing resting; a blocked side's wait ends at the deadline.

        The box is checked, not assumed: every side condition is monotone in its one input, so it
        keeps its value over a band if it has it at both ends; the target prices are monotone in
        all inputs together, so their range over the box is spanned by its two extreme corners.
        A side with nothing resting while the venue's cooldown runs (:meth:`Context.quote_wait`)
        waits for its end whatever its target. Every event otherwise: a side about to be placed,
        moved or cancelled, the mid-move pull
        (its window holds the mid of every call), a fill the cooldown has not seen yet."""
        cfg, state = self.cfg, ctx.state
        if cfg.pull_move_bps > 0 or not state.valid:
            return EVERY
        position, now = float(ctx.position.qty), ctx.now
        if self._fill_cooldown_ns and position != self._last_position:
            return EVERY
        cap = ctx.cap_at(state.mid)
        if not cap > 0:
            return EVERY
        x = _inputs(state, ctx.book.best_bid, ctx.book.best_ask)
        sides = self._sides(x, position, cap, now)
        inventory = _inventory(position, cap)
        prices = self._prices(x, inventory)
        resting = (ctx.resting_quote("buy"), ctx.resting_quote("sell"))
        quoted: list[float | None] = []
        deadline = [t for t in self._blocked_until.values() if t > now]
        for side, ok, price, rest in zip(("buy", "sell"), sides, prices, resting):
            wait = ctx.quote_wait(side)
            if rest is None and now < wait:  # the venue refused one: the engine places nothing here before then
                deadline.append(wait)
            elif not quote_stands(rest, price if ok else None, self._requote_distance):
                return EVERY  # the engine places, moves or cancels this side at the next update
            quoted.append(rest)
        for factor in _BOX_FACTORS:
            bands = self._box(x, factor, inventory, quoted)
            if self._box_holds(bands, x, position, cap, ctx, quoted):
                return Wake(deadline=min(deadline) if deadline else None, bands=tuple(b for b in bands if b[1] > -INF or b[2] < INF))
        return EVERY

    def _box(self, x: _Inputs, factor: float, inventory: float, quoted: list[float | None]) -> list[tuple[str, float, float]]:
        """Candidate bands: the side conditions' thresholds (moved a hair inwards) and, while
        quoting, a box for the prices sized by ``2 * factor`` of the targets' rounding slack."""
        cfg, tick = self.cfg, self.tick
        pull = self.ofi_scale * math.atanh(min(cfg.pull_ofi, 1.0 - 1e-15))
        gate = cfg.quote_min_score
        thresholds = {"ofi": (-pull, pull), "score": (gate, -gate) if gate > 0 else (), "trade_imbalance": (cfg.pull_flow, -cfg.pull_flow),
                      "depth_depletion_bid": (cfg.pull_depletion,), "depth_depletion_ask": (cfg.pull_depletion,),
                      "microprice_offset": (cfg.pull_microprice, -cfg.pull_microprice)}
        bands = [("score", *_between(x.score, thresholds["score"]))]  # first: the price box narrows it below
        bands += [(name, *_between(getattr(x, name), thresholds[name])) for name in self._inputs_read if name not in ("mid", "score")]
        if quoted[0] is None and quoted[1] is None:  # only the inventory conditions read the mid: a wide band, checked at its ends
            width = 0.25 * factor ** 2  # 5 %, then 0.56 % and 0.06 % (a position near the cap flips them)
            bands.append(("mid", x.mid * (1.0 - width), x.mid * (1.0 + width)))
            return bands
        # the best prices stay (they move on the tick grid), so the mid does too; the score gets
        # the fair price's room before a quoted side's target crosses a whole tick, each way
        fair = self._fair(x, inventory)
        u = (fair - cfg.quote_offset_ticks * tick) / tick + 1e-9  # the bid's floor() argument
        v = (fair + cfg.quote_offset_ticks * tick) / tick - 1e-9  # the ask's ceil() argument
        ups, downs = [], []
        if quoted[0] is not None:
            ups.append(math.floor(u) + 1.0 - u)
            downs.append(u - math.floor(u))
        if quoted[1] is not None:
            ups.append(math.ceil(v) - v)
            downs.append(v - math.ceil(v) + 1.0)
        name, lo, hi = bands[0]
        if cfg.signal_skew_ticks > 0:
            bands[0] = (name, max(lo, x.score - 2 * factor * min(downs) / cfg.signal_skew_ticks),
                        min(hi, x.score + 2 * factor * min(ups) / cfg.signal_skew_ticks))
        bands += [(name, math.nextafter(v, -INF), math.nextafter(v, INF))  # "unchanged": the book's prices move a whole tick at a time
                  for name, v in (("mid", x.mid), ("best_bid", x.best_bid), ("best_ask", x.best_ask))]
        return bands

    def _box_holds(self, bands, x: _Inputs, position: float, cap: float, ctx: Context, quoted) -> bool:  # type: ignore[no-untyped-def]
        """Whether every state inside ``bands`` leaves the quotes as they are (see :meth:`wake`); ``cap``: the cap at ``x.mid``."""
        box = {name: (lo, hi) for name, lo, hi in bands}
        if any(not lo < hi for lo, hi in box.values()):
            return False
        for name in self._inputs_read:  # each input's conditions at the ends of its band (just inside: the band is open)
            if name == "mid" and position == 0:
                continue  # no inventory whatever the cap
            lo, hi = box[name]
            current = self._check(name, cap if name == "mid" else getattr(x, name), position)
            # an open end is checked at the largest float (nextafter(inf) is DBL_MAX): tanh saturates
            # before it, so a threshold computed in floats cannot hide a flip beyond it
            for end in (math.nextafter(lo, INF), math.nextafter(hi, -INF)):
                if name == "mid":
                    end = ctx.cap_at(end)
                    if not end > 0:
                        return False
                if self._check(name, end, position) != current:
                    return False
        if quoted[0] is None and quoted[1] is None:
            return True
        # the corners: the band's innermost floats (it is open), each input at its low end, then its high one
        box = {name: (math.nextafter(lo, INF), math.nextafter(hi, -INF)) for name, (lo, hi) in box.items()}
        mid_lo, mid_hi = box["mid"]
        inv = [_inventory(position, ctx.cap_at(m)) for m in (mid_lo, mid_hi)]
        score_lo, score_hi = box["score"] if self.cfg.signal_skew_ticks > 0 else (x.score, x.score)  # no skew: the prices do not read it
        low = _Inputs(mid_lo, score_lo, x.ofi, x.trade_imbalance, x.depth_depletion_bid, x.depth_depletion_ask, x.microprice_offset, box["best_bid"][0], box["best_ask"][0])
        high = _Inputs(mid_hi, score_hi, x.ofi, x.trade_imbalance, x.depth_depletion_bid, x.depth_depletion_ask, x.microprice_offset, box["best_bid"][1], box["best_ask"][1])
        for corner, inventory in ((low, max(inv)), (high, min(inv))):  # the targets' extremes over the box
            for price, rest in zip(self._prices(corner, inventory), quoted):
                if rest is not None and not quote_stands(rest, price, self._requote_distance):
                    return False
        return True

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


def _inventory(position: float, cap: float) -> float:
    """The position against the cap, clamped to [-1, 1]."""
    return max(-1.0, min(1.0, position / cap))


def _inputs(state, best_bid: float, best_ask: float) -> _Inputs:  # type: ignore[no-untyped-def]
    return _Inputs(state.mid, state.score, state.ofi, state.trade_imbalance, state.depth_depletion_bid, state.depth_depletion_ask,
                   state.microprice_offset, best_bid, best_ask)


def _between(x: float, thresholds: tuple[float, ...]) -> tuple[float, float]:
    """The open band around ``x`` up to the nearest threshold on each side, moved a hair inwards
    (a threshold computed in floats may sit an ulp off the comparison it stands for)."""
    lo = max((t for t in thresholds if t <= x), default=-INF)
    hi = min((t for t in thresholds if t >= x), default=INF)
    hair = 1e-9 * (abs(x) + 1.0)
    return (lo + hair if lo > -INF else lo), (hi - hair if hi < INF else hi)


@register("maker")
def _maker(settings, market):  # type: ignore[no-untyped-def]
    return MakerStrategy(settings.strategy, settings.signal, float(market.tick_size))
