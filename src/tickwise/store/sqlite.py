"""The SQLite back end: the default store on one machine.

Several processes (one allocator actor per client range, the ledger) write at once, so the
database runs in WAL mode (readers never block the writer), `synchronous=NORMAL` (a commit
survives a process crash; only an OS crash can lose the last commits), and every write is one
`BEGIN IMMEDIATE` transaction that waits up to `busy_timeout` for the write lock instead of
failing.

SQLite has one writer lock per database file, so the store is two files: the main one (the
order journal, reference data, runs, re-tunes, halts, checkpoints) and, beside it, the
executions and the orders (`x.sqlite` and `x.executions.sqlite`). The ledger records every
acknowledgement and fill; in one file its writes held the lock the allocators need to journal,
and a 37,000-order fan-out waited behind them.

The journal itself is a chunk per batch, one row holding the batch's columns as bytes, with a
key per signal for the duplicate check (`tickwise.store.chunks`): a 30,000-order fan-out is
journaled in a tenth of the time a row per order takes. The `orders` rows are written from the
chunks later (`expand_journal`: the ledger after each flush, and every query that reads orders
first), in the executions' file, so that never takes the journal's lock either.

Each store object keeps up to three connections, opened lazily in the process that uses them
and reopened after a fork (never shared across processes): a writer on each file (a `BEGIN
IMMEDIATE` on a connection takes the lock of every file it has attached, so a writer attaches
nothing) and a reader with the executions attached, for the queries that join them with the
orders.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.orders import ExecutionBatch, OrderBatch
from tickwise.store.base import StoreError
from tickwise.store.chunks import (
    ChunkKeys,
    chunk_ids,
    chunk_keys,
    decode_chunk,
    encode_chunk,
    spanned,
)
from tickwise.store.rows import (
    EXECUTION_COLUMNS,
    ORDER_COLUMNS,
    coid_array,
    coid_strings,
    execution_rows,
    journal_rows,
)
from tickwise.store.sql import SqlStore
from tickwise.store.sqlite_schema import EXECUTIONS_SCHEMA, MIGRATIONS
from tickwise.store.tx import Params, Tx, in_lists


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT") -> str:
    return f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


_INSERT_ORDER_IF_NEW = _insert("orders", ORDER_COLUMNS, "INSERT OR IGNORE")
_INSERT_CHUNK = _insert("order_chunks", ("run_id", "n", "ts_journal", "payload"))
_INSERT_KEY = _insert("journal_keys", ("signal_key", "first_id", "last_id", "chunk_id"))
_ROWS_CHUNK = 0  # the keys of the orders journaled as rows, before chunks (migration 8)
_INSERT_EXECUTION = _insert("executions", EXECUTION_COLUMNS, "INSERT OR IGNORE")


_READER, _MAIN_WRITER, _EXECUTIONS_WRITER = "reader", "main", "executions"
_SPLIT_VERSION = 7  # the migration that moved the executions to their own file


def executions_path(path: str) -> str:
    """The executions' file beside a store's main file: `var/x.sqlite` gives
    `var/x.executions.sqlite` (":memory:" stays in memory)."""
    if path == ":memory:":
        return path
    main = Path(path)
    return str(main.with_name(f"{main.stem}.executions{main.suffix}"))


class SQLiteTx(Tx):
    """A sqlite3 connection in autocommit mode: transactions are explicit BEGIN/COMMIT."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def many(self, sql: str, rows: Iterable[Params]) -> int:
        before = self.conn.total_changes
        self.conn.executemany(sql, rows)
        return self.conn.total_changes - before

    def load(self, table: str, columns: Sequence[str], rows: Iterable[Params]) -> None:
        self.conn.executemany(_insert(table, columns), rows)

    def begin(self, write: bool) -> None:
        # IMMEDIATE takes the write lock at BEGIN, so reads inside a write are current.
        self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    def commit(self) -> None:
        self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")


