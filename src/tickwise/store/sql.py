"""The store over SQL: everything the back ends do alike, written once against `Tx`.

A back end (SQLite, PostgreSQL) supplies its connection (`_session`), its migrations, its hot
write path (`journal_orders`, `record_executions`: bulk inserts that skip duplicates are where
the engines differ most) and the few hooks below; every query and every other write is here, in
standard SQL with `?` placeholders.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from tickwise.model.clients import ClientBook, Portfolio
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason, Side
from tickwise.store import sql_credentials as credentials
from tickwise.store import sql_reference as reference
from tickwise.store import sql_retunes as retunes
from tickwise.store.base import (
    HALT,
    RANK_STRIDE,
    RESUME,
    STATE_RANK,
    TERMINAL_STATE_CODES,
    ClientUniverse,
    EncryptedCredential,
    FillRecord,
    Halt,
    OrderRecord,
    PositionRows,
    SignalOutcome,
    Store,
    as_json,
    canonical_halt_scope,
)
from tickwise.store.migrations import Migration, pending, statements
from tickwise.store.rows import (
    BATCH_COLUMNS,
    FILL_COLUMNS,
    RECORD_COLUMNS,
    coid_strings,
    derived_state,
    fill_batch,
    order_batch,
    order_record,
    position_rows,
)
from tickwise.store.tx import Params, Tx, in_lists

if TYPE_CHECKING:
    from tickwise.tuning.records import CurrentParams, Retune

T = TypeVar("T", bound=Tx)

_ACKED_RANK_KEY = int(STATE_RANK[OrderState.ACKED]) * RANK_STRIDE
_POSITION_EPSILON = 1e-12
_SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
    " description TEXT NOT NULL, applied_ns BIGINT NOT NULL)"
)
_HALT_COLUMNS = "scope, reason, cancel_open, actor, ts_ns, seq, action"
_INSERT_HALT = (
    "INSERT INTO halt_events (scope, action, reason, cancel_open, actor, ts_ns)"
    " VALUES (?, ?, ?, ?, ?, ?) RETURNING seq"
)
_SAVE_CHECKPOINT = (
    "INSERT INTO checkpoints (name, ts_ns, payload) VALUES (?, ?, ?)"
    " ON CONFLICT (name) DO UPDATE SET ts_ns = excluded.ts_ns, payload = excluded.payload"
)


def _halt(r: Sequence[Any]) -> Halt:
    return Halt(
        scope=r[0],
        reason=r[1],
        cancel_open=bool(r[2]),
        actor=r[3],
        ts_ns=int(r[4]),
        seq=int(r[5]),
        action=r[6],
    )


class SqlStore(Store, Generic[T]):
    """A `Store` over a SQL engine. Subclasses are process-local and thread-safe: `_session`
    holds the store's lock for as long as its connection is in use."""

    _MIGRATIONS: ClassVar[tuple[Migration, ...]]
    _DUPLICATE_KEY: ClassVar[tuple[type[Exception], ...]]  # the engine's unique-violation errors

    # --- what a back end supplies --------------------------------------------------------------

    @abstractmethod
    def _session(self) -> AbstractContextManager[T]:
        """This process's connection, under the store's lock, statements on their own."""

    def _before_migrating(self, tx: T) -> None:
        """Serialise migrations across processes, inside the migration's transaction, where the
        write transaction alone does not (SQLite's BEGIN IMMEDIATE does)."""

    def _catch_up(self) -> None:
        """Make every journaled order visible to the queries below, where the journal's writes
        leave that for later (SQLite's chunks: `expand_journal`)."""

    def _lock_halt_log(self, tx: T) -> None:
        """Make halt events commit in `seq` order, where the write transaction alone does not:
        a poller that saw generation g must never miss an event below g committed later."""

    # --- transactions --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[T]:
        """One transaction, committed when the block ends, rolled back if it raises."""
        with self._session() as tx:
            tx.begin(write)
            with tx.ending():
                yield tx

    def _write(self) -> AbstractContextManager[T]:
        """A write transaction."""
        return self._transaction(write=True)

    def _reading(self) -> AbstractContextManager[T]:
        """A read-only transaction: reads in one snapshot, so multi-query loads are consistent."""
        return self._transaction(write=False)

    def _read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """One query, atomic on its own (no transaction round trips)."""
        with self._session() as tx:
            return tx.rows(sql, params)

    # --- schema --------------------------------------------------------------------------------

    def migrate(self) -> int:
        # On the session's connection: in SQLite the one that sees every file of the store.
        with self._transaction(write=True) as tx:
            self._before_migrating(tx)
            tx.run(_SCHEMA_VERSION_TABLE)
            version = int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            for number, description, script in pending(version, self._MIGRATIONS, repr(self)):
                for statement in statements(script):
                    tx.run(statement)
                tx.run(
                    "INSERT INTO schema_version (version, description, applied_ns)"
                    " VALUES (?, ?, ?)",
                    (number, description, time.time_ns()),
                )
                version = number
        return version

    def schema_version(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # --- reference data ------------------------------------------------------------------------

    def save_instruments(self, registry: InstrumentRegistry) -> None:
        with self._write() as tx:
            reference.write_instruments(tx, registry)

    def load_instruments(self) -> InstrumentRegistry:
        with self._reading() as tx:
            return reference.read_instruments(tx)

    def save_clients(self, universe: ClientUniverse) -> None:
        with self._write() as tx:
            reference.write_clients(tx, universe)

    def load_clients(self) -> ClientUniverse:
        with self._reading() as tx:
            return reference.read_clients(tx)

    def load_client_book(self) -> ClientBook:
        with self._reading() as tx:
            return reference.read_client_book(tx)

    def load_portfolios(self) -> tuple[Portfolio, ...]:
        with self._reading() as tx:
            return reference.read_portfolios(tx)

    def client_count(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM clients")[0][0])

    # --- queries -------------------------------------------------------------------------------

    def order_stats(self, run_id: str) -> dict[str, Any]:
        self._catch_up()
        with self._reading() as tx:
            return self._order_stats(tx, run_id)

    @staticmethod
    def _order_stats(tx: Tx, run_id: str) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for key, count in tx.rows(
            "SELECT k, COUNT(*) FROM ("
            "  SELECT COALESCE(MAX(e.rank_key), -1) AS k FROM orders o"
            "  LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
            "  WHERE o.run_id = ? GROUP BY o.client_order_id"
            ") AS per_order GROUP BY k",
            (run_id,),
        ):
            name = derived_state(int(key)).name.lower()
            by_state[name] = by_state.get(name, 0) + int(count)
        fills, notional, fees = tx.one(
            "SELECT COUNT(*), COALESCE(SUM(e.fill_qty * e.fill_price), 0), COALESCE(SUM(e.fee), 0)"
            " FROM executions e JOIN orders o ON o.client_order_id = e.client_order_id"
            " WHERE o.run_id = ? AND e.fill_qty > 0",
            (run_id,),
        )
        rejects = {
            RejectReason(int(reason)).name.lower(): int(count)
            for reason, count in tx.rows(
                "SELECT e.reason, COUNT(*) FROM executions e"
                " JOIN orders o ON o.client_order_id = e.client_order_id"
                " WHERE o.run_id = ? AND e.state = ? GROUP BY e.reason",
                (run_id, int(OrderState.REJECTED)),
            )
        }
        duplicates = tx.scalar(
            "SELECT COUNT(*) FROM (SELECT client_order_id FROM orders"
            " GROUP BY client_order_id HAVING COUNT(*) > 1) AS repeated"
        )
        orphans = tx.scalar(
            "SELECT COUNT(*) FROM executions e WHERE NOT EXISTS"
            " (SELECT 1 FROM orders o WHERE o.client_order_id = e.client_order_id)"
        )
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
        self._catch_up()
        where, params = "", []
        if run_id is not None:
            where = " AND client_order_id IN (SELECT client_order_id FROM orders WHERE run_id = ?)"
            params = [run_id]
        return position_rows(
            self._read(
                "SELECT client_id, instrument, SUM(side * fill_qty) FROM executions"
                f" WHERE fill_qty > 0{where} GROUP BY client_id, instrument"
                f" HAVING ABS(SUM(side * fill_qty)) > {_POSITION_EPSILON}"
                " ORDER BY client_id, instrument",
                params,
            )
        )

    def orders_by_client(self, client_id: int) -> list[OrderRecord]:
        self._catch_up()
        rows = self._read(
            f"SELECT {RECORD_COLUMNS}"
            " FROM orders o LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
            " WHERE o.client_id = ? GROUP BY o.client_order_id"
            " ORDER BY o.ts_journal, o.client_order_id",
            (int(client_id),),
        )
        return [order_record(r) for r in rows]

    def recent_orders(
        self, *, client: int | None = None, instrument: int | None = None, limit: int = 100
    ) -> list[OrderRecord]:
        self._catch_up()
        # Found through the executions (indexed by client and by instrument; the orders are
        # not, to keep the journal fast), so an order shows once its venue has answered it.
        where, params = _client_or_instrument("x", client, instrument)
        limit = max(0, int(limit))
        rows = self._read(
            f"SELECT {RECORD_COLUMNS} FROM orders o"
            " LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
            " WHERE o.client_order_id IN (SELECT x.client_order_id FROM executions x"
            f" WHERE {where} ORDER BY x.seq DESC LIMIT ?)"
            " GROUP BY o.client_order_id, o.run_id, o.signal_id, o.client_id, o.venue,"
            " o.instrument, o.side, o.qty, o.price, o.ts_journal"
            " ORDER BY o.ts_journal DESC, o.client_order_id DESC LIMIT ?",
            (*params, 4 * limit, limit),
        )
        return [order_record(r) for r in rows]

    def recent_fills(
        self, *, client: int | None = None, instrument: int | None = None, limit: int = 100
    ) -> list[FillRecord]:
        where, params = _client_or_instrument("e", client, instrument)
        rows = self._read(
            "SELECT e.client_order_id, e.client_id, e.instrument, e.side, e.fill_qty,"
            " e.fill_price, e.fee, e.ts_ack FROM executions e"
            f" WHERE {where} AND e.fill_qty > 0 ORDER BY e.seq DESC LIMIT ?",
            (*params, max(0, int(limit))),
        )
        return [
            FillRecord(
                r[0],
                int(r[1]),
                int(r[2]),
                Side(r[3]),
                float(r[4]),
                float(r[5]),
                float(r[6]),
                int(r[7]),
            )
            for r in rows
        ]

    def signal_outcome(self, signal_id: int) -> SignalOutcome:
        self._catch_up()
        (row,) = self._read(
            "SELECT COUNT(*), COALESCE(MAX(ts_journal), 0), COALESCE(MAX(ts_alloc), 0),"
            " COALESCE(MIN(ts_journal), 0) FROM orders WHERE signal_id = ?",
            (int(signal_id),),
        )
        (sent,) = self._read(
            "SELECT COUNT(DISTINCT e.client_order_id), COALESCE(MAX(e.ts_sent), 0),"
            " COALESCE(MAX(e.ts_ack), 0), COALESCE(MIN(e.ts_sent), 0)"
            " FROM orders o JOIN executions e ON e.client_order_id = o.client_order_id"
            " WHERE o.signal_id = ?",
            (int(signal_id),),
        )
        return SignalOutcome(
            journaled=int(row[0]),
            answered=int(sent[0]),
            last_journal_ns=int(row[1]),
            last_sent_ns=int(sent[1]),
            last_ack_ns=int(sent[2]),
            last_alloc_ns=int(row[2]),
            first_journal_ns=int(row[3]),
            first_sent_ns=int(sent[3]),
        )

    def orders_by_ids(
        self, client_order_ids: Sequence[str] | npt.NDArray[np.bytes_]
    ) -> list[OrderRecord]:
        self._catch_up()
        if isinstance(client_order_ids, np.ndarray):
            asked = coid_strings(client_order_ids)
        else:
            asked = [str(i) for i in client_order_ids]
        unique = sorted(set(asked))
        found: dict[str, OrderRecord] = {}
        with self._reading() as tx:
            for marks, chunk in in_lists(unique):
                for r in tx.rows(
                    f"SELECT {RECORD_COLUMNS}"
                    " FROM orders o LEFT JOIN executions e ON e.client_order_id = o.client_order_id"
                    f" WHERE o.client_order_id IN ({marks}) GROUP BY o.client_order_id",
                    chunk,
                ):
                    found[r[0]] = order_record(r)
        return [found[i] for i in asked if i in found]

    def unacked_orders(self, run_id: str | None = None) -> OrderBatch:
        self._catch_up()
        columns = ", ".join(f"o.{c}" for c in BATCH_COLUMNS)
        where = ""
        params: list[Any] = [_ACKED_RANK_KEY]
        if run_id is not None:
            where = " AND o.run_id = ?"
            params.append(run_id)
        rows = self._read(
            f"SELECT {columns} FROM orders o WHERE NOT EXISTS (SELECT 1 FROM executions e"
            "  WHERE e.client_order_id = o.client_order_id AND e.rank_key >= ?)"
            f"{where} ORDER BY o.ts_journal, o.client_order_id",
            params,
        )
        return order_batch(rows)

    def unsettled_orders(self, run_id: str | None = None) -> OrderBatch:
        self._catch_up()
        columns = ", ".join(f"o.{c}" for c in BATCH_COLUMNS)
        where, params = "", []
        if run_id is not None:
            where = " AND o.run_id = ?"
            params = [run_id]
        terminal = ", ".join(str(code) for code in TERMINAL_STATE_CODES)
        return order_batch(
            self._read(
                f"SELECT {columns} FROM orders o WHERE NOT EXISTS (SELECT 1 FROM executions e"
                f"  WHERE e.client_order_id = o.client_order_id AND e.state IN ({terminal}))"
                f"{where} ORDER BY o.ts_journal, o.client_order_id",
                params,
            )
        )

    def recorded_fills(self, run_id: str | None = None) -> ExecutionBatch:
        self._catch_up()
        where, params = "", []
        if run_id is not None:
            where = " AND o.run_id = ?"
            params = [run_id]
        return fill_batch(
            self._read(
                f"SELECT {FILL_COLUMNS} FROM executions e"
                " JOIN orders o ON o.client_order_id = e.client_order_id"
                f" WHERE e.fill_qty > 0{where} ORDER BY e.seq",
                params,
            )
        )

    # --- runs ----------------------------------------------------------------------------------

    def start_run(self, run_id: str, config_json: str | Mapping[str, Any]) -> None:
        text = as_json(config_json)
        try:
            with self._write() as tx:
                tx.run(
                    "INSERT INTO runs (run_id, started_ns, config_json) VALUES (?, ?, ?)",
                    (run_id, time.time_ns(), text),
                )
        except self._DUPLICATE_KEY:
            raise ValueError(f"run {run_id!r} was already started") from None

    def finish_run(self, run_id: str, summary_json: str | Mapping[str, Any]) -> None:
        text = as_json(summary_json)
        with self._write() as tx:
            changed = tx.run(
                "UPDATE runs SET finished_ns = ?, summary_json = ? WHERE run_id = ?",
                (time.time_ns(), text, run_id),
            )
            if changed == 0:
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
            "started_ns": int(started),
            "finished_ns": int(finished) if finished is not None else None,
            "config": json.loads(config),
            "summary": json.loads(summary) if summary is not None else None,
        }

    # --- re-tuning audit trail -----------------------------------------------------------------

    def record_retunes(self, rows: Sequence[Retune]) -> int:
        if not rows:
            return 0
        with self._write() as tx:
            return retunes.write_retunes(tx, rows)

    def retune_history(
        self, symbol: str | None = None, limit: int = 100, run_id: str | None = None
    ) -> list[Retune]:
        with self._reading() as tx:
            return retunes.read_history(tx, symbol, limit, run_id)

    def current_params(self, strategy: str | None = None) -> dict[str, CurrentParams]:
        with self._reading() as tx:
            return retunes.read_current(tx, strategy)

    # --- venue credentials (ciphertext only) ---------------------------------------------------

    def save_credentials(self, rows: Sequence[EncryptedCredential]) -> int:
        if not rows:
            return 0
        with self._write() as tx:
            return credentials.write_credentials(tx, rows)

    def load_credentials(
        self, client_ids: npt.ArrayLike, venue: Venue
    ) -> list[EncryptedCredential]:
        with self._reading() as tx:
            return credentials.read_credentials(tx, client_ids, venue)

    def credential_count(self, venue: Venue | None = None) -> int:
        with self._session() as tx:
            return credentials.count_credentials(tx, venue)

    # --- trading halts (the kill switch) -------------------------------------------------------

    def set_halt(
        self, scope: str, reason: str, *, cancel_open: bool = False, actor: str = "cli"
    ) -> int:
        return self._record_halt(scope, HALT, reason, cancel_open, actor)

    def clear_halt(self, scope: str, *, actor: str = "cli", reason: str = "") -> int:
        return self._record_halt(scope, RESUME, reason, False, actor)

    def _record_halt(
        self, scope: str, action: str, reason: str, cancel_open: bool, actor: str
    ) -> int:
        row = (canonical_halt_scope(scope), action, reason, bool(cancel_open), actor)
        with self._write() as tx:
            self._lock_halt_log(tx)
            return int(tx.scalar(_INSERT_HALT, (*row, time.time_ns())))

    def active_halts(self) -> list[Halt]:
        rows = self._read(
            f"SELECT {_HALT_COLUMNS} FROM halt_events WHERE seq IN"
            " (SELECT MAX(seq) FROM halt_events GROUP BY scope) AND action = ? ORDER BY scope",
            (HALT,),
        )
        return [_halt(r) for r in rows]

    def halt_generation(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM halt_events")[0][0])

    def halt_history(self, limit: int = 100) -> list[Halt]:
        if limit < 1:
            raise ValueError(f"halt history: limit must be >= 1, got {limit}")
        rows = self._read(
            f"SELECT {_HALT_COLUMNS} FROM halt_events ORDER BY seq DESC LIMIT ?", (int(limit),)
        )
        return [_halt(r) for r in rows]

    # --- checkpoints ---------------------------------------------------------------------------

    def save_checkpoint(self, name: str, payload: bytes) -> None:
        if not name:
            raise ValueError("a checkpoint needs a name")
        with self._write() as tx:
            tx.run(_SAVE_CHECKPOINT, (name, time.time_ns(), bytes(payload)))

    def load_checkpoint(self, name: str) -> tuple[bytes, int] | None:
        rows = self._read("SELECT payload, ts_ns FROM checkpoints WHERE name = ?", (name,))
        return (bytes(rows[0][0]), int(rows[0][1])) if rows else None

    def checkpoint_names(self, prefix: str = "") -> list[str]:
        rows = self._read(
            "SELECT name FROM checkpoints WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix),
        )
        return [r[0] for r in rows]


def _client_or_instrument(
    table: str, client: int | None, instrument: int | None
) -> tuple[str, tuple[int, ...]]:
    """The WHERE clause (and its parameters) picking a client's and/or an instrument's rows."""
    terms: list[str] = []
    params: list[int] = []
    if client is not None:
        terms.append(f"{table}.client_id = ?")
        params.append(int(client))
    if instrument is not None:
        terms.append(f"{table}.instrument = ?")
        params.append(int(instrument))
    if not terms:
        raise ValueError("say whose rows: a client, an instrument or both")
    return " AND ".join(terms), tuple(params)
