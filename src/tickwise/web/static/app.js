/* tickwise dashboard: hash-routed pages that poll the JSON API (/api/v1) while they are shown.
 * Every string that reaches innerHTML goes through html`` (escapes interpolations) or textContent.
 */
"use strict";

/* ---------- formatting ---------- */

const DASH = "\u2013";
const ok = (v) => v != null && Number.isFinite(Number(v));
const pad2 = (n) => (n < 10 ? "0" : "") + n;
const fmtNum = (v, d = 2) =>
  ok(v) ? Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }) : DASH;
const fmtInt = (v) => (ok(v) ? Math.round(v).toLocaleString("en-US") : DASH);
const fmtRate = (v) => (!ok(v) ? DASH : Math.abs(v) >= 100 ? fmtInt(v) : fmtNum(v, 1));
const fmtMoney = (v) => (ok(v) ? (v < 0 ? "-$" : "$") + fmtNum(Math.abs(v), 2) : DASH);
const fmtPct = (v, d = 2) => (ok(v) ? fmtNum(v * 100, d) + "%" : DASH);
const fmtTime = (t) => (ok(t) ? TickwiseChart.formatTime(t) : DASH);
const fmtQty = (v) => (ok(v) ? Number(v).toLocaleString("en-US", { maximumFractionDigits: 8 }) : DASH);
const fmtPrice = (v) => (!ok(v) ? DASH : fmtNum(v, Math.abs(v) >= 100 ? 2 : Math.abs(v) >= 1 ? 4 : 6));
const fmtScore = (v) => (ok(v) ? fmtNum(v, 4) : DASH);

function fmtDuration(s) {
  if (!ok(s)) return DASH;
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), Math.floor(s % 60)];
  return (h ? h + ":" + pad2(m) : m) + ":" + pad2(sec);
}

function fmtAge(s) {
  if (!ok(s)) return "never tuned";
  if (s < 120) return fmtInt(s) + " s ago";
  if (s < 7200) return fmtInt(s / 60) + " min ago";
  return fmtNum(s / 3600, 1) + " h ago";
}

const fmtParam = (v) =>
  typeof v === "number" ? Number(v.toPrecision(6)).toLocaleString("en-US", { maximumFractionDigits: 8 }) : String(v);
const fmtParams = (params) =>
  Object.entries(params || {})
    .map(([k, v]) => k + "=" + fmtParam(v))
    .join(", ");

/* ---------- safe HTML ---------- */

function Raw(text) {
  this.text = text;
}
const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ESCAPES[c]);

function htmlValue(v) {
  if (v instanceof Raw) return v.text;
  if (Array.isArray(v)) return v.map(htmlValue).join("");
  if (v == null || v === false) return "";
  return esc(v);
}

/** Tagged template: literal parts are markup, every interpolated value is escaped (unless html``). */
function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => (out += htmlValue(v) + strings[i + 1]));
  return new Raw(out);
}

const $ = (sel, root = document) => root.querySelector(sel);
const setHTML = (el, fragment) => {
  if (el) el.innerHTML = htmlValue(fragment);
};
const fill = (sel, fragment) => setHTML($(sel), fragment);

