"""Does a recording fit the config it is replayed with?

A recording of another symbol or of the other market (spot vs USD-M futures) replays without a
hitch but with the wrong fees, tick and lot sizes, so every figure is wrong. The reader knows the
recording's symbol and market type before its first event (:class:`bot.data.binance.ReaderStats`,
also kept in the ``--fast`` cache's ``meta["reader"]``); :func:`market_mismatch` compares them with
the config's ``[market]`` and says which shipped config fits the data.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.config.settings import MarketSection
from bot.core.events import MarketEvent
from bot.data.binance import ReaderStats, RecordingError
from bot.data.symbols import unified_symbol

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
"""The repository's ``config/`` folder (the shipped configs the messages point to)."""

MARKET_NAMES = {"spot": "spot", "linear": "USD-M linear perpetual", "inverse": "COIN-M inverse perpetual"}


class MarketMismatch(RecordingError):
    """The recording's symbol or market type is not the config's ``[market]``."""


def _shown(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except (OSError, ValueError):
        return str(path)


def _config_markets(data: dict[str, Any]) -> list[dict[str, Any]]:
    markets = data.get("markets")
    if isinstance(markets, list):
        return [m for m in markets if isinstance(m, dict)]
    market = data.get("market", {})
    return [market] if isinstance(market, dict) else []


def shipped_configs(symbol: str, market_type: str) -> list[str]:
    """The shipped backtest configs that trade the recording id ``symbol`` (e.g. ``BTCUSDT``) on ``market_type``."""
    unified = unified_symbol(symbol, market_type) or symbol
    found = []
    for path in sorted(CONFIG_DIR.glob("backtest*.toml")):
        try:
            markets = _config_markets(tomllib.loads(path.read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
        if len(markets) != 1:
            continue  # a several-instrument config needs recordings of each: not a fit for one recording
        try:
            market = MarketSection.model_validate(markets[0])  # the config's own reading (``future`` is linear)
        except ValidationError:
            continue
        if market.symbol == unified and market.type == market_type:
            found.append(_shown(path))
    return found


def _configs(symbol: str, market_type: str) -> str:
    return " or ".join(shipped_configs(symbol, market_type)) if symbol and market_type else ""


def market_mismatch(
    symbol: str | None,
    market_type: str | None,
    market: Any,
    config: str | Path | None = None,
    *,
    check_symbol: bool = True,
) -> str | None:
    """The error message when the recording (``symbol`` its exchange id like ``BTCUSDT``,
    ``market_type`` ``"spot"``, ``"linear"`` or ``"inverse"``; empty when unknown) does not fit
    ``market`` (a ``MarketSection``); else None. Symbols are compared as ccxt unified symbols."""
    symbol = (symbol or "").upper()
    market_type = market_type or ""
    where = f" in {config}" if config else ""
    unified = unified_symbol(symbol, market_type or market.type) if symbol else None
    if market_type and market_type != market.type:
        configs = _configs(symbol, market_type)
        return (f'recording is {MARKET_NAMES.get(market_type, market_type)} (market type "{market_type}") but '
                f'market.type is "{market.type}"{where}: fees, tick and lot sizes would be wrong; use '
                + (configs if configs else f'a config with market.type = "{market_type}"'))
    if check_symbol and symbol and (unified or symbol) != market.symbol:
        configs = _configs(symbol, market_type)
        shown = f"{symbol} ({unified})" if unified else symbol
        return (f"recording is {shown} but market.symbol is {market.symbol}{where}: use a config whose [market] "
                f"matches the data{' such as ' + configs if configs else (' (symbol = ' + repr(unified) + ')' if unified else '')}")
    return None


def checked_market(
    events: Iterable[MarketEvent],
    stats: ReaderStats,
    market: Any,
    config: str | Path | None = None,
    *,
    check_symbol: bool = True,
) -> Iterator[MarketEvent]:
    """``events`` of :func:`bot.data.binance.read_binance` (filling ``stats``), refused with
    :class:`MarketMismatch` as soon as the recording's symbol and market type are known (before
    the first event for a real recording) and do not fit ``market``."""
    it = iter(events)
    symbol_checked = not check_symbol
    for event in it:
        if not symbol_checked and stats.symbol:  # known before the first event
            problem = market_mismatch(stats.symbol, stats.market_type, market, config)
            if problem:
                raise MarketMismatch(problem)
            symbol_checked = True
        if stats.market_type:  # known before the first event too when the first lines hold a diff
            problem = market_mismatch(stats.symbol, stats.market_type, market, config, check_symbol=check_symbol)
            if problem:
                raise MarketMismatch(problem)
            if symbol_checked:
                yield event
                break
        yield event
    yield from it
