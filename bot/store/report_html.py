"""``bot report --html OUT.html``: one self-contained page of a run, built from the database alone.

What it shows, and where each figure comes from (all through :mod:`bot.store.run_data`):

* headline cards and the ratios: :func:`bot.store.report.summarize` (the ``--json`` figures);
* equity and drawdown: the ``equity`` rows, downsampled to at most :data:`bot.store.svg.MAX_POINTS`
  points by keeping each run's minimum and maximum (the deepest drawdown is always drawn); halts
  are vertical lines;
* per instrument: the price (the equity rows' mid in a one-instrument run; in a several-instrument
  run the equity rows do not say whose mid they carry, so the line joins that instrument's fill
  prices) with every fill as a triangle (buy up, sell down), the instrument's row of the
  summary, its trade figures and results per exit reason, its cost hurdle;
* PnL per trade (bars), its distribution (histogram of ``pnl_net``) and the cumulative gross,
  fees and net over the trades; fees by liquidity and currency; risk events and rejections;
  the trade list (the first :data:`MAX_TABLE_ROWS`; ``bot report --trades`` prints all).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from bot.store.page import cards, page, paragraph, section, table, write_text
from bot.store.run_data import HALT_KINDS, RunData, load_run
from bot.store.svg import Series, chart, downsample
from bot.store.trades import TRADE_COLUMNS, Trade, iso

MAX_MARKERS = 3000
MAX_BARS = 2000
MAX_TABLE_ROWS = 1000
BUY, SELL, NET, GROSS, FEES = "#067647", "#b42318", "#1f5fbf", "#7a5af8", "#d97706"


def _m(x: Any) -> str:
    """Money as text: 8 decimals at most, trailing zeros dropped."""
    if x is None:
        return "n/a"
    return f"{Decimal(str(x)):.8f}".rstrip("0").rstrip(".")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f}%"


def _line(name: str, ts: np.ndarray, y: np.ndarray, color: str) -> Series:
    idx = downsample(y)
    return Series(name, [int(v) for v in ts[idx]], [float(v) for v in y[idx]], color=color)


def equity_charts(d: RunData) -> str:
    """Equity (with the initial equity and the halts) and drawdown, in the settle currency / % of peak."""
    settle = d.summary.get("settle") or ""
    if not d.ts.size:
        return paragraph("no equity rows were stored for this run", "warn")
    halts = [(e["ts"], SELL, f"{iso(e['ts'])} {e['kind']} {e['rule'] or ''}: {e['detail'] or ''}") for e in d.events if e["kind"] in HALT_KINDS]
    initial = float(d.summary["initial_equity"])
    note = f"{d.ts.size:,} equity rows" + ("" if d.ts.size <= 4000 else ", drawn as each stretch's minimum and maximum")
    eq = chart("equity", f"Equity ({settle})", [_line("equity", d.ts, d.equity, NET)],
               hlines=[(initial, "#5b6475", f"initial equity {initial:g}")], vlines=halts, note=note, y_label=settle)
    dd = chart("drawdown", "Drawdown (% below the running peak)", [_line("drawdown", d.ts, -100.0 * d.drawdown, SELL)],
               vlines=halts, height=180, y_label="%",
               note=f"max drawdown {_pct(d.summary.get('max_drawdown'))}")
    return eq + dd


def price_chart(d: RunData, symbol: str) -> str:
    """The instrument's price with its fills."""
    fills = [f for f in d.fills if f.symbol == symbol]
    note = ""
    if len(d.symbols) <= 1 and np.isfinite(d.mid).any():
        ok = np.isfinite(d.mid)
        price = _line("mid", d.ts[ok], d.mid[ok], "#5b6475")
    else:
        price = Series("fill price", [f.ts for f in fills], [float(f.price) for f in fills], color="#5b6475")
        note = "line: this instrument's fill prices (the equity rows of a several-instrument run carry no instrument)"
    if len(fills) > MAX_MARKERS:
        note = (note + "; " if note else "") + f"markers: the last {MAX_MARKERS:,} of {len(fills):,} fills"
        fills = fills[-MAX_MARKERS:]
    series = [price]
    for side, color, marker in (("buy", BUY, "up"), ("sell", SELL, "down")):
        chosen = [f for f in fills if f.side == side]
        series.append(Series(side, [f.ts for f in chosen], [float(f.price) for f in chosen], kind="markers", color=color, marker=marker,
                             titles=[f"{iso(f.ts)} {side} {f.amount} at {f.price}, fee {_m(f.fee_value)} ({f.liquidity})" for f in chosen]))
    return chart(f"price-{_slug(symbol)}", f"{symbol}: price and fills", series, note=note)


def _slug(symbol: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in symbol)


