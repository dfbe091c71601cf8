"""The dashboard: one self-contained HTML page (no external files) whose script polls ``/api/`` every second.

The headline figures (equity, PnL, position, orders, fills) are ``/api/status``: the same numbers
``bot status --json`` prints. The chart (equity and drawdown), book top, signal score and open
orders come from ``/api/live`` and ``/api/equity`` (the daemon's memory); fills and risk events
from ``/api/fills`` and ``/api/events``. Values are written with ``textContent``, never as HTML.
"""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>imbalance-bot</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#0f1419;color:#d8dee6}
header{display:flex;flex-wrap:wrap;gap:24px;align-items:baseline;padding:12px 20px;background:#161d25;border-bottom:1px solid #263140}
h1{font-size:18px;margin:0 16px 0 0}h2{font-size:14px;margin:16px 0 6px;color:#8fa3b8;text-transform:uppercase;letter-spacing:.05em}
.kpi{display:flex;flex-direction:column}.kpi span:first-child{font-size:11px;color:#8fa3b8;text-transform:uppercase}
.kpi span:last-child{font-size:20px;font-variant-numeric:tabular-nums}
main{padding:0 20px 20px;display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:0 24px}
section{min-width:0}table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #232c37;white-space:nowrap}th{color:#8fa3b8;font-weight:500}
.pos{color:#5fd38d}.neg{color:#ff6b6b}#banner{display:none;padding:8px 20px;background:#5a1d1d;color:#ffd2d2;font-weight:600}
#banner.paused{background:#5a4a1d;color:#ffeec2}canvas{width:100%;height:260px;background:#131a21;border:1px solid #232c37}
button{background:#263140;color:#d8dee6;border:1px solid #3a4a5e;padding:6px 12px;margin-right:8px;cursor:pointer}
button.danger{border-color:#a33}#events td:last-child{white-space:normal}#stamp{color:#8fa3b8;font-size:12px;margin-left:auto}
</style></head><body>
<header><h1>imbalance-bot</h1>
<div class="kpi"><span>mode</span><span id="mode">-</span></div>
<div class="kpi"><span>equity</span><span id="equity" data-value="">-</span></div>
<div class="kpi"><span>pnl</span><span id="pnl" data-value="">-</span></div>
<div class="kpi"><span>drawdown</span><span id="drawdown">-</span></div>
<div class="kpi"><span>position</span><span id="position" data-value="">-</span></div>
<div class="kpi"><span>orders / fills</span><span id="counts">-</span></div>
<div class="kpi"><span>status</span><span id="status">-</span></div>
<span id="stamp">connecting...</span></header>
<div id="banner"></div>
<main><section>
<h2>Equity and drawdown</h2><canvas id="chart" width="900" height="260"></canvas>
<h2>Instruments</h2><table id="instruments"><thead><tr><th>symbol</th><th>position</th><th>avg price</th><th>bid</th><th>ask</th><th>mid</th><th>score</th><th>book</th><th>age s</th></tr></thead><tbody></tbody></table>
<h2>Open orders</h2><table id="orders"><thead><tr><th>id</th><th>symbol</th><th>side</th><th>type</th><th>amount</th><th>price</th><th>filled</th><th>status</th></tr></thead><tbody></tbody></table>
<h2>Recent fills</h2><table id="fills"><thead><tr><th>time</th><th>symbol</th><th>side</th><th>price</th><th>amount</th><th>fee</th><th>liq.</th></tr></thead><tbody></tbody></table>
</section><section>
<h2>Halts and risk events</h2><table id="events"><thead><tr><th>time</th><th>kind</th><th>rule</th><th>detail</th></tr></thead><tbody></tbody></table>
<div id="controls" style="display:none"><h2>Controls</h2>
<button data-action="pause">Pause entries</button><button data-action="flatten" class="danger">Flatten</button><button data-action="kill" class="danger">Kill switch</button>
<p id="control-result"></p></div>
</section></main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const fmt = (x, d) => (x === null || x === undefined || x === "") ? "-" : (typeof x === "number" ? x.toFixed(d === undefined ? 2 : d) : String(x));
const time = ns => new Date(Number(ns) / 1e6).toISOString().substring(11, 23);
async function get(path) {
  const r = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}
function rows(table, items, cells) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...items.map(item => {
    const tr = document.createElement("tr");
    for (const c of cells(item)) { const td = document.createElement("td"); td.textContent = c; tr.appendChild(td); }
    return tr;
  }));
}
function setNum(id, value, digits, signed) {
  const el = $(id);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = fmt(value === null ? null : Number(value), digits);
  if (signed) el.className = Number(value) > 0 ? "pos" : (Number(value) < 0 ? "neg" : "");
}
function chart(points) {
  const c = $("chart"), g = c.getContext("2d"), W = c.width, H = c.height, top = H * 0.68;
  g.clearRect(0, 0, W, H);
  g.font = "11px system-ui"; g.fillStyle = "#8fa3b8";
  if (points.length < 2) { g.fillText("waiting for equity points...", 10, 20); return; }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  let lo = Infinity, hi = -Infinity, peak = -Infinity, dds = [], ddMax = 1e-12;
  for (const [, v] of points) { lo = Math.min(lo, v); hi = Math.max(hi, v); peak = Math.max(peak, v); const dd = peak > 0 ? 1 - v / peak : 0; dds.push(dd); ddMax = Math.max(ddMax, dd); }
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const x = t => 50 + (W - 60) * (t - t0) / Math.max(t1 - t0, 1e-9);
  g.strokeStyle = "#263140"; g.beginPath(); g.moveTo(50, top); g.lineTo(W - 10, top); g.stroke();
  g.fillText(hi.toFixed(2), 2, 12); g.fillText(lo.toFixed(2), 2, top - 4); g.fillText("dd " + (ddMax * 100).toFixed(3) + "%", 2, H - 4);
  g.strokeStyle = "#4ea1ff"; g.lineWidth = 1.5; g.beginPath();
  points.forEach(([t, v], i) => { const y = 8 + (top - 16) * (hi - v) / (hi - lo); i ? g.lineTo(x(t), y) : g.moveTo(x(t), y); });
  g.stroke();
  g.fillStyle = "rgba(255,107,107,0.45)"; g.beginPath(); g.moveTo(x(t0), top + 4);
  points.forEach(([t], i) => g.lineTo(x(t), top + 4 + (H - top - 8) * dds[i] / ddMax));
  g.lineTo(x(t1), top + 4); g.closePath(); g.fill();
}
async function tick() {
  try {
    const [status, live, eq, fills, events] = await Promise.all([get("/api/status"), get("/api/live"), get("/api/equity"), get("/api/fills"), get("/api/events")]);
    $("mode").textContent = status.mode;
    setNum("equity", status.equity, 2);
    setNum("pnl", status.pnl, 2, true);
    $("drawdown").textContent = live.drawdown === null ? "-" : (live.drawdown * 100).toFixed(3) + "%";
    const pos = $("position");
    pos.dataset.value = status.position === null ? "" : status.position;
    pos.textContent = status.position === null ? "see instruments" : status.position;
    $("counts").textContent = status.orders + " / " + status.fills;
    $("status").textContent = status.status;
    const banner = $("banner");
    if (live.halt || live.kill_switch) { banner.className = ""; banner.style.display = "block"; banner.textContent = "HALTED: " + (live.halt ? live.halt.rule + ": " + live.halt.detail : "kill switch engaged"); }
    else if (live.paused) { banner.className = "paused"; banner.style.display = "block"; banner.textContent = "ENTRIES PAUSED: " + live.paused; }
    else banner.style.display = "none";
    rows("instruments", live.instruments, i => [i.symbol, i.position, i.avg_price, fmt(i.bid) + " x " + fmt(i.bid_size, 5), fmt(i.ask) + " x " + fmt(i.ask_size, 5), fmt(i.mid), fmt(i.score, 3), i.book_status, fmt(i.book_age_s, 3)]);
    rows("orders", live.instruments.flatMap(i => i.open_orders), o => [o.client_order_id, o.symbol, o.side, o.type, o.amount, o.price || "market", o.filled, o.status]);
    rows("fills", fills.fills, f => [time(f.ts), f.symbol || "", f.side, f.price, f.amount, f.fee, f.liquidity || ""]);
    rows("events", events.events, e => [time(e.ts), e.kind, e.rule || "", e.detail || ""]);
    $("controls").style.display = live.control ? "block" : "none";
    chart(eq.points);
    $("stamp").textContent = "updated " + new Date().toISOString().substring(11, 19) + " UTC";
  } catch (err) {
    $("stamp").textContent = "no answer: " + err.message;
  }
}
document.querySelectorAll("#controls button").forEach(b => b.addEventListener("click", async () => {
  if (!confirm(b.textContent + "?")) return;
  const r = await fetch("/api/" + b.dataset.action, {method: "POST", credentials: "same-origin"});
  const body = await r.json().catch(() => ({}));
  $("control-result").textContent = body.message || body.error || ("HTTP " + r.status);
}));
tick(); setInterval(tick, 1000);
</script></body></html>
"""
