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

The score is the weighted mean of the three (weights from config, normalized by the sum of their
absolute values), so thresholds in [0, 1] mean the same thing whatever the weights.

The book is the single source of state: this class keeps only what the book cannot give back
(the previous best quotes and the OFI window).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from bot.book.book import OrderBook
from bot.config.settings import SignalSection


def ofi_term(pb: float, pbq: float, pa: float, paq: float, b: float, bq: float, a: float, aq: float) -> float:
    """CKS (2014) eq. 4: the order-flow contribution e_n of best quotes moving from
    (pb, pbq, pa, paq) to (b, bq, a, aq): bid-side inflow minus ask-side inflow."""
    e = 0.0
    if b >= pb:
        e += bq
    if b <= pb:
        e -= pbq
    if a <= pa:
        e -= aq
    if a >= pa:
        e += paq
    return e


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
        total = abs(cfg.weight_book_imbalance) + abs(cfg.weight_ofi) + abs(cfg.weight_microprice)
        norm = total if total > 0 else 1.0
        self._w_obi = cfg.weight_book_imbalance / norm
        self._w_ofi = cfg.weight_ofi / norm
        self._w_micro = cfg.weight_microprice / norm
        self.state = SignalState()

    def reset(self) -> None:
        """Forget flow history (after a resync the previous quotes are meaningless)."""
        self._ofi_terms.clear()
        self._ofi_sum = 0.0
        self._prev = None
        self.state = SignalState()

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
        b_sum = 0.0
        for i, (_, size) in enumerate(book.bids(self._levels)):
            b_sum += weights[i] * size
        a_sum = 0.0
        for i, (_, size) in enumerate(book.asks(self._levels)):
            a_sum += weights[i] * size
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
        state.score = self._w_obi * obi + self._w_ofi * ofi_norm + self._w_micro * micro_off
        state.valid = True
        return state