def pnl_charts(trades: Sequence[Trade], settle: str) -> str:
    """PnL per trade, its distribution and the cumulative gross / fees / net."""
    if not trades:
        return paragraph("no trades (round trips) in this run")
    net = np.array([float(t.pnl_net) for t in trades])
    idx = np.arange(1, len(trades) + 1)
    note = ""
    keep = np.arange(len(trades))
    if len(trades) > MAX_BARS:
        keep = downsample(net, MAX_BARS)
        note = f"{len(trades):,} trades, drawn as each stretch's best and worst"
    bars = []
    for name, color, sel in (("win", BUY, net[keep] > 0), ("loss", SELL, net[keep] <= 0)):
        k = keep[sel]
        bars.append(Series(name, [int(i) for i in idx[k]], [float(v) for v in net[k]], kind="bars", color=color, width=0.8,
                           titles=[f"#{trades[i].id} {trades[i].symbol} {trades[i].side}, {trades[i].exit_reason}: net {_m(trades[i].pnl_net)} "
                                   f"(gross {_m(trades[i].pnl_gross)}, fees {_m(trades[i].fees)})" for i in k]))
    per_trade = chart("pnl-per-trade", f"Net PnL per trade ({settle})", bars, time_x=False, integer_x=True, note=note, y_label=settle)
    edges = np.histogram_bin_edges(net, bins=min(40, max(5, int(np.sqrt(len(net))))))
    counts, _ = np.histogram(net, bins=edges)
    centers = (edges[:-1] + edges[1:]) / 2
    hist = chart("pnl-distribution", f"Distribution of net PnL per trade ({settle})",
                 [Series("trades", [float(c) for c in centers], [int(c) for c in counts], kind="bars", color=NET,
                         width=float(edges[1] - edges[0]), extra={"edges": [float(e) for e in edges]},
                         titles=[f"{int(c)} trade(s) from {a:.6g} to {b:.6g}" for c, a, b in zip(counts, edges[:-1], edges[1:])])],
                 time_x=False, hlines=(), height=200, note="x: net PnL of a trade; y: number of trades")
    close = np.array([t.close_ts for t in trades], dtype=np.int64)
    cum = {"gross": np.cumsum([float(t.pnl_gross) for t in trades]), "fees": -np.cumsum([float(t.fees) for t in trades]),
           "net": np.cumsum(net)}
    lines = [_line(f"cumulative {k}", close, v, c) for (k, v), c in zip(cum.items(), (GROSS, FEES, NET))]
    cumulative = chart("pnl-cumulative", f"Cumulative PnL over the trades: gross, fees (negative), net ({settle})", lines, y_label=settle)
    return per_trade + hist + cumulative


def _stats_tables(stats: dict[str, Any]) -> str:
    pf = stats["profit_factor"]
    rows = [
        ("trades (won / lost)", f"{stats['trades']} ({stats['wins']} / {stats['losses']})"),
        ("win rate after fees", _pct(stats["win_rate"])), ("win rate before fees", _pct(stats["win_rate_gross"])),
        ("average win", _m(stats["avg_win"])), ("average loss", _m(stats["avg_loss"])), ("average trade", _m(stats["avg_trade"])),
        ("profit factor", f"{pf:.4f}" if pf is not None else f"n/a: {stats['profit_factor_reason']}"),
        ("profit factor before fees", "n/a" if stats["profit_factor_gross"] is None else f"{stats['profit_factor_gross']:.4f}"),
        ("exposure", f"{stats['exposure_s']:g} s of {stats['span_s']:g} s ({_pct(stats['exposure'])})"),
        ("average holding", "n/a" if stats["avg_holding_s"] is None else f"{stats['avg_holding_s']:g} s"),
    ]
    out = table(("figure", "value"), rows, text_cols=(0, 1))
    reasons = stats["by_exit_reason"]
    if reasons:
        out += table(("exit reason", "trades", "win rate", "pnl_gross", "fees", "pnl_net"),
                     [(r["exit_reason"], r["trades"], _pct(r["win_rate"]), _m(r["pnl_gross"]), _m(r["fees"]), _m(r["pnl_net"])) for r in reasons])
    return out


def _hurdle(d: RunData, symbol: str, stats: dict[str, Any]) -> str:
    hurdle = d.engine_stat(symbol, "cost_hurdle")
    rows = [(k, "n/a" if v is None else v) for k, v in (hurdle or {}).items()]
    if stats["trades"]:
        n = Decimal(stats["trades"])
        rows += [("gross PnL per trade", _m(stats["pnl_gross"] / n)), ("fees per trade", _m(stats["fees"] / n))]
    out = table(("cost hurdle (bps) and cost per trade", "value"), rows) if rows else ""
    markouts = d.engine_stat(symbol, "markouts") or {}
    if markouts.get("maker_fills"):
        out += table(("markouts of the maker fills (bps)", "value"), [(k, "n/a" if v is None else v) for k, v in markouts.items()])
    return out


