"""The numbered schema migrations every back end applies, and the rules for applying them.

Each back end writes its own SQL for a step (types and storage differ), but the steps, their
numbers and descriptions are one list, so `schema_version` reads the same in SQLite and in
PostgreSQL and a database is never migrated by a back end that skips a step. A released step is
never edited; changes come as a new one.
"""

from __future__ import annotations

from collections.abc import Sequence

from tickwise.store.base import StoreError

Migration = tuple[int, str, str]  # (number, description, SQL script of ';'-separated statements)

STEPS: tuple[tuple[int, str], ...] = (
    (1, "reference data: instruments, clients, accounts, portfolios, subscriptions"),
    (2, "runs, write-ahead order journal, append-only execution events"),
    (3, "re-tuning audit trail"),
    (4, "venue credentials, encrypted at rest"),
    (5, "trading halts and checkpoints"),
    (6, "indexes for queries by client and by instrument (dashboard, CLI)"),
    (7, "orders indexed by key and run only; SQLite: executions in a file of their own"),
    (8, "SQLite: the journal as chunks, the orders expanded from them beside the executions"),
)


def numbered(scripts: Sequence[str]) -> tuple[Migration, ...]:
    """A back end's scripts, one per step in order, as migrations with the shared numbers."""
    if len(scripts) != len(STEPS):
        raise ValueError(f"{len(scripts)} migration scripts for {len(STEPS)} steps")
    return tuple((number, text, sql) for (number, text), sql in zip(STEPS, scripts, strict=True))


def pending(current: int, migrations: Sequence[Migration], where: str) -> list[Migration]:
    """The migrations after `current`; a database already past the last one raises StoreError
    (code older than the data must not write to it)."""
    latest = migrations[-1][0]
    if current > latest:
        raise StoreError(
            f"{where}: schema version {current} is newer than this tickwise ({latest}); "
            "upgrade tickwise"
        )
    return [m for m in migrations if m[0] > current]


def statements(script: str) -> list[str]:
    """The statements of a migration script (no statement of ours contains a ';')."""
    return [s for s in script.split(";") if s.strip()]