/** A table; a column label starting with "=" is numeric (right-aligned). Rows: cells or {cls, cells}. */
function table(columns, rows, empty = "none") {
  const cls = columns.map((c) => (c.startsWith("=") ? "num" : ""));
  const head = columns.map((c, i) => html`<th class="${cls[i]}">${c.replace(/^=/, "")}</th>`);
  const body = rows.length
    ? rows.map((r) => {
        const cells = Array.isArray(r) ? r : r.cells;
        return html`<tr class="${Array.isArray(r) ? "" : r.cls}">${cells.map((c, i) => html`<td class="${cls[i]}">${c}</td>`)}</tr>`;
      })
    : html`<tr><td colspan="${columns.length}" class="empty">${empty}</td></tr>`;
  return html`<table class="grid"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

/** A horizontal bar: value out of max, with a text label over it. */
function bar(value, max, label) {
  const frac = ok(value) && ok(max) && max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const level = frac > 0.9 ? "hot" : frac > 0.7 ? "warm" : "";
  return html`<div class="bar"><div class="bar-fill ${level}" style="width:${(frac * 100).toFixed(1)}%"></div><span class="bar-label">${label}</span></div>`;
}

const notFound = (what, name) => html`<section class="panel empty-state">${what}: <strong>${name}</strong></section>`;
const side = (s) => html`<span class="side side-${s}">${s}</span>`;
const pnl = (v) => html`<span class="${v > 0 ? "pos" : v < 0 ? "neg" : ""}">${fmtMoney(v)}</span>`;
const kv = (pairs) => html`<dl class="kv">${pairs.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;

/* ---------- API ---------- */

const apiError = (status, message) => Object.assign(new Error(message), { status });

function showError(message) {
  const el = $("#error-banner");
  el.textContent = message || "";
  el.hidden = !message;
}

/** The one fetch helper: same-origin cookie, the request header, 401 banner, JSON errors. */
async function api(path, { method = "GET", params, body } = {}) {
  let url = "/api/v1" + path;
  if (params) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v != null && v !== "") query.set(k, String(v));
    if (query.toString()) url += "?" + query;
  }
  const init = {
    method,
    credentials: "same-origin",
    cache: "no-store",
    headers: { "X-Tickwise-Request": "1", Accept: "application/json" },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init).catch(() => Promise.reject(apiError(0, "server unreachable")));
  $("#auth-banner").hidden = res.status !== 401;
  if (res.status === 401) throw apiError(401, "not authorized");
  const data = await res.json().catch(() => null);
  if (!res.ok) throw apiError(res.status, (data && data.error) || "HTTP " + res.status);
  showError(null);
  $("#last-update").textContent = "updated " + fmtTime(Date.now() / 1000);
  return data;
}

function reportError(err) {
  if (err && err.status === 401) return; // the auth banner already says it
  showError((err && err.message) || String(err));
}

/* ---------- page lifecycle ---------- */

const STALE = new Error("stale page");

/** What a shown page owns: its polls, charts and listeners, all stopped when the route changes. */
class PageContext {
  constructor() {
    this.live = true;
    this.cleanups = [];
  }

  /** Fetch for this page; throws STALE if the page was left meanwhile, so nothing old is drawn. */
  async get(path, params) {
    const data = await api(path, { params });
    if (!this.live) throw STALE;
    return data;
  }

  /** Like get, but a 404 replaces the page with a "not found" note and gives null. */
  async getOrMissing(path, root, what, name) {
    try {
      return await this.get(path);
    } catch (err) {
      if (err.status !== 404) throw err;
      setHTML(root, notFound(what, name));
      return null;
    }
  }

  /** Run fn now and every ms after it finishes (no overlap); stop when fn returns false. */
  poll(ms, fn) {
    let timer = 0;
    const tick = async () => {
      if (!this.live) return;
      let again = true;
      if (!document.hidden) {
        try {
          again = (await fn()) !== false;
        } catch (err) {
          if (this.live && err !== STALE) reportError(err);
        }
      }
      if (this.live && again) timer = setTimeout(tick, ms);
    };
    this.cleanups.push(() => clearTimeout(timer));
    tick();
  }

  chart(el, options) {
    const chart = new TickwiseChart(el, options);
    this.cleanups.push(() => chart.destroy());
    return chart;
  }

  stop() {
    this.live = false;
    this.cleanups.forEach((fn) => fn());
  }
}

/* ---------- halts: banner, dialog, resume ---------- */

let haltKey = "";

