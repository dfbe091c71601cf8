"""Python handles on the compiled kernel: :class:`FastBook` owns the state arrays and runs them;
:class:`BookView` reads the kernel's book through the :class:`~bot.book.book.OrderBook` API, and
:class:`SignalView` stands in for :class:`~bot.signals.features.SignalEngine`, so the readable
engine, risk manager and paper venue can work on the kernel's state unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bot.book.book import BookStatus
from bot.config.settings import SignalSection
from bot.core.events import MarketEvent
from bot.fast import flow_kernel as FK
from bot.fast import kernel as K
from bot.fast.columnar import EventArrays
from bot.fast.sizing import ring_capacity, signal_params
from bot.signals.features import SignalState

NAN = float("nan")
_STATUS = {K.SOUND: BookStatus.SOUND, K.RESYNC: BookStatus.RESYNC, K.CROSSED: BookStatus.CROSSED, K.IMPLAUSIBLE: BookStatus.IMPLAUSIBLE}
STATUS_CODE = {status: code for code, status in _STATUS.items()}
STATUS_CODE[BookStatus.INVALID] = K.RESYNC  # never reached by the kernel: readers refuse bad prices
CHUNK = 1 << 16
_SLOTS = {"book_imbalance": K.F_OBI, "ofi": K.F_OFI, "microprice_offset": K.F_MICRO, "mid": K.F_MID, "spread": K.F_SPREAD, "score": K.F_SCORE,
          "best_bid": K.F_PB, "best_ask": K.F_PA}  # the book's best prices, as _update_signals keeps them


class FastBook:
    """Kernel state for one event stream: book sides, signal state and the OFI ring."""

    def __init__(self, arrays: EventArrays, cfg: SignalSection, price_band: float | None = None, flow: bool = True):
        """``price_band`` as for :class:`~bot.book.book.OrderBook` (None: no band). ``flow``: compute
        the trade-flow and depth features (:mod:`bot.fast.flow_kernel`); without them their
        SignalState fields keep their defaults, the kernel skips trades and the rings' pre-passes
        (for a replay that reads none of them: :func:`bot.fast.coverage.reads_flow`)."""
        self.arrays = arrays
        self.cfg = cfg
        self.scale = arrays.scale
        self.ptab = arrays.price_table()
        ranks = max(1, int(arrays.prices.shape[0]))
        self.bsz = np.zeros(ranks, dtype=np.float64)
        self.asz = np.zeros(ranks, dtype=np.float64)
        self.bbits = np.zeros((ranks >> 6) + 1, dtype=np.uint64)  # occupancy bitmaps
        self.abits = np.zeros((ranks >> 6) + 1, dtype=np.uint64)
        self.I = np.zeros(K.I_SIZE, dtype=np.int64)
        self.I[K.I_STATUS] = K.RESYNC
        self.I[K.I_BB] = -1
        self.I[K.I_BA] = ranks
        self.F = np.zeros(K.F_SIZE, dtype=np.float64)
        self.F[K.F_MID] = NAN
        self.F[K.F_SPREAD] = NAN
        self.F[K.F_LAST_MID] = NAN
        self.F[K.F_REF_MID] = NAN
        self.F[K.F_PENDING_REF] = NAN
        self.F[K.F_BAND] = math.inf if price_band is None else float(price_band)
        self.F[K.F_FLOW + FK.WF_VWAP] = NAN
        self.w, self.pf, extra = signal_params(cfg)
        self._tmp = np.zeros(64, dtype=np.int64)
        window_ns = int(cfg.ofi_window_s * 1e9)
        cap = ring_capacity(arrays, window_ns)
        self.rts = np.zeros(cap, dtype=np.int64)
        self.re = np.zeros(cap, dtype=np.float64)
        pi = self.pi = np.zeros(K.PI_SIZE, dtype=np.int64)
        pi[K.PI_LEVELS], pi[K.PI_WINDOW_NS], pi[K.PI_RING_MASK], pi[K.PI_EXTRA] = cfg.depth_levels, window_ns, cap - 1, extra
        pi[K.PI_FLOW_ON] = flow
        if extra and not flow:
            raise ValueError("the score weighs flow features: FastBook needs flow=True")
        # the flow windows' rings (bot.fast.flow_kernel): trades over each trade window, valid
        # book updates (at most one per non-trade event) over the VWAP deviation's window
        trade_ns, vwap_ns = int(cfg.trade_window_s * 1e9), int(cfg.vwap_window_s * 1e9)
        base = 0
        for k, (ns, sel) in enumerate(((trade_ns, K.SEL_TRADES), (vwap_ns, K.SEL_TRADES), (vwap_ns, K.SEL_BOOK))):
            c = ring_capacity(arrays, ns, sel) if flow else 1
            p = K.PI_FLOW + 3 * k
            pi[p + FK.WP_NS], pi[p + FK.WP_BASE], pi[p + FK.WP_MASK] = ns, base, c - 1
            base += c
        self.wts = np.zeros(base, dtype=np.int64)
        self.wv = np.zeros((2, base), dtype=np.float64)
        self.part = np.zeros(FK.PARTIALS, dtype=np.float64)  # fsum's scratch
        self.pos = 0  # next event to apply

    # ------------------------------------------------------------------ running
    def _args(self) -> tuple:
        a = self.arrays
        return (a.kind, a.ts, a.seq, a.off, a.nbid, a.lvl, a.sz)

    def _state(self) -> tuple:
        return (self.bsz, self.bbits, self.asz, self.abits, self.ptab, self.I, self.F, self.rts, self.re, self.wts, self.wv, self.part, self.w, self.pf, self.pi)

    def run_signals(self, stop: int, out_flags: np.ndarray, out_vals: np.ndarray) -> int:
        """Apply events up to ``stop`` (exclusive), writing per-event outputs; returns how many."""
        i0 = self.pos
        K.run_signals(*self._args(), i0, stop, *self._state(), out_flags, out_vals)
        self.pos = stop
        return stop - i0

    def run_count(self, stop: int, threshold: float) -> tuple[int, int, float]:
        i0 = self.pos
        out = K.run_count(*self._args(), i0, stop, *self._state(), threshold)
        self.pos = stop
        return out

    def signals_all(self, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """Run the whole stream; return (flags[n], vals[6, n]) (see ``kernel.run_signals``)."""
        n = len(self.arrays)
        flags = np.zeros(n, dtype=np.uint8)
        vals = np.zeros((len(K.OUT_ROWS), n), dtype=np.float64)
        while self.pos < n:
            i0 = self.pos
            stop = min(n, i0 + chunk)
            K.run_signals(*self._args(), i0, stop, *self._state(), flags[i0:stop], vals[:, i0:stop])
            self.pos = stop
        return flags, vals

    # ------------------------------------------------------------------ reads
    @property
    def changed(self) -> bool:
        return bool(self.I.item(K.I_CHANGED))

    def ranks(self, bids: bool, n: int, after: int | None = None) -> np.ndarray:
        """Ranks of up to ``n`` levels of a side, best first, starting after rank ``after``
        (default: from the touch)."""
        I = self.I
        count = int(I[K.I_NB] if bids else I[K.I_NA])
        n = min(max(n, 0), count)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if after is None:
            after = I.item(K.I_BB) + 1 if bids else I.item(K.I_BA) - 1
        if n > self._tmp.shape[0]:
            self._tmp = np.zeros(max(n, 2 * self._tmp.shape[0]), dtype=np.int64)
        sz, bits = (self.bsz, self.bbits) if bids else (self.asz, self.abits)
        m = K.top_levels(sz, bits, after, n, bids, self._tmp)
        return self._tmp[:m].copy()

    def top(self, bids: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Float prices and sizes of the best ``n`` levels of a side, best first (copies)."""
        r = self.ranks(bids, n)
        return self.ptab[r], (self.bsz if bids else self.asz)[r]

    def feature_slot(self, name: str) -> int:
        """The ``F`` slot holding SignalState field ``name``, or -1 when the kernel does not compute
        it here (a flow feature with ``flow=False``, or a field it never computes)."""
        if name in FK.FLOW_ROWS:
            return K.F_FLOW + FK.WF_TRADE_IMBALANCE + FK.FLOW_ROWS.index(name) if self.pi.item(K.PI_FLOW_ON) else -1
        return _SLOTS.get(name, -1)

    def state(self) -> SignalState:
        """The current :class:`SignalState` (a new object)."""
        F, I = self.F, self.I
        f = K.F_FLOW
        return SignalState(
            I.item(K.I_SIG_TS), F.item(K.F_OBI), F.item(K.F_OFI), F.item(K.F_MICRO),
            F.item(K.F_MID), F.item(K.F_SPREAD), F.item(K.F_SCORE), bool(I.item(K.I_VALID)),
            F.item(f + FK.WF_TRADE_IMBALANCE), F.item(f + FK.WF_VWAP), F.item(f + FK.WF_VWAP_DEVIATION),
            F.item(f + FK.WF_VWAP_DEVIATION_Z), F.item(f + FK.WF_DEPLETION_BID), F.item(f + FK.WF_DEPLETION_ASK),
            F.item(f + FK.WF_DEPLETION),
        )


