"""The backtest report: heatmap aggregation, which sets are charted, and a self-contained page."""

from __future__ import annotations

import base64
import dataclasses
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import tickwise.strategy  # noqa: F401  (registers the built-in strategies)
from tickwise.backtest import BacktestInputError, FillModel, GridBacktester, GridResult, Recording
from tickwise.backtest.report import (
    CHARTS,
    best_pairs,
    default_heat_axes,
    heatmap_grid,
    varying_params,
    write_report,
)
from tickwise.backtest.series import TickSeries
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.universe import build_universe

T0 = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@cache
def _run() -> tuple[GridBacktester, TickSeries, GridResult]:
    registry = build_universe(3, 0)
    gen = MarketGenerator(registry, GeneratorConfig(tick_rate=90.0, block_ms=1000.0), seed=3)
    series = TickSeries.from_batch(gen.generate(T0, T0 + 600 * 10**9), registry)
    bt = GridBacktester("trend", FillModel(latency_ms=5.0), sample_s=10.0, device="cpu")
    result = bt.run(series, bt.param_sets("fast_s=5|10|20,slow_s=30|60"))
    return bt, series, result


def _recordings(n: int) -> list[Recording]:
    bt, series, result = _run()
    return [bt.record(series, k, result.params[j]) for k, j in best_pairs(result, n)]


def _designed(params: list[list[float]], score: list[list[float]]) -> GridResult:
    """The real result with a hand-made parameter matrix and scores (instruments x sets)."""
    _, _, result = _run()
    p = np.array(params, np.float64)
    s = np.array(score, np.float64)
    return dataclasses.replace(
        result,
        params=p,
        score=s,
        symbols=tuple(f"S{i}" for i in range(s.shape[0])),
        metrics={m: np.zeros_like(s) for m in result.metrics},
    )


# (fast_s, slow_s, band, min_hold_s): two band values per (fast, slow) cell; (20, 30) is absent
DESIGN = [
    [5, 30, 0.0, 30],
    [5, 30, 0.001, 30],
    [10, 30, 0.0, 30],
    [10, 30, 0.001, 30],
    [5, 60, 0.0, 30],
    [5, 60, 0.001, 30],
    [10, 60, 0.0, 30],
    [20, 60, 0.0, 30],
]


def test_heatmap_cells_average_instruments_then_take_the_best_other_parameters() -> None:
    score = [
        [1.0, 3.0, 0.0, -1.0, 2.0, 2.0, 5.0, -np.inf],
        [3.0, 1.0, 2.0, -3.0, 0.0, 6.0, 1.0, 4.0],
    ]
    xs, ys, z = heatmap_grid(_designed(DESIGN, score), "fast_s", "slow_s")
    assert xs.tolist() == [5.0, 10.0, 20.0]
    assert ys.tolist() == [30.0, 60.0]
    # per set: the mean over instruments (a non-finite score is left out of the mean)
    # (5,30): max(2, 2) = 2; (10,30): max(1, -2) = 1; (5,60): max(1, 4) = 4; (10,60): 3
    # (20,60): only instrument 1 is finite -> 4; (20,30): no set -> NaN
    expected = [[2.0, 1.0, np.nan], [4.0, 3.0, 4.0]]
    np.testing.assert_array_equal(z, np.array(expected))


def test_heatmap_axes_can_be_any_two_parameters_in_either_order() -> None:
    result = _designed(DESIGN, [[float(i) for i in range(8)]])
    xs, ys, z = heatmap_grid(result, "band", "fast_s")
    assert xs.tolist() == [0.0, 0.001] and ys.tolist() == [5.0, 10.0, 20.0]
    assert z.shape == (3, 2)
    assert z[0].tolist() == [4.0, 5.0]  # fast 5: band 0 best at set 4, band 0.001 at set 5
    assert z[2].tolist()[0] == 7.0 and np.isnan(z[2, 1])