function renderHaltBanner(halts) {
  const active = (halts || []).filter((h) => h.active !== false);
  const key = JSON.stringify(active);
  if (key === haltKey) return;
  haltKey = key;
  const banner = $("#halt-banner");
  banner.hidden = active.length === 0;
  setHTML(
    banner,
    html`<strong>TRADING HALTED</strong>
      <ul>${active.map(
        (h) => html`<li><span class="scope">${h.scope}</span> ${h.reason}
          <span class="muted">by ${h.actor || "?"} at ${fmtTime(h.t)}</span>
          <button class="btn btn-small resume" data-scope="${h.scope}" data-reason="${h.reason}">Resume</button></li>`
      )}</ul>`
  );
}

async function refreshHalts() {
  try {
    const data = await api("/halts");
    renderHaltBanner(data.active);
    return data;
  } catch (err) {
    reportError(err);
    return null;
  }
}

async function resumeHalt(scope, reason) {
  if (!confirm("Resume trading for " + scope + "?\nHalt reason: " + reason)) return;
  try {
    await api("/halts", { method: "DELETE", params: { scope, reason } });
  } catch (err) {
    reportError(err);
  }
  await refreshHalts();
}

function syncHaltScope() {
  const global = $("#halt-scope").value === "global";
  $("#halt-scope-id-label").hidden = global;
  $("#halt-scope-id").required = !global;
}

/** Open the kill-switch dialog, optionally preset to a scope ("client", 42). */
function openHaltDialog(scope = "global", id = "") {
  const dialog = $("#halt-dialog");
  $("#halt-form").reset();
  $("#halt-scope").value = scope;
  $("#halt-scope-id").value = id;
  $("#halt-error").hidden = true;
  syncHaltScope();
  dialog.showModal();
  $("#halt-reason").focus();
}

async function submitHalt(event) {
  event.preventDefault();
  const error = $("#halt-error");
  const reason = $("#halt-reason").value.trim();
  const kind = $("#halt-scope").value;
  const id = $("#halt-scope-id").value.trim();
  const fail = (message) => Object.assign(error, { textContent: message, hidden: false });
  if (!reason) return fail("A reason is required.");
  if (kind !== "global" && !/^\d+$/.test(id)) return fail("Enter the " + kind + " number.");
  const scope = kind === "global" ? "global" : kind + ":" + id;
  const confirmButton = $("#halt-confirm");
  confirmButton.disabled = true;
  try {
    await api("/halts", { method: "POST", body: { scope, reason, cancel_open: $("#halt-cancel-open").checked } });
    $("#halt-dialog").close();
    await refreshHalts();
  } catch (err) {
    fail(err.status === 401 ? "not authorized" : err.message);
  } finally {
    confirmButton.disabled = false;
  }
}

/* ---------- overview ---------- */

const TILES = [
  ["ticks", "Ticks/s", "ticks_per_s"],
  ["signals", "Signals/s", "signals_per_s"],
  ["orders", "Orders/s", "orders_per_s"],
  ["fills", "Fills/s", "fills_per_s"],
  ["rejects", "Rejects/s", "rejects_per_s"],
  ["errors", "Errors/s", "errors_per_s"],
];
const STAGES = ["feed", "signal", "alloc", "journal", "sent", "venue", "ack"];
const HISTORY_S = 600;

