"""The SQLite back end: the default store on one machine.

Several processes (one allocator actor per client range, the ledger) write the same file at
once, so the database runs in WAL mode (readers never block the writer), `synchronous=NORMAL`
(a commit survives a process crash; only an OS crash can lose the last commits), and every write
is one `BEGIN IMMEDIATE` transaction that waits up to `busy_timeout` for the write lock instead of
failing. Each store object owns one connection, opened lazily in the process that uses it and
reopened after a fork (a connection is never shared across processes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tickwise.model.clients import ClientBook, Portfolio
from tickwise.model.ids import COID_LEN
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import (
    COID_DTYPE,
    ExecutionBatch,
    OrderBatch,
    OrderState,
    RejectReason,
    Side,
)
from tickwise.store import sqlite_credentials as credentials
from tickwise.store import sqlite_reference as reference
from tickwise.store import sqlite_retunes as retunes
from tickwise.store.base import (
    RANK_STRIDE,
    STATE_RANK,
    ClientUniverse,
    EncryptedCredential,
    OrderRecord,
    PositionRows,
    Store,
    StoreError,
    as_json,
    rank_keys,
)
from tickwise.store.sqlite_schema import LATEST_VERSION, MIGRATIONS

if TYPE_CHECKING:
    from tickwise.tuning.records import CurrentParams, Retune

_ORDER_COLUMNS = (
    "client_order_id, run_id, signal_id, client_id, venue, instrument, side, qty, price, "
    "ts_event, ts_recv, ts_signal, ts_alloc, ts_journal"
)
_INSERT_ORDER = f"INSERT INTO orders ({_ORDER_COLUMNS}) VALUES ({', '.join('?' * 14)})"
_INSERT_ORDER_IF_NEW = _INSERT_ORDER.replace("INSERT", "INSERT OR IGNORE", 1)
_INSERT_EXECUTION = (
    "INSERT OR IGNORE INTO executions (client_order_id, client_id, instrument, side, state, "
    "rank_key, reason, fill_qty, fill_price, fee, ts_sent, ts_ack) "
    f"VALUES ({', '.join('?' * 12)})"
)
_ACKED_RANK_KEY = int(STATE_RANK[OrderState.ACKED]) * RANK_STRIDE
_IN_CHUNK = 500  # ids per `IN (...)` lookup, well below SQLite's variable limit
_POSITION_EPSILON = 1e-12


def _coid_strings(coids: npt.NDArray[np.bytes_]) -> list[str]:
    return np.asarray(coids).astype(f"U{COID_LEN}").tolist()


def _finite(values: npt.NDArray[np.float64]) -> list[float]:
    """Floats SQLite can store: NaN would become NULL, so a missing price is stored as 0."""
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).tolist()


class SQLiteStore(Store):
    """A `Store` in one SQLite file (or ":memory:" for tests), safe for concurrent processes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 30_000,
        migrate: bool = True,
    ) -> None:
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if migrate:
            self.migrate()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "busy_timeout_ms": self.busy_timeout_ms}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], busy_timeout_ms=state["busy_timeout_ms"])  # type: ignore[misc]

    # --- connection ----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self._conn = self._connect()
            self._pid = os.getpid()
        return self._conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000.0,
            isolation_level=None,  # explicit BEGIN/COMMIT only
            check_same_thread=False,  # guarded by self._lock (Ray may call from a worker thread)
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        if self.path != ":memory:":
            self._set_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA temp_store = MEMORY")
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL takes an exclusive lock once per file; another process opening the
        # same new file at the same moment may hold it, so retry until the busy timeout.
        deadline = time.monotonic() + self.busy_timeout_ms / 1000.0
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the write lock is taken at BEGIN, so reads inside are current."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """Reads in one snapshot (a deferred transaction), so multi-query loads are consistent."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # --- schema --------------------------------------------------------------------------------

    def migrate(self) -> int:
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                " applied_ns INTEGER NOT NULL)"
            )
            current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            version = int(current.fetchone()[0])
            if version > LATEST_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {version} is newer than this tickwise "
                    f"({LATEST_VERSION}); upgrade tickwise"
                )
            for number, description, sql in MIGRATIONS:
                if number <= version:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version VALUES (?, ?, ?)",
                    (number, description, time.time_ns()),
                )
                version = number
        return version

    def schema_version(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # --- reference data ------------------------------------------------------------------------

    def save_instruments(self, registry: InstrumentRegistry) -> None:
        with self._write() as conn:
            reference.write_instruments(conn, registry)

    def load_instruments(self) -> InstrumentRegistry:
        with self._reading() as conn:
            return reference.read_instruments(conn)

    def save_clients(self, universe: ClientUniverse) -> None:
        with self._write() as conn:
            reference.write_clients(conn, universe)

    def load_clients(self) -> ClientUniverse:
        with self._reading() as conn:
            return reference.read_clients(conn)

    def load_client_book(self) -> ClientBook:
        with self._reading() as conn:
            return reference.read_client_book(conn)

    def load_portfolios(self) -> tuple[Portfolio, ...]:
        with self._reading() as conn:
            return reference.read_portfolios(conn)

    def client_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM clients")[0][0])

    # --- journal and executions ----------------------------------------------------------------

    def journal_orders(self, orders: OrderBatch, run_id: str) -> npt.NDArray[np.bool_]:
        n = len(orders)
        inserted = np.zeros(n, dtype=np.bool_)
        if n == 0:
            return inserted
        # Within the batch only the first row of an id can be inserted.
        _, first = np.unique(orders.client_order_id, return_index=True)
        inserted[first] = True
        rows = list(
            zip(
                _coid_strings(orders.client_order_id),
                [run_id] * n,
                orders.signal_id.tolist(),
                orders.client.tolist(),
                orders.venue.tolist(),
                orders.instrument.tolist(),
                orders.side.tolist(),
                _finite(orders.qty),
                _finite(orders.price),
                orders.ts_event.tolist(),
                orders.ts_recv.tolist(),
                orders.ts_signal.tolist(),
                orders.ts_alloc.tolist(),
                orders.ts_journal.tolist(),
                strict=True,
            )
        )
        candidates = rows if first.size == n else [rows[i] for i in np.sort(first)]
        with self._write() as conn:
            # Fast path: every id is new. Otherwise undo and insert only the ids not yet present
            # (the write lock is held, so nobody can journal in between).
            conn.execute("SAVEPOINT journal")
            before = conn.total_changes
            conn.executemany(_INSERT_ORDER_IF_NEW, candidates)
            if conn.total_changes - before != len(candidates):
                conn.execute("ROLLBACK TO journal")
                existing = self._existing_order_ids(conn, [r[0] for r in candidates])
                ids = np.array([r[0] for r in rows])
                inserted &= ~np.isin(ids, list(existing))
                conn.executemany(_INSERT_ORDER, [rows[i] for i in np.flatnonzero(inserted)])
            conn.execute("RELEASE journal")
        return inserted

    @staticmethod
    def _existing_order_ids(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            cursor = conn.execute(
                f"SELECT client_order_id FROM orders WHERE client_order_id IN ({marks})", chunk
            )
            found.update(r[0] for r in cursor)
        return found

    def record_executions(self, execs: ExecutionBatch) -> int:
        if len(execs) == 0:
            return 0
        rows = zip(
            _coid_strings(execs.client_order_id),
            execs.client.tolist(),
            execs.instrument.tolist(),
            execs.side.tolist(),
            execs.state.tolist(),
            rank_keys(execs.state).tolist(),
            execs.reason.tolist(),
            _finite(execs.fill_qty),
            _finite(execs.fill_price),
            _finite(execs.fee),
            execs.ts_sent.tolist(),
            execs.ts_ack.tolist(),
            strict=True,
        )
        with self._write() as conn:
            before = conn.total_changes
            conn.executemany(_INSERT_EXECUTION, rows)
            return conn.total_changes - before

    # --- queries -------------------------------------------------------------------------------

    def order_stats(self, run_id: str) -> dict[str, Any]:
        with self._reading() as conn:
            return self._order_stats(conn, run_id)

    @staticmethod
    def _order_stats(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for key, count in conn.execute(
            "SELECT k, COUNT(*) FROM ("
            "  SELECT COALESCE(MAX(e.rank_key), -1) AS k FROM orders o"
            "  LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
            "  WHERE o.run_id = ? GROUP BY o.client_order_id"
            ") GROUP BY k",
            (run_id,),
        ):
            state = OrderState.JOURNALED if key < 0 else OrderState(key % RANK_STRIDE)
            by_state[state.name.lower()] = by_state.get(state.name.lower(), 0) + int(count)
        fills, notional, fees = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(e.fill_qty * e.fill_price), 0), COALESCE(SUM(e.fee), 0)"
            " FROM executions e JOIN orders o ON o.client_order_id = e.client_order_id"
            " WHERE o.run_id = ? AND e.fill_qty > 0",
            (run_id,),
        ).fetchone()
        rejects = {
            RejectReason(int(reason)).name.lower(): int(count)
            for reason, count in conn.execute(
                "SELECT e.reason, COUNT(*) FROM executions e"
                " JOIN orders o ON o.client_order_id = e.client_order_id"
                " WHERE o.run_id = ? AND e.state = ? GROUP BY e.reason",
                (run_id, int(OrderState.REJECTED)),
            )
        }
        duplicates = conn.execute(
            "SELECT COUNT(*) FROM (SELECT client_order_id FROM orders"
            " GROUP BY client_order_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        orphans = conn.execute(
            "SELECT COUNT(*) FROM executions e WHERE NOT EXISTS"
            " (SELECT 1 FROM orders o WHERE o.client_order_id = e.client_order_id)"
        ).fetchone()[0]
        return {
            "run_id": run_id,
            "journaled": sum(by_state.values()),
            "by_state": by_state,
            "fills": int(fills),
            "filled_notional": float(notional),
            "fees": float(fees),
            "rejects_by_reason": rejects,
            "duplicate_client_order_ids": int(duplicates),
            "executions_without_order": int(orphans),
        }

    def positions_from_fills(self, run_id: str | None = None) -> PositionRows:
        where, params = "", []
        if run_id is not None:
            where = " AND client_order_id IN (SELECT client_order_id FROM orders WHERE run_id = ?)"
            params = [run_id]
        rows = self._read(
            "SELECT client_id, instrument, SUM(side * fill_qty) AS q FROM executions"
            f" WHERE fill_qty > 0{where} GROUP BY client_id, instrument"
            f" HAVING ABS(q) > {_POSITION_EPSILON} ORDER BY client_id, instrument",
            params,
        )
        cols = list(zip(*rows, strict=True)) or [(), (), ()]
        return PositionRows(
            client=np.array(cols[0], dtype=np.int32),
            instrument=np.array(cols[1], dtype=np.uint32),
            qty=np.array(cols[2], dtype=np.float64),
        )

    def orders_by_client(self, client_id: int) -> list[OrderRecord]:
        rows = self._read(
            "SELECT o.client_order_id, o.run_id, o.signal_id, o.client_id, o.venue, o.instrument,"
            " o.side, o.qty, o.price, o.ts_journal, COALESCE(MAX(e.rank_key), -1),"
            " COALESCE(SUM(e.fill_qty), 0), COALESCE(SUM(e.fill_qty * e.fill_price), 0),"
            " COALESCE(SUM(e.fee), 0)"
            " FROM orders o LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
            " WHERE o.client_id = ? GROUP BY o.client_order_id"
            " ORDER BY o.ts_journal, o.client_order_id",
            (int(client_id),),
        )
        return [
            OrderRecord(
                client_order_id=r[0],
                run_id=r[1],
                signal_id=int(r[2]),
                client=int(r[3]),
                venue=int(r[4]),
                instrument=int(r[5]),
                side=Side(r[6]),
                qty=float(r[7]),
                price=float(r[8]),
                ts_journal=int(r[9]),
                state=OrderState.JOURNALED if r[10] < 0 else OrderState(r[10] % RANK_STRIDE),
                filled_qty=float(r[11]),
                avg_fill_price=float(r[12]) / float(r[11]) if r[11] > 0 else 0.0,
                fees=float(r[13]),
            )
            for r in rows
        ]

    def unacked_orders(self, run_id: str | None = None) -> OrderBatch:
        where, params = "", [_ACKED_RANK_KEY, run_id]
        if run_id is not None:
            where = " AND o.run_id = ?"
        rows = self._read(
            "SELECT o.client_order_id, o.signal_id, o.client_id, o.venue, o.instrument, o.side,"
            " o.qty, o.price, o.ts_event, o.ts_recv, o.ts_signal, o.ts_alloc, o.ts_journal"
            " FROM orders o WHERE NOT EXISTS (SELECT 1 FROM executions e"
            "  WHERE e.client_order_id = o.client_order_id AND e.rank_key >= ?)"
            f"{where} ORDER BY o.ts_journal, o.client_order_id",
            params if run_id is not None else params[:1],
        )
        if not rows:
            return OrderBatch.empty()
        c = list(zip(*rows, strict=True))
        return OrderBatch(
            client_order_id=np.array(c[0], dtype=COID_DTYPE),
            signal_id=np.array(c[1], dtype=np.int64),
            client=np.array(c[2], dtype=np.int32),
            venue=np.array(c[3], dtype=np.uint8),
            instrument=np.array(c[4], dtype=np.uint32),
            side=np.array(c[5], dtype=np.int8),
            qty=np.array(c[6], dtype=np.float64),
            price=np.array(c[7], dtype=np.float64),
            ts_event=np.array(c[8], dtype=np.int64),
            ts_recv=np.array(c[9], dtype=np.int64),
            ts_signal=np.array(c[10], dtype=np.int64),
            ts_alloc=np.array(c[11], dtype=np.int64),
            ts_journal=np.array(c[12], dtype=np.int64),
            ts_sent=np.zeros(len(rows), dtype=np.int64),
        )

    # --- runs ----------------------------------------------------------------------------------

    def start_run(self, run_id: str, config_json: str | Mapping[str, Any]) -> None:
        text = as_json(config_json)
        try:
            with self._write() as conn:
                conn.execute(
                    "INSERT INTO runs (run_id, started_ns, config_json) VALUES (?, ?, ?)",
                    (run_id, time.time_ns(), text),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"run {run_id!r} was already started") from None

    def finish_run(self, run_id: str, summary_json: str | Mapping[str, Any]) -> None:
        text = as_json(summary_json)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE runs SET finished_ns = ?, summary_json = ? WHERE run_id = ?",
                (time.time_ns(), text, run_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"unknown run {run_id!r}")

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "SELECT run_id, started_ns, finished_ns, config_json, summary_json FROM runs"
            " WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            return None
        rid, started, finished, config, summary = rows[0]
        return {
            "run_id": rid,
            "started_ns": started,
            "finished_ns": finished,
            "config": json.loads(config),
            "summary": json.loads(summary) if summary is not None else None,
        }

    # --- re-tuning audit trail -----------------------------------------------------------------

    def record_retunes(self, rows: Sequence[Retune]) -> int:
        if not rows:
            return 0
        with self._write() as conn:
            return retunes.write_retunes(conn, rows)

    def retune_history(
        self, symbol: str | None = None, limit: int = 100, run_id: str | None = None
    ) -> list[Retune]:
        with self._reading() as conn:
            return retunes.read_history(conn, symbol, limit, run_id)

    def current_params(self, strategy: str | None = None) -> dict[str, CurrentParams]:
        with self._reading() as conn:
            return retunes.read_current(conn, strategy)

    # --- venue credentials (ciphertext only) ---------------------------------------------------

    def save_credentials(self, rows: Sequence[EncryptedCredential]) -> int:
        if not rows:
            return 0
        with self._write() as conn:
            return credentials.write_credentials(conn, rows)

    def load_credentials(
        self, client_ids: npt.ArrayLike, venue: Venue
    ) -> list[EncryptedCredential]:
        with self._reading() as conn:
            return credentials.read_credentials(conn, client_ids, venue)

    def credential_count(self, venue: Venue | None = None) -> int:
        with self._reading() as conn:
            return credentials.count_credentials(conn, venue)
