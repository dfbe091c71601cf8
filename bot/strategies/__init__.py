"""Strategy plug-ins: the interface (:mod:`.base`), the registry (:mod:`.registry`) and the built-ins."""

from bot.strategies import maker, mean_reversion, momentum  # noqa: F401 - registration
from bot.strategies.base import Context, Position, Quotes, Strategy, Wake, quote_stands
from bot.strategies.registry import UnknownStrategy, build, register

__all__ = ["Context", "Position", "Quotes", "Strategy", "UnknownStrategy", "Wake", "build", "quote_stands", "register"]
