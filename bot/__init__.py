"""imbalance-bot: an order-book-imbalance trading bot with one engine for backtest, paper and live."""

__version__ = "0.1.0"
