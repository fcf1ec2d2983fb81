"""The re-tuning audit trail in SQL: append decisions, read a symbol's history, summarise what is
live per symbol.

Functions take an open `Tx` so the caller decides the transaction. The record types are
imported where they are built, so importing the store never imports the tuning package (which
uses the store).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tickwise.store.tx import Tx

if TYPE_CHECKING:
    from tickwise.tuning.records import CurrentParams, Retune

_COLUMNS = (
    "run_id, instrument, symbol, strategy, ts_ns, train_from_ns, train_to_ns, valid_from_ns, "
    "valid_to_ns, param_names, live_params, winner_params, live_score, winner_score, "
    "winner_train_score, winner_trades, sets_evaluated, decision, reason"
)
_INSERT = f"INSERT INTO retunes ({_COLUMNS}) VALUES ({', '.join('?' * 19)})"
_NEWEST_FIRST = "ORDER BY ts_ns DESC, seq DESC"


def _score(value: float) -> float | None:
    """NaN and infinities are stored as NULL, in every back end (SQLite would turn NaN into NULL
    anyway; PostgreSQL would keep it, and an infinity, as a value)."""
    return value if math.isfinite(value) else None


def _loaded(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _row(r: Retune) -> tuple[Any, ...]:
    return (
        r.run_id,
        r.instrument,
        r.symbol,
        r.strategy,
        r.ts_ns,
        r.train_from_ns,
        r.train_to_ns,
        r.valid_from_ns,
        r.valid_to_ns,
        json.dumps(list(r.param_names)),
        json.dumps(list(r.live_params)),
        json.dumps(list(r.winner_params)),
        _score(r.live_score),
        _score(r.winner_score),
        _score(r.winner_train_score),
        r.winner_trades,
        r.sets_evaluated,
        r.decision,
        r.reason,
    )


def write_retunes(tx: Tx, rows: Sequence[Retune]) -> int:
    return tx.many(_INSERT, [_row(r) for r in rows])


def _retune(r: Sequence[Any]) -> Retune:
    from tickwise.tuning.records import Retune

    return Retune(
        run_id=r[0],
        instrument=int(r[1]),
        symbol=r[2],
        strategy=r[3],
        ts_ns=int(r[4]),
        train_from_ns=int(r[5]),
        train_to_ns=int(r[6]),
        valid_from_ns=int(r[7]),
        valid_to_ns=int(r[8]),
        param_names=tuple(json.loads(r[9])),
        live_params=tuple(json.loads(r[10])),
        winner_params=tuple(json.loads(r[11])),
        live_score=_loaded(r[12]),
        winner_score=_loaded(r[13]),
        winner_train_score=_loaded(r[14]),
        winner_trades=int(r[15]),
        sets_evaluated=int(r[16]),
        decision=r[17],
        reason=r[18],
    )


def read_history(tx: Tx, symbol: str | None, limit: int, run_id: str | None) -> list[Retune]:
    if limit < 1:
        raise ValueError(f"retune history: limit must be >= 1, got {limit}")
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("symbol", symbol), ("run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = tx.rows(
        f"SELECT {_COLUMNS} FROM retunes{clause} {_NEWEST_FIRST} LIMIT ?", [*params, int(limit)]
    )
    return [_retune(r) for r in rows]


def read_current(tx: Tx, strategy: str | None) -> dict[str, CurrentParams]:
    """Per symbol: its latest row (rank 1 over all rows) and its latest swap (rank 1 among swaps),
    plus the row count, in one pass over the table."""
    from tickwise.tuning.records import CurrentParams

    clause, params = ("", []) if strategy is None else (" WHERE strategy = ?", [strategy])
    rows = tx.rows(
        "SELECT symbol, instrument, strategy, ts_ns, param_names, live_params, winner_params,"
        " live_score, winner_score, decision, latest, latest_of_kind, n FROM ("
        "  SELECT *,"
        f"   ROW_NUMBER() OVER (PARTITION BY symbol {_NEWEST_FIRST}) AS latest,"
        "    ROW_NUMBER() OVER (PARTITION BY symbol, decision = 'swap'"
        f"    {_NEWEST_FIRST}) AS latest_of_kind,"
        "    COUNT(*) OVER (PARTITION BY symbol) AS n"
        f"  FROM retunes{clause}"
        ") AS ranked WHERE latest = 1 OR (decision = 'swap' AND latest_of_kind = 1)"
        " ORDER BY symbol, latest",
        params,
    )
    last: dict[str, Sequence[Any]] = {}
    swap: dict[str, Sequence[Any]] = {}
    for r in rows:
        if r[10] == 1:
            last[r[0]] = r
        if r[9] == "swap":
            swap[r[0]] = r
    current: dict[str, CurrentParams] = {}
    for symbol, lr in last.items():
        sr = swap.get(symbol)
        source, values = (sr, sr[6]) if sr is not None else (lr, lr[5])
        current[symbol] = CurrentParams(
            symbol=symbol,
            instrument=int(source[1]),
            strategy=source[2],
            param_names=tuple(json.loads(source[4])),
            values=tuple(float(v) for v in json.loads(values)),
            swapped_at_ns=int(sr[3]) if sr is not None else None,
            last_retune_ns=int(lr[3]),
            last_decision=lr[9],
            last_score=_loaded(lr[8] if lr[9] == "swap" else lr[7]),
            retunes=int(lr[12]),
        )
    return current
