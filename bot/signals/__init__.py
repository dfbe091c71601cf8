"""Streaming imbalance features and the strategy that maps them to decisions."""

from bot.signals.features import SignalEngine, SignalState
from bot.signals.strategy import MakerStrategy, ThresholdStrategy

__all__ = ["MakerStrategy", "SignalEngine", "SignalState", "ThresholdStrategy"]
