"""tickwise.store: persistence behind one interface (`Store`), SQLite by default, PostgreSQL on a
cluster.

`open_store(url)` picks the back end from a URL: `sqlite:///relative/path`, `sqlite:////abs/path`,
`sqlite:///:memory:` or a plain file path for SQLite; `postgresql://user@host:port/dbname` (or
`postgres://`, or `postgresql+driver://`) for PostgreSQL, where libpq parameters ride in the query
string, e.g. `?options=-csearch_path%3Dtickwise` to keep the tables in schema `tickwise`.
`PostgresStore` (in `tickwise.store.postgres`, imported only when a PostgreSQL URL is opened)
also takes the schema as an argument.
"""

from __future__ import annotations

import os

from tickwise.store.base import (
    ClientUniverse,
    FillRecord,
    Halt,
    OrderRecord,
    PositionRows,
    Store,
    StoreError,
    canonical_halt_scope,
    parse_halt_scope,
)
from tickwise.store.seeding import (
    SeedingConfig,
    core_instruments,
    generate_clients,
    seed_clients,
)
from tickwise.store.sqlite import SQLiteStore

__all__ = [
    "ClientUniverse",
    "FillRecord",
    "Halt",
    "OrderRecord",
    "PositionRows",
    "SQLiteStore",
    "SeedingConfig",
    "Store",
    "StoreError",
    "canonical_halt_scope",
    "core_instruments",
    "generate_clients",
    "open_store",
    "parse_halt_scope",
    "seed_clients",
]

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_SCHEMES = ("postgresql://", "postgresql+", "postgres://")


def open_store(url: str | os.PathLike[str]) -> Store:
    """Open (creating and migrating as needed) the store that `url` names."""
    text = os.fspath(url)
    if text.startswith(_POSTGRES_SCHEMES):
        from tickwise.store.postgres import PostgresStore  # psycopg loads only when needed

        return PostgresStore(text)
    if text in ("sqlite://", "sqlite:///:memory:", ":memory:"):
        return SQLiteStore(":memory:")
    if text.startswith(_SQLITE_PREFIX):
        path = text[len(_SQLITE_PREFIX) :]
        if not path:
            raise ValueError(f"store URL {text!r} names no database file")
        return SQLiteStore(path)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ValueError(
            f"unsupported store URL scheme {scheme!r} in {text!r} "
            "(expected sqlite:///path, a file path, or postgresql://...)"
        )
    if not text:
        raise ValueError("empty store URL")
    return SQLiteStore(text)