function overviewPage(ctx, root) {
  setHTML(
    root,
    html`<section class="panel run-header">
        <div class="run-meta">
          <div><span class="label">run</span><span id="run-id" class="mono">${DASH}</span></div>
          <div><span class="label">tier</span><span id="run-tier">${DASH}</span></div>
          <div><span class="label">state</span><span id="run-state" class="state">${DASH}</span></div>
          <div><span class="label">elapsed / duration</span><span id="run-elapsed" class="mono">${DASH}</span></div>
          <div><span class="label">store</span><span id="run-store">${DASH}</span></div>
          <div><span class="label">instruments · clients</span><span id="run-size">${DASH}</span></div>
          <div><span class="label">version</span><span id="run-version">${DASH}</span></div>
        </div>
        <div class="progress"><div id="run-progress" class="progress-fill"></div></div>
        <button id="halt-button" class="btn btn-danger btn-big" type="button">Halt trading</button>
      </section>
      <section class="tiles">${TILES.map(
        ([key, label]) => html`<div id="tile-${key}" class="tile tile-${key}">
          <div class="label">${label}</div><div class="value">${DASH}</div>
          <div class="sub">total <span class="total">${DASH}</span></div></div>`
      )}</section>
      <section class="cols-2">
        <div class="panel"><h3>Throughput (per second)</h3><div id="chart-rates"></div></div>
        <div class="panel"><h3>Latency by stage, ms (p50 solid, p99 dashed)</h3><div id="chart-latency"></div></div>
      </section>
      <section class="cols-2">
        <div class="panel"><h3>Rejects by reason</h3><div id="rejects-table"></div></div>
        <div class="panel"><h3>Halt history</h3><div id="halt-history"></div></div>
      </section>`
  );
  $("#halt-button").addEventListener("click", () => openHaltDialog());
  const rates = ctx.chart($("#chart-rates"), { height: 220, zeroBased: true });
  const latency = ctx.chart($("#chart-latency"), { height: 220, zeroBased: true, unit: "ms" });
  let points = [];

  ctx.poll(1000, async () => {
    const since = points.length ? points[points.length - 1].t : null;
    const [status, flow, halts] = await Promise.all([
      ctx.get("/status"),
      ctx.get("/throughput", since == null ? undefined : { since }),
      ctx.get("/halts"),
    ]);
    renderStatus(status);
    renderHaltBanner(halts.active);
    const last = since == null ? -Infinity : since;
    points = points.concat((flow.points || []).filter((p) => p.t > last));
    if (points.length) {
      const cutoff = points[points.length - 1].t - HISTORY_S;
      points = points.filter((p) => p.t >= cutoff);
    }
    renderTiles(points[points.length - 1], flow.totals || {});
    rates.setData({
      series: [
        { name: "ticks/s", points: points.map((p) => [p.t, p.ticks_per_s]) },
        { name: "signals/s", points: points.map((p) => [p.t, p.signals_per_s]) },
        { name: "orders/s", points: points.map((p) => [p.t, p.orders_per_s]) },
      ],
    });
    latency.setData({ series: latencySeries(points) });
    const reasons = Object.entries(flow.rejects_by_reason || {}).sort((a, b) => b[1] - a[1]);
    const rejected = reasons.reduce((sum, [, n]) => sum + n, 0);
    fill("#rejects-table", table(["Reason", "=Count", "=Share"], reasons.map(([r, n]) => [r, fmtInt(n), fmtPct(rejected ? n / rejected : 0, 1)]), "no rejects"));
    fill("#halt-history", table(
      ["Time", "Scope", "Reason", "Actor", "State"],
      (halts.history || []).slice(0, 12).map((h) => [fmtTime(h.t), h.scope, h.reason, h.actor, h.active ? html`<span class="badge bad">active</span>` : "resumed"]),
      "no halts"
    ));
  });
}

function renderStatus(s) {
  $("#run-id").textContent = s.run_id;
  $("#run-tier").textContent = s.tier;
  const state = $("#run-state");
  state.textContent = s.state + (s.halted ? " (halted)" : "");
  state.className = "state state-" + s.state + (s.halted ? " state-halted" : "");
  const bounded = ok(s.duration_s) && s.duration_s > 0;
  $("#run-elapsed").textContent = fmtDuration(s.elapsed_s) + " / " + (bounded ? fmtDuration(s.duration_s) : "open-ended");
  $("#run-progress").style.width = (bounded ? Math.min(100, (100 * s.elapsed_s) / s.duration_s) : 0).toFixed(1) + "%";
  $("#run-store").textContent = s.store;
  $("#run-size").textContent = fmtInt(s.instruments) + " · " + fmtInt(s.clients);
  $("#run-version").textContent = s.version;
}

