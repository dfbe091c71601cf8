"""The frame of every HTML page the bot writes (``bot report``, ``bot research``, ``bot tune``).

Why one module: the three pages share the look, the escaping and the way a file is written.
Every text that reaches a page goes through :func:`html.escape` here (run ids, symbols, risk
event details and config values are data, not markup), the page carries its CSS inline and
loads nothing, and a page is written to a temporary file beside the target and renamed, so a
failed write never leaves half a page behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:16px 20px 48px}
h1{font-size:21px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d6dae1;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}p.sub{color:#5b6475;margin:0 0 12px}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px 10px;min-width:120px}
.card b{display:block;font-size:16px}.card span{color:#5b6475;font-size:12px}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;font-size:13px}th,td{border:1px solid #dde1e7;padding:3px 7px;text-align:right}
th{background:#eef0f4}td:first-child,th:first-child{text-align:left}td.t{text-align:left}
figure.chart{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:10px 0;padding:6px}
figcaption{font-weight:600;margin:2px 4px}.note{font-weight:400;color:#5b6475}
svg{width:100%;height:auto;display:block}svg .plot{fill:#fbfbfc;stroke:#c9ced6}svg .grid{stroke:#eceef2}
svg text{font-size:11px;fill:#5b6475}svg .ytick{text-anchor:end}svg .xtick{text-anchor:middle}svg .ref{stroke-width:1.2;stroke-dasharray:5 3}
.warn{background:#fff6e0;border:1px solid #f0d58a;border-radius:6px;padding:6px 10px;margin:8px 0}
.neg{color:#b42318}.pos{color:#067647}details{margin:6px 0}code{background:#eef0f4;padding:0 3px;border-radius:3px}
"""


def text(value: Any) -> str:
    """A value as escaped page text (None as n/a)."""
    return "n/a" if value is None else escape(str(value))


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """A complete, self-contained HTML document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{escape(subtitle)}</p>" + "".join(body) + "</main></body></html>\n")


def section(title: str, *parts: str, level: int = 2, ident: str = "") -> str:
    anchor = f' id="{escape(ident)}"' if ident else ""
    return f"<section{anchor}><h{level}>{escape(title)}</h{level}>" + "".join(parts) + "</section>"


def cards(items: Iterable[tuple[str, Any]]) -> str:
    """Headline figures as small cards: ``(label, value)``."""
    return '<div class="cards">' + "".join(f"<div class=\"card\"><b>{text(v)}</b><span>{escape(k)}</span></div>" for k, v in items) + "</div>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], ident: str = "", text_cols: Sequence[int] = (0,)) -> str:
    """An HTML table; every cell is escaped; columns in ``text_cols`` are left-aligned."""
    anchor = f' id="{escape(ident)}"' if ident else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td{" class=t" if i in text_cols else ""}>{text(c)}</td>' for i, c in enumerate(row)) + "</tr>"
                   for row in rows)
    return f"<table{anchor}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def paragraph(value: str, cls: str = "") -> str:
    return f'<p class="{cls}">{escape(value)}</p>' if cls else f"<p>{escape(value)}</p>"


def write_text(path: str | Path, content: str) -> Path:
    """Write ``content`` to ``path`` (parent folders created) through a temporary file and a rename.
    Raises OSError (the caller turns it into one line naming the path)."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(21, "is a directory", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        mask = os.umask(0)  # mkstemp makes the file private; a page is as readable as any file the user writes
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, target)
        tmp = ""
    finally:
        if tmp:
            os.unlink(tmp)
    return target
