"""Venues: where orders go and fills come from (backtest and paper simulate, live sends)."""

from bot.execution.paper import PaperVenue, walk_book

__all__ = ["PaperVenue", "walk_book"]