@pytest.mark.parametrize(
    ("x", "y", "needle"),
    [("fast_s", "fast_s", "two different"), ("fast", "slow_s", "not a parameter")],
)
def test_a_bad_heatmap_parameter_is_refused_by_name(x: str, y: str, needle: str) -> None:
    _, _, result = _run()
    with pytest.raises(BacktestInputError, match=needle):
        heatmap_grid(result, x, y)


def test_the_default_heatmap_axes_are_the_parameters_the_grid_varies() -> None:
    _, _, result = _run()
    assert varying_params(result) == ["fast_s", "slow_s"]
    assert default_heat_axes(result) == ("fast_s", "slow_s")
    one_axis = _designed([[5, 60, 0.0, 30], [10, 60, 0.0, 30]], [[1.0, 2.0]])
    assert default_heat_axes(one_axis) == ("fast_s", "slow_s")  # padded with a fixed one


def test_charted_sets_are_the_best_per_instrument_or_the_top_rows() -> None:
    score = [[1.0, 9.0, 2.0], [5.0, 0.0, 4.0], [7.0, 6.0, 8.0]]
    result = _designed([[5, 30, 0, 30], [10, 30, 0, 30], [20, 60, 0, 30]], score)
    # as many instruments as curves: each instrument's best set, best instrument first
    assert best_pairs(result, 2) == [(0, 1), (2, 2)]
    # more curves than instruments: the top rows overall
    assert best_pairs(result, 4) == [(0, 1), (2, 2), (2, 0), (2, 1)]
    assert best_pairs(result, 0) == []


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: dict[str, str] = {}
        self.captions: list[str] = []
        self.rows = 0
        self.urls: list[str] = []
        self._in_caption = False
        self._in_top = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("href", "src"):
            value = a.get(key) or ""
            if value and not value.startswith("data:"):
                self.urls.append(value)
        if tag == "img":
            self.images[a.get("id") or ""] = a.get("src") or ""
        self._in_caption = tag == "figcaption"
        if tag == "table":
            self._in_top = a.get("id") == "top-sets"
        if tag == "tr" and self._in_top:
            self.rows += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption":
            self._in_caption = False
        if tag == "table":
            self._in_top = False

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions.append(data)


def test_the_report_is_one_html_file_with_its_charts_inline_and_the_same_pngs(
    tmp_path: Path,
) -> None:
    _, _, result = _run()
    recordings = _recordings(3)
    html_path = tmp_path / "deep" / "report.html"
    written = write_report(
        result, recordings, html_path, "fast_s", "slow_s", png_dir=tmp_path / "png", top=5
    )
    assert written == [html_path, *(tmp_path / "png" / f"{c}.png" for c in CHARTS)]
    page = _Page()
    page.feed(html_path.read_text(encoding="utf-8"))
    assert page.urls == []  # nothing to fetch: no CDN, no external file
    assert set(page.images) == {f"chart-{c}" for c in CHARTS}
    for chart in CHARTS:
        src = page.images[f"chart-{chart}"]
        assert src.startswith("data:image/png;base64,")
        embedded = base64.b64decode(src.split(",", 1)[1])
        assert embedded.startswith(PNG_MAGIC)
        assert embedded == (tmp_path / "png" / f"{chart}.png").read_bytes()
    assert page.rows == 1 + 5  # header and the top five
    heat = next(c for c in page.captions if "heatmap" in c or "best (max)" in c)
    assert "averaged over the 3 instruments" in heat and "best (max)" in heat
    text = html_path.read_text(encoding="utf-8")
    for fact in ("trend", "latency 5 ms", f"{result.ticks:,}", "SPY"):
        assert fact in text


def test_only_the_pngs_are_written_without_an_html_path(tmp_path: Path) -> None:
    _, _, result = _run()
    written = write_report(result, [], None, "slow_s", "fast_s", png_dir=tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{c}.png" for c in CHARTS)
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in written)