class _Levels(Sequence):
    """The best ``n`` levels of one side as (price, size) tuples, read from the kernel in blocks
    as they are iterated: a paper fill asks for the whole side (``asks(1 << 30)``) and walks a
    few levels. Valid until the next event is applied (checked)."""

    __slots__ = ("_fb", "_bids", "_n", "_stamp", "_all")

    def __init__(self, fb: FastBook, bids: bool, n: int):
        self._fb = fb
        self._bids = bids
        self._n = min(n, int(fb.I[K.I_NB] if bids else fb.I[K.I_NA]))
        self._stamp = fb.I.item(K.I_EVENTS)
        self._all: list[tuple[float, float]] | None = None

    def _check(self) -> None:
        if self._fb.I.item(K.I_EVENTS) != self._stamp:
            raise RuntimeError("book levels read after the book moved on")

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        fb, bids = self._fb, self._bids
        ptab, sizes = fb.ptab, (fb.bsz if bids else fb.asz)
        if self._n <= 0:
            return
        # the touch straight from the kernel's state: a paper fill usually needs nothing more
        self._check()
        best = fb.I.item(K.I_BB) if bids else fb.I.item(K.I_BA)
        yield ptab.item(best), sizes.item(best)
        left = self._n - 1
        after = best
        block = 16
        while left > 0:
            self._check()
            r = fb.ranks(bids, min(block, left), after)
            if r.shape[0] == 0:
                return
            yield from zip(ptab[r].tolist(), sizes[r].tolist())
            left -= r.shape[0]
            after = int(r[-1])
            block *= 4

    def __getitem__(self, i):  # type: ignore[override]
        if self._all is None:
            self._all = list(self)
        return self._all[i]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, (list, tuple, _Levels)) else NotImplemented