function renderTiles(point, totals) {
  for (const [key, , field] of TILES) {
    const tile = $("#tile-" + key);
    tile.querySelector(".value").textContent = point ? fmtRate(point[field]) : DASH;
    tile.querySelector(".total").textContent = fmtInt(totals[key]);
    tile.classList.toggle("alert", (key === "errors" || key === "rejects") && !!point && point[field] > 0);
  }
}

function latencySeries(points) {
  const present = STAGES.filter((stage) => points.some((p) => p.latency_ms && p.latency_ms[stage]));
  for (const p of points) for (const stage of Object.keys(p.latency_ms || {})) if (!present.includes(stage)) present.push(stage);
  const series = [];
  present.forEach((stage, i) => {
    const color = TickwiseChart.palette[i % TickwiseChart.palette.length];
    for (const q of ["p50", "p99"]) {
      series.push({
        name: stage + " " + q,
        color,
        dash: q === "p99",
        points: points.map((p) => [p.t, p.latency_ms && p.latency_ms[stage] ? p.latency_ms[stage][q] : null]),
      });
    }
  });
  return series;
}

/* ---------- instrument ---------- */

const MARKER_LEGEND = [
  { kind: "buy", hollow: true, label: "buy signal" },
  { kind: "sell", hollow: true, label: "sell signal" },
  { kind: "buy", label: "buy fill" },
  { kind: "sell", label: "sell fill" },
];

function instrumentPage(ctx, root, symbol) {
  setHTML(
    root,
    html`<section class="panel page-head">
        <h2>${symbol}</h2><div id="instrument-meta" class="meta"></div>
      </section>
      <section class="panel"><h3>Price, signals (outlined) and fills (solid)</h3><div id="chart-price"></div></section>
      <section class="cols-2 cols-narrow-wide">
        <div class="panel"><h3>Current parameters <span id="params-age" class="muted"></span></h3><div id="params-table"></div></div>
        <div class="panel"><h3>Last re-tunes</h3><div id="retunes-table" class="scroll"></div></div>
      </section>`
  );
  const price = ctx.chart($("#chart-price"), { height: 320 });

  ctx.poll(2000, async () => {
    const d = await ctx.getOrMissing("/instruments/" + encodeURIComponent(symbol), root, "Unknown instrument", symbol);
    if (!d) return false;
    const prices = d.prices || [];
    const last = prices.length ? prices[prices.length - 1][1] : null;
    fill("#instrument-meta", kv([["venue", d.venue], ["asset class", d.asset_class], ["strategy", d.strategy], ["index", fmtInt(d.index)],
      ["last price", fmtPrice(last)], ["signals · fills", fmtInt((d.signals || []).length) + " · " + fmtInt((d.fills || []).length)]]));
    price.setData({
      series: [{ name: d.symbol, color: "#4ea1ff", points: prices }],
      markers: [
        ...(d.signals || []).map((s) => ({ t: s.t, v: s.price, kind: s.side, hollow: true })),
        ...(d.fills || []).map((f) => ({ t: f.t, v: f.price, kind: f.side })),
      ],
      markerLegend: MARKER_LEGEND,
    });
    $("#params-age").textContent = "· " + fmtAge(d.params_age_s);
    fill("#params-table", table(["Parameter", "=Value"], Object.entries(d.params || {}).map(([k, v]) => [k, fmtParam(v)]), "no parameters"));
    fill("#retunes-table", table(
      ["Time", "Window", "=Live score", "=Winner score", "Decision", "Params"],
      (d.retunes || []).map((r) => [
        fmtTime(r.t),
        fmtTime(r.window_start) + " \u2192 " + fmtTime(r.window_end),
        fmtScore(r.live_score),
        fmtScore(r.winner_score),
        html`<span class="badge decision-${String(r.decision).toLowerCase()}">${r.decision}</span>`,
        html`<span class="params">${fmtParams(r.params)}</span>`,
      ]),
      "no re-tunes yet"
    ));
  });
}

/* ---------- clients ---------- */

