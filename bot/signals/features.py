"""Imbalance features computed incrementally from the book after every market update.

Three views of the same pressure, each scaled to [-1, 1] so they can be blended:

* Book imbalance over the top N levels: (B - A) / (B + A) with B, A the summed bid and ask sizes,
  optionally weighting level i (0 = best) by 1 / (i + 1) so the touch counts most.
* Order flow imbalance (OFI), Cont, Kukanov & Stoikov (2014), "The price impact of order book
  events", J. Financial Econometrics 12(1), eq. (4)-(5): for consecutive best quotes n-1, n
      e_n = 1{Pb_n >= Pb_{n-1}} qb_n - 1{Pb_n <= Pb_{n-1}} qb_{n-1}
            - 1{Pa_n <= Pa_{n-1}} qa_n + 1{Pa_n >= Pa_{n-1}} qa_{n-1}
  summed over a rolling time window (``ofi_window_s``), in base units; mapped to [-1, 1] with
  tanh(OFI / ofi_scale).
* Microprice (size-weighted mid) minus mid, in half-spreads: +1 when all L1 size is on the bid.

Beside them, published on every state for strategies and research (each with its own window in
config): ``trade_imbalance``, ``vwap_deviation``/``vwap_deviation_z`` (:mod:`bot.signals.flow`),
``depth_depletion`` per side and signed (:mod:`bot.signals.depth`), multi-level OFI ``mlofi``
(:mod:`bot.signals.levels`), and on derivatives ``liquidation_flow``, ``basis_bps`` and
``funding_rate`` (:mod:`bot.signals.derivs`). Trades, liquidations and mark prices reach the
engine through :meth:`SignalEngine.observe`.

The score is the weighted mean of its inputs (weights from config, normalized by the sum of their
absolute values; the new features weigh 0 by default), so thresholds in [0, 1] mean the same
thing whatever the weights; or a fitted linear model (``[signal.model]``). Noise filters: with
``zscore_window_s`` each input enters as tanh(z/2) of its z-score against its own rolling
distribution; with ``persist_ms`` the score counts at the weakest level it held on one side for
that long (:class:`~bot.signals.rolling.Persistence`).

The book is the single source of state: this class keeps only what the book cannot give back
(the previous quotes and levels, the flow windows, the depth means).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bot.book.book import OrderBook
from bot.config.settings import SignalSection
from bot.core.events import Liquidation, MarkPrice, Trade
from bot.signals.depth import DepthDepletion
from bot.signals.derivs import DerivativeFlow
from bot.signals.flow import TradeFlow
from bot.signals.levels import MultiLevelOFI, ofi_term
from bot.signals.rolling import Persistence, RollingMoments


@dataclass(slots=True)
class SignalState:
    """Features after one update. ``valid`` is False until the book is sound."""

    ts: int = 0
    book_imbalance: float = 0.0
    ofi: float = 0.0
    microprice_offset: float = 0.0
    mid: float = math.nan
    spread: float = math.nan
    score: float = 0.0
    valid: bool = False
    trade_imbalance: float = 0.0
    vwap: float = math.nan
    vwap_deviation: float = 0.0
    vwap_deviation_z: float = 0.0
    depth_depletion_bid: float = 0.0
    depth_depletion_ask: float = 0.0
    depth_depletion: float = 0.0
    mlofi: float = 0.0
    liquidation_flow: float = 0.0
    basis_bps: float = 0.0
    funding_rate: float = 0.0


def score_weights(cfg: SignalSection) -> tuple[float, float, float, list[tuple[str, float]]]:
    """The score's normalized weights: book imbalance, OFI, microprice, and the other features
    that enter it (name, weight), in the order they are added; a feature weighing 0 is left out
    (the compiled kernel reads the same list, :func:`bot.fast.sizing.signal_params`)."""
    extra = {
        "trade_imbalance": cfg.weight_trade_imbalance, "vwap_deviation": cfg.weight_vwap_deviation,
        "depth_depletion": cfg.weight_depth_depletion, "mlofi": cfg.weight_mlofi,
        "liquidation_flow": cfg.weight_liquidation_flow, "basis": cfg.weight_basis,
    }
    total = abs(cfg.weight_book_imbalance) + abs(cfg.weight_ofi) + abs(cfg.weight_microprice) + sum(abs(w) for w in extra.values())
    norm = total if total > 0 else 1.0
    return (cfg.weight_book_imbalance / norm, cfg.weight_ofi / norm, cfg.weight_microprice / norm,
            [(name, w / norm) for name, w in extra.items() if w != 0.0])


class SignalEngine:
    """Maintains the features; call :meth:`update` after the book applied an event."""

    def __init__(self, cfg: SignalSection):
        self.cfg = cfg
        self._levels = cfg.depth_levels
        self._weights = [1.0 / (i + 1) if cfg.distance_weighted else 1.0 for i in range(cfg.depth_levels)]
        self._window_ns = int(cfg.ofi_window_s * 1e9)
        self._ofi_terms: deque[tuple[int, float]] = deque()
        self._ofi_sum = 0.0
        self._prev: tuple[float, float, float, float] | None = None
        self._w_obi, self._w_ofi, self._w_micro, self._extra = score_weights(cfg)
        self._flow = TradeFlow(cfg.trade_window_s, cfg.vwap_window_s)
        self._depth = DepthDepletion(cfg.depth_mean_s)
        self._mlofi = MultiLevelOFI(cfg.mlofi_levels, cfg.ofi_window_s)
        self._derivs = DerivativeFlow(cfg.liquidation_window_s)
        self._mlofi_scale = cfg.ofi_scale * cfg.mlofi_levels
        self._levels_needed = max(cfg.depth_levels, cfg.mlofi_levels)
        zwin = int(cfg.zscore_window_s * 1e9)
        self._z: dict[str, RollingMoments] | None = (
            {name: RollingMoments(zwin) for name in ("book_imbalance", "ofi", "microprice", *(n for n, _ in self._extra))} if zwin else None
        )
        self._persist = Persistence(int(cfg.persist_ms * 1e6)) if cfg.persist_ms > 0 else None
        self._model = cfg.model
        self.state = SignalState()

    def reset(self) -> None:
        """Forget flow history (after a resync the previous quotes are meaningless)."""
        self._ofi_terms.clear()
        self._ofi_sum = 0.0
        self._prev = None
        self._mlofi.clear()
        self._depth.clear()
        self._flow.clear()
        if self._z is not None:
            for z in self._z.values():
                z.clear()
        if self._persist is not None:
            self._persist.clear()
        self.state = SignalState()

    def observe(self, event: Trade | Liquidation | MarkPrice) -> None:
        """A market event that does not change the book: trades feed the flow features,
        liquidations and mark prices the derivative ones (read at the next book update)."""
        kind = type(event)
        if kind is Trade:
            self._flow.on_trade(event)  # type: ignore[arg-type]
        elif kind is Liquidation:
            self._derivs.on_liquidation(event)  # type: ignore[arg-type]
        elif kind is MarkPrice:
            self._derivs.on_mark(event)  # type: ignore[arg-type]

    def update(self, book: OrderBook, ts: int) -> SignalState:
        state = self.state
        state.ts = ts
        if not book.is_sound:
            if self._prev is not None:
                self.reset()
                state = self.state
                state.ts = ts
            state.valid = False
            return state

        bid, ask = book.best_bid, book.best_ask
        bq, aq = book.best_bid_size, book.best_ask_size

        # OFI term from the change of best quotes (CKS 2014, eq. 4)
        if self._prev is not None:
            e = ofi_term(*self._prev, bid, bq, ask, aq)
            if e != 0.0:
                self._ofi_terms.append((ts, e))
                self._ofi_sum += e
        self._prev = (bid, bq, ask, aq)
        horizon = ts - self._window_ns
        terms = self._ofi_terms
        while terms and terms[0][0] <= horizon:
            self._ofi_sum -= terms.popleft()[1]
        if not terms:
            self._ofi_sum = 0.0  # drop accumulated float error whenever the window empties

        # book imbalance over the top N levels
        weights = self._weights
        levels = self._levels
        bid_levels = book.bids(self._levels_needed)
        ask_levels = book.asks(self._levels_needed)
        b_sum = 0.0
        b_depth = 0.0
        for i, (_, size) in enumerate(bid_levels[:levels]):
            b_sum += weights[i] * size
            b_depth += size
        a_sum = 0.0
        a_depth = 0.0
        for i, (_, size) in enumerate(ask_levels[:levels]):
            a_sum += weights[i] * size
            a_depth += size
        depth = b_sum + a_sum
        obi = (b_sum - a_sum) / depth if depth > 0.0 else 0.0

        spread = ask - bid
        mid = (bid + ask) * 0.5
        l1 = bq + aq
        micro = (bid * aq + ask * bq) / l1 if l1 > 0.0 else mid
        micro_off = (micro - mid) / (spread * 0.5) if spread > 0.0 else 0.0

        ofi_norm = math.tanh(self._ofi_sum / self.cfg.ofi_scale)
        state.book_imbalance = obi
        state.ofi = self._ofi_sum
        state.microprice_offset = micro_off
        state.mid = mid
        state.spread = spread
        flow = self._flow
        state.trade_imbalance = flow.imbalance(ts)
        state.vwap, state.vwap_deviation, state.vwap_deviation_z = flow.deviation(ts, mid)
        dep_bid, dep_ask = self._depth.update(ts, b_depth, a_depth)
        state.depth_depletion_bid, state.depth_depletion_ask = dep_bid, dep_ask
        state.depth_depletion = dep_ask - dep_bid
        state.mlofi = self._mlofi.update(ts, bid_levels, ask_levels)
        derivs = self._derivs
        state.liquidation_flow = derivs.liquidation_flow(ts)
        state.basis_bps, state.funding_rate = derivs.basis_bps, derivs.funding_rate
        if self._model is not None:
            score = self._model_score(state)
        elif self._z is None:
            score = self._w_obi * obi + self._w_ofi * ofi_norm + self._w_micro * micro_off
            for name, w in self._extra:
                score += w * self._input(name, state)
        else:
            score = self._zscored(ts, obi, ofi_norm, micro_off, state)
        if self._persist is not None:
            score = self._persist.update(ts, score)
        state.score = score
        state.valid = True
        return state

    def _input(self, name: str, state: SignalState) -> float:
        """A new feature as it enters the score: scaled to about [-1, 1], + meaning upward pressure."""
        if name == "trade_imbalance":
            return state.trade_imbalance
        if name == "vwap_deviation":
            return math.tanh(state.vwap_deviation_z * 0.5)
        if name == "depth_depletion":
            return max(-1.0, min(1.0, state.depth_depletion))
        if name == "mlofi":
            return math.tanh(state.mlofi / self._mlofi_scale)
        if name == "liquidation_flow":
            return math.tanh(state.liquidation_flow / self.cfg.liquidation_scale)
        return math.tanh(state.basis_bps * 0.1)  # basis

    def _zscored(self, ts: int, obi: float, ofi_norm: float, micro: float, state: SignalState) -> float:
        """Each input as tanh(z/2) against its own rolling distribution, then weighted."""
        z = self._z
        assert z is not None

        def filtered(name: str, x: float) -> float:
            m = z[name]
            m.add(ts, x)
            return math.tanh(m.zscore(x) * 0.5)

        score = (self._w_obi * filtered("book_imbalance", obi) + self._w_ofi * filtered("ofi", ofi_norm)
                 + self._w_micro * filtered("microprice", micro))
        for name, w in self._extra:
            score += w * filtered(name, self._input(name, state))
        return score

    def _model_score(self, state: SignalState) -> float:
        model = self._model
        assert model is not None
        fitted = model.intercept
        for name, coef in model.coefficients.items():
            x = getattr(state, name)
            if x == x:  # a NaN input (no trades yet) adds nothing
                fitted += coef * x
        return math.tanh(fitted / model.scale_bps)
