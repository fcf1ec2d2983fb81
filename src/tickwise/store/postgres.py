"""The PostgreSQL back end: the store on a cluster, shared by processes on several machines.

The hot path writes the journal and the execution events with a binary COPY built from the
batch's columns in one numpy pass (no Python object per value): a batch with no duplicate goes
in as one COPY, atomic on its own. A batch that collides with a unique key (an id already
journaled, a replayed terminal event) makes that COPY fail as a whole and insert nothing; it is
then staged in a temporary table and moved with `INSERT ... ON CONFLICT DO NOTHING`, which
skips exactly the duplicates. Rows go in client order id order, so two writers racing on the
same ids wait for each other in the same key order and cannot deadlock; the unique keys make the
loser skip, never double.

Migrations run at open inside one transaction under a transaction-level advisory lock keyed by
the schema, so processes opening a fresh database together migrate it exactly once. The URL may
carry libpq parameters (`?options=-csearch_path%3Dname` selects a schema); `schema=` selects one
explicitly and creates it if missing.

Each store object owns one connection (autocommit; transactions are explicit), opened lazily in
the process that uses it and reopened after a fork. A connection inherited through a fork is let
go of without ending the parent's session (see `_disown`); a connection found broken (a server
restart) is replaced on the next call.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict
from psycopg.errors import UniqueViolation

from tickwise.model.orders import ExecutionBatch, OrderBatch
from tickwise.store.base import StoreError
from tickwise.store.postgres_schema import EXECUTION_TYPES, MIGRATIONS, ORDER_TYPES
from tickwise.store.rows import (
    EXECUTION_COLUMNS,
    ORDER_COLUMNS,
    coid_array,
    execution_arrays,
    journal_arrays,
)
from tickwise.store.sql import SqlStore
from tickwise.store.tx import Params, Tx

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"  # a field count of -1
_BINARY_TYPES = {"int2": ">i2", "int4": ">i4", "int8": ">i8", "float8": ">f8"}
_STAGE = "tickwise_stage"
_DRIVER_SCHEME = re.compile(r"^postgresql\+[^:/]*://")


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """Portable SQL's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def binary_copy(types: Sequence[str], columns: Sequence[npt.NDArray[Any]]) -> bytes | None:
    """Rows of `columns` (values of PostgreSQL binary `types`: int2/int4/int8/float8, or text as
    a bytes array) as `COPY ... (FORMAT BINARY)` data, built as one numpy record array: every
    row has the same layout when each text column's values fill its width, as client order ids
    do. None when one does not (that batch goes row by row)."""
    layout: list[tuple[str, str]] = [("fields", ">i2")]
    for k, (pg_type, values) in enumerate(zip(types, columns, strict=True)):
        if pg_type == "text":
            width = values.dtype.itemsize
            if not (np.char.str_len(values) == width).all():
                return None
            layout += [(f"len{k}", ">i4"), (f"val{k}", f"S{width}")]
        else:
            layout += [(f"len{k}", ">i4"), (f"val{k}", _BINARY_TYPES[pg_type])]
    records = np.empty(len(columns[0]), dtype=np.dtype(layout))
    records["fields"] = len(columns)
    for k, values in enumerate(columns):
        field = f"val{k}"
        records[f"len{k}"] = records.dtype[field].itemsize
        records[field] = values
    return _COPY_HEADER + records.tobytes() + _COPY_TRAILER


def _python_rows(types: Sequence[str], columns: Sequence[npt.NDArray[Any]]) -> Iterator[Any]:
    """The same rows as Python values, for a row-by-row COPY."""
    values = [
        [v.decode() for v in c.tolist()] if t == "text" else c.tolist()
        for t, c in zip(types, columns, strict=True)
    ]
    return zip(*values, strict=True)


def _identifiers(names: Sequence[str]) -> pgsql.Composable:
    return pgsql.SQL(", ").join(pgsql.Identifier(n) for n in names)


def _disown(conn: psycopg.Connection[Any]) -> None:
    """Let go of a connection inherited through a fork without ending the parent's session.

    The socket is the parent's too: closing the connection here sends libpq's goodbye on it,
    which ends the parent's session. So the child's copy of the descriptor is first pointed at
    /dev/null, where the goodbye goes instead; the descriptor number stays taken until the close,
    so no other connection of the child can receive it."""
    with suppress(psycopg.Error, OSError):
        fd = conn.fileno()
        null = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(null, fd)
        finally:
            os.close(null)
    conn.close()


