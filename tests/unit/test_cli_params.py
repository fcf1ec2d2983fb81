"""`tickwise params history|show` in-process, over a SQLite store seeded through the Store API."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import pytest

from tickwise.cli import main
from tickwise.store import SQLiteStore
from tickwise.tuning.cli import format_age, param_change
from tickwise.tuning.records import Retune

S = 1_000_000_000
NAMES = ("fast_s", "slow_s")


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables wide enough that no cell wraps, so each row reads on one line."""
    monkeypatch.setenv("COLUMNS", "240")


def retune(
    symbol: str,
    ts_ns: int,
    decision: str,
    live: tuple[float, ...],
    winner: tuple[float, ...],
    live_score: float,
    winner_score: float,
    reason: str,
) -> Retune:
    return Retune(
        run_id="run-1",
        instrument=0,
        symbol=symbol,
        strategy="trend",
        ts_ns=ts_ns,
        train_from_ns=ts_ns - 3600 * S,
        train_to_ns=ts_ns - 900 * S,
        valid_from_ns=ts_ns - 900 * S,
        valid_to_ns=ts_ns,
        param_names=NAMES,
        live_params=live,
        winner_params=winner,
        live_score=live_score,
        winner_score=winner_score,
        winner_train_score=1.0,
        winner_trades=137,
        sets_evaluated=16,
        decision=decision,
        reason=reason,
    )


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[str, int]:
    """A store with three SPY re-tunes and one BTC/USD keep; returns its URL and "now"."""
    now = time.time_ns()
    path = tmp_path / "tickwise.sqlite"
    with SQLiteStore(path) as store:
        store.record_retunes(
            [
                retune("SPY", now - 3600 * S, "swap", (5, 60), (10, 60), 0.12, 0.61, "margin met"),
                retune(
                    "SPY", now - 600 * S, "keep", (10, 60), (10, 120), 0.55, 0.67,
                    "margin not met: +0.12 < 0.25",
                ),
                retune(
                    "SPY", now - 192 * S, "failed", (10, 60), (), math.nan, math.nan,
                    "too few ticks: 35 < 200",
                ),
                retune("BTC/USD", now - 30 * S, "keep", (3, 30), (4, 30), 0.25, 0.3, "margin"),
            ]
        )  # fmt: skip
    return f"sqlite:///{path}", now


def row_of(text: str, first: str) -> str:
    """The table row whose first cell is `first`."""
    rows = [line for line in text.splitlines() if re.match(rf"^[│|]\s*{re.escape(first)}\s", line)]
    assert len(rows) == 1, text
    return rows[0]


def test_history_lists_an_instruments_retunes_newest_first(
    seeded: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    assert main(["params", "history", "--instrument", "SPY", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "re-tunes of SPY (trend), newest first: 3" in out
    decisions = re.findall(r"│ (swap|keep|failed) ", out)
    assert decisions == ["failed", "keep", "swap"]
    assert "too few ticks: 35 < 200" in out and "margin not met: +0.12 < 0.25" in out
    keep = next(line for line in out.splitlines() if "│ keep " in line)
    assert "0.55" in keep and "0.67" in keep and "137" in keep
    assert "fast_s=10 slow_s=60->120" in keep
    swap = next(line for line in out.splitlines() if "│ swap " in line)
    assert "fast_s=5->10 slow_s=60" in swap
    failed = next(line for line in out.splitlines() if "│ failed " in line)
    assert failed.count("n/a") == 2 and "fast_s=10 slow_s=60" in failed


def test_history_limit_run_and_lower_case_symbols(
    seeded: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    assert main(["params", "history", "--instrument", "spy", "--limit", "1", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "newest first: 1" in out and "│ failed " in out and "│ swap " not in out
    assert main(["params", "history", "--instrument", "SPY", "--run", "run-9", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "no re-tunes recorded for SPY in run run-9"


def test_history_of_an_unknown_symbol_says_so(
    seeded: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    assert main(["params", "history", "--instrument", "QQQ", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "no re-tunes recorded for QQQ"


def test_show_lists_what_is_live_for_every_retuned_instrument(
    seeded: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    assert main(["params", "show", "--store", url]) == 0
    out = capsys.readouterr().out
    assert "live parameters of 2 re-tuned instruments" in out
    spy = row_of(out, "SPY")
    assert "fast_s=10 slow_s=60" in spy  # the swap's winner, not the later keep's
    assert re.search(r"\b1h0[01]m ago\b", spy)  # swapped an hour ago
    assert re.search(r"\b3m1[2-9]s ago \(failed\)", spy)
    assert "n/a" in spy and spy.rstrip(" │").endswith("3")
    btc = row_of(out, "BTC/USD")
    assert "fast_s=3 slow_s=30" in btc and "never" in btc and "0.25" in btc
    assert out.index("BTC/USD") < out.index("SPY")


def test_show_of_one_strategy_and_of_an_empty_store(
    seeded: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    assert main(["params", "show", "--strategy", "revert", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "no re-tunes recorded yet for strategy revert"
    SQLiteStore(tmp_path / "empty.sqlite").close()
    assert main(["params", "show", "--store", str(tmp_path / "empty.sqlite")]) == 0
    assert capsys.readouterr().out.strip() == "no re-tunes recorded yet"


def test_the_store_comes_from_the_config_file(
    seeded: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = seeded
    config = tmp_path / "tickwise.toml"
    config.write_text(f'[store]\nurl = "{url}"\n', encoding="utf-8")
    assert main(["params", "show", "--config", str(config)]) == 0
    assert "live parameters of 2 re-tuned instruments" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("mysql://host/db", "unsupported store URL scheme"),
        ("postgresql://host/db", "PostgreSQL"),
        ("sqlite:///{tmp}/missing.sqlite", "no such file"),
        ("{tmp}/not-a-db.sqlite", "not a database"),
    ],
)
def test_a_bad_store_is_one_line_and_exit_2(
    store: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-db.sqlite").write_text("hello, this is text\n" * 100, encoding="utf-8")
    url = store.format(tmp=tmp_path)
    for command in (["show"], ["history", "--instrument", "SPY"]):
        assert main(["params", *command, "--store", url]) == 2
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith(f"tickwise params {command[0]}: ")
        assert message in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "missing.sqlite").exists()


def test_a_missing_config_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["params", "show", "--config", str(tmp_path / "none.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tickwise params show: ") and "config file not found" in err


def test_ages_and_parameter_changes_read_compactly() -> None:
    assert [format_age(s * S) for s in (0, 45, 192, 7500, 97_200)] == [
        "0s", "45s", "3m12s", "2h05m", "1d03h",
    ]  # fmt: skip
    assert format_age(-5 * S) == "0s"
    assert param_change(NAMES, (5, 60), (10, 60)) == "fast_s=5->10 slow_s=60"
    assert param_change(NAMES, (5, 60), ()) == "fast_s=5 slow_s=60"
    assert param_change(NAMES, (), (0.0002, 60)) == "fast_s=?->0.0002 slow_s=?->60"
