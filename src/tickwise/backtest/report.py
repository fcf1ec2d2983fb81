"""The backtest report: one self-contained HTML file (charts inlined as PNG) and the PNGs alone.

    pairs = best_pairs(result, 5)                 # (instrument, set) to replay in full
    recs = [bt.record(series, k, result.params[j]) for k, j in pairs]
    write_report(result, recs, "out.html", "fast_s", "slow_s", png_dir=Path("charts"))

Charts are drawn with matplotlib's Agg canvas (no display, no pyplot state) and embedded as
base64 `data:` URIs, so the page needs no network and can be mailed or archived as one file.
The heatmap shows the objective over two parameters: for each set, the mean of its score over
the instruments; for each cell, the best (max) of those means over the other parameters.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from tickwise.backtest.grid import GridResult, Recording
from tickwise.backtest.series import BacktestInputError

CHARTS: tuple[str, ...] = ("equity", "drawdown", "heatmap")
DPI = 110
MAX_ANNOTATED_CELLS = 400  # heatmaps up to 20 x 20 print their values in the cells
_TABLE_METRICS = (
    ("total_return", "return", "pct"),
    ("sharpe", "sharpe", "num"),
    ("sortino", "sortino", "num"),
    ("max_drawdown", "max dd", "pct"),
    ("turnover", "turnover", "num"),
    ("trades", "trades", "int"),
    ("hit_rate", "hit rate", "pct"),
    ("exposure", "exposure", "pct"),
    ("fees", "fees", "pct"),
)


# -- choices the CLI and the report share -------------------------------------------------------


def varying_params(result: GridResult) -> list[str]:
    """The parameters that take more than one value in the grid, in declared order."""
    return [
        name for i, name in enumerate(result.param_names) if np.unique(result.params[:, i]).size > 1
    ]


def default_heat_axes(result: GridResult) -> tuple[str, str]:
    """The first two varying parameters (padded with the first fixed ones): (x, y)."""
    names = varying_params(result)
    names += [n for n in result.param_names if n not in names]
    return names[0], names[1]


def check_heat_axes(param_names: Sequence[str], heat_x: str, heat_y: str) -> None:
    """Raise BacktestInputError unless x and y are two distinct parameters of the strategy."""
    for name in (heat_x, heat_y):
        if name not in param_names:
            raise BacktestInputError(
                f"heatmap parameter {name!r} is not a parameter of the strategy "
                f"(known: {', '.join(param_names)})"
            )
    if heat_x == heat_y:
        raise BacktestInputError(f"heatmap needs two different parameters, got {heat_x!r} twice")


def best_pairs(result: GridResult, n: int) -> list[tuple[int, int]]:
    """Up to `n` (instrument position, set index) pairs to chart, best first.

    With at least `n` instruments: the best set of each of the `n` instruments whose best score
    is highest. With fewer: the `n` best (instrument, set) rows overall.
    """
    if n <= 0 or result.score.size == 0:
        return []
    n_inst, n_sets = result.score.shape
    if n_inst >= n:
        best = np.argmax(result.score, axis=1)
        top = result.score[np.arange(n_inst), best]
        order = np.argsort(-top, kind="stable")[:n]
        return [(int(k), int(best[k])) for k in order]
    flat = np.argsort(-result.score.ravel(), kind="stable")[:n]
    return [(int(i // n_sets), int(i % n_sets)) for i in flat]


def heatmap_grid(
    result: GridResult, heat_x: str, heat_y: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(x values, y values, z[len(y), len(x)]) of the objective over two parameters.

    z is the mean score over instruments of each set, maxed over the other parameters; a cell no
    set reaches (dropped by the strategy's constraint) or with no finite score is NaN.
    """
    check_heat_axes(result.param_names, heat_x, heat_y)
    ix, iy = result.param_names.index(heat_x), result.param_names.index(heat_y)
    xs, xpos = np.unique(result.params[:, ix], return_inverse=True)
    ys, ypos = np.unique(result.params[:, iy], return_inverse=True)
    scores = np.where(np.isfinite(result.score), result.score, np.nan)
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(scores).sum(axis=0)
        per_set = np.where(finite > 0, np.nansum(scores, axis=0) / np.maximum(finite, 1), np.nan)
    z = np.full((ys.size, xs.size), -np.inf)
    ok = np.isfinite(per_set)
    np.maximum.at(z, (ypos.ravel()[ok], xpos.ravel()[ok]), per_set[ok])
    z[~np.isfinite(z)] = np.nan
    return xs.astype(np.float64), ys.astype(np.float64), z


