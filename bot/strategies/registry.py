"""Strategies by name: ``strategy.mode`` picks one, the engine never names any.

A strategy module registers a factory with :func:`register`; the built-ins are registered when
:mod:`bot.strategies` is imported, and ``strategy.plugins`` (module names) are imported first, so
a trader's own strategy is one module and one registration, with no edit to the engine::

    from bot.strategies.registry import register

    @register("my_mode")
    def build(settings, market):
        return MyStrategy(settings.strategy.params)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from bot.core.market import Market

Factory = Callable[[Any, Market], Any]
_FACTORIES: dict[str, Factory] = {}


class UnknownStrategy(ValueError):
    """``strategy.mode`` names no registered strategy (or a plug-in module cannot be imported)."""


def register(*names: str) -> Callable[[Factory], Factory]:
    """Register ``factory(settings, market) -> Strategy`` under each of ``names``."""

    def add(factory: Factory) -> Factory:
        for name in names:
            _FACTORIES[name] = factory
        return factory

    return add


def names() -> list[str]:
    return sorted(_FACTORIES)


def load_plugins(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is the plug-in's, named in one line
            raise UnknownStrategy(f"strategy.plugins: cannot import {module!r} ({type(exc).__name__}: {exc})") from None


def check(settings: Any) -> None:
    """Refuse an unknown ``strategy.mode`` in one line naming the registered ones."""
    load_plugins(list(settings.strategy.plugins))
    mode = settings.strategy.mode
    if mode not in _FACTORIES:
        raise UnknownStrategy(f"strategy.mode {mode!r} is not a registered strategy; registered: {', '.join(names())}")


def build(settings: Any, market: Market) -> Any:
    check(settings)
    return _FACTORIES[settings.strategy.mode](settings, market)
