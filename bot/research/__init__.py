"""Offline research: what does the imbalance signal predict on recorded data, net of costs?

``bot research --data FILE... --out DIR`` replays recordings once through the same
:class:`~bot.book.book.OrderBook` and :class:`~bot.signals.features.SignalEngine` the bot trades
with, and measures:

* the Cont-Kukanov-Stoikov (2014) contemporaneous regression of mid changes on order flow
  imbalance over fixed intervals (and on trade imbalance, and on multi-level OFI);
* the predictive skill of each feature for the future mid change at several horizons
  (out-of-sample R², Spearman IC, hit rate);
* whether the expected move in any signal bucket clears the round-trip taker cost.

Modules:

* :mod:`bot.research.features` -- one streaming pass over events into numpy arrays
  (:func:`extract_features` -> :class:`FeatureSet`).
* :mod:`bot.research.stats` -- OLS with Newey-West standard errors, Spearman rank correlation,
  out-of-sample R², hit rate (numpy only).
* :mod:`bot.research.analysis` -- forward moves, interval aggregation, the CKS table, predictive
  skill by horizon and the cost hurdle (:func:`analyze`).
* :mod:`bot.research.plots` -- PNG figures (matplotlib, Agg backend).
* :mod:`bot.research.report` -- ``report.json`` and the text summary.
* :mod:`bot.research.command` -- the ``research`` sub-command (:func:`register`) and
  :func:`run_research`, the whole pipeline as one call.

Nothing is imported here, so registering the sub-command stays cheap.
"""
