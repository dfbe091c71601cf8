"""The symbols one emulator serves: each one's rules, market, feed, matching engine and streams.

An emulator serves one symbol (the default) or several of one market type (``--symbol`` given
more than once, or a config with several ``[[markets]]``). Each :class:`SymbolState` has its own
:class:`~bot.emulator.market.MarketState` (book, update ids, public trades), its own feed (the
simulator seeded ``sim.seed + index``, or the recordings of that symbol) and its own
:class:`~bot.emulator.matching.Engine` (orders, fills); the engines share one account (balances
and the order id counter). Public trade ids of the symbol at ``index`` start at
``index * TRADE_ID_STRIDE + 1``, so a trade id names one symbol's trade (Binance's trade ids are
per symbol, and far apart between symbols).

:class:`Listing` routes a request's ``symbol`` parameter to its state, with Binance's errors
(-1102 for a missing symbol, -1121 for one not listed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterator, Sequence

from bot.config.settings import MarketSection, SimSection
from bot.emulator import errors as E
from bot.emulator.errors import BinanceError
from bot.emulator.market import MarketState
from bot.emulator.matching import Engine, SymbolRules

__all__ = ["Listing", "SymbolState", "TRADE_ID_STRIDE", "build_feeds", "parse_balances", "shared_balances", "spot_rules"]

TRADE_ID_STRIDE = 1_000_000_000


@dataclass
class SymbolState:
    index: int
    rules: SymbolRules
    config: MarketSection
    market: MarketState
    feed: Any = None
    engine: Engine | None = None
    streams: Any = None  # bot.emulator.ws_market.SymbolStreams, set by the Hub

    @property
    def symbol(self) -> str:
        return self.rules.symbol


@dataclass
class Listing:
    states: list[SymbolState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_symbol = {s.symbol: s for s in self.states}

    def __iter__(self) -> Iterator[SymbolState]:
        return iter(self.states)

    def __len__(self) -> int:
        return len(self.states)

    @property
    def primary(self) -> SymbolState:
        return self.states[0]

    @property
    def names(self) -> list[str]:
        return [s.symbol for s in self.states]

    def find(self, symbol: str | None) -> SymbolState | None:
        return self.by_symbol.get(symbol.upper()) if symbol else None

    def route(self, params: dict[str, Any], required: bool = True) -> SymbolState | None:
        """The state the request's ``symbol`` names (None when it is optional and absent)."""
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise E.missing("symbol")
            return None
        state = self.find(str(symbol))
        if state is None:
            raise BinanceError(*E.INVALID_SYMBOL)
        return state

    def engine(self, params: dict[str, Any], required: bool = True) -> Engine:
        state = self.route(params, required)
        engine = (state or self.primary).engine
        assert engine is not None
        return engine

    def engines(self) -> list[Engine]:
        return [s.engine for s in self.states if s.engine is not None]

    def all_ready(self) -> bool:
        return all(s.market.ready for s in self.states)


def spot_rules(markets: Sequence[MarketSection]) -> list[SymbolRules]:
    """The matching rules of spot symbols; ValueError (one line) for a perpetual or a symbol given twice."""
    out: list[SymbolRules] = []
    for m in markets:
        if m.type != "spot" or ":" in m.symbol:
            raise ValueError(f"{m.symbol} is a {m.type if m.type != 'spot' else 'perpetual'} symbol: this emulator "
                             f"serves spot (use --market usdm or coinm for perpetuals, one symbol each)")
        rules = SymbolRules.from_market(m)
        if any(r.symbol == rules.symbol for r in out):
            raise ValueError(f"symbol {m.symbol} is given twice")
        out.append(rules)
    return out


def build_feeds(listing: Listing, data: list[str], sim: SimSection, speed: float, loop: bool) -> None:
    """A feed per symbol: the simulator (seed + index), or the recordings of that symbol.

    One symbol replays every file given (and refuses a recording of another symbol); several
    sort the files by the symbol they record, each symbol needing its own.
    """
    from bot.emulator.feed import ReplayFeed, SimFeed

    if not data:
        for state in listing:
            seeded = sim.model_copy(update={"seed": sim.seed + state.index}) if state.index else sim
            state.feed = SimFeed(state.market, seeded, state.config, speed=speed)
        return
    if len(listing) == 1:
        state = listing.primary
        state.feed = ReplayFeed(state.market, data, speed=speed, loop=loop, expect_symbol=state.symbol)
        return
    from bot.data.merge import group_recordings

    groups = group_recordings(data)  # RecordingError names a bad file
    for group in groups:
        state = listing.find(group.symbol)
        if state is None:
            files = ", ".join(str(f) for f in group.files)
            raise ValueError(f"{files}: a recording of {group.symbol}, which is not among the emulator's symbols "
                             f"({', '.join(listing.names)})")
        state.feed = ReplayFeed(state.market, [str(f) for f in group.files], speed=speed, loop=loop,
                                expect_symbol=state.symbol)
    missing = [s.symbol for s in listing if s.feed is None]
    if missing:
        raise ValueError(f"no recording of {', '.join(missing)} among the --data files")


def shared_balances(rules: Sequence[SymbolRules], given: dict[str, Decimal] | None) -> dict[str, Decimal]:
    """The account's starting balances: ``given``, else 10000 of each quote and 0.5 of each base."""
    if given is not None:
        return dict(given)
    out: dict[str, Decimal] = {}
    for r in rules:
        out.setdefault(r.quote, Decimal(10000))
        out.setdefault(r.base, Decimal("0.5"))
    return out


def parse_balances(text: str | dict | None) -> dict[str, Decimal]:
    """``"USDT=10000,BTC=0.5"`` (or a dict) -> {asset: Decimal}."""
    if text is None:
        return {}
    if isinstance(text, dict):
        return {str(k).upper(): Decimal(str(v)) for k, v in text.items()}
    out: dict[str, Decimal] = {}
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"balance {item!r} is not ASSET=AMOUNT")
        asset, amount = item.split("=", 1)
        try:
            value = Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"balance {item!r}: {amount!r} is not a number") from None
        if value < 0:
            raise ValueError(f"balance {item!r} is negative")
        out[asset.upper()] = value
    return out
