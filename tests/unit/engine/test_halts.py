"""The kill switch outside the engine: the halt set, the watcher, and the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.cli import main
from tickwise.engine.halts import HaltSet, HaltWatch, halt, resume
from tickwise.store import SQLiteStore
from tickwise.store.base import Halt


def _halt(scope: str, cancel_open: bool = False) -> Halt:
    return Halt(scope=scope, reason="r", cancel_open=cancel_open, actor="t", ts_ns=1, seq=1)


def test_a_halt_set_sorts_scopes_into_global_portfolios_and_clients() -> None:
    halts = HaltSet.from_halts(
        [_halt("client:7"), _halt("portfolio:2", cancel_open=True), _halt("client:9")]
    )
    assert not halts.global_halt
    assert halts.portfolios == {2}
    assert halts.clients == {7, 9}
    assert halts.cancel_open
    assert halts.any
    assert HaltSet.from_halts([_halt("global")]).global_halt
    assert not HaltSet.from_halts([]).any


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "tw.sqlite")


def test_the_watch_reloads_only_when_the_generation_moves(store: SQLiteStore) -> None:
    watch = HaltWatch(store)
    first = watch.poll()
    assert first is not None and not first.any  # the first read always reports
    assert watch.poll() is None  # nothing moved
    halt(store, "client:3", "suspicious fills")
    changed = watch.poll()
    assert changed is not None and changed.clients == {3}
    assert watch.poll() is None
    resume(store, "client:3")
    cleared = watch.poll()
    assert cleared is not None and not cleared.any


class _BrokenStore(SQLiteStore):
    def halt_generation(self) -> int:
        raise OSError("database is unreachable")


def test_a_failed_read_keeps_the_last_halts_and_is_counted(tmp_path: Path) -> None:
    store = _BrokenStore(tmp_path / "tw.sqlite")
    watch = HaltWatch(store)
    assert watch.poll() is None
    assert watch.read_errors == 1
    assert not watch.current.any


def test_a_halt_needs_a_reason_and_a_valid_scope(store: SQLiteStore) -> None:
    with pytest.raises(ValueError, match="reason"):
        halt(store, "global", "   ")
    with pytest.raises(ValueError, match="scope"):
        halt(store, "desk:1", "typo")
    assert store.active_halts() == []


def test_halt_resume_and_list_from_the_command_line(
    store: SQLiteStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a table row per halt, unwrapped
    url = f"sqlite:///{store.path}"
    assert main(["halt", "--client", "42", "--reason", "margin call", "--store", url]) == 0
    assert main(["halt", "--reason", "exchange outage", "--cancel-open", "--store", url]) == 0
    assert {h.scope for h in store.active_halts()} == {"client:42", "global"}
    assert main(["halts", "--store", url]) == 0
    listed = capsys.readouterr().out
    assert "client:42" in listed and "margin call" in listed and "exchange outage" in listed
    assert main(["resume", "--store", url]) == 0
    assert {h.scope for h in store.active_halts()} == {"client:42"}
    assert main(["halts", "--history", "10", "--store", url]) == 0
    history = capsys.readouterr().out
    assert "resume" in history
    assert main(["resume", "--portfolio", "5", "--store", url]) == 0
    assert "was not halted" in capsys.readouterr().out


def test_the_command_line_refuses_a_missing_store_and_a_missing_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.sqlite'}"
    assert main(["halt", "--reason", "x", "--store", missing]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such file" in err
    with pytest.raises(SystemExit):
        main(["halt", "--store", missing])  # --reason is required


def test_a_halt_covers_its_scope_only() -> None:
    members = {4: (frozenset({10, 11}), frozenset({1, 2}))}
    portfolio = HaltSet(portfolios=frozenset({4}))
    assert portfolio.covers(1, 10, members)
    assert not portfolio.covers(1, 12, members)  # an instrument the portfolio does not hold
    assert not portfolio.covers(3, 10, members)  # a client that does not follow it
    assert HaltSet(clients=frozenset({3})).covers(3, 99, members)
    assert HaltSet(global_halt=True).covers(8, 0, {})
    assert not HaltSet().covers(1, 10, members)
