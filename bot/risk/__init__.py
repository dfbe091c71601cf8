"""The risk manager: the only door between a decision and a venue."""

from bot.risk.manager import RiskManager

__all__ = ["RiskManager"]
