"""What ``bot run`` tells the person at the console: what it connected to, a live status line, the run's summary.

- On start (the markets are loaded, the run is stored, the operator surface listens), stdout
  gets the start lines: mode, exchange and endpoint (testnet or not), instruments, database,
  run id, and whether the HTTP surface and webhooks are on. No secret is ever printed: keys and
  the HTTP token are only said to be set; a URL is shown without any user:password part.
- While it runs, when stderr is a terminal (and neither ``--no-status`` nor ``run.status_line
  = false``), a status line redrawn once a second at the bottom of the terminal: per instrument
  the position, its average price, the mid, the book's age and state, orders and fills; for
  the account the PnL, equity and the halt in force (and how many halts this run has seen). It is drawn from the heartbeat state the daemon
  writes for ``bot status`` anyway, by :mod:`bot.console`'s refresh thread: the daemon only
  hands over a reference, so the decision path never waits for the terminal.
- On stop (a signal, the kill switch, the duration, a fatal error), after the run is closed,
  stdout gets the run's summary read back from the database by the report code: the same text
  ``bot report --db DB --run ID`` prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from bot.config.settings import Settings
from bot.console import clock, status_line

if TYPE_CHECKING:
    from bot.engine.observer import DaemonView


def _public_url(url: str) -> str:
    """``url`` without a user:password part (a URL may carry credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def endpoint(settings: Settings) -> str:
    """Where the daemon's exchange client talks to: the configured URL, or the exchange's own (production or testnet)."""
    from bot.exchange.client import ccxt_exchange_name

    ex = settings.exchange
    market = settings.instruments[0]
    name = ccxt_exchange_name(market.exchange, market.type)
    if ex.rest_url:
        ws = ex.ws_url or ex.rest_url.replace("http", "ws", 1).rstrip("/") + "/ws"
        return f"{_public_url(ex.rest_url)} (websocket {_public_url(ws)}){', sandbox (testnet)' if ex.sandbox else ''}"
    return f"{name} {'testnet (sandbox)' if ex.sandbox else 'production'} endpoints"


def start_lines(settings: Settings, view: "DaemonView", http_port: int | None) -> list[str]:
    ex = settings.exchange
    if view.mode == "live":
        mode = "LIVE (testnet orders)" if ex.sandbox else "LIVE (real orders on the exchange)" if not ex.rest_url else f"LIVE (real orders to {_public_url(ex.rest_url)})"
    else:
        mode = f"{view.mode.upper()} (simulated fills on the exchange's market data)"
    instruments = ", ".join(f"{lane.symbol} ({lane.market.kind})" for lane in view.lanes)
    exchange = ", ".join(sorted({i.exchange for i in settings.instruments}))
    http = settings.http
    if http_port is not None:
        web = f"on, http://{http.host}:{http_port}/ (dashboard, /api/, /metrics; token set{', controls on' if http.control else ''})"
    else:
        web = "off"
    keys = "set" if ex.api_key is not None and ex.api_secret is not None else "not set"
    lines = [
        f"bot run: {mode}",
        f"  exchange:    {exchange} at {endpoint(settings)}",
        f"  instruments: {instruments}",
        f"  account:     equity {view.initial_equity:,.2f} at start; api keys {keys}",
        f"  database:    {view.db_path}",
        f"  run id:      {view.run_id}",
        f"  http:        {web}",
        f"  webhooks:    {len(settings.alerts.webhooks) or 'none'}",
    ]
    return lines


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):,.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def render_status(state: dict[str, Any], halts_seen: int = 0) -> str:
    """The status line's text for one heartbeat state: the account first (what matters most
    stays visible on a narrow terminal), then each instrument (on lines of their own when several)."""
    rows = []
    for p in state.get("instruments") or [state]:
        age = p.get("book_age_s")
        position = str(p.get("position") or "0")
        avg = p.get("avg_price")
        at = f" @ {_num(avg)}" if avg not in (None, "0") and position.strip("0.E-+") else ""
        rows.append(f"{p.get('symbol') or ''} pos {position}{at}  mid {_num(p.get('mid'))}  "
                    f"book {'-' if age is None else f'{age:.2f}s'} {p.get('book_status', '?')}  "
                    f"orders {p.get('orders', 0)} fills {p.get('fills', 0)} open {len(p.get('open_orders') or [])}".strip())
    halt = state.get("halt")
    halt_text = f"HALTED {halt.get('rule')}: {halt.get('detail')}" if halt else "no halt"
    if halts_seen:
        halt_text += f" ({halts_seen} this run)"
    pnl = state.get("pnl")
    sign = "+" if isinstance(pnl, (int, float)) and pnl >= 0 else ""
    account = f"{str(state.get('mode', '')).upper()} {clock(state.get('uptime_s'))}  PnL {sign}{_num(pnl, 4)}  equity {_num(state.get('equity'))}  {halt_text}"
    if len(rows) == 1:
        return f"{account}  |  {rows[0]}"
    return "\n".join([account] + ["  " + r for r in rows])


class RunConsole:
    """The console as an observer of the daemon (:class:`~bot.engine.observer.Observer`)."""

    latencies: list[int] | None = None  # the console needs no tick-to-decision times

    def __init__(self, settings: Settings, status: bool = True, out: TextIO | None = None, ops: Any = None,
                 status_stream: TextIO | None = None, force_status: bool = False):
        self.settings = settings
        self.out = out or sys.stdout
        self.ops = ops  # bot.ops, when attached: the start lines name the port it listens on
        self.halts_seen = 0
        self._last_halt: Any = None
        # status_stream/force_status: another terminal than stderr (benchmark 6 draws on a pseudo-terminal)
        self.line = status_line(self._render, enabled=status, stream=status_stream, force=force_status)

    def _render(self, state: dict[str, Any]) -> str:
        return render_status(state, self.halts_seen)

    async def start(self, view: "DaemonView") -> None:
        port = getattr(self.ops, "port", None)
        try:
            text = "\n".join(start_lines(self.settings, view, port))
        except Exception as exc:  # noqa: BLE001 - what the console says never stops trading
            text = f"bot run: {view.mode} run {view.run_id} started, database {view.db_path} (start lines unavailable: {type(exc).__name__})"
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):  # stdout closed: trading does not depend on it
            pass
        try:
            self.line.start()
        except Exception:  # noqa: BLE001 - no status line then; trading goes on
            self.line.enabled = False

    def heartbeat(self, state: dict[str, Any], now_ns: int) -> None:
        halt = state.get("halt")
        if halt is not None and halt != self._last_halt:
            self.halts_seen += 1
        self._last_halt = halt
        self.line.set(state)

    async def stop(self, status: str, reason: str) -> None:
        self.line.stop()


def print_summary(db_path: str | Path, run_id: str, status_note: str = "", out: TextIO | None = None) -> bool:
    """The run's summary as ``bot report --db DB --run RUN`` prints it; False when the run was never stored."""
    from bot.store.report import format_summary, summarize

    out = out or sys.stdout
    if not Path(db_path).is_file():
        return False
    try:
        summary = summarize(db_path, run_id)
    except Exception:  # noqa: BLE001 - no run stored (it never started) or an unreadable file: the error line says why
        return False
    head = f"bot run: run {run_id} stopped ({summary.get('status')}{': ' + status_note if status_note else ''}); its summary, as `bot report` shows it:"
    try:
        print(f"{head}\n{format_summary(summary)}", file=out, flush=True)
    except (OSError, ValueError):
        return False
    return True
