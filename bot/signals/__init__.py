"""Streaming imbalance features and the score (the strategies that act on them: bot.strategies)."""

from bot.signals.features import SignalEngine, SignalState

__all__ = ["SignalEngine", "SignalState"]