function clientsPage(ctx, root) {
  setHTML(
    root,
    html`<section class="panel">
      <h3>Find a client</h3>
      <form id="client-form" class="toolbar" autocomplete="off">
        <input id="client-search" type="search" inputmode="numeric" placeholder="client id digits…" aria-label="Client id">
        <select id="client-venue" aria-label="Venue"><option value="">all venues</option></select>
        <span id="client-count" class="muted"></span>
      </form>
      <div id="client-results"></div>
    </section>`
  );
  const input = $("#client-search");
  const venue = $("#client-venue");
  let timer = 0;
  let seq = 0;
  ctx.cleanups.push(() => clearTimeout(timer));

  const search = async () => {
    const mine = ++seq;
    try {
      const q = input.value.replace(/\D/g, "");
      const d = await ctx.get("/clients", { q, venue: venue.value, limit: 50 });
      if (mine !== seq) return;
      $("#client-count").textContent = fmtInt(d.total) + " match" + (d.total === 1 ? "" : "es");
      fill("#client-results", table(
        ["Client", "Venue", "=Equity", "Portfolios"],
        (d.clients || []).map((c) => ({
          cls: "client-row",
          cells: [html`<a href="#/client/${c.id}">${c.id}</a>`, c.venue, fmtMoney(c.equity), (c.portfolios || []).join(", ")],
        })),
        "no clients match"
      ));
    } catch (err) {
      if (err !== STALE) reportError(err);
    }
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 250);
  });
  venue.addEventListener("change", search);
  $("#client-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = input.value.replace(/\D/g, "");
    if (id) location.hash = "#/client/" + id;
  });
  ctx.get("/venues").then((d) => (d.venues || []).forEach((v) => venue.append(new Option(v.venue, v.venue))), () => {});
  input.focus();
  search();
}

const ORDER_COLUMNS = ["Time", "Order id", "Symbol", "Side", "=Qty", "=Price", "State", "=Filled", "=Avg fill"];
const symbolLink = (symbol) => html`<a href="#/instrument/${encodeURIComponent(symbol)}">${symbol}</a>`;
const orderRow = (o) => [fmtTime(o.t), html`<span class="mono">${o.client_order_id}</span>`, symbolLink(o.symbol), side(o.side),
  fmtQty(o.qty), fmtPrice(o.price), o.state, fmtQty(o.filled_qty), fmtPrice(o.avg_fill_price)];

function clientPage(ctx, root, id) {
  if (!/^\d+$/.test(id)) return setHTML(root, notFound("Not a client id", id));
  setHTML(
    root,
    html`<section class="panel page-head">
        <h2>Client <span id="client-id">${id}</span></h2>
        <span id="client-venue-name" class="muted"></span>
        <span id="client-halted" class="badge"></span>
        <button id="client-halt-button" class="btn btn-danger" type="button">Halt client</button>
      </section>
      <section class="tiles" id="client-money"></section>
      <section class="panel"><h3>Equity</h3><div id="chart-equity"></div></section>
      <section class="cols-2">
        <div class="panel"><h3>Positions</h3><div id="client-positions" class="scroll"></div></div>
        <div class="panel"><h3>Open orders</h3><div id="client-open-orders" class="scroll"></div></div>
      </section>
      <section class="cols-2">
        <div class="panel"><h3>Recent orders</h3><div id="client-orders" class="scroll"></div></div>
        <div class="panel"><h3>Fills</h3><div id="client-fills" class="scroll"></div></div>
      </section>`
  );
  $("#client-halt-button").addEventListener("click", () => openHaltDialog("client", id));
  const equity = ctx.chart($("#chart-equity"), { height: 200, unit: "$" });

  ctx.poll(2000, async () => {
    const c = await ctx.getOrMissing("/clients/" + id, root, "Unknown client", id);
    if (!c) return false;
    $("#client-venue-name").textContent = "venue " + c.venue;
    const halted = $("#client-halted");
    halted.textContent = c.halted ? "HALTED" : "trading";
    halted.className = "badge " + (c.halted ? "bad" : "good");
    const money = [
      ["Cash", fmtMoney(c.cash)],
      ["Equity", fmtMoney(c.equity)],
      ["Realised PnL", pnl(c.realised_pnl)],
      ["Unrealised PnL", pnl(c.unrealised_pnl)],
      ["Fees", fmtMoney(c.fees)],
      ["Halted", c.halted ? "yes" : "no"],
    ];
    fill("#client-money", money.map(([label, v]) => html`<div class="tile"><div class="label">${label}</div><div class="value">${v}</div></div>`));
    equity.setData({ series: [{ name: "equity", color: "#36c38c", points: c.equity_curve || [] }] });
    fill("#client-positions", table(
      ["Symbol", "=Qty", "=Avg cost", "=Last", "=Value"],
      (c.positions || []).map((p) => [symbolLink(p.symbol), fmtQty(p.qty), fmtPrice(p.avg_cost), fmtPrice(p.last_price), fmtMoney(p.value)]),
      "flat"
    ));
    fill("#client-open-orders", table(ORDER_COLUMNS, (c.open_orders || []).map(orderRow), "no open orders"));
    fill("#client-orders", table(ORDER_COLUMNS, (c.orders || []).map(orderRow), "no orders"));
    fill("#client-fills", table(
      ["Time", "Symbol", "Side", "=Qty", "=Price", "=Fee"],
      (c.fills || []).map((f) => [fmtTime(f.t), symbolLink(f.symbol), side(f.side), fmtQty(f.qty), fmtPrice(f.price), fmtMoney(f.fee)]),
      "no fills"
    ));
  });
}

