/* TickwiseChart: a small canvas time-series chart for the dashboard (no dependencies).
 *
 *   const chart = new TickwiseChart(containerElement, {height: 220, unit: "ms"});
 *   chart.setData({
 *     series: [{name: "ticks/s", color: "#4ea1ff", points: [[t, v], ...], dash: false}],
 *     markers: [{t, v, kind: "buy" | "sell", hollow: false}],
 *     markerLegend: [{kind: "buy", hollow: true, label: "buy signal"}],
 *   });
 *   chart.destroy();
 *
 * Times are epoch seconds, drawn as local HH:MM:SS. A null value breaks the line.
 */
(function (global) {
  "use strict";

  const PALETTE = ["#4ea1ff", "#f0b429", "#36c38c", "#e0607e", "#a78bfa", "#5fd4d4", "#f08c4e", "#c3cad3"];
  const MARKER = { buy: { color: "#36c38c", up: true }, sell: { color: "#f25f5c", up: false } };
  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
  const FONT = "11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace";
  const AXIS = "#8b97a6";
  const GRID = "rgba(255,255,255,0.06)";

  const pad2 = (n) => (n < 10 ? "0" : "") + n;

  function formatTime(t) {
    const d = new Date(t * 1000);
    return pad2(d.getHours()) + ":" + pad2(d.getMinutes()) + ":" + pad2(d.getSeconds());
  }

  /** Round tick positions over [lo, hi] with about `target` steps of 1, 2, 2.5 or 5 x 10^k. */
  function niceTicks(lo, hi, target) {
    const pad = Math.abs(lo) * 0.05 || 1;
    if (!(hi > lo)) [lo, hi] = [lo - pad, hi + pad];
    const raw = (hi - lo) / Math.max(1, target);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const norm = raw / mag;
    const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
    const start = Math.floor(lo / step) * step;
    const end = Math.ceil(hi / step) * step;
    const ticks = [];
    for (let i = 0, v = start; v <= end + step * 1e-6 && i < 100; i++, v = start + i * step) ticks.push(v);
    let decimals = 0;
    while (decimals < 8 && Math.abs(Math.round(step * 10 ** decimals) - step * 10 ** decimals) > 1e-6) decimals++;
    return { lo: start, hi: end, ticks, decimals };
  }

  /** Tick times on round local-clock steps so that at most `maxTicks` labels fit. */
  function timeTicks(lo, hi, maxTicks) {
    const step = TIME_STEPS.find((s) => (hi - lo) / s <= maxTicks) || 86400;
    const offset = -new Date(lo * 1000).getTimezoneOffset() * 60;
    const ticks = [];
    for (let t = Math.ceil((lo + offset) / step) * step - offset; t <= hi && ticks.length < 200; t += step) ticks.push(t);
    return ticks;
  }

  function formatValue(v, decimals) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
    if (a >= 1e7) return (v / 1e6).toFixed(a >= 1e8 ? 0 : 1) + "M";
    return v.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
  }

  /** Index of the point whose time is nearest to t (points sorted by time). */
  function nearest(points, t) {
    let lo = 0;
    let hi = points.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (points[mid][0] < t) lo = mid;
      else hi = mid;
    }
    return Math.abs(points[lo][0] - t) <= Math.abs(points[hi][0] - t) ? lo : hi;
  }

  class TickwiseChart {
    constructor(container, options = {}) {
      this.el = typeof container === "string" ? document.querySelector(container) : container;
      this.options = Object.assign({ height: 200, unit: "", zeroBased: false, emptyText: "no data" }, options);
      Object.assign(this, { series: [], markers: [], markerLegend: [], hoverX: null, _frame: 0, _legendKey: "" });
      this.legend = document.createElement("div");
      this.legend.className = "tw-chart-legend";
      this.canvas = document.createElement("canvas");
      this.canvas.className = "tw-chart-canvas";
      Object.assign(this.canvas.style, { width: "100%", height: this.options.height + "px", display: "block" });
      this.el.classList.add("tw-chart");
      this.el.append(this.legend, this.canvas);
      this.ctx = this.canvas.getContext("2d");
      this._redraw = () => this.schedule();
      this._resize = new ResizeObserver(this._redraw);
      this._resize.observe(this.el);
      window.addEventListener("resize", this._redraw); // also fires when the device pixel ratio changes
      const hover = (x) => ((this.hoverX = x), this.schedule());
      this.canvas.addEventListener("mousemove", (e) => hover(e.offsetX));
      this.canvas.addEventListener("mouseleave", () => hover(null));
    }

    /** Replace the chart's data and redraw on the next frame; the chart object is kept. */
    setData({ series = [], markers = [], markerLegend = [] } = {}) {
      this.series = series.map((s, i) => Object.assign({ color: PALETTE[i % PALETTE.length], points: [] }, s));
      this.markers = markers;
      this.markerLegend = markerLegend;
      this._updateLegend();
      this.schedule();
    }

    schedule() {
      if (this._frame) return;
      this._frame = requestAnimationFrame(() => ((this._frame = 0), this.draw()));
    }

    destroy() {
      this._resize.disconnect();
      window.removeEventListener("resize", this._redraw);
      if (this._frame) cancelAnimationFrame(this._frame);
      this.legend.remove();
      this.canvas.remove();
    }

    _updateLegend() {
      const items = this.series.map((s) => ["line", s.name, s.color, !!s.dash]);
      for (const m of this.markerLegend) items.push(["marker", m.label, m.kind, !!m.hollow]);
      const key = JSON.stringify(items);
      if (key === this._legendKey) return;
      this._legendKey = key;
      this.legend.replaceChildren();
      for (const [type, label, style, flag] of items) {
        const item = document.createElement("span");
        item.className = "tw-legend-item";
        const swatch = document.createElement("span");
        if (type === "line") {
          swatch.className = "tw-legend-line";
          swatch.style.borderTop = "2px " + (flag ? "dashed " : "solid ") + style;
        } else {
          const spec = MARKER[style] || MARKER.buy;
          swatch.className = "tw-legend-marker";
          swatch.textContent = spec.up ? (flag ? "\u25B3" : "\u25B2") : flag ? "\u25BD" : "\u25BC";
          swatch.style.color = spec.color;
        }
        item.append(swatch, document.createTextNode(" " + label));
        this.legend.append(item);
      }
    }

    draw() {
      const dpr = window.devicePixelRatio || 1;
      const width = this.canvas.clientWidth;
      const height = this.canvas.clientHeight;
      if (!width || !height) return;
      const [pw, ph] = [Math.round(width * dpr), Math.round(height * dpr)];
      if (this.canvas.width !== pw || this.canvas.height !== ph) [this.canvas.width, this.canvas.height] = [pw, ph];
      const ctx = this.ctx;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, width, height);
      ctx.font = FONT;

      let tMin = Infinity, tMax = -Infinity, vMin = Infinity, vMax = -Infinity;
      const extend = (t, v) => {
        [tMin, tMax] = [Math.min(tMin, t), Math.max(tMax, t)];
        if (v != null && isFinite(v)) [vMin, vMax] = [Math.min(vMin, v), Math.max(vMax, v)];
      };
      for (const s of this.series) for (const p of s.points) extend(p[0], p[1]);
      for (const m of this.markers) extend(m.t, m.v);
      if (!isFinite(tMin) || !isFinite(vMin)) {
        ctx.fillStyle = AXIS;
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        ctx.fillText(this.options.emptyText, width / 2, height / 2);
        return;
      }
      if (this.options.zeroBased) vMin = Math.min(0, vMin);
      if (tMax - tMin < 1) tMin = tMax - 1;

      const y = niceTicks(vMin, vMax, Math.max(2, Math.floor(height / 40)));
      const labels = y.ticks.map((v) => formatValue(v, y.decimals) + (this.options.unit ? " " + this.options.unit : ""));
      const left = Math.ceil(Math.max(...labels.map((l) => ctx.measureText(l).width))) + 10;
      const top = 8, right = 10, bottom = 20;
      const plotW = Math.max(10, width - left - right);
      const plotH = Math.max(10, height - top - bottom);
      const xOf = (t) => left + ((t - tMin) / (tMax - tMin)) * plotW;
      const yOf = (v) => top + plotH - ((v - y.lo) / (y.hi - y.lo)) * plotH;

      ctx.lineWidth = 1;
      ctx.strokeStyle = GRID;
      ctx.fillStyle = AXIS;
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      y.ticks.forEach((v, i) => {
        const py = Math.round(yOf(v)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(left, py);
        ctx.lineTo(left + plotW, py);
        ctx.stroke();
        ctx.fillText(labels[i], left - 6, py);
      });
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const t of timeTicks(tMin, tMax, Math.max(2, Math.floor(plotW / 80)))) {
        const px = Math.round(xOf(t)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(px, top);
        ctx.lineTo(px, top + plotH);
        ctx.stroke();
        ctx.fillText(formatTime(t), px, top + plotH + 5);
      }

      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top - 1, plotW, plotH + 2);
      ctx.clip();
      ctx.lineWidth = 1.5;
      ctx.lineJoin = "round";
      for (const s of this.series) {
        ctx.strokeStyle = s.color;
        ctx.setLineDash(s.dash ? [5, 4] : []);
        ctx.beginPath();
        let pen = false;
        for (const [t, v] of s.points) {
          const drawn = v != null && isFinite(v);
          if (drawn) ctx[pen ? "lineTo" : "moveTo"](xOf(t), yOf(v));
          pen = drawn;
        }
        ctx.stroke();
      }
      ctx.setLineDash([]);
      for (const m of this.markers) this._marker(ctx, xOf(m.t), yOf(m.v), m);
      ctx.restore();

      if (this.hoverX != null && this.hoverX >= left && this.hoverX <= left + plotW) {
        this._hover(ctx, tMin + ((this.hoverX - left) / plotW) * (tMax - tMin), xOf, yOf, top, plotH, y.decimals);
      }
    }

    _marker(ctx, x, y, m) {
      const spec = MARKER[m.kind] || MARKER.buy;
      const r = 5;
      const dir = spec.up ? 1 : -1;
      const apex = y + (spec.up ? 2 : -2);
      ctx.beginPath();
      ctx.moveTo(x, apex);
      ctx.lineTo(x - r, apex + dir * r * 1.6);
      ctx.lineTo(x + r, apex + dir * r * 1.6);
      ctx.closePath();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = spec.color;
      ctx.fillStyle = m.hollow ? "rgba(0,0,0,0.35)" : spec.color;
      ctx.fill();
      ctx.stroke();
    }

    _hover(ctx, t, xOf, yOf, top, plotH, decimals) {
      const rows = [];
      let at = t;
      for (const s of this.series) {
        if (!s.points.length) continue;
        const p = s.points[nearest(s.points, t)];
        if (!rows.length) at = p[0];
        if (p[1] == null) continue;
        rows.push([s.color, s.name + "  " + formatValue(p[1], Math.max(decimals, 2))]);
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(xOf(p[0]), yOf(p[1]), 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      const x = Math.round(xOf(at)) + 0.5;
      ctx.strokeStyle = "rgba(255,255,255,0.25)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + plotH);
      ctx.stroke();
      const lines = [[AXIS, formatTime(at)], ...rows];
      const boxW = Math.max(...lines.map((l) => ctx.measureText(l[1]).width)) + 16;
      const boxH = lines.length * 14 + 8;
      const bx = x + boxW + 12 > this.canvas.clientWidth ? x - boxW - 8 : x + 8;
      ctx.fillStyle = "rgba(16,20,26,0.92)";
      ctx.strokeStyle = "rgba(255,255,255,0.15)";
      ctx.fillRect(bx, top + 4, boxW, boxH);
      ctx.strokeRect(bx + 0.5, top + 4.5, boxW, boxH);
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      lines.forEach(([color, text], i) => {
        ctx.fillStyle = color;
        ctx.fillText(text, bx + 8, top + 8 + i * 14);
      });
    }
  }

  TickwiseChart.formatTime = formatTime;
  TickwiseChart.niceTicks = niceTicks;
  TickwiseChart.palette = PALETTE;
  global.TickwiseChart = TickwiseChart;
})(window);
