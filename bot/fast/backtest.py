"""Fast backtest: the compiled kernel runs the book and signals on every event; the readable
:class:`~bot.engine.engine.Engine` runs only on the events where it could do something.

How it works. :class:`FastReplay` gives a normal ``Engine`` (risk manager, strategy, paper
venue, portfolio, store) a :class:`~bot.fast.book.BookView` of the kernel's book as ``engine.book``
and a :class:`~bot.fast.book.SignalView` as ``engine.signals``. The kernel's ``run_scan`` applies
events until :func:`bot.fast.kernel._must_stop` says the engine may act on one; that event is
then rebuilt (:func:`~bot.fast.columnar.event_at`, without a depth event's levels: the kernel
has applied them and nothing after ``book.apply`` reads them) and passed to the unchanged
``Engine.on_event``: its ``book.apply`` returns the kernel's answer, its ``signals.update`` the
kernel's state, and everything after that (soundness changes, fills, equity, ``on_mark``,
halts, the strategy, risk checks, orders, store writes, logs) is the readable code itself.

Why a skipped event cannot change any decision. ``Engine.on_event`` does, in order:

1. ``book.apply`` -- the kernel does it for every event. A perpetual's funding
   (``Engine._funding``) when ``now`` reaches ``FundingClock.next_ts`` (the first event, then each
   funding time: a few events a day) -- the scan stops there. Mark-price messages would fund and
   mark too, but the columnar arrays leave them out, so a recording with them replays readable
   (:func:`arrays_refusal`); without them ``FundingClock.feed_next`` stays 0 and nothing else in
   the funding step runs.
2. ``_soundness_changed`` when ``book.is_sound != engine.sound_seen`` or the book's status is not
   ``engine.status_seen`` -- the scan stops there.
3. ``venue.on_book`` while the venue is active -- ``PaperVenue`` does nothing unless the book is
   sound and its earliest due time (first pending order or cancel) has come: the scan stops
   then. Its resting orders (maker quotes, up to ``MAX_RESTING``) change only where
   :meth:`PaperVenue.resting_wake` says they could: the other side's best price at or through
   the order's, a trade by the side that hits it at or through its price, or the size at its
   price outside the band that leaves its queue as it is. The scan stops there. More resting
   orders, or a venue whose state it cannot read: it stops at every event.
4. return unless the book changed; ``signals.update`` -- the kernel (same floats, see
   :mod:`bot.fast.kernel`); return unless the state is valid. Maker fills waiting for their
   markout mids (:mod:`bot.engine.markouts`): the scan stops at the first changed book at or
   after the earliest horizon (``Markouts.next_due``).
5. ``last_mid``, the ``spread_sum``/``spread_n`` accumulator (cost hurdle) and, when
   ``now >= next_equity_ts``, an equity point -- reproduced: the kernel keeps the last mid, adds
   ``spread / mid`` term by term in event order, and writes each sample's (ts, mid) while it
   advances ``next_equity_ts`` with the engine's formula; :meth:`Engine.absorb_skipped` then
   records each sample with the portfolio (which only changes on handled events) and checks
   that both schedules agree. Then, with a perpetual position open, the modelled liquidation
   (``risk.liquidation_hit``) -- it acts only where the risk manager's wake says the mid could
   have passed the liquidation price (``liquidation_below``/``liquidation_above``: for isolated
   margin the very float ``liquidation_hit`` compares against, since it depends on the position
   alone; for cross margin every mark). The scan stops there, work in flight or not.
6. return if an order is in flight (``venue.has_pending``).
7. ``risk.on_mark``: raises the peak equity -- reproduced, the running maximum of the equity
   with ``Portfolio.equity``'s float expression: ``equity_cash + equity_qty * mid`` (spot: cash
   and position; linear: the wallet less the cost basis, and the contracts times their size) or
   ``equity_cash + equity_inv / mid`` (inverse). Everything else it does
   (roll the day, halt, flatten, fire a stop or a target) happens only where its published wake
   (:meth:`bot.risk.manager.RiskManager.wake`) says it could: at the day's end, below the
   drawdown floor (a fraction of the tracked peak) or the daily-loss floor, with the exit side's
   price at or through the exit floor or cap (widened by two float ulps: a superset of the exact
   float-vs-Decimal comparison), or at every mark (kill switch watched, a flattening halt with a
   position). The scan stops there.
8. the strategy: it acts only where its published wake (:meth:`bot.strategies.base.Strategy.wake`)
   says it could (property tests hold every built-in to it): at or after ``not_before`` with the
   score (or the one feature it names) at or beyond a band, at a deadline, once a value leaves
   one of its hold ``bands`` (the maker: around its resting quotes, so that inside them
   ``Quoting._quote`` would leave both as they are), or at every mark. The scan stops there. No
   strategy rule is copied into the kernel: any registered strategy replays fast. While work is
   in flight the strategy is not asked (step 6 returns first).

So a skipped event produces no intent, no order and no store write besides its equity point,
and every other event goes through the readable engine. Stopping more often than needed costs
time, never correctness; the equivalence test compares orders, fills, positions, round trips,
equity points, risk events and run counters row for row.

A strategy that wakes on every mark makes the scan stop at every changed book: it replays
through the fast path, but at the readable engine's speed. The maker does so only while a side is
about to be placed, moved or cancelled, where the venue's queue model could move, and at its
markout horizons (9.4 % of the events of the BTCUSDT recording are handled by the engine, most
of them the cancel / latency / place cycle of its requotes and the trades at its quotes' prices).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bot.config.settings import Settings
from bot.engine.engine import Engine
from bot.engine.runner import run_backtest, run_engine_backtest
from bot.core.orders import Side
from bot.execution.paper import PaperVenue
from bot.fast import kernel as K
from bot.fast.book import CHUNK, STATUS_CODE, BookView, FastBook, SignalView
from bot.fast.columnar import EventArrays, event_at, iter_events
from bot.fast.coverage import KERNEL_FEATURES, arrays_refusal, fast_path_refusal, reads_flow, replays_market
from bot.store.store import Store
from bot.strategies import Wake

_NO_WAKE = Wake()
RELEASE_EVERY = 1 << 20  # events between two page releases of a memory-mapped stream (a syscall per column)


def _widen(price: float, up: bool) -> float:
    """``price`` (a float of a Decimal, or an infinity) moved two ulps ``up`` (or down): a
    conservative float threshold for a comparison the engine makes against the Decimal."""
    if math.isinf(price):
        return price
    step = math.inf if up else -math.inf
    return math.nextafter(math.nextafter(price, step), step)


class FastReplay:
    """Drives one :class:`Engine` over columnar events with the kernel (see the module docstring).

    Memory: nothing per event is kept; the sample buffers are ``chunk`` long, and every
    ``RELEASE_EVERY`` events the pages of memory-mapped columns behind the scan are given back
    (:meth:`EventArrays.release`), so a replay of any length runs in the same resident memory."""

    def __init__(self, engine: Engine, arrays: EventArrays, chunk: int = CHUNK):
        self.engine = engine
        self.arrays = arrays
        self.chunk = chunk
        self.fb = FastBook(arrays, engine.settings.signal, price_band=engine.book.price_band, flow=reads_flow(engine.settings.signal, engine.strategy))
        self.view = BookView(self.fb)
        engine.book = self.view  # type: ignore[assignment]
        engine.signals = SignalView(self.fb)  # type: ignore[assignment]
        self.si = np.zeros(K.S_ISIZE, dtype=np.int64)
        self.sf = np.zeros(K.SF_FSIZE, dtype=np.float64)
        # item writes through a memoryview cost a third of numpy's per-item or fancy assignment
        self._si, self._sf = memoryview(self.si), memoryview(self.sf)
        self._paper = isinstance(engine.venue, PaperVenue)
        self._sync_static()
        self.smp_ts = np.zeros(chunk, dtype=np.int64)
        self.smp_mid = np.zeros(chunk, dtype=np.float64)
        self.handled = 0  # events given to Engine.on_event
        self.samples = 0  # equity points recorded for skipped events
        self.scans = 0
        self.scan_s = 0.0  # time in the kernel scan
        self.engine_s = 0.0  # time in Engine.on_event (handled events)
        self.absorb_s = 0.0  # time recording the skipped events' equity points

    # ------------------------------------------------------------------ parameters
    def _sync_static(self) -> None:
        """What the scan needs that cannot change during a run (config-derived)."""
        self.si[K.S_EQUITY_INTERVAL] = self.engine.equity_interval_ns

    def _sync(self) -> None:
        """Copy what the scan needs from the engine's objects (they only change on handled events):
        the venue's schedule, the portfolio's valuation, and what the risk manager and the strategy
        publish about when they could act next (their ``wake``)."""
        e = self.engine
        venue, pf, risk = e.venue, e.portfolio, e.risk
        pending = venue.has_pending
        if self._paper:
            due = venue.next_due()
            resting = venue.resting_wake()
            stop_all = len(resting) > K.MAX_RESTING
            self._watch_resting([] if stop_all else resting)
            due = -1 if due is None else due
        else:  # a venue whose schedule the scan cannot read: the engine sees every event while it is busy
            stop_all = pending or venue.active
            due = -1
            self._si[K.S_NREST] = 0
        flat = pf.is_flat
        ctx = e.context
        if pending:  # no decision until the venue's work is due (the scan stops there): the strategy's wake is not read
            wake = _NO_WAKE
        else:
            ctx.book, ctx.state, ctx.now = e.book, e.signals.state, e.now  # as the engine saw them on its last event
            wake = e.strategy.wake(ctx)
        rw = risk.wake(pf)
        si, sf = self._si, self._sf
        si[K.S_ENGINE_SOUND] = e.sound_seen
        si[K.S_ENGINE_STATUS] = STATUS_CODE[e.status_seen]
        si[K.S_STOP_ALL] = stop_all
        si[K.S_DUE] = due
        si[K.S_PENDING] = pending
        si[K.S_FLAT] = flat
        si[K.S_SIGN] = 0 if flat else (1 if pf.qty > 0 else -1)
        halt = risk.halt
        # a halt the engine has not reported yet (raised by a fill on an update that changed no
        # book), or one with quotes still resting: the engine acts on the next mark (_halt_changed,
        # _cancel_quotes)
        halted = halt is not risk.limits.halt_seen or (halt is not None and (venue.resting(Side.BUY) is not None or venue.resting(Side.SELL) is not None))
        si[K.S_EVERY] = wake.every_event or rw.every_event or halted
        mids_due = e.markouts.next_due()
        si[K.S_MIDS_DUE] = K.NEVER if mids_due is None else mids_due
        si[K.S_DAY_END] = rw.day_end
        si[K.S_WAKE_NOT_BEFORE] = wake.not_before
        si[K.S_WAKE_DEADLINE] = -1 if wake.deadline is None else wake.deadline
        si[K.S_NEXT_EQUITY] = e.next_equity_ts
        si[K.S_SPREAD_N] = e.spread_n
        sf[K.SF_SPREAD_SUM] = e.spread_sum
        sf[K.SF_CASH] = float(pf.equity_cash)  # Portfolio.equity's terms: cash less other-asset fees (less
        sf[K.SF_QTY] = float(pf.equity_qty)  # the cost basis, linear), position plus dust (x contract size),
        sf[K.SF_INV] = float(pf.equity_inv)  # an inverse position's term over the mark
        funding = e.funding
        si[K.S_FUNDING_NEXT] = K.NEVER if funding is None else funding.next_ts
        if e.simulate_liquidation and not flat:
            sf[K.SF_LIQ_BELOW], sf[K.SF_LIQ_ABOVE] = rw.liquidation_below, rw.liquidation_above
        else:
            sf[K.SF_LIQ_BELOW], sf[K.SF_LIQ_ABOVE] = -math.inf, math.inf
        sf[K.SF_PEAK] = risk.peak_equity
        sf[K.SF_PEAK_FRACTION] = rw.peak_fraction
        sf[K.SF_DAY_FLOOR] = rw.day_floor
        sf[K.SF_EXIT_FLOOR] = _widen(rw.exit_floor, up=True)
        sf[K.SF_EXIT_CAP] = _widen(rw.exit_cap, up=False)
        sf[K.SF_WAKE_ABOVE] = wake.score_above
        sf[K.SF_WAKE_BELOW] = wake.score_below
        if wake.feature:
            slot = self.fb.feature_slot(wake.feature)
            if slot < 0:  # a feature the kernel does not hold: every mark may wake the strategy
                si[K.S_EVERY] = 1
            si[K.S_WAKE_FEATURE] = slot
            sf[K.SF_WAKE_FEATURE_ABOVE], sf[K.SF_WAKE_FEATURE_BELOW] = wake.feature_above, wake.feature_below
        else:
            si[K.S_WAKE_FEATURE] = -1
        bands = wake.bands
        if len(bands) > K.MAX_BANDS:
            si[K.S_EVERY] = 1
            bands = ()
        for b, (name, below, above) in enumerate(bands):
            slot = self.fb.feature_slot(name)
            if slot < 0:  # a value the kernel does not hold: every mark may wake the strategy
                si[K.S_EVERY] = 1
            si[K.S_BAND_SLOT + b] = max(slot, 0)
            sf[K.SF_BAND_BELOW + b], sf[K.SF_BAND_ABOVE + b] = below, above
        si[K.S_NBANDS] = len(bands)

    def _watch_resting(self, resting: list[tuple[bool, float, float, float]]) -> None:
        """The paper venue's resting orders, as :meth:`PaperVenue.resting_wake` publishes them."""
        si, sf, ptab = self._si, self._sf, self.fb.ptab
        for q, (buy, price, below, above) in enumerate(resting):
            r = int(np.searchsorted(ptab, price))
            si[K.S_REST + 2 * q] = buy
            si[K.S_REST + 2 * q + 1] = r if r < ptab.shape[0] and ptab[r] == price else -1  # as BookView.size_at finds it
            sf[K.SF_REST + 3 * q], sf[K.SF_REST + 3 * q + 1], sf[K.SF_REST + 3 * q + 2] = price, below, above
        si[K.S_NREST] = len(resting)

    def _absorb(self, stopped: bool) -> None:
        """Hand the engine what the scan did for the skipped events (:meth:`Engine.absorb_skipped`);
        ``stopped``: the scan returned an event for the engine, whose own mid it has not seen yet."""
        si, sf = self.si, self.sf
        n = si.item(K.S_NSAMPLES)
        points = list(zip(self.smp_ts[:n].tolist(), self.smp_mid[:n].tolist())) if n else []
        self.samples += n
        self.engine.absorb_skipped(
            last_mid=sf.item(K.SF_MID_BEFORE) if stopped else self.fb.F.item(K.F_LAST_MID),
            spread_sum=sf.item(K.SF_SPREAD_SUM),
            spread_n=si.item(K.S_SPREAD_N),
            peak_equity=sf.item(K.SF_PEAK),
            equity_points=points,
            next_equity_ts=si.item(K.S_NEXT_EQUITY),
        )

    # ------------------------------------------------------------------ run
    def run(self, progress: Callable[[int], None] | None = None) -> None:
        """Replay every event; the engine is left as ``Engine.on_event`` would leave it."""
        e, fb, a = self.engine, self.fb, self.arrays
        n = len(a)
        args, state = fb._args(), fb._state()
        si, sf, smp_ts, smp_mid = self.si, self.sf, self.smp_ts, self.smp_mid
        on_event = e.on_event
        next_progress = 100_000
        clock = time.perf_counter
        i = fb.pos
        next_release = i + RELEASE_EVERY
        while i < n:
            stop = min(n, i + self.chunk)
            t0 = clock()
            self._sync()
            j = K.run_scan(*args, i, stop, *state, si, sf, smp_ts, smp_mid)
            t1 = clock()
            self.scans += 1
            self._absorb(j < stop)
            t2 = clock()
            self.scan_s += t1 - t0
            self.absorb_s += t2 - t1
            if j < stop:
                fb.pos = j + 1
                on_event(event_at(a, j, levels=False))  # BookView.apply ignores the levels
                self.engine_s += clock() - t2
                self.handled += 1
                i = j + 1
            else:
                fb.pos = stop
                i = stop
            if i >= next_release:  # memory-mapped columns: the pages behind go back (flat memory)
                a.release(i)
                next_release = i + RELEASE_EVERY
            if progress is not None and i >= next_progress:
                progress(i)
                next_progress = (i // 100_000 + 1) * 100_000
        a.release(n)
        if n:
            e.now = int(a.ts[n - 1])
        e.stats.events = n
        e.stats.book_updates = fb.I.item(K.I_CHANGED_TOTAL)

    def stats(self) -> dict[str, Any]:
        n = len(self.arrays)
        return {
            "events": n, "engine_events": self.handled, "engine_share": round(self.handled / n, 6) if n else 0.0,
            "scans": self.scans, "equity_samples_skipped_events": self.samples,
        }

    def timings(self) -> dict[str, float]:
        """Where the replay's time went (wall clock; store flushes happen inside engine/absorb)."""
        return {"scan_s": self.scan_s, "engine_s": self.engine_s, "absorb_s": self.absorb_s}


def run_backtest_fast(
    settings: Settings,
    arrays: EventArrays,
    *,
    db_path: str | Path,
    data_files: list[str] | None = None,
    source_stats: Callable[[], dict[str, Any]] = dict,
    progress: Callable[[int], None] | None = None,
    timings: dict[str, float] | None = None,
    on_store: Callable[[Store], None] | None = None,
    extra_stats: Callable[[], dict[str, Any]] = dict,
) -> dict[str, Any]:
    """:func:`bot.engine.runner.run_backtest` over columnar events with the fast replay.

    Same store writes and the same summary as the readable run (orders, fills, positions, round
    trips, equity, funding and risk events are identical; only ``run_id``, wall times and the
    ``fast`` entry of the stats differ). What :func:`fast_path_refusal` or :func:`arrays_refusal`
    refuses falls back to the readable engine over the rebuilt events (without the skipped
    messages: ``bot backtest`` re-reads such a recording's files instead). ``timings``, if given, receives ``setup_s``, ``replay_s``, ``finish_s`` (engine.finish
    and closing the run) and the replay's breakdown: ``scan_s`` (kernel), ``engine_s`` (readable
    engine on handled events), ``absorb_s`` (equity points of skipped events) and
    ``store_write_s`` (SQLite flushes, part of the others). ``on_store`` and ``extra_stats`` are
    :func:`bot.engine.runner.run_engine_backtest`'s.
    """
    data_files = list(data_files or [])
    if not replays_market(settings) or arrays_refusal(arrays) is not None:
        summary = run_backtest(settings, iter_events(arrays), db_path=db_path, data_files=data_files, source_stats=source_stats, progress=progress,
                               on_store=on_store, extra_stats=extra_stats)
        summary["fast_path"] = False
        return summary
    t0 = time.perf_counter()
    marks = {"t1": t0, "t2": t0}
    store_s: list[float] = []  # each SQLite write's duration
    replays: list[FastReplay] = []

    def instrument(store: Store) -> None:
        if on_store is not None:
            on_store(store)
        if timings is not None:
            store.time_writes(store_s.append)  # this instance's writes only

    def replay(engine: Engine) -> None:
        replays.append(FastReplay(engine, arrays))
        marks["t1"] = time.perf_counter()
        replays[0].run(progress)
        marks["t2"] = time.perf_counter()

    summary = run_engine_backtest(
        settings,
        replay,
        db_path=db_path,
        data_files=data_files,
        source_stats=source_stats,
        extra_stats=lambda: {**({"fast": replays[0].stats()} if replays else {}), **extra_stats()},
        on_store=instrument,
    )
    t3 = time.perf_counter()
    if timings is not None:
        timings.update({"setup_s": marks["t1"] - t0, "replay_s": marks["t2"] - marks["t1"], "finish_s": t3 - marks["t2"], "store_write_s": sum(store_s)})
        if replays:
            timings.update(replays[0].timings())
    summary["fast_path"] = True
    return summary


__all__ = ["KERNEL_FEATURES", "FastReplay", "arrays_refusal", "fast_path_refusal", "replays_market", "run_backtest_fast"]