def instrument_sections(d: RunData) -> list[str]:
    settle = d.summary.get("settle") or ""
    out = []
    for row in d.summary.get("instruments") or []:
        symbol = row["symbol"]
        stats = d.stats_of(symbol)
        head = ("trades", "orders", "fills", "pnl_gross", "fees", "funding", "pnl_net")
        out.append(section(
            f"{symbol}", table(("symbol", *head), [(symbol, *[row[k] if k in ("trades", "orders", "fills") else _m(row[k]) for k in head])]),
            price_chart(d, symbol), section("Trade figures", _stats_tables(stats), level=3),
            section("Fees and cost hurdle", _hurdle(d, symbol, stats), level=3), ident=f"instrument-{_slug(symbol)}"))
    if out and settle:
        out.insert(0, paragraph(f"Money in {settle}."))
    return out


def _ratios(summary: dict[str, Any]) -> str:
    r = summary.get("ratios") or {}
    rows = [(k, "n/a" if r.get(k) is None else r[k]) for k in ("sharpe", "sortino", "cagr", "calmar")]
    rows.append(("daily returns (needed)", f"{r.get('returns')} ({r.get('min_returns')})"))
    why = paragraph(f"Why n/a: {r['reason']}", "warn") if r.get("reason") else ""
    return table(("ratio", "value"), rows) + why + paragraph(str(summary.get("sharpe_annualization") or ""))


def _events(d: RunData) -> str:
    rows = [(iso(e["ts"]), e["symbol"] or "", e["kind"], e["rule"] or "", e["detail"] or "") for e in d.events[:MAX_TABLE_ROWS]]
    more = paragraph(f"{len(d.events) - MAX_TABLE_ROWS:,} more risk events are in the database") if len(d.events) > MAX_TABLE_ROWS else ""
    out = (table(("time (UTC)", "symbol", "kind", "rule", "detail"), rows, ident="risk-events", text_cols=(0, 1, 2, 3, 4)) + more
           if rows else paragraph("no risk events besides rejections"))
    if d.rejects:
        out += table(("rejected by rule", "count"), d.rejects, ident="rejects")
    return out


def _trade_table(trades: Sequence[Trade]) -> str:
    if not trades:
        return paragraph("no trades")
    rows = [[r[c] for c in TRADE_COLUMNS] for r in (t.row() for t in trades[:MAX_TABLE_ROWS])]
    more = (paragraph(f"the first {MAX_TABLE_ROWS:,} of {len(trades):,} trades; bot report --trades (or --csv FILE) lists all")
            if len(trades) > MAX_TABLE_ROWS else "")
    return table(TRADE_COLUMNS, rows, ident="trades", text_cols=(1, 2, 3, 4, 12)) + more


def build_page(d: RunData) -> str:
    """The whole HTML page of a run."""
    s = d.summary
    settle = s.get("settle") or ""
    ts = s["trade_stats"]
    span = f"{iso(d.start)} to {iso(d.end)} (market time)" if d.ts.size else "no equity rows"
    warn = ""
    if s.get("status") != "completed":
        warn = paragraph(f"status {s.get('status')}: the run did not complete normally; the figures are what the database holds", "warn")
    headline = cards([
        (f"net PnL ({settle})", _m(s["pnl_net"])), (f"gross PnL ({settle})", _m(s["pnl_gross"])), (f"fees ({settle})", _m(s["fees"])),
        (f"funding ({settle})", _m(s["funding"])), ("trades", s["trades"]), ("win rate after / before fees",
                                                                             f"{_pct(ts['win_rate'])} / {_pct(ts['win_rate_gross'])}"),
        ("max drawdown", _pct(s["max_drawdown"])), ("profit factor", "n/a" if ts["profit_factor"] is None else f"{ts['profit_factor']:.4f}"),
        ("exposure", _pct(ts["exposure"])), ("Sharpe (see the ratios)", s["sharpe"]),
    ])
    body = [
        warn, headline,
        section("Equity and drawdown", equity_charts(d), ident="equity-drawdown"),
        *instrument_sections(d),
        section("PnL per trade", pnl_charts(d.trades, settle), section("All trades", _stats_tables(ts), level=3), ident="pnl"),
        section("Fees", table(("symbol", "liquidity", "fee currency", "fills", f"fees ({settle})"),
                              [(r["symbol"], r["liquidity"], r["fee_currency"], r["fills"], _m(r["fees"])) for r in d.fees_by()]),
                paragraph(f"total {_m(s['fees'])} {settle}: the fills' fees valued in the settle currency"), ident="fees"),
        section("Halts and risk events", _events(d), ident="halts"),
        section("Risk-adjusted ratios", _ratios(s), ident="ratios"),
        section("Trade list", _trade_table(d.trades), ident="trade-list"),
        paragraph(f"Built by bot report from {s['db']}, run {s['run_id']}, at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
                  "every figure is computed from the database rows.", "sub"),
    ]
    subtitle = f"{s.get('mode')} · {s.get('symbol')} · {s.get('status')} · {span}"
    return page(f"Run {s['run_id']}", subtitle, body)


def write_run_page(db_path: str | Path, run_id: str | None, out: str | Path) -> Path:
    """Build the page of ``run_id`` (the latest run if None) and write it to ``out``.
    LookupError for a missing database or run, OSError for an unwritable ``out``."""
    return write_text(out, build_page(load_run(db_path, run_id)))