# -- charts ---------------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _label(rec: Recording, shown: Sequence[str]) -> str:
    params = "".join(f" {n}={rec.params[n]:g}" for n in shown if n in rec.params)
    ret = 100.0 * rec.metrics.get("total_return", math.nan)
    return f"{rec.symbol}{params} (return {ret:+.2f} %, sharpe {rec.metrics.get('sharpe', 0):.3g})"


def _time_axis(ax: Axes) -> None:
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)


def _curve_chart(result: GridResult, recordings: Sequence[Recording], which: str) -> bytes:
    shown = varying_params(result) or list(result.param_names)
    fig = Figure(figsize=(10.0, 4.6 if which == "equity" else 3.2), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for rec in recordings:
        if rec.equity.size == 0:
            continue
        when = rec.curve_ts.astype("datetime64[ns]")
        label = _label(rec, shown)
        if which == "equity":
            ax.plot(when, rec.equity, lw=1.1, label=label)
        else:
            dd = -100.0 * rec.drawdown
            (line,) = ax.plot(when, dd, lw=0.9, label=label)
            ax.fill_between(when, dd, 0.0, color=line.get_color(), alpha=0.12, lw=0)
        drawn += 1
    if which == "equity":
        ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
        ax.set_ylabel("equity (start = 1.0)")
        ax.set_title(f"{result.strategy}: equity of the best sets")
    else:
        ax.set_ylabel("drawdown (%)")
        ax.set_title(f"{result.strategy}: drawdown from the running peak")
    if drawn:
        _time_axis(ax)
        ax.legend(loc="best", fontsize=7, frameon=False)
        ax.set_xlabel("time (UTC)")
    else:
        ax.text(0.5, 0.5, "no recording to draw", ha="center", va="center", transform=ax.transAxes)
    return _png(fig)


def _heatmap_chart(result: GridResult, heat_x: str, heat_y: str) -> bytes:
    xs, ys, z = heatmap_grid(result, heat_x, heat_y)
    width = min(12.0, max(5.5, 0.55 * xs.size + 2.5))
    height = min(9.0, max(3.0, 0.4 * ys.size + 1.8))
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(z)
    image = ax.imshow(masked, origin="lower", aspect="auto", cmap="viridis", interpolation="none")
    ax.set_xticks(np.arange(xs.size), [f"{v:g}" for v in xs], rotation=45 if xs.size > 12 else 0)
    ax.set_yticks(np.arange(ys.size), [f"{v:g}" for v in ys])
    ax.set_xlabel(heat_x)
    ax.set_ylabel(heat_y)
    n = len(result.symbols)
    over = result.symbols[0] if n == 1 else f"mean of {n} instruments"
    fig.colorbar(image, ax=ax, label=f"{result.objective} ({over})")
    if np.isfinite(z).any():
        yb, xb = np.unravel_index(int(np.nanargmax(z)), z.shape)
        ax.add_patch(Rectangle((xb - 0.5, yb - 0.5), 1, 1, fill=False, ec="red", lw=2.0))
        if z.size <= MAX_ANNOTATED_CELLS:
            lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
            mid = 0.5 * (lo + hi)
            size = 9 if z.size <= 36 else 7 if z.size <= 150 else 6
            for (yi, xi), value in np.ndenumerate(z):
                if np.isfinite(value):
                    ax.text(
                        xi, yi, f"{value:.2g}", ha="center", va="center", fontsize=size,
                        color="black" if value > mid else "white",
                    )  # fmt: skip
    ax.set_title(f"{result.strategy}: {result.objective} by {heat_x} x {heat_y} ({over})")
    return _png(fig)


def render_charts(
    result: GridResult, recordings: Sequence[Recording], heat_x: str, heat_y: str
) -> dict[str, bytes]:
    """The report's charts as PNG bytes, keyed by `CHARTS` names."""
    check_heat_axes(result.param_names, heat_x, heat_y)
    return {
        "equity": _curve_chart(result, recordings, "equity"),
        "drawdown": _curve_chart(result, recordings, "drawdown"),
        "heatmap": _heatmap_chart(result, heat_x, heat_y),
    }


# -- the page -------------------------------------------------------------------------------------


_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1d232b; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #5a6470; margin-top: 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e3e6ea; text-align: right;
         white-space: nowrap; }
