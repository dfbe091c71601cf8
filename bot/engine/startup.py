"""What the daemon checks and settles before its first decision.

Each check fails with one :class:`DaemonError` line that names the cause (configuration,
authentication, network, the exchange's answer) and what to do; the command prints it and exits
1. Nothing here trades: it takes the instance lock, refuses unsafe configurations, closes runs
that died without closing themselves (``crashed``), and in live mode settles every order an
earlier run left unfinished with the exchange before anything new is sent.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt

from bot.config.settings import Settings
from bot.core.orders import Order, OrderStatus, Side
from bot.exchange.client import ExchangeClient, ExchangeFailure
from bot.exchange.validate import ExchangeResponseError
from bot.execution.live import FINAL, OrderTracker
from bot.log import mask_secrets
from bot.store.store import Store, StoreError

HEARTBEAT_INTERVAL_S = 1.0  # live state for ``bot status``; also bounds when a dead run last sent
RECONCILE_TRADE_POLLS = 20  # polls (rest_poll_interval_s apart) for an earlier order's trades to show


class DaemonError(Exception):
    """The daemon cannot start (or must stop); the message says why and what to do."""


class InstanceLock:
    """An exclusive ``flock`` on ``<db>.lock``: a second daemon on the same database refuses to start.

    The path is resolved first (symlinks, ``..``), so every way of naming the same file finds
    the same lock. The kernel drops the lock when the process dies (even by ``kill -9``), so a
    stale lock file never blocks a restart. The store's writer row (:mod:`bot.store.writer`)
    catches what a path cannot (hard links, bind mounts).
    """

    def __init__(self, db_path: Path):
        real = Path(os.path.realpath(db_path))
        self.db_path = real
        self.path = Path(str(real) + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DaemonError(f"cannot create the lock file {self.path}: {exc.strerror or exc} (is run.db writable?)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DaemonError(f"another bot instance (pid {holder}) is running on {self.db_path}; stop it first or use another run.db") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def check_live_allowed(settings: Settings, live_flag: bool) -> None:
    """Live trading needs three independent yeses: the config, the command line and the keys."""
    if settings.run.mode == "live" and not live_flag:
        raise DaemonError("config says mode = \"live\" but the command line lacks --live: refusing to trade real money")
    if live_flag and settings.run.mode != "live":
        raise DaemonError(f"--live given but the config says mode = {settings.run.mode!r}: set run.mode = \"live\"")
    if settings.run.mode == "live":
        for name in ("api_key", "api_secret"):
            value = getattr(settings.exchange, name)
            if value is None or not value.get_secret_value().strip():
                raise DaemonError(f"live mode needs a non-empty exchange.{name}: set BOT__EXCHANGE__{name.upper()} in the environment or .env")
    if settings.run.mode == "backtest":
        raise DaemonError("run.mode is \"backtest\": use `bot backtest`, or a paper/live config for `bot run`")
    if settings.store.synchronous == "off":
        raise DaemonError('store.synchronous = "off" is for backtests: a power loss could corrupt the database of a running daemon; use "normal" or "full"')


def startup_error(exc: BaseException, settings: Settings, call: str) -> DaemonError:
    """One line for a failure of ``call`` at start-up: authentication, network, or the exchange's answer."""
    where = settings.exchange.rest_url or settings.instruments[0].exchange
    detail = mask_secrets(" ".join(str(exc).split()))[:240]
    if isinstance(exc, (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.AccountSuspended)):
        return DaemonError(f"{call}: the exchange refused the API key ({type(exc).__name__}: {detail}); check BOT__EXCHANGE__API_KEY / BOT__EXCHANGE__API_SECRET and the key's permissions")
    if isinstance(exc, ccxt.NetworkError):
        return DaemonError(f"{call}: cannot reach the exchange at {where} ({type(exc).__name__}: {detail}); check the network and exchange.rest_url")
    if isinstance(exc, (ExchangeFailure, ExchangeResponseError)):
        return DaemonError(f"{call}: {detail}")
    if isinstance(exc, ccxt.BaseError):
        return DaemonError(f"{call}: the exchange answered with an error ({type(exc).__name__}: {detail})")
    return DaemonError(f"{call}: the exchange's answer could not be used ({type(exc).__name__}: {detail})")


def close_dead_runs(store: Store, log: Any) -> list[str]:
    """Runs still ``running`` while we hold the lock cannot be alive: mark them ``crashed``."""
    dead = []
    try:
        for run_id, started_at in store.db.execute("SELECT run_id, started_at FROM runs WHERE status = 'running'").fetchall():
            heartbeat = store.heartbeat(run_id) or {}
            ended = float(heartbeat.get("ts") or started_at)
            store.mark_crashed(run_id, ended, "found running at a later start with no process behind it (killed or crashed)")
            log.warning("run found dead at start: marked crashed", run_id=run_id, last_heartbeat=ended)
            dead.append(run_id)
    except (StoreError, sqlite3.Error) as exc:
        raise DaemonError(f"closing earlier runs in {store.path}: {exc}") from None
    return dead


def _last_send_bound(store: Store, row: dict[str, Any]) -> int:
    """Wall-clock ns by which the run that wrote ``row`` had signed its last request.

    A run sends only while its loop runs, and its loop writes a heartbeat every
    ``HEARTBEAT_INTERVAL_S``: it was gone within about one interval after its last heartbeat
    (or its end, if it ended). One more interval of slack covers a slow last iteration.
    """
    heartbeat = store.heartbeat(row["run_id"]) or {}
    ended = store.db.execute("SELECT ended_at FROM runs WHERE run_id = ?", [row["run_id"]]).fetchone()
    last_alive_s = max(float(heartbeat.get("ts") or 0.0), float((ended or [None])[0] or 0.0))
    return max(int(row["ts"]), int((last_alive_s + 2 * HEARTBEAT_INTERVAL_S) * 1e9))