class PostgresTx(Tx):
    """A psycopg connection in autocommit mode: transactions are explicit BEGIN/COMMIT."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(_placeholders(sql), params).fetchall()

    def run(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(_placeholders(sql), params).rowcount

    def many(self, sql: str, rows: Iterable[Params]) -> int:
        with self.conn.cursor() as cur:
            cur.executemany(_placeholders(sql), rows)
            return cur.rowcount

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Params]) -> None:
        query = pgsql.SQL("COPY {} ({}) FROM STDIN").format(
            pgsql.Identifier(table), _identifiers(columns)
        )
        with self.conn.cursor() as cur, cur.copy(query) as copy:
            for row in rows:
                copy.write_row(row)

    def copy_binary(
        self,
        table: str,
        names: Sequence[str],
        types: Sequence[str],
        columns: Sequence[npt.NDArray[Any]],
    ) -> int:
        """COPY the rows of `columns` into `table` in binary; how many went in."""
        query = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            pgsql.Identifier(table), _identifiers(names)
        )
        data = binary_copy(types, columns)
        with self.conn.cursor() as cur:
            with cur.copy(query) as copy:
                if data is not None:
                    copy.write(data)
                else:
                    copy.set_types(list(types))
                    for row in _python_rows(types, columns):
                        copy.write_row(row)
            return cur.rowcount

    def begin(self, write: bool) -> None:
        self.conn.execute("BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        # A lost connection has no transaction left to roll back; the error that lost it is the
        # one the caller must see.
        with suppress(psycopg.OperationalError):
            self.conn.execute("ROLLBACK")


class PostgresStore(SqlStore[PostgresTx]):
    """A `Store` in a PostgreSQL database (in the URL's search_path schema, or `schema`)."""

    _MIGRATIONS = MIGRATIONS
    _DUPLICATE_KEY = (UniqueViolation,)

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        connect_timeout_s: int = 10,
        migrate: bool = True,
    ) -> None:
        if schema is not None and not schema:
            raise ValueError("schema: an empty name")
        self.url = url
        self.schema = schema
        self.connect_timeout_s = connect_timeout_s
        self._conninfo = _DRIVER_SCHEME.sub("postgresql://", url)
        try:
            params = conninfo_to_dict(self._conninfo)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"not a PostgreSQL URL: {exc}") from None
        # What names the database in messages: never the password.
        user = f"{params['user']}@" if params.get("user") else ""
        port = f":{params['port']}" if params.get("port") else ""
        self._where = (
            f"postgresql://{user}{params.get('host', '')}{port}/{params.get('dbname', '')}"
        )
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = -1
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema is not None else ""
        return f"PostgresStore({self._where!r}{schema})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "schema": self.schema, "connect_timeout_s": self.connect_timeout_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"], schema=state["schema"], connect_timeout_s=state["connect_timeout_s"]
        )

    # --- connection ----------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[PostgresTx]:
        with self._lock:
            conn = self._connection()
            try:
                yield PostgresTx(conn)
            except BaseException:
                if conn.broken:  # the server went away: the next call connects afresh
                    self._conn = None
                    conn.close()
                raise

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and self._pid != os.getpid():
            _disown(self._conn)
            self._conn = None
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=self.connect_timeout_s
            )
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to PostgreSQL at {self._where}: {exc}") from exc
        if self.schema is not None:
            conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        return conn

    def maintain(self) -> None:
        """Nothing: PostgreSQL's own checkpointer and autovacuum keep the files."""
        return None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                if self._pid == os.getpid():
                    self._conn.close()
                else:
                    _disown(self._conn)
            self._conn = None

    # --- hooks ---------------------------------------------------------------------------------

    def _before_migrating(self, tx: PostgresTx) -> None:
        schema = self.schema if self.schema is not None else tx.scalar("SELECT current_schema()")
        if schema is None:
            raise StoreError(
                f"{self!r}: no schema of the search_path exists; create it, or pass schema="
            )
        tx.run("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"tickwise:{schema}",))
        if self.schema is not None:
            tx.conn.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema))
            )

    def _lock_halt_log(self, tx: PostgresTx) -> None:
        # Identity values are drawn at insert but become visible at commit: without the lock a
        # later event could commit first and a poller would skip the earlier one for good.
        tx.run("LOCK TABLE halt_events IN EXCLUSIVE MODE")

    # --- journal and executions ----------------------------------------------------------------

    def journal_orders(self, orders: OrderBatch, run_id: str) -> npt.NDArray[np.bool_]:
        n = len(orders)
        inserted = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return inserted
        # The first row of each id, in id order (np.unique sorts): one key order for every writer.
        ids, first = np.unique(orders.client_order_id, return_index=True)
        candidates = orders.take(first)
        run = np.full(len(first), run_id.encode())
        columns = [candidates.client_order_id, run, *journal_arrays(candidates)]
        fresh = self._append("orders", ORDER_COLUMNS, ORDER_TYPES, columns)
        inserted[first] = True if fresh is None else np.isin(ids, coid_array(fresh))
        return inserted

    def record_executions(self, execs: ExecutionBatch) -> int:
        n = len(execs)
        if n == 0:
            return 0
        # In id order, so writers take the one-terminal-event keys in the same order; stable, so
        # an order's events keep their batch order and the first of two terminal events wins, as
        # in SQLite.
        ordered = execs.take(np.argsort(execs.client_order_id, kind="stable"))
        columns = [ordered.client_order_id, *execution_arrays(ordered)]
        fresh = self._append("executions", EXECUTION_COLUMNS, EXECUTION_TYPES, columns)
        return n if fresh is None else len(fresh)

    def _append(
        self,
        table: str,
        names: Sequence[str],
        types: Sequence[str],
        columns: Sequence[npt.NDArray[Any]],
    ) -> list[str] | None:
        """Append rows to `table`, skipping those that would break a unique key. None when every
        row went in (the one-COPY fast path); else the client order ids of the rows inserted."""
        with self._session() as tx:
            try:
                tx.copy_binary(table, names, types, columns)
                return None
            except UniqueViolation:
                pass
        staged = [*columns, np.arange(len(columns[0]), dtype=np.int64)]
        stage_columns = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(name), pgsql.SQL(pg_type))
            for name, pg_type in zip([*names, "ord"], [*types, "int8"], strict=True)
        )
        with self._write() as tx:
            tx.conn.execute(
                pgsql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
                    pgsql.Identifier(_STAGE), stage_columns
                )
            )
            tx.copy_binary(_STAGE, [*names, "ord"], [*types, "int8"], staged)
            cursor = tx.conn.execute(
                pgsql.SQL(
                    "INSERT INTO {table} ({names}) SELECT {names} FROM {stage} ORDER BY ord"
                    " ON CONFLICT DO NOTHING RETURNING client_order_id"
                ).format(
                    table=pgsql.Identifier(table),
                    names=_identifiers(names),
                    stage=pgsql.Identifier(_STAGE),
                )
            )
            return [r[0] for r in cursor.fetchall()]
