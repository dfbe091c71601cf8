"""Feature extraction: one streaming pass over market events into numpy arrays.

A *sample* is taken after every event that changed the book while the book is sound (synced,
not crossed, both sides present) -- exactly the states the trading engine acts on. For each
sample we keep the top ``levels`` price levels of both sides and the bot's own
:class:`~bot.signals.features.SignalEngine` state; everything else (mid, spread, imbalances,
Cont-Kukanov-Stoikov OFI at every level) is computed afterwards, vectorized, from those arrays.

Two event streams are kept beside the samples because they do not change the book:

* quotes: every ``BestBidAsk`` (Binance ``bookTicker``) message in arrival order, with its CKS
  OFI term e_n against the previous quote message (the L1 quote stream CKS used, not thinned by
  the book's merge of depth diffs and quotes);
* trades: signed size, + for a buyer-aggressor (lifted the ask), - for a seller-aggressor.

Gaps: a ``BookInvalidated`` (or any other reason the book stops being sound) ends a *segment*.
The next sound sample starts a new segment; its OFI term is 0 (no previous quote in the same
segment) and the analysis never pairs samples of different segments (forward moves, intervals).

CKS OFI, Cont, Kukanov & Stoikov (2014), J. Financial Econometrics 12(1), eq. (4); multi-level
version (same formula at the m-th best level), Xu, Gould & Howison (2019) "Multi-level order-flow
imbalance in a limit order book", arXiv:1907.06230:

    e_n = 1{Pb_n >= Pb_{n-1}} qb_n - 1{Pb_n <= Pb_{n-1}} qb_{n-1}
          - 1{Pa_n <= Pa_{n-1}} qa_n + 1{Pa_n >= Pa_{n-1}} qa_{n-1}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bot.book.book import OrderBook
from bot.config.settings import SignalSection
from bot.core.events import BestBidAsk, BookDelta, BookInvalidated, BookSnapshot, Liquidation, MarketEvent, MarkPrice, Trade
from bot.signals.features import SignalEngine, ofi_term

SOURCE_SNAPSHOT, SOURCE_DELTA, SOURCE_QUOTE, SOURCE_OTHER = 0, 1, 2, 3
STREAMED = ("book_imbalance", "ofi", "microprice_offset", "trade_imbalance", "vwap_deviation", "vwap_deviation_z", "depth_depletion",
            "depth_depletion_bid", "depth_depletion_ask", "mlofi", "liquidation_flow", "basis_bps", "funding_rate")
"""The bot's own streaming features (:class:`~bot.signals.features.SignalEngine`) kept per sample,
so research measures exactly what the engine trades on."""
_SOURCE = {BookSnapshot: SOURCE_SNAPSHOT, BookDelta: SOURCE_DELTA, BestBidAsk: SOURCE_QUOTE}


def cks_terms(bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray,
              first: np.ndarray | None = None) -> np.ndarray:
    """CKS e_n between consecutive rows (row 0, and rows where ``first`` is True, get 0).

    Arrays are 1-D (one level) or 2-D (rows x levels). A missing level is a NaN price: every
    comparison with NaN is False, so a side whose level is missing now or before contributes 0.
    """
    e = np.zeros(bid_px.shape, dtype=np.float64)
    if len(bid_px) < 2:
        return e
    pb, pb0 = bid_px[1:], bid_px[:-1]
    pa, pa0 = ask_px[1:], ask_px[:-1]
    qb, qb0 = bid_sz[1:], bid_sz[:-1]
    qa, qa0 = ask_sz[1:], ask_sz[:-1]
    with np.errstate(invalid="ignore"):
        e[1:] = (np.where(pb >= pb0, qb, 0.0) - np.where(pb <= pb0, qb0, 0.0)
                 - np.where(pa <= pa0, qa, 0.0) + np.where(pa >= pa0, qa0, 0.0))
    if first is not None:
        e[first] = 0.0
    return e


@dataclass
class FeatureSet:
    """Everything the analysis needs, as numpy arrays (one row per sample unless noted)."""

    levels: int
    ts: np.ndarray            # int64 ns, local receive clock
    segment: np.ndarray       # int32: 0, 1, ... (a new segment after every loss of soundness)
    segment_end_ts: np.ndarray  # int64 per segment: when the book stopped being sound (exclusive);
                                # last segment: last event's time + 1 (the recording's end)
    source: np.ndarray        # int8: SOURCE_* of the event that produced the sample
    bid_px: np.ndarray        # (n, levels) best first; NaN where the book has fewer levels
    bid_sz: np.ndarray        # (n, levels); 0 where missing
    ask_px: np.ndarray
    ask_sz: np.ndarray
    score: np.ndarray         # SignalEngine.score, in [-1, 1]
    signal_ofi: np.ndarray    # SignalEngine rolling OFI (base units, its own window)
    quote_ts: np.ndarray      # int64 ns, every BestBidAsk message kept (see quote_e)
    quote_e: np.ndarray       # CKS e_n of each quote message vs the previous one (0 after a reset)
    quote_segment_start: np.ndarray  # bool: first quote after a reset (its e_n is 0 by construction)
    trade_ts: np.ndarray      # int64 ns
    trade_signed: np.ndarray  # + buyer-aggressor size, - seller-aggressor size
    trade_price: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)
    signal_features: dict[str, np.ndarray] = field(default_factory=dict)  # SignalState fields per sample (STREAMED)

    # ------------------------------------------------------------------ derived columns
    def __len__(self) -> int:
        return len(self.ts)

    @property
    def bid(self) -> np.ndarray:
        return self.bid_px[:, 0]

    @property
    def ask(self) -> np.ndarray:
        return self.ask_px[:, 0]

    @property
    def bid_size(self) -> np.ndarray:
        return self.bid_sz[:, 0]

    @property
    def ask_size(self) -> np.ndarray:
        return self.ask_sz[:, 0]

    @property
    def mid(self) -> np.ndarray:
        return (self.bid + self.ask) * 0.5

    @property
    def spread(self) -> np.ndarray:
        return self.ask - self.bid

    @property
    def segment_first(self) -> np.ndarray:
        """True for the first sample of each segment (no previous quote to difference against)."""
        first = np.ones(len(self.segment), dtype=bool)
        first[1:] = self.segment[1:] != self.segment[:-1]
        return first

    def l1_imbalance(self) -> np.ndarray:
        """(qb - qa) / (qb + qa) at the best level, in [-1, 1]."""
        qb, qa = self.bid_size, self.ask_size
        tot = qb + qa
        return np.divide(qb - qa, tot, out=np.zeros_like(tot), where=tot > 0)

    def book_imbalance(self, n: int | None = None) -> np.ndarray:
        """(sum bid size - sum ask size) / total over the top ``n`` levels (unweighted)."""
        n = self.levels if n is None else n
        b = self.bid_sz[:, :n].sum(axis=1)
        a = self.ask_sz[:, :n].sum(axis=1)
        tot = b + a
        return np.divide(b - a, tot, out=np.zeros_like(tot), where=tot > 0)

    def microprice_offset(self) -> np.ndarray:
        """Microprice minus mid, in price units (divide by the tick for ticks)."""
        qb, qa = self.bid_size, self.ask_size
        tot = qb + qa
        micro = np.divide(self.bid * qa + self.ask * qb, tot, out=self.mid.copy(), where=tot > 0)
        return micro - self.mid

    def ofi_levels(self) -> np.ndarray:
        """CKS e_n at each level m = 1..levels: array (n, levels); column 0 is the best level."""
        return cks_terms(self.bid_px, self.bid_sz, self.ask_px, self.ask_sz, self.segment_first)

    def ofi_book(self) -> np.ndarray:
        """CKS e_n of the book's best quotes between consecutive samples."""
        return cks_terms(self.bid, self.bid_size, self.ask, self.ask_size, self.segment_first)


