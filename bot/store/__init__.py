"""Persistence (SQLite via sqlite-utils) and the run summary computed from the database alone."""

from bot.store.report import format_summary, summarize
from bot.store.store import SCHEMA_VERSION, Store, StoreError

__all__ = ["SCHEMA_VERSION", "Store", "StoreError", "format_summary", "summarize"]
