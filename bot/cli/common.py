"""What every ``bot`` command shares: the one-line error, the summary printer, the strategy check."""

from __future__ import annotations

import sys
from typing import Any


def fail(message: str) -> int:
    """One ``error:`` line on stderr; the exit code of a problem with the user's input (1)."""
    print(f"error: {message}", file=sys.stderr)
    return 1


def print_summary(summary: dict[str, Any], as_json: bool) -> None:
    from bot.store.jsonout import strict_json
    from bot.store.report import format_summary

    if as_json:
        print(strict_json(summary))  # null, never NaN/Infinity: strict parsers reject those
    else:
        print(format_summary(summary))


def check_strategy(settings: Any, config: str | None) -> None:
    """An unknown ``strategy.mode`` (or a plug-in that cannot be imported) is a config error."""
    from bot.config.settings import ConfigError
    from bot.strategies.registry import UnknownStrategy, check

    try:
        check(settings)
    except UnknownStrategy as exc:
        key = "strategy.plugins" if str(exc).startswith("strategy.plugins") else "strategy.mode"
        raise ConfigError(config or "(defaults)", [(key, str(exc).removeprefix("strategy.plugins: ").removeprefix("strategy.mode "))]) from None
