"""Inline SVG charts for the HTML reports: no library, no script, no network when the page is viewed.

Why written here: a report page must open years later on a machine without network, and a
vendored charting library would be a pinned copy nobody updates. A chart is a ``<figure>`` with
the SVG and, beside it, the plotted numbers as JSON (``<script type="application/json"
class="chart-data">``): the plot box, the x and y domains and every series' points. Tests read
that JSON back and compare it with the database, and map the drawn coordinates back through the
domains to check that what is drawn is the data.

Coordinates: ``px = left + (x - x0) / (x1 - x0) * width``, ``py = top + height - (y - y0) /
(y1 - y0) * height``, rounded to 0.01 px. Series kinds: ``line`` (a ``<polyline>``), ``markers``
(``<path d="M px py ...">`` triangles: ``up`` / ``down``, the point is the ``M``), ``bars``
(``<rect>`` from the zero line to the value, ``x`` at the bar's centre).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any

import numpy as np

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 76, 16, 26, 30
MAX_POINTS = 4000
_NS = 1_000_000_000


@dataclass
class Series:
    """One thing drawn: ``x`` (ns of event time for time charts, else plain numbers) and ``y``."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    kind: str = "line"
    color: str = "#1f77b4"
    marker: str = "up"
    titles: Sequence[str] | None = None
    width: float = 0.0  # bars: width in x units (0: 80 % of the smallest gap)
    extra: dict[str, Any] = field(default_factory=dict)


def downsample(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices of the points to draw: all of them up to ``max_points``, else the first and last
    point and the minimum and maximum of each of ``max_points // 2`` equal runs of points, in
    order, so every peak and trough (the max drawdown) stays on the chart."""
    n = int(y.size)
    if n <= max_points:
        return np.arange(n)
    buckets = max(max_points // 2 - 1, 1)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for a, b in zip(edges[:-1], edges[1:]):
        if b > a:
            part = y[a:b]
            keep += [a + int(np.argmin(part)), a + int(np.argmax(part))]
    return np.unique(np.array(keep, dtype=np.int64))


def _domain(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        d = abs(lo) * 0.01 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 × 10^k steps) inside ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step) + 1)]


_TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
               2 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 91 * 86400, 365 * 86400]


def time_ticks(x0: float, x1: float, count: int = 6) -> list[tuple[float, str]]:
    """Tick positions (ns) at round UTC times and their labels, about ``count`` of them."""
    span = (x1 - x0) / _NS
    step = next((s for s in _TIME_STEPS if span / s <= count), _TIME_STEPS[-1])
    fmt = "%H:%M:%S" if span < 86400 else ("%m-%d %H:%M" if span < 30 * 86400 else "%Y-%m-%d")
    t = math.ceil(x0 / _NS / step) * step
    out = []
    while t * _NS <= x1:
        out.append((t * _NS, datetime.fromtimestamp(t, tz=timezone.utc).strftime(fmt)))
        t += step
    return out


def fmt_number(v: float) -> str:
    """A compact axis label."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e6 or a < 1e-3:
        return f"{v:.3g}"
    return f"{v:,.6g}" if a >= 1 else f"{v:.4g}"


class _Scale:
    def __init__(self, x0: float, x1: float, y0: float, y1: float, width: float, height: float) -> None:
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.w, self.h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def px(self, x: float) -> float:
        return round(LEFT + (x - self.x0) / (self.x1 - self.x0) * self.w, 2)

    def py(self, y: float) -> float:
        return round(TOP + self.h - (y - self.y0) / (self.y1 - self.y0) * self.h, 2)


def _bar_width(s: Series) -> float:
    if s.width:
        return s.width
    xs = sorted(set(float(v) for v in s.x))
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    return 0.8 * (min(gaps) if gaps else 1.0)


def chart(chart_id: str, title: str, series: Sequence[Series], *, time_x: bool = True, y_label: str = "",
          hlines: Sequence[tuple[float, str, str]] = (), vlines: Sequence[tuple[float, str, str]] = (),
          height: int = HEIGHT, note: str = "", x_ticks: Sequence[tuple[float, str]] = (), integer_x: bool = False) -> str:
    """One chart as HTML (``<figure>`` with the SVG and its data). ``hlines``/``vlines`` are
    ``(value, colour, label)`` reference lines (a cost hurdle, a halt); ``x_ticks`` replaces the
    automatic x ticks with ``(value, label)`` pairs (a log scale drawn as log10 values);
    ``integer_x`` keeps only whole-number ticks (x counts trades or candidates)."""
    xs = [float(v) for s in series for v in s.x] + [v for v, _, _ in vlines]
    ys = [float(v) for s in series for v in s.y] + [v for v, _, _ in hlines]
    pad_x = max((_bar_width(s) / 2 for s in series if s.kind == "bars" and len(s.x)), default=0.0)
    x0, x1 = (min(xs) - pad_x, max(xs) + pad_x) if xs else (0.0, 1.0)
    if x1 <= x0:
        x0, x1 = x0 - 1.0, x1 + 1.0
    if any(s.kind == "bars" for s in series):
        ys.append(0.0)
    y0, y1 = _domain(ys)
    sc = _Scale(x0, x1, y0, y1, WIDTH, height)
    out = [f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
           f'<rect x="{LEFT}" y="{TOP}" width="{sc.w}" height="{sc.h}" class="plot"/>']
    for v in nice_ticks(y0, y1):
        out.append(f'<line x1="{LEFT}" x2="{LEFT + sc.w}" y1="{sc.py(v)}" y2="{sc.py(v)}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{sc.py(v) + 4}" class="ytick">{escape(fmt_number(v))}</text>')
    xt = list(x_ticks) or (time_ticks(x0, x1) if time_x else
                           [(v, fmt_number(v)) for v in nice_ticks(x0, x1, 8) if not integer_x or v == int(v)])
    for v, label in xt:
        out.append(f'<line x1="{sc.px(v)}" x2="{sc.px(v)}" y1="{TOP}" y2="{TOP + sc.h}" class="grid"/>'
                   f'<text x="{sc.px(v)}" y="{TOP + sc.h + 18}" class="xtick">{escape(label)}</text>')
    if y_label:
        out.append(f'<text x="{LEFT}" y="{TOP - 8}" class="ylabel">{escape(y_label)}</text>')
    for v, color, label in hlines:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + sc.w}" y1="{sc.py(v)}" y2="{sc.py(v)}" stroke="{color}" class="ref">'
                   f'<title>{escape(label)}</title></line>')
    for v, color, label in vlines:
        out.append(f'<line x1="{sc.px(v)}" x2="{sc.px(v)}" y1="{TOP}" y2="{TOP + sc.h}" stroke="{color}" class="ref">'
                   f'<title>{escape(label)}</title></line>')
    for s in series:
        out.append(_draw(s, sc))
    out.append(_legend(series))
    out.append("</svg>")
    data = {
        "id": chart_id, "title": title, "time_x": time_x, "x_domain": [x0, x1], "y_domain": [y0, y1],
        "plot": {"left": LEFT, "top": TOP, "width": sc.w, "height": sc.h},
        "series": [{"name": s.name, "kind": s.kind, "x": list(s.x), "y": list(s.y), **s.extra} for s in series],
        "hlines": [{"y": v, "label": label} for v, _, label in hlines],
        "vlines": [{"x": v, "label": label} for v, _, label in vlines],
    }
    caption = escape(title) + (f' <span class="note">{escape(note)}</span>' if note else "")
    return (f'<figure class="chart" id="{escape(chart_id)}"><figcaption>{caption}</figcaption>{"".join(out)}'
            f'<script type="application/json" class="chart-data" data-chart="{escape(chart_id)}">{json_for_html(data)}</script></figure>')