async def reconcile(client: ExchangeClient, store: Store, restored: Any, run_id: str, log: Any) -> None:
    """Resolve every order an earlier run left unfinished, before trading (live mode).

    Looks each up by client id (waiting out a request the dead run may still have in flight),
    books the fills it got, cancels it if still open. An answer that fails validation stops the
    start: the position cannot be known without it.
    """
    market = client.market
    assert market is not None
    tracker = OrderTracker(client, market)
    for row in restored.open_orders:
        order = Order(
            row["client_order_id"], int(row["ts"]), Side(row["side"]), Decimal(str(row["amount"])),
            order_type=row.get("order_type") or "market",
            price=Decimal(str(row["price"])) if row.get("price") is not None else None,
            reason=row["reason"] or "",
        )
        order.exchange_order_id = row["exchange_order_id"]
        cid = order.client_order_id
        booked = store.db.execute("SELECT trade_id, amount FROM fills WHERE run_id = ? AND client_order_id = ?", [row["run_id"], cid]).fetchall()
        tracker.booked_trades[cid] = {r[0] for r in booked}
        order.filled = sum((Decimal(r[1]) for r in booked), Decimal(0))
        try:
            if order.exchange_order_id is None:  # a request may still be on its way: wait until it cannot be
                info = await client.lookup_settled(cid, _last_send_bound(store, row))
            else:
                info = await client.fetch_order(cid)
            if info is None:
                order.status = OrderStatus.REJECTED
                detail = "never reached the exchange (not found after its acceptance window)"
                fills = []
            else:
                if info.get("status") == "open":
                    await client.cancel_order(cid)
                    info = await client.fetch_order(cid) or info
                fills = await tracker.refresh(order, info)
                # the exchange may say "filled" before its trade list shows every trade: wait for
                # them (bounded) rather than close the order without the fills it got
                for _ in range(RECONCILE_TRADE_POLLS):
                    if order.filled >= tracker.seen_filled.get(cid, order.filled):
                        break
                    await asyncio.sleep(client.cfg.rest_poll_interval_s)
                    fills += await tracker.refresh(order, await client.fetch_order(cid) or info)
                else:
                    if order.filled < tracker.seen_filled.get(cid, order.filled):
                        raise DaemonError(
                            f"reconciling order {cid} of run {row['run_id']}: the exchange reports {tracker.seen_filled[cid]} executed "
                            f"but its trades add up to {order.filled}; start again once its trades are visible"
                        )
                if order.status not in FINAL:
                    order.status = OrderStatus.CANCELED
                detail = f"exchange status {info.get('status')}, {len(fills)} fill(s) recovered"
        except ExchangeResponseError as exc:
            raise DaemonError(f"reconciling order {cid} of run {row['run_id']}: the exchange's answer is refused ({exc}); nothing was booked") from None
        for fill in fills:
            restored.portfolio.apply(fill)
            store.record_fill(row["run_id"], fill)
        store.record_order(row["run_id"], order)
        store.record_risk_event(run_id, time.time_ns(), "reconcile", order.status.value, f"{cid}: {detail}")
        log.warning("reconciled order from an earlier run", client_order_id=cid, status=order.status.value, fills=len(fills), detail=detail)
    restored.portfolio.closed.clear()
    pf = restored.portfolio
    if restored.open_orders:
        store.record_position(run_id, time.time_ns(), pf.qty, pf.avg_price, pf.realized_pnl, pf.cash, pf.fees, pf.dust)
    store.flush()


async def check_account(client: ExchangeClient, store: Store, portfolio: Any, run_id: str, log: Any) -> dict[str, Decimal]:
    """Compare the exchange's free balances with the books; refuse fees that could not be valued.

    Binance pays fees in BNB when the account holds BNB and has that option on: the bot must then
    be able to price BNB in the quote currency, or its equity and PnL would be wrong.
    """
    market = client.market
    assert market is not None
    free = await client.free_balances()
    if market.is_derivative:  # the position is the exchange's (PositionSync), not a balance
        log.info("exchange balances at start", settle=market.settle_currency, free=str(free.get(market.settle_currency)), position=str(portfolio.qty))
        return free
    base_free = free.get(market.base, Decimal(0))
    log.info("exchange balances at start", base=market.base, base_free=str(base_free), quote=market.quote, quote_free=str(free.get(market.quote)), position=str(portfolio.qty), dust=str(portfolio.dust))
    if portfolio.qty > 0 and base_free < portfolio.qty:
        store.record_risk_event(run_id, time.time_ns(), "reconcile", "balance_mismatch", f"stored position {portfolio.qty} exceeds exchange {market.base} free balance {base_free}")
        log.error("stored position exceeds the exchange balance", position=str(portfolio.qty), balance=str(base_free))
    if client.instrument.exchange == "binance" and "BNB" not in (market.base, market.quote) and free.get("BNB", Decimal(0)) > 0:
        try:
            price = await client.fee_asset_price("BNB")
        except ExchangeFailure as exc:
            raise DaemonError(f"the account holds BNB, which Binance uses to pay fees when that option is on, but it cannot be valued: {exc}") from None
        log.info("fees paid in BNB are valued at the BNB market price", pair=f"BNB/{market.quote}", price=str(price))
    return free
