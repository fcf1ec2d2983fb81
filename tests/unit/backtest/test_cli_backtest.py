"""`tickwise backtest` end to end, in-process: generated and stored ticks, outputs, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tickwise.backtest.gpu import gpu_available
from tickwise.cli import main
from tickwise.data.generator import GeneratorConfig, MarketGenerator
from tickwise.data.readers import default_data_root
from tickwise.data.tickstore import TickStore
from tickwise.data.universe import build_universe

START, END = "2024-01-02T14:30:00Z", "2024-01-02T14:40:00Z"
T0 = 1_704_205_800_000_000_000  # START in ns
GENERATED = [
    "--source", "generated", "--instruments", "5", "--from", START, "--to", END,
    "--tick-rate", "100", "--sample-s", "10",
]  # fmt: skip
GRID = ["--strategy", "trend", "--grid", "fast_s=5|10,slow_s=60|120"]


def _store(root: Path) -> TickStore:
    """A tick store holding ten generated minutes of SPY and QQQ."""
    registry = build_universe(2, 0)
    gen = MarketGenerator(registry, GeneratorConfig(tick_rate=60.0, block_ms=1000.0), seed=5)
    store = TickStore(root)
    store.write(gen.generate(T0, T0 + 600 * 10**9), registry)
    return store


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("tickwise backtest: ")
    return lines[0]


def test_a_generated_run_prints_the_top_sets_and_writes_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            "backtest", *GRID, *GENERATED, "--top", "3", "--heatmap", "slow_s,fast_s",
            "--report", str(out / "report.html"), "--png-dir", str(out / "png"),
            "--out", str(out / "rows.parquet"), "--json", str(out / "top.json"),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0
    assert "top 3 of 20 backtests by sharpe" in printed
    assert "fixed: band=0.0002, min_hold_s=30" in printed
    html = (out / "report.html").read_text(encoding="utf-8")
    for chart in ("equity", "drawdown", "heatmap"):
        assert f'id="chart-{chart}" ' in html
        assert (out / "png" / f"{chart}.png").read_bytes()[:4] == b"\x89PNG"
    assert html.count('src="data:image/png;base64,') == 3
    assert "sharpe over slow_s (x) and fast_s (y), averaged over the 5 instruments" in html

    rows = pq.read_table(out / "rows.parquet")
    assert rows.num_rows == 5 * 4  # instruments x sets
    assert set(rows.column("symbol").to_pylist()) == {"SPY", "QQQ", "AAPL", "MSFT", "NVDA"}
    assert sorted(set(rows.column("slow_s").to_pylist())) == [60.0, 120.0]
    doc = json.loads((out / "top.json").read_text())
    assert doc["summary"]["source"] == "generated" and doc["summary"]["sets"] == 4
    assert doc["summary"]["from"] == START and doc["summary"]["to"] == END
    scores = [r["score"] for r in doc["top"]]
    assert len(scores) == 20 and scores == sorted(scores, reverse=True)
    best = max(rows.column("score").to_pylist())
    assert scores[0] == pytest.approx(best)


def test_a_store_run_reads_the_named_symbols_in_the_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path / "ticks")
    rc = main(
        [
            "backtest", *GRID, "--ticks-dir", str(tmp_path / "ticks"), "--instruments", "qqq",
            "--from", "2024-01-02T14:32:00Z", "--to", END, "--sample-s", "10",
            "--out", str(tmp_path / "rows.parquet"),
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0
    assert "from tick store" in printed and "[2024-01-02T14:32:00Z, " in printed
    rows = pq.read_table(tmp_path / "rows.parquet")
    assert set(rows.column("symbol").to_pylist()) == {"QQQ"} and rows.num_rows == 4
    meta = rows.schema.metadata
    assert json.loads(meta[b"source"]) == "store"
    assert json.loads(meta[b"from"]) == "2024-01-02T14:32:00Z"


def test_auto_source_uses_the_store_when_it_holds_ticks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path / "ticks")
    rc = main(["backtest", *GRID, "--ticks-dir", str(tmp_path / "ticks"), "--sample-s", "10"])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "4 sets x 2 instruments" in printed and "from tick store" in printed


def _corrupt(root: Path) -> None:
    _store(root)
    part = sorted(root.rglob("part-*.parquet"))[0]
    part.write_bytes(b"PAR1" + b"\x00" * 64)


BAD_INPUT = [
    (["--strategy", "nope", *GENERATED], "unknown strategy 'nope'"),
    (["--strategy", "trend", "--grid", "fast_s=100,slow_s=50", *GENERATED], "no valid param"),
    (["--strategy", "trend", "--grid", "fast_s=1:2", *GENERATED], "expected low:high:step"),
    (["--strategy", "trend", "--grid", "speed=5", *GENERATED], "unknown param 'speed'"),
    ([*GRID, "--objective", "alpha", *GENERATED], "unknown objective 'alpha'"),
    ([*GRID, "--heatmap", "fast_s", *GENERATED], "give two parameters"),
    ([*GRID, "--heatmap", "fast_s,width", *GENERATED], "'width' is not a parameter"),
    ([*GRID, "--latency-ms", "-1", *GENERATED], "latency_ms must be"),
    ([*GRID, "--source", "generated", "--from", "2024-13-40"], "--from '2024-13-40' is not"),
    ([*GRID, "--source", "generated", "--from", END, "--to", START], "empty time range"),
    ([*GRID, "--source", "generated", "--instruments", "ZZZZZZ"], "not in the generated"),
    ([*GRID, "--source", "store", "--from", "2024-01-03", "--to", "2024-01-04"], "no ticks for"),
    ([*GRID, "--source", "store", "--instruments", "AAPL"], "no ticks for AAPL: import"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_status_2(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store(tmp_path / "ticks")
    rc = main(["backtest", *argv, "--ticks-dir", str(tmp_path / "ticks")])
    assert rc == 2
    assert needle in _one_line_error(capsys)


def test_an_empty_store_says_how_to_fill_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["backtest", *GRID, "--source", "store", "--ticks-dir", str(tmp_path / "none")])
    assert rc == 2
    assert "is empty: import ticks with `tickwise data import" in _one_line_error(capsys)


def test_a_corrupt_parquet_file_is_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _corrupt(tmp_path / "ticks")
    rc = main(["backtest", *GRID, "--source", "store", "--ticks-dir", str(tmp_path / "ticks")])
    assert rc == 2
    line = _one_line_error(capsys)
    assert ".parquet" in line and "Parquet" in line


@pytest.mark.skipif(gpu_available(), reason="a GPU is visible: --device gpu is valid here")
def test_a_forced_gpu_without_one_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["backtest", *GRID, *GENERATED, "--device", "gpu"])
    assert rc == 2
    assert "no CUDA GPU" in _one_line_error(capsys)


@pytest.mark.data
def test_a_real_spy_day_imported_into_the_store_backtests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = default_data_root()
    day = None if root is None else root / "equities/us/lean/tick/spy/20131007_trade.zip"
    if day is None or not day.is_file():
        pytest.skip("recorded SPY ticks not available (set TICKWISE_DATA)")
    ticks = str(tmp_path / "ticks")
    assert main(["data", "import", str(day), "--ticks-dir", ticks]) == 0
    rc = main(
        [
            "backtest", *GRID, "--instruments", "SPY", "--ticks-dir", ticks,
            "--from", "2013-10-07", "--to", "2013-10-08", "--json", str(tmp_path / "t.json"),
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["summary"]["ticks"] > 100_000 and len(doc["top"]) == 4
    assert {r["symbol"] for r in doc["top"]} == {"SPY"}
