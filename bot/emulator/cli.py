"""``python -m bot.emulator``: run the exchange emulator as a process.

Prints exactly one line to stdout once it listens (flushed), for scripts to wait on::

    EMULATOR READY http://127.0.0.1:PORT ws://127.0.0.1:PORT/ws

and logs to stderr. ``--market usdm|coinm`` serves Binance USD-M / COIN-M perpetuals instead of
spot (see :mod:`bot.emulator.futures`; ``--funding-interval-s``, ``--funding-rate`` and
``--mark-offset`` only apply there). ``--symbol`` given more than once (or a comma list, or a config
with several ``[[markets]]``) serves several spot symbols (:mod:`bot.emulator.listing`). Stops on SIGINT/SIGTERM (exit 0). Exit 1 on a bad option value, an
unreadable recording or a recording of another symbol; 2 on wrong usage.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the settings (pydantic) are imported when the emulator runs, not to build `bot`'s parser
    from bot.config.settings import MarketSection


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="python -m bot.emulator",
        description="Local Binance exchange emulator (spot, USD-M or COIN-M futures; REST + websockets on 127.0.0.1) "
                    "for testing the live path.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sim", action="store_true", help="built-in order book simulator (bot.data.sim), seeded with --seed")
    src.add_argument("--data", nargs="+", metavar="FILE", help="replay Binance raw-stream recordings (.gz), all files of one recording")
    p.add_argument("--speed", type=float, default=1.0, help="replay (or simulation) speed, default 1.0 = real time")
    p.add_argument("--loop", action="store_true", help="--data: start the recording again at its end (default: stop, book frozen)")
    p.add_argument("--seed", type=int, default=None, help="--sim: simulator seed (default: the config's sim.seed)")
    p.add_argument("--market", choices=["spot", "usdm", "coinm"], default=None,
                   help="API served: spot (/api/v3, default), usdm (USD-M perpetual, /fapi) or coinm (COIN-M perpetual, "
                        "/dapi); default: the config's market.type (linear = usdm, inverse = coinm), else spot")
    p.add_argument("--config", metavar="TOML", help="take [market] and [sim] from this bot config file")
    p.add_argument("--symbol", action="append", metavar="SYMBOL",
                   help="symbol, e.g. ETH/USDT (default: the config's market.symbol, or every [[markets]] entry, else "
                        "BTC/USDT); give it again (or a comma list, BTC/USDT,ETH/USDT) to serve several spot symbols "
                        "from one account, each with its own book, trades and orders")
    p.add_argument("--tick-size", help="PRICE_FILTER tickSize (default: market.tick_size; applies to every --symbol)")
    p.add_argument("--lot-size", help="LOT_SIZE stepSize (default: market.lot_size)")
    p.add_argument("--min-qty", help="LOT_SIZE minQty (default: market.min_qty)")
    p.add_argument("--min-notional", help="NOTIONAL minNotional (default: market.min_notional)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    p.add_argument("--api-key", help="the account's API key (default: $BOT_EMULATOR_API_KEY or a fixed test value)")
    p.add_argument("--api-secret", help="the account's secret (default: $BOT_EMULATOR_API_SECRET or a fixed test value)")
    p.add_argument("--balances", default=None, help='starting balances, e.g. "USDT=10000,BTC=0.5" (default: 10000 quote, 0.5 base; '
                                                     'futures: the settle asset\'s entry is the wallet, default USDT=10000 / BTC=1)')
    p.add_argument("--faults", default="", help="fault SPEC, e.g. rate_limit=0.05,ws_drop=30,gap=10 (see bot.emulator.faults)")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault RNG (also seed=N inside --faults)")
    p.add_argument("--taker-fee", default=None, help="taker fee rate (default 0.001 spot, 0.0005 futures; negative = a rebate)")
    p.add_argument("--maker-fee", default=None,
                   help="maker fee rate (default 0.001 spot, 0.0002 futures; negative = a rebate, e.g. -0.0001)")
    p.add_argument("--funding-interval-s", type=float, default=None,
                   help="futures: a funding time every N seconds of the Unix clock (tests); default: every "
                        "market.funding_interval_h hours from 00:00 UTC")
    p.add_argument("--funding-rate", default=None, help="futures: funding rate per funding time (default market.funding_rate_bps / 10000)")
    p.add_argument("--mark-offset", default="0", help="futures: mark price = book mid + this (default 0; POST /admin/mark moves it)")
    p.add_argument("--commission-asset", default="quote", metavar="quote|base|bnb",
                   help="asset that pays commissions, as Binance spot: quote (default), base (a buy pays in the base "
                        "received), bnb (paid in BNB, else as base; see bot.emulator.commission)")
    p.add_argument("--bnb-price", default="500", help="--commission-asset bnb: the BNB price in the quote asset (default 500)")
    p.add_argument("--override", metavar="FILE", default=None,
                   help="JSON list of REST overrides (hostile answers) active from the first request (see bot.emulator.override)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def config_from_args(args: argparse.Namespace):
    """Turn parsed options into an :class:`~bot.emulator.server.EmulatorConfig` (ValueError on bad values)."""
    from bot.emulator.commission import MODES
    from bot.emulator.override import load_override_file
    from bot.emulator.server import EmulatorConfig

    from bot.config.settings import MarketSection, SimSection, load_settings
    from bot.emulator.futures.contract import default_market, market_of_type

    market, sim = MarketSection(), SimSection()
    listed: list[MarketSection] = []
    if args.config:
        settings = load_settings(args.config)
        market, sim = settings.market, settings.sim
        if settings.markets:
            listed = list(settings.instruments)
            market = listed[0]
    venue = getattr(args, "market", None) or market_of_type(market.type)
    if venue != market_of_type(market.type):
        if market.type != "spot":
            raise ValueError(f"--market {venue} does not serve the config's market.type {market.type!r}")
        market = default_market(venue)  # a spot config (or none): the market's default perpetual
        listed = []
    updates: dict[str, object] = {}
    for opt, key in (("tick_size", "tick_size"), ("lot_size", "lot_size"), ("min_qty", "min_qty"), ("min_notional", "min_notional")):
        raw = getattr(args, opt, None)
        if raw is not None:
            try:
                updates[key] = Decimal(raw)
            except InvalidOperation:
                raise ValueError(f"--{opt.replace('_', '-')}: {raw!r} is not a number") from None
    served = _served_markets(market, listed, _symbols(args.symbol), updates)
    market = served[0]
    for f in args.data or []:
        if not Path(f).is_file():
            raise ValueError(f"data file not found: {f}")
    futures = venue != "spot"
    try:
        taker = Decimal(args.taker_fee if args.taker_fee is not None else "0.0005" if futures else "0.001")
        maker = Decimal(args.maker_fee if args.maker_fee is not None else "0.0002" if futures else "0.001")
    except InvalidOperation:
        raise ValueError("--taker-fee/--maker-fee must be numbers") from None
    if not all(x.is_finite() and -1 < x < 1 for x in (taker, maker)):
        raise ValueError("--taker-fee/--maker-fee must be rates in (-1, 1)")
    commission_asset = str(getattr(args, "commission_asset", None) or "quote").lower()
    if commission_asset not in MODES:
        raise ValueError(f"--commission-asset must be quote, base or bnb, got {commission_asset!r}")
    try:
        bnb_price = Decimal(str(getattr(args, "bnb_price", None) or "500"))
    except InvalidOperation:
        raise ValueError(f"--bnb-price must be a number, got {args.bnb_price!r}") from None
    if not bnb_price.is_finite() or bnb_price <= 0:
        raise ValueError(f"--bnb-price must be > 0, got {args.bnb_price!r}")
    overrides = load_override_file(args.override) if getattr(args, "override", None) else []
    funding_interval = getattr(args, "funding_interval_s", None)
    if funding_interval is not None and not funding_interval > 0:
        raise ValueError("--funding-interval-s must be > 0")
    try:
        funding_rate = Decimal(args.funding_rate) if getattr(args, "funding_rate", None) is not None else None
        mark_offset = Decimal(getattr(args, "mark_offset", None) or "0")
    except InvalidOperation:
        raise ValueError("--funding-rate/--mark-offset must be numbers") from None
    if args.speed <= 0:
        raise ValueError("--speed must be > 0")
    return EmulatorConfig(
        data=list(args.data or []), speed=args.speed, loop=args.loop, seed=args.seed, host=args.host, port=args.port,
        api_key=args.api_key, api_secret=args.api_secret, balances=args.balances, faults=args.faults,
        fault_seed=args.fault_seed, market=market, sim=sim, taker_fee=taker, maker_fee=maker,
        commission_asset=commission_asset, bnb_price=bnb_price, overrides=overrides, venue=venue,
        funding_interval_s=funding_interval, funding_rate=funding_rate, mark_offset=mark_offset,
        markets=served if len(served) > 1 else [],
    )


def _symbols(given: list[str] | str | None) -> list[str]:
    """``--symbol`` values (repeated, or comma lists) as upper-case BASE/QUOTE names, in order."""
    if not given:
        return []
    out: list[str] = []
    for raw in [given] if isinstance(given, str) else given:
        for name in raw.split(","):
            name = name.strip().upper()
            if name.count("/") != 1:
                raise ValueError(f"--symbol must look like BASE/QUOTE, got {name or raw!r}")
            if name in out:
                raise ValueError(f"--symbol {name} is given twice")
            out.append(name)
    return out


def _served_markets(market: MarketSection, listed: list[MarketSection], symbols: list[str],
                    updates: dict[str, object]) -> list[MarketSection]:
    """The markets to serve: each ``--symbol`` (with the config's rules of that symbol when a
    ``[[markets]]`` entry names it, else those of ``market``), or the config's markets; the rule
    options (``updates``) apply to all. A bad combination is a ValueError of one line."""
    from bot.config.settings import MarketSection

    from pydantic import ValidationError

    by_symbol = {m.symbol.upper(): m for m in listed}
    chosen = [(by_symbol.get(s, market), s) for s in symbols] if symbols else [(m, None) for m in (listed or [market])]
    out = []
    for base, symbol in chosen:
        if symbol and ":" in symbol and base.type == "spot":
            raise ValueError(f"--symbol {symbol} is a perpetual: serve it with --market usdm (linear) or coinm (inverse)")
        fields = {**updates, **({"symbol": symbol} if symbol else {})}
        try:
            out.append(MarketSection(**{**base.model_dump(), **fields}) if fields else base)
        except ValidationError as exc:
            problem = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"--symbol {symbol or base.symbol} ({base.type} market): {problem}") from None
    if len(out) > 1 and any(m.type != "spot" for m in out):
        raise ValueError(f"several symbols ({', '.join(m.symbol for m in out)}) are served on spot only; "
                         f"--market usdm / coinm serve one perpetual")
    if len(out) > 1 or market.type == "spot":
        from bot.emulator.listing import spot_rules

        spot_rules(out)  # a perpetual symbol on spot: one line naming it
    return out


async def _serve(config) -> int:
    from bot.emulator.server import start_emulator

    emu = await start_emulator(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    print(f"EMULATOR READY {emu.base_url} {emu.ws_url}", flush=True)
    logging.getLogger("bot.emulator").info(
        "emulator %s mode, symbol %s, api key %s", config.mode, ",".join(emu.listing.names), emu.api_key)
    await stop.wait()
    await emu.stop()
    return 0


def run_emulator(args: argparse.Namespace) -> int:
    """Run from parsed options until SIGINT/SIGTERM; return the exit code."""
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot.config.settings import ConfigError

    try:
        config = config_from_args(args)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_serve(config))
    except KeyboardInterrupt:
        return 0
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # RecordingError and friends
        if type(exc).__name__ == "RecordingError":
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_emulator(args)