/* ---------- venues ---------- */

function venuesPage(ctx, root) {
  setHTML(root, html`<div id="venue-list" class="cards"></div>`);
  ctx.poll(1000, async () => {
    const d = await ctx.get("/venues");
    const venues = d.venues || [];
    fill("#venue-list", venues.length ? venues.map(venueCard) : html`<section class="panel empty-state">No venues.</section>`);
  });
}

function venueCard(v) {
  const limit = ok(v.rate_limit_per_s) ? v.rate_limit_per_s : null;
  const rate = fmtRate(v.requests_per_s) + " / " + (limit == null ? "no limit" : fmtRate(limit)) + " req/s";
  const errors = Object.entries(v.errors || {}).sort((a, b) => b[1] - a[1]);
  const stream = v.stream === "connected" ? "good" : v.stream === "reconnecting" ? "warn" : "";
  return html`<section class="panel venue" id="venue-${v.venue}">
    <h3>${v.venue} <span class="badge ${stream}">stream ${v.stream}</span></h3>
    ${table(
      ["Lanes", "=Sent", "=Acked", "=Rejected", "=In flight", "=Error rate", "=Reconnects"],
      [[fmtInt(v.lanes), fmtInt(v.sent), fmtInt(v.acked), fmtInt(v.rejected), fmtInt(v.in_flight), fmtPct(v.error_rate), fmtInt(v.reconnects)]]
    )}
    <div class="rate"><span class="label">requests/s vs limit</span>${bar(v.requests_per_s, limit, rate)}</div>
    ${table(["Error kind", "=Count"], errors.map(([k, n]) => [k, fmtInt(n)]), "no errors")}
  </section>`;
}

/* ---------- cluster ---------- */

