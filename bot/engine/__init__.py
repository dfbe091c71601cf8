"""The engine: identical in backtest, paper and live; only the feed and the venue differ."""

from bot.engine.engine import Engine, EngineStats, market_from_settings

__all__ = ["Engine", "EngineStats", "market_from_settings"]
