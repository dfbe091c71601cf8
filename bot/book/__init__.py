"""The L2 order book: the single source of market state for signals, risk and fills."""

from bot.book.book import BookStatus, OrderBook

__all__ = ["BookStatus", "OrderBook"]