def _draw(s: Series, sc: _Scale) -> str:
    name = escape(s.name)
    if s.kind == "line":
        pts = " ".join(f"{sc.px(float(x))},{sc.py(float(y))}" for x, y in zip(s.x, s.y))
        return f'<polyline data-series="{name}" points="{pts}" fill="none" stroke="{s.color}" stroke-width="1.3"/>'
    parts = [f'<g data-series="{name}" fill="{s.color}">']
    titles = s.titles or [""] * len(s.x)
    if s.kind == "markers":
        shape = "m0 -6l5 9h-10z" if s.marker == "up" else "m0 6l5 -9h-10z"
        for x, y, t in zip(s.x, s.y, titles):
            tip = f"<title>{escape(t)}</title>" if t else ""
            parts.append(f'<path d="M{sc.px(float(x))} {sc.py(float(y))}{shape}">{tip}</path>')
    elif s.kind == "bars":
        half = _bar_width(s) / 2
        zero = sc.py(0.0)
        for x, y, t in zip(s.x, s.y, titles):
            left, right, top = sc.px(float(x) - half), sc.px(float(x) + half), sc.py(float(y))
            tip = f"<title>{escape(t)}</title>" if t else ""
            parts.append(f'<rect x="{left}" y="{min(top, zero)}" width="{max(round(right - left, 2), 0.5)}" '
                         f'height="{round(abs(zero - top), 2)}" data-x="{float(x)!r}">{tip}</rect>')
    else:
        raise ValueError(f"unknown series kind {s.kind!r}")
    parts.append("</g>")
    return "".join(parts)


def _legend(series: Sequence[Series]) -> str:
    out, x = [], WIDTH - RIGHT
    for s in reversed(series):
        label = escape(s.name)
        x -= 22 + 7 * len(s.name)
        out.append(f'<rect x="{x}" y="{TOP - 17}" width="9" height="9" fill="{s.color}"/>'
                   f'<text x="{x + 12}" y="{TOP - 9}" class="legend">{label}</text>')
    return "".join(out)


def json_for_html(data: Any) -> str:
    """Strict JSON that is safe inside ``<script>``: ``<``, ``>`` and ``&`` as ``\\u`` escapes (so no
    text from the database can end the element or open a comment in it), no NaN."""
    from bot.store.jsonout import strict_json

    return strict_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