function clusterPage(ctx, root) {
  setHTML(
    root,
    html`<section class="cols-2 cols-wide-narrow">
        <div class="panel"><h3>Nodes</h3><div id="cluster-nodes"></div></div>
        <div class="panel"><h3>Resources</h3><div id="cluster-resources"></div></div>
      </section>
      <section class="panel"><h3>Actors</h3><div id="cluster-actors"></div></section>`
  );
  ctx.poll(1000, async () => {
    const d = await ctx.get("/cluster");
    fill("#cluster-nodes", table(
      ["Node", "Address", "Alive", "=CPUs", "=GPUs", "=Memory"],
      (d.nodes || []).map((n) => [
        html`<span class="mono" title="${n.node_id}">${String(n.node_id).slice(0, 10)}</span>`,
        n.address,
        html`<span class="badge ${n.alive ? "good" : "bad"}">${n.alive ? "alive" : "dead"}</span>`,
        fmtQty(n.cpus),
        fmtQty(n.gpus),
        fmtNum(n.memory_gb, 1) + " GB",
      ]),
      "no nodes"
    ));
    fill("#cluster-resources", Object.entries(d.resources || {}).map(([name, r]) => {
      const used = r.total - r.available;
      return html`<div class="rate"><span class="label">${name}</span>${bar(used, r.total, fmtNum(used, 1) + " used of " + fmtNum(r.total, 1) + " (" + fmtNum(r.available, 1) + " available)")}</div>`;
    }));
    fill("#cluster-actors", table(
      ["Kind", "=Count", "=Alive", "=Restarts"],
      (d.actors || []).map((a) => ({
        cls: a.alive < a.count ? "row-bad" : a.restarts > 0 ? "row-warn" : "",
        cells: [a.kind, fmtInt(a.count), fmtInt(a.alive), fmtInt(a.restarts)],
      })),
      "no actors"
    ));
  });
}

/* ---------- router and navigation ---------- */

const PAGES = { overview: overviewPage, instrument: instrumentPage, clients: clientsPage, client: clientPage, venues: venuesPage, cluster: clusterPage };
const NAV_OF = { client: "clients" };
let current = null;

function route() {
  const match = (location.hash || "#/overview").match(/^#\/([^/]*)\/?(.*)$/);
  let name = match ? match[1] : "overview";
  let arg = match ? match[2] : "";
  if (!PAGES[name] || ((name === "instrument" || name === "client") && !arg)) {
    name = name === "client" ? "clients" : "overview";
    arg = "";
  }
  try {
    arg = decodeURIComponent(arg);
  } catch (err) {} // keep the raw text
  if (current) current.stop();
  current = new PageContext();
  current.name = name;
  const nav = NAV_OF[name] || name;
  document.querySelectorAll(".nav-link").forEach((a) => a.classList.toggle("active", a.dataset.route === nav));
  document.title = "tickwise · " + (arg || name);
  const root = $("#page");
  root.replaceChildren();
  showError(null);
  PAGES[name](current, root, arg);
}

/** Instrument search in the bar: suggestions as you type, Enter opens the instrument page. */
function setUpInstrumentSearch() {
  const input = $("#instrument-search");
  const options = $("#instrument-options");
  let timer = 0;
  let seq = 0;
  let suggestions = [];
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) return;
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const d = await api("/instruments", { params: { q, limit: 20 } });
        if (mine !== seq) return;
        suggestions = (d.instruments || []).map((i) => i.symbol);
        options.replaceChildren(...(d.instruments || []).map((i) => new Option(i.venue + " · " + i.asset_class, i.symbol)));
      } catch (err) {
        reportError(err);
      }
    }, 250);
  });
  $("#instrument-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const known = suggestions.find((s) => s.toLowerCase() === text.toLowerCase());
    location.hash = "#/instrument/" + encodeURIComponent(known || text.toUpperCase());
    input.value = "";
    input.blur();
  });
}

function start() {
  setUpInstrumentSearch();
  $("#halt-scope").addEventListener("change", syncHaltScope);
  $("#halt-form").addEventListener("submit", submitHalt);
  $("#halt-cancel").addEventListener("click", () => $("#halt-dialog").close());
  $("#halt-banner").addEventListener("click", (e) => {
    const button = e.target.closest("button.resume");
    if (button) resumeHalt(button.dataset.scope, button.dataset.reason);
  });
  // The halt banner matters on every page; the overview refreshes it each second, elsewhere every 5 s.
  setInterval(() => {
    if (current && current.name !== "overview" && !document.hidden) refreshHalts();
  }, 5000);
  window.addEventListener("hashchange", route);
  refreshHalts();
  route();
}

start();
