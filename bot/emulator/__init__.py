"""Local exchange emulator speaking Binance's spot API (REST + websockets) on 127.0.0.1, or with
``--market usdm|coinm`` its USD-M / COIN-M perpetual futures API (:mod:`bot.emulator.futures`).

It lets the bot's live path run through the real ccxt client over real HTTP and websockets,
against the built-in simulator (``--sim``) or a replayed recording (``--data``), with faults
injected on demand. Run it as a process (``python -m bot.emulator --sim --port 0``, see
:mod:`bot.emulator.cli`) or in-process::

    emu = await start_emulator(EmulatorConfig(faults="rate_limit=0.1"))
    ex = ccxt.pro.binance(ccxt_config(emu.base_url, emu.ws_url, emu.api_key, emu.api_secret))
    ...
    await emu.stop()

Modules: :mod:`~bot.emulator.server` (the app, :func:`start_emulator`),
:mod:`~bot.emulator.plumbing` (faults, weights, overrides, signatures of every REST request),
:mod:`~bot.emulator.admin` (admin endpoints),
:mod:`~bot.emulator.spot_rest` (the spot REST handlers, routed by symbol),
:mod:`~bot.emulator.listing` (the symbols served: one, or several spot ones from one account),
:mod:`~bot.emulator.ws` (connections, subscriptions, user data), :mod:`~bot.emulator.ws_api` (WebSocket API),
:mod:`~bot.emulator.ws_market` (one symbol's market streams), :mod:`~bot.emulator.matching` (orders, balances, fills),
:mod:`~bot.emulator.market` (book and update ids), :mod:`~bot.emulator.feed` (sim / replay
pacing), :mod:`~bot.emulator.auth` (signatures), :mod:`~bot.emulator.faults` (fault SPEC),
:mod:`~bot.emulator.commission` (which asset pays a fill's commission),
:mod:`~bot.emulator.override` / :mod:`~bot.emulator.ws_inject` (hostile REST answers and websocket frames),
:mod:`~bot.emulator.client` (ccxt configuration).
"""

from importlib import import_module
from typing import Any

# The names below load on first use: ``bot --help`` and every command that does not run the
# emulator build its argument parser from :mod:`bot.emulator.cli`, and importing the server
# (aiohttp) for that alone cost a third of a second per process.
_LAZY = {
    "ccxt_config": "bot.emulator.client", "make_pro_client": "bot.emulator.client", "make_rest_client": "bot.emulator.client",
    "FaultError": "bot.emulator.faults", "FaultSpec": "bot.emulator.faults", "parse_faults": "bot.emulator.faults",
    "EmulatorConfig": "bot.emulator.server", "RunningEmulator": "bot.emulator.server", "start_emulator": "bot.emulator.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bot.emulator' has no attribute {name!r}")
    return getattr(import_module(module), name)

__all__ = [
    "EmulatorConfig", "FaultError", "FaultSpec", "RunningEmulator", "ccxt_config", "make_pro_client",
    "make_rest_client", "main", "parse_faults", "run_emulator", "start_emulator",
]


def main(argv: list[str] | None = None) -> int:
    from bot.emulator.cli import main as _main

    return _main(argv)


def run_emulator(args) -> int:  # type: ignore[no-untyped-def]
    from bot.emulator.cli import run_emulator as _run

    return _run(args)