class BookView:
    """The kernel's book through :class:`~bot.book.book.OrderBook`'s read API (and ``apply``).

    ``apply`` does not change anything: the kernel has already applied the event; it returns the
    kernel's answer for it. Prices come from the price table, bit-identical to the events'.
    """

    LIST_LIMIT = 256  # bids(n)/asks(n) for more levels return a sequence built on demand

    def __init__(self, fb: FastBook):
        self._fb = fb

    # ------------------------------------------------------------------ updates
    def apply(self, event: MarketEvent) -> bool:
        return self._fb.changed

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> BookStatus:
        return _STATUS[self._fb.I.item(K.I_STATUS)]

    @property
    def is_sound(self) -> bool:
        I = self._fb.I
        return I.item(K.I_STATUS) == K.SOUND and I.item(K.I_NB) > 0 and I.item(K.I_NA) > 0

    @property
    def depth_sequence(self) -> int:
        return self._fb.I.item(K.I_DEPTH_SEQ)

    @property
    def last_update_ts(self) -> int:
        return self._fb.I.item(K.I_LAST_TS)

    @property
    def crossed_events(self) -> int:
        return self._fb.I.item(K.I_CROSSED)

    @property
    def resyncs(self) -> int:
        return self._fb.I.item(K.I_RESYNCS)

    @property
    def implausible_events(self) -> int:
        return self._fb.I.item(K.I_IMPLAUSIBLE)

    @property
    def bad_prices(self) -> int:
        return 0  # the readers refuse non-positive and non-finite prices before encoding

    @property
    def ref_mid(self) -> float:
        return self._fb.F.item(K.F_REF_MID)

    @property
    def reanchors(self) -> int:
        return self._fb.I.item(K.I_REANCHORS)

    @property
    def updates(self) -> int:
        return self._fb.I.item(K.I_UPDATES)

    def age_ns(self, now: int) -> int:
        last = self.last_update_ts
        return now - last if last else 1 << 62

    # ------------------------------------------------------------------ prices
    @property
    def best_bid(self) -> float:
        fb = self._fb
        I = fb.I
        return fb.ptab.item(I.item(K.I_BB)) if I.item(K.I_NB) else NAN

    @property
    def best_ask(self) -> float:
        fb = self._fb
        I = fb.I
        return fb.ptab.item(I.item(K.I_BA)) if I.item(K.I_NA) else NAN

    @property
    def best_bid_size(self) -> float:
        fb = self._fb
        I = fb.I
        return fb.bsz.item(I.item(K.I_BB)) if I.item(K.I_NB) else 0.0

    @property
    def best_ask_size(self) -> float:
        fb = self._fb
        I = fb.I
        return fb.asz.item(I.item(K.I_BA)) if I.item(K.I_NA) else 0.0

    @property
    def mid(self) -> float:
        return (self.best_bid + self.best_ask) * 0.5

    @property
    def spread(self) -> float:
        return self.best_ask - self.best_bid

    @property
    def microprice(self) -> float:
        bq, aq = self.best_bid_size, self.best_ask_size
        if bq + aq <= 0.0:
            return self.mid
        return (self.best_bid * aq + self.best_ask * bq) / (bq + aq)

    def _side(self, bids: bool, n: int):
        if n > self.LIST_LIMIT:
            return _Levels(self._fb, bids, n)
        px, sz = self._fb.top(bids, n)
        return list(zip(px.tolist(), sz.tolist()))

    def bids(self, n: int):
        """Top ``n`` bid levels, best first."""
        return self._side(True, n)

    def asks(self, n: int):
        """Top ``n`` ask levels, best first."""
        return self._side(False, n)

    def depth(self, side: str, n: int) -> float:
        """``OrderBook.depth``: fsum of the top ``n`` sizes (read straight from the size array)."""
        fb = self._fb
        bids = side == "bid"
        return math.fsum((fb.bsz if bids else fb.asz)[fb.ranks(bids, n)].tolist())

    def size_at(self, side: str, price: float) -> float:
        """Size resting at exactly ``price`` on ``side`` (0.0 if no such level)."""
        fb = self._fb
        r = int(np.searchsorted(fb.ptab, price))
        if r >= fb.ptab.shape[0] or fb.ptab[r] != price:
            return 0.0
        return float(fb.bsz[r] if side == "bid" else fb.asz[r])

    def level_count(self) -> tuple[int, int]:
        return self._fb.I.item(K.I_NB), self._fb.I.item(K.I_NA)


class SignalView:
    """Stands in for ``Engine.signals``: ``update`` returns the state the kernel computed."""

    def __init__(self, fb: FastBook):
        self._fb = fb
        self.cfg = fb.cfg

    @property
    def state(self) -> SignalState:
        return self._fb.state()

    def update(self, book: object, ts: int) -> SignalState:
        return self._fb.state()

    def observe(self, event: object) -> None:
        """Trades: the kernel has already fed them to its flow windows. Liquidations and mark
        prices: the columnar arrays leave them out, and a config or strategy that reads the
        features they feed never takes the fast path (:func:`bot.fast.backtest.fast_path_refusal`)."""
