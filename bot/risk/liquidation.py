"""Liquidation price of a perpetual position, from the exchange's maintenance-margin rule.

A position is liquidated when its margin balance falls to its maintenance margin. One-way mode,
one position, one maintenance bracket (rate ``mmr``, maintenance amount ``cum``), ``s`` = +1 long
/ -1 short, ``wb`` the wallet balance backing the position (isolated: its margin, ``value /
leverage``; cross: the account's equity apart from this position's unrealized PnL):

* linear (USD-M), ``q`` = |contracts| x contract size (base), entry ``e``:
  ``wb + s*q*(p - e) = q*p*mmr - cum``  =>  ``p = (wb + cum - s*q*e) / (q*mmr - s*q)``
* inverse (COIN-M), ``n`` = |contracts| x contract size (USD), settle in base:
  ``wb + s*n*(1/e - 1/p) = n*mmr/p - cum``  =>  ``p = n*(mmr + s) / (wb + cum + s*n/e)``

Both are Binance's published formulas for a single position ("How to Calculate Liquidation Price
of USDⓈ-M / COIN-M Futures Contracts", binance.com/en/support/faq), written for one bracket.
None means the position cannot be liquidated (fully backed: the price would have to reach 0 or
infinity).
"""

from __future__ import annotations

from bot.core.market import Market


def liquidation_price(market: Market, contracts: float, entry: float, wallet: float) -> float | None:
    """The mark at which a position of ``contracts`` (signed) opened at ``entry`` with ``wallet``
    behind it is liquidated; None for spot, a flat position or one that cannot be liquidated."""
    if not market.is_derivative or contracts == 0 or not entry > 0:
        return None
    s = 1.0 if contracts > 0 else -1.0
    mmr = float(market.maintenance_margin_rate)
    cum = float(market.maintenance_amount)
    size = abs(contracts) * float(market.contract_size)
    if market.inverse:
        denominator = wallet + cum + s * size / entry
        if denominator == 0:
            return None  # a short backed by its whole value in base: no price liquidates it
        price = size * (mmr + s) / denominator
    else:
        denominator = size * mmr - s * size
        if denominator == 0:
            return None
        price = (wallet + cum - s * size * entry) / denominator
    return price if price > 0 else None


def isolated_wallet(market: Market, contracts: float, entry: float) -> float:
    """The initial margin of a new isolated position: its value at ``entry`` over the leverage."""
    return market.value(abs(contracts), entry) / market.leverage