th { background: #f3f5f7; position: sticky; top: 0; }
td.t, th.t { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa3ad; font-size: 11px; }
table.sortable tbody tr:hover { background: #f7f9fb; }
table.kv td:first-child { text-align: left; color: #5a6470; }
table.kv td { text-align: left; }
.scroll { overflow-x: auto; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; border: 1px solid #e3e6ea; }
figcaption { color: #5a6470; font-size: 13px; margin-top: 4px; }
"""

_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var key = function (tr) {
        var cell = tr.cells[col], raw = cell.dataset.v !== undefined ? cell.dataset.v
          : cell.textContent, num = parseFloat(raw);
        return isNaN(num) ? raw : num;
      };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (tr) { body.appendChild(tr); });
    });
  });
});
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float, kind: str) -> str:
    if not math.isfinite(value):
        return "-"
    if kind == "pct":
        return f"{100.0 * value:.2f}%"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _cell(value: float, kind: str) -> str:
    sort = f"{value:.12g}" if math.isfinite(value) else ""
    return f'<td data-v="{sort}">{_esc(_fmt(value, kind))}</td>'


def _top_table(result: GridResult, rows: list[dict[str, Any]]) -> str:
    params = varying_params(result) or list(result.param_names)
    head = ["#", "symbol", *params, result.objective + " (score)"]
    head += [label for _, label, _ in _TABLE_METRICS]
    out = ['<table class="sortable" id="top-sets"><thead><tr>']
    out += [f'<th class="{"t" if h == "symbol" else ""}">{_esc(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for rank, row in enumerate(rows, 1):
        cells = [f'<td data-v="{rank}">{rank}</td>', f'<td class="t">{_esc(row["symbol"])}</td>']
        cells += [f'<td data-v="{row[p]!r}">{row[p]:g}</td>' for p in params]
        cells.append(_cell(row["score"], "num"))
        cells += [_cell(row[m], kind) for m, _, kind in _TABLE_METRICS]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _summary_rows(result: GridResult) -> list[tuple[str, str]]:
    s = result.summary()
    fill = result.fill
    symbols = list(result.symbols)
    shown = ", ".join(symbols[:20]) + (f" (+{len(symbols) - 20} more)" if len(symbols) > 20 else "")
    fixed = [
        f"{n}={result.params[0, i]:g}"
        for i, n in enumerate(result.param_names)
        if n not in varying_params(result)
    ]
    fee = "each venue's fee table" if fill.fee_bps is None else f"{fill.fee_bps:g} bps"
    rows = [
        ("strategy", result.strategy),
        ("instruments", f"{len(symbols)}: {shown}"),
        ("source", str(s.get("source", "-"))),
        ("time range", f"{s.get('from', '-')} .. {s.get('to', '-')}"),
        ("ticks", f"{result.ticks:,}"),
        ("parameter sets", f"{result.n_sets:,} (fixed: {', '.join(fixed) or 'none'})"),
        ("backtests", f"{result.backtests:,}"),
        ("device", result.device),
        ("elapsed", f"{result.elapsed_s:.3f} s ({result.tick_sets_per_s:.3g} ticks x sets / s)"),
        ("objective", f"{result.objective}, turnover penalty {result.turnover_penalty:g}"),
        ("equity sampled every", f"{result.sample_s:g} s"),
        (
            "fill model",
            f"latency {fill.latency_ms:g} ms; spread {fill.spread_bps:g} bps where no quote is "
            f"known; venue {fill.venue or 'default per asset class'}; fees {fee}",
        ),
    ]
    known = {"source", "from", "to"} | set(GridResult.__dataclass_fields__) | {
        "instruments", "sets", "backtests", "backtests_per_s", "tick_sets_per_s"
    }  # fmt: skip
    rows += [(k, str(v)) for k, v in s.items() if k not in known]
    return rows


def _figure(name: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img id="chart-{name}" alt="{_esc(caption)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{_esc(caption)}</figcaption></figure>'
    )


def render_html(
    result: GridResult,
    recordings: Sequence[Recording],
    charts: dict[str, bytes],
    heat_x: str,
    heat_y: str,
    top: int = 20,
) -> str:
    """The whole report page as a string (charts from `render_charts`)."""
    n = len(result.symbols)
    distinct = len({r.symbol for r in recordings}) == len(recordings) > 1
    which = "the best set of each of the best instruments" if distinct else "the best sets"
    over = f"on {result.symbols[0]}" if n == 1 else f"averaged over the {n} instruments"
    heat_caption = (
        f"{result.objective} over {heat_x} (x) and {heat_y} (y), {over}: each cell shows the "
        f"best (max) over the other parameters; the red square is the best cell; blank cells "
        f"have no valid set."
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"tickwise backtest: {result.strategy} on {n} instrument{'s' if n != 1 else ''}"
    summary = "".join(
        f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in _summary_rows(result)
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="sub">{result.n_sets:,} parameter sets x {n:,} '
        f"instrument{'s' if n != 1 else ''}, ranked by "
        f"{_esc(result.objective)}; report written {stamp}.</p>",
        f'<section id="summary"><h2>Run</h2><table class="kv">{summary}</table></section>',
        f'<section id="top"><h2>Top {min(top, result.backtests)} sets</h2>',
        '<p class="sub">Click a column header to sort.</p>',
        f'<div class="scroll">{_top_table(result, result.top(top))}</div>',
        "</section>",
        '<section id="curves"><h2>Equity and drawdown</h2>',
        _figure(
            "equity",
            charts["equity"],
            f"Equity of {which} ({len(recordings)} shown), sampled every {result.sample_s:g} s, "
            f"after fees and spread.",
        ),
        _figure(
            "drawdown",
            charts["drawdown"],
            "Drawdown of the same sets: the fall from the running peak of equity, in %.",
        ),
        "</section>",
        '<section id="heatmap"><h2>Objective heatmap</h2>',
        _figure("heatmap", charts["heatmap"], heat_caption),
        "</section>",
        f"<script>{_SORT_JS}</script></body></html>",
    ]
    return "\n".join(parts)


def write_report(
    result: GridResult,
    recordings: Sequence[Recording],
    path_html: str | Path | None,
    heat_x: str,
    heat_y: str,
    png_dir: Path | None = None,
    top: int = 20,
) -> list[Path]:
    """Write the HTML report (when `path_html`) and the charts as PNGs (when `png_dir`).

    Returns the files written: the HTML first, then `equity.png`, `drawdown.png`,
    `heatmap.png`. Raises BacktestInputError for a bad heatmap parameter, OSError when a file
    cannot be written.
    """
    charts = render_charts(result, recordings, heat_x, heat_y)
    written: list[Path] = []
    if path_html is not None:
        path = Path(path_html)
        path.parent.mkdir(parents=True, exist_ok=True)
        page = render_html(result, recordings, charts, heat_x, heat_y, top)
        path.write_text(page, encoding="utf-8")
        written.append(path)
    if png_dir is not None:
        folder = Path(png_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for name in CHARTS:
            target = folder / f"{name}.png"
            target.write_bytes(charts[name])
            written.append(target)
    return written
