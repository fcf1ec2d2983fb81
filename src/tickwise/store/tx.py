"""One open connection as the shared SQL sees it, whatever the back end.

The queries both back ends run alike (reads, reference data, runs, re-tunes, credentials, halts,
checkpoints) are written once, in standard SQL with `?` placeholders, against this interface;
each back end adapts its driver to it (placeholders, bulk loading, transaction commands). What
the engines do differently, the hot write path above all, stays in the back end's own module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

Params = Sequence[Any]
V = TypeVar("V")
IN_CHUNK = 500  # values per `IN (...)` list, well below any engine's parameter limit


def in_lists(values: Sequence[V]) -> Iterator[tuple[str, Sequence[V]]]:
    """`values` in chunks for `IN (...)` lookups, each with its placeholders ("?, ?, ..."): one
    query per 500 keys instead of one per key."""
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        yield ", ".join("?" * len(chunk)), chunk


class Tx(ABC):
    """Statements on one connection: inside a transaction the store opened, or each on its own."""

    @abstractmethod
    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a statement that returns rows (a SELECT, or a write with RETURNING); all rows."""

    @abstractmethod
    def run(self, sql: str, params: Params = ()) -> int:
        """Run a statement that returns no rows; how many rows it changed."""

    @abstractmethod
    def many(self, sql: str, rows: Iterable[Params]) -> int:
        """Run one statement per parameter row; how many rows they changed in all."""

    @abstractmethod
    def load(self, table: str, columns: Sequence[str], rows: Iterable[Params]) -> None:
        """Append `rows` to `table` in bulk, the fastest way the engine has."""

    @abstractmethod
    def begin(self, write: bool) -> None:
        """Open a transaction: a write one, or a read-only one that sees one snapshot."""

    @abstractmethod
    def commit(self) -> None:
        """Commit the open transaction."""

    @abstractmethod
    def rollback(self) -> None:
        """Roll back the open transaction."""

    @contextmanager
    def ending(self) -> Iterator[None]:
        """End the transaction `begin` opened with the block: committed when it ends, rolled
        back if it raises."""
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def one(self, sql: str, params: Params = ()) -> tuple[Any, ...]:
        """The single row a statement returns (an aggregate, an INSERT ... RETURNING)."""
        (row,) = self.rows(sql, params)
        return row

    def scalar(self, sql: str, params: Params = ()) -> Any:
        """The first column of the single row a statement returns."""
        return self.one(sql, params)[0]
