"""Binance USD-M and COIN-M perpetual futures for the emulator (``--market usdm|coinm``).

Modules: :mod:`~bot.emulator.futures.contract` (the instrument and its linear / inverse
arithmetic), :mod:`~bot.emulator.futures.account` (wallet, position, margin, funding and
liquidation bookings), :mod:`~bot.emulator.futures.orders` (the futures matching engine),
:mod:`~bot.emulator.futures.rest` (``/fapi`` / ``/dapi`` endpoints),
:mod:`~bot.emulator.futures.ws` (futures streams and user data events) and
:mod:`~bot.emulator.futures.venue` (mark price, funding clock, liquidation watch, admin controls),
which :func:`bot.emulator.server.start_emulator` builds and installs.
"""

from bot.emulator.futures.venue import FuturesVenue

__all__ = ["FuturesVenue"]
