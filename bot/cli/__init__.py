"""Command-line interface: ``bot backtest``, ``bot report``, ``bot config check``."""
