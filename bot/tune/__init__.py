"""``bot tune``: walk-forward parameter sweeps with a leaderboard.

Modules:

* :mod:`bot.tune.space` - the search space file (grammar, key validation, grid / random candidates).
* :mod:`bot.tune.folds` - equal-duration segments, expanding-window folds, and
  :func:`~bot.tune.folds.segment_events` (a time window of the stream that starts with a synthetic
  book snapshot reconstructed from the events before it).
* :mod:`bot.tune.trials` - one trial (candidate x fold x in/out-of-sample) and the ``trials`` table.
* :mod:`bot.tune.executor` - the :class:`~bot.tune.executor.TrialExecutor` interface, the local
  process pool (default) and how a distributed executor plugs in.
* :mod:`bot.tune.sweep` - planning and resumable execution; :mod:`bot.tune.leaderboard` - the
  walk-forward result and the leaderboard; :mod:`bot.tune.output` - the complete best config.
* :mod:`bot.tune.command` - the CLI (``register(subparsers)``; ``python -m bot.tune``).
"""