class SQLiteStore(SqlStore[SQLiteTx]):
    """A `Store` in one SQLite file (or ":memory:" for tests), safe for concurrent processes."""

    _MIGRATIONS = MIGRATIONS
    _DUPLICATE_KEY = (sqlite3.IntegrityError,)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        migrate: bool = True,
    ) -> None:
        self.path = str(path)
        self.executions_path = executions_path(self.path)
        self.busy_timeout_ms = busy_timeout_ms
        self._checkpoint_on_commit = True  # False on the order path: see `on_order_path`
        self._lock = threading.RLock()
        self._conns: dict[str, sqlite3.Connection] = {}
        self._pid = -1
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "busy_timeout_ms": self.busy_timeout_ms,
            "order_path": not self._checkpoint_on_commit,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], busy_timeout_ms=state["busy_timeout_ms"])  # type: ignore[misc]
        if state.get("order_path"):
            self.on_order_path()

    def on_order_path(self) -> SQLiteStore:
        """A commit that fills SQLite's write-ahead log past 1,000 pages copies the log into the
        database file and syncs it before it returns (an automatic checkpoint): ~10 ms more for
        one journal chunk in ten. On the order path no commit does that; `maintain` does it,
        off the path. And the write lock is waited for in steps of at most 1 ms
        (`_begin_promptly`)."""
        with self._lock:
            self._checkpoint_on_commit = False
            for kind, conn in self._conns.items():
                self._order_path_pragmas(conn, kind)
        return self

    def maintain(self) -> None:
        """A passive checkpoint of both files: it copies what it can of each write-ahead log
        without waiting for, or blocking, any reader or writer."""
        if self.path == ":memory:":
            return
        with self._lock:
            conn = self._connection(_READER)
            for schema in ("main", EXECUTIONS_SCHEMA):
                conn.execute(f"PRAGMA {schema}.wal_checkpoint(PASSIVE)").fetchall()

    # --- connections ---------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[SQLiteTx]:
        """The reader (both files): queries, and the migrations, which span the two."""
        with self._lock:
            yield SQLiteTx(self._connection(_READER))

    def _write(self) -> AbstractContextManager[SQLiteTx]:
        """A write transaction on the main file alone: it waits for nobody's executions."""
        return self._writing(_MAIN_WRITER)

    @contextmanager
    def _writing(self, kind: str) -> Iterator[SQLiteTx]:
        with self._lock:
            tx = SQLiteTx(self._connection(kind))
            if self._checkpoint_on_commit or kind != _MAIN_WRITER:
                tx.begin(write=True)
            else:
                self._begin_promptly(tx.conn)
            with tx.ending():
                yield tx

    def _begin_promptly(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE on the order path: the write lock taken within a millisecond of its
        release. SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms... between tries,
        so a writer waiting on another's 20 ms commit wakes up to 20 ms late, and of two
        allocators journaling at once one starves (a 4,096-order chunk waited up to 116 ms);
        this one tries again after at most 1 ms, and the two take turns (no chunk waited more
        than 23 ms: benchmarks/bench_journal_writers.py)."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000.0
        delay_s = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 0.001)

    def _connection(self, kind: str) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self._conns = {}  # a fork's copies belong to the parent
            self._pid = os.getpid()
        if self.path == ":memory:":
            kind = _READER  # one in-memory database is one connection's alone
        conn = self._conns.get(kind)
        if conn is None:
            conn = self._conns[kind] = self._connect(kind)
        return conn

    def _connect(self, kind: str) -> sqlite3.Connection:
        path = self.executions_path if kind == _EXECUTIONS_WRITER else self.path
        conn = sqlite3.connect(
            path,
            timeout=self.busy_timeout_ms / 1000.0,
            isolation_level=None,  # explicit BEGIN/COMMIT only
            check_same_thread=False,  # guarded by self._lock (Ray may call from a worker thread)
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        schemas = ["main"]
        if kind == _READER:
            conn.execute(f"ATTACH DATABASE ? AS {EXECUTIONS_SCHEMA}", (self.executions_path,))
            schemas.append(EXECUTIONS_SCHEMA)
        for schema in schemas:
            if self.path != ":memory:":
                self._set_wal(conn, schema)
            conn.execute(f"PRAGMA {schema}.synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        if not self._checkpoint_on_commit:
            self._order_path_pragmas(conn, kind)
        return conn

    @staticmethod
    def _order_path_pragmas(conn: sqlite3.Connection, kind: str) -> None:
        # Checkpoints are left to `maintain`. The journal's writer waits for the lock in
        # `_begin_promptly`; the reader and the executions' writer keep SQLite's busy handler.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        if kind == _MAIN_WRITER:
            conn.execute("PRAGMA busy_timeout = 0")

    def _set_wal(self, conn: sqlite3.Connection, schema: str) -> None:
        # Switching to WAL takes an exclusive lock once per file; another process opening the
        # same new file at the same moment may hold it, so retry until the busy timeout.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000.0
        while True:
            try:
                conn.execute(f"PRAGMA {schema}.journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def migrate(self) -> int:
        version = super().migrate()
        found = self._read(
            f"SELECT COUNT(*) FROM {EXECUTIONS_SCHEMA}.sqlite_master WHERE name = 'executions'"
        )[0][0]
        if version >= _SPLIT_VERSION and not found:
            raise StoreError(
                f"{self!r}: the executions file {self.executions_path} is missing or empty;"
                " a store is both files (copy or restore them together)"
            )
        return version

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                for conn in self._conns.values():
                    conn.close()
            self._conns = {}

    # --- journal and executions ----------------------------------------------------------------

    def journal_orders(self, orders: OrderBatch, run_id: str) -> npt.NDArray[np.bool_]:
        """One chunk row (and its keys) for the orders whose ids are new (tickwise.store.chunks);
        `expand_journal` writes their `orders` rows later."""
        n = len(orders)
        inserted = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return inserted
        # Within the batch only the first row of an id can be inserted.
        ids, first = np.unique(orders.client_order_id, return_index=True)
        inserted[first] = True
        keys = chunk_keys(ids)
        with self._write() as tx:
            # The write lock is held from here: nobody can journal an id in between.
            known = self._journaled(tx.conn, ids, keys)
            if known.size:
                inserted &= ~np.isin(orders.client_order_id, known)
                fresh = orders.take(np.flatnonzero(inserted))
                keys = chunk_keys(ids[~np.isin(ids, known)])  # still sorted and unique
            else:
                fresh = orders if first.size == n else orders.take(np.sort(first))
            if len(fresh):
                chunk = tx.conn.execute(
                    _INSERT_CHUNK,
                    (run_id, len(fresh), int(fresh.ts_journal.max()), encode_chunk(fresh)),
                ).lastrowid
                tx.conn.executemany(
                    _INSERT_KEY,
                    zip(keys.signal, keys.first, keys.last, [chunk] * len(keys), strict=True),
                )
        return inserted

    def _journaled(
        self, conn: sqlite3.Connection, ids: npt.NDArray[np.bytes_], keys: ChunkKeys
    ) -> npt.NDArray[np.bytes_]:
        """Which of `ids` (sorted, unique) are journaled already: the keys of their signals
        name the chunks that may hold them, and only those chunks' ids are compared."""
        chunks: set[int] = set()
        for marks, part in in_lists(keys.signal):
            for first, last, chunk in conn.execute(
                "SELECT first_id, last_id, chunk_id FROM journal_keys"
                f" WHERE signal_key IN ({marks})",
                part,
            ):
                if chunk not in chunks and spanned(ids, first, last):
                    chunks.add(int(chunk))
        if not chunks:
            return np.empty(0, dtype=ids.dtype)
        found: list[npt.NDArray[np.bytes_]] = []
        for chunk in sorted(chunks - {_ROWS_CHUNK}):
            (payload,) = conn.execute(
                "SELECT payload FROM order_chunks WHERE chunk_id = ?", (chunk,)
            ).fetchone()
            found.append(chunk_ids(payload))
        if _ROWS_CHUNK in chunks:
            found.append(self._journaled_as_rows(ids))
        return ids[np.isin(ids, np.concatenate(found))]

    def _journaled_as_rows(self, ids: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bytes_]:
        """Which of `ids` are among the orders journaled as rows before chunks (migration 8):
        read beside the executions, outside the journal's transaction, since nobody writes
        those rows again."""
        found: list[str] = []
        reader = self._connection(_READER)
        for marks, part in in_lists(coid_strings(ids)):
            cursor = reader.execute(
                f"SELECT client_order_id FROM {EXECUTIONS_SCHEMA}.orders"
                f" WHERE client_order_id IN ({marks})",
                part,
            )
            found.extend(r[0] for r in cursor)
        return coid_array(found)

    def expand_journal(self) -> int:
        """Write the `orders` rows of every chunk journaled and not yet written out, one
        transaction per chunk on the executions' file (the journal's lock is never taken), in
        chunk order; returns how many orders it wrote. Safe to call from any process at any
        time: a chunk is written out once, whoever gets to it."""
        written = 0
        with self._lock:
            reader = self._connection(_READER)
            while True:
                pending = reader.execute(
                    "SELECT chunk_id, run_id, payload FROM main.order_chunks WHERE chunk_id >"
                    f" (SELECT through FROM {EXECUTIONS_SCHEMA}.journal_expanded)"
                    " ORDER BY chunk_id LIMIT 16"
                ).fetchall()
                if not pending:
                    return written
                for chunk, run_id, payload in pending:
                    rows = journal_rows(decode_chunk(payload), run_id)
                    with self._writing(_EXECUTIONS_WRITER) as tx:
                        (through,) = tx.conn.execute(
                            "SELECT through FROM journal_expanded"
                        ).fetchone()
                        if through >= chunk:
                            continue  # another process wrote it out meanwhile
                        tx.conn.executemany(_INSERT_ORDER_IF_NEW, rows)
                        tx.conn.execute("UPDATE journal_expanded SET through = ?", (chunk,))
                    written += len(rows)

    def _catch_up(self) -> None:
        self.expand_journal()

    def record_executions(self, execs: ExecutionBatch) -> int:
        if len(execs) == 0:
            return 0
        with self._writing(_EXECUTIONS_WRITER) as tx:
            return tx.many(_INSERT_EXECUTION, execution_rows(execs))