class _Grow:
    """A 2-D float array that grows by doubling (rows appended one at a time)."""

    __slots__ = ("a", "n")

    def __init__(self, width: int, fill: float):
        self.a = np.full((1 << 14, width, 2), fill)
        self.n = 0

    def room(self, fill: float) -> None:
        if self.n == len(self.a):
            bigger = np.full((2 * len(self.a),) + self.a.shape[1:], fill)
            bigger[: self.n] = self.a
            self.a = bigger

    def done(self) -> tuple[np.ndarray, np.ndarray]:
        a = self.a[: self.n]
        return np.ascontiguousarray(a[:, :, 0]), np.ascontiguousarray(a[:, :, 1])


def extract_features(
    events: Iterable[MarketEvent],
    signal: SignalSection,
    levels: int = 10,
    progress: Callable[[int, int], None] | None = None,
    progress_every: int = 20_000,
) -> FeatureSet:
    """Replay ``events`` through an :class:`OrderBook` and the bot's :class:`SignalEngine`.

    ``progress(events_seen, samples)`` is called every ``progress_every`` events.
    The engine is updated after every event that changed the book, as the trading engine does.
    """
    if levels < 1:
        raise ValueError("levels must be >= 1")
    book = OrderBook()
    engine = SignalEngine(signal)
    bids = _Grow(levels, np.nan)
    asks = _Grow(levels, np.nan)
    ts: list[int] = []
    seg: list[int] = []
    src: list[int] = []
    seg_end: list[int] = []
    score: list[float] = []
    sofi: list[float] = []
    q_ts: list[int] = []
    q_e: list[float] = []
    q_first: list[bool] = []
    t_ts: list[int] = []
    t_q: list[float] = []
    t_px: list[float] = []
    counts = {"events": 0, "snapshots": 0, "deltas": 0, "quotes": 0, "trades": 0, "invalidations": 0,
              "quotes_out_of_order": 0, "trades_without_side": 0, "unsound_periods": 0,
              "ts_backwards": 0, "book_updates": 0}
    streamed: dict[str, list[float]] = {name: [] for name in STREAMED}
    prev_q: tuple[float, float, float, float, int] | None = None
    segment = -1
    sound = False
    last_ts = -(1 << 62)
    n_events = 0

    for ev in events:
        n_events += 1
        if progress is not None and n_events % progress_every == 0:
            progress(n_events, len(ts))
        t = ev.ts_local
        if t < last_ts:
            # keep every time axis sorted (searchsorted): a late message counts at the latest clock
            counts["ts_backwards"] += 1
            t = last_ts
        else:
            last_ts = t
        kind = type(ev)
        if kind is Trade or kind is Liquidation or kind is MarkPrice:
            engine.observe(ev)  # as Engine.on_event does: the flow features see every trade
            if kind is not Trade:
                continue
        if kind is Trade:
            counts["trades"] += 1
            if ev.side == "buy":
                signed = ev.size
            elif ev.side == "sell":
                signed = -ev.size
            else:
                counts["trades_without_side"] += 1
                signed = 0.0
            t_ts.append(t)
            t_q.append(signed)
            t_px.append(ev.price)
            continue
        if kind is BestBidAsk:
            counts["quotes"] += 1
            b, bq, a, aq, s = ev.bid_price, ev.bid_size, ev.ask_price, ev.ask_size, ev.sequence
            if prev_q is None:
                q_ts.append(t)
                q_e.append(0.0)
                q_first.append(True)
                prev_q = (b, bq, a, aq, s)
            elif s and prev_q[4] and s <= prev_q[4]:
                counts["quotes_out_of_order"] += 1
            else:
                q_ts.append(t)
                q_e.append(ofi_term(*prev_q[:4], b, bq, a, aq))
                q_first.append(False)
                prev_q = (b, bq, a, aq, s)
        elif kind is BookSnapshot:
            counts["snapshots"] += 1
        elif kind is BookDelta:
            counts["deltas"] += 1
        elif kind is BookInvalidated:
            counts["invalidations"] += 1
            prev_q = None

        if not book.apply(ev):
            continue
        counts["book_updates"] += 1
        state = engine.update(book, t)
        if not book.is_sound:
            if sound:
                sound = False
                seg_end.append(t)
                counts["unsound_periods"] += 1
            continue
        if not sound:
            sound = True
            segment += 1
        bids.room(np.nan)
        asks.room(np.nan)
        i = bids.n
        lv = book.bids(levels)
        bids.a[i, : len(lv)] = lv
        lv = book.asks(levels)
        asks.a[i, : len(lv)] = lv
        bids.n = asks.n = i + 1
        ts.append(t)
        seg.append(segment)
        src.append(_SOURCE.get(kind, SOURCE_OTHER))
        score.append(state.score)
        sofi.append(state.ofi)
        for name, column in streamed.items():
            column.append(getattr(state, name))

    if progress is not None:
        progress(n_events, len(ts))
    if sound:
        seg_end.append(last_ts + 1)
    counts["events"] = n_events
    counts["samples"] = len(ts)
    counts["segments"] = segment + 1
    counts["crossed_events"] = book.crossed_events
    bid_px, bid_sz = bids.done()
    ask_px, ask_sz = asks.done()
    bid_sz = np.nan_to_num(bid_sz, nan=0.0)
    ask_sz = np.nan_to_num(ask_sz, nan=0.0)
    return FeatureSet(
        levels=levels,
        ts=np.asarray(ts, dtype=np.int64),
        segment=np.asarray(seg, dtype=np.int32),
        segment_end_ts=np.asarray(seg_end, dtype=np.int64),
        source=np.asarray(src, dtype=np.int8),
        bid_px=bid_px,
        bid_sz=bid_sz,
        ask_px=ask_px,
        ask_sz=ask_sz,
        score=np.asarray(score, dtype=np.float64),
        signal_ofi=np.asarray(sofi, dtype=np.float64),
        quote_ts=np.asarray(q_ts, dtype=np.int64),
        quote_e=np.asarray(q_e, dtype=np.float64),
        quote_segment_start=np.asarray(q_first, dtype=bool),
        trade_ts=np.asarray(t_ts, dtype=np.int64),
        trade_signed=np.asarray(t_q, dtype=np.float64),
        trade_price=np.asarray(t_px, dtype=np.float64),
        counts=counts,
        signal_features={name: np.asarray(v, dtype=np.float64) for name, v in streamed.items()},
    )
