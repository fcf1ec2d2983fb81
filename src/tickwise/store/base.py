"""The store interface: what every back end (SQLite on one machine, PostgreSQL on a cluster)
provides.

The store holds the reference data (instruments, clients, portfolios, accounts), the write-ahead
order journal, the append-only execution events, the run records, the trading halts (the kill
switch) and checkpoints of strategy and tuner state. Orders are journaled before they are sent;
an order's status is never updated in place: it is derived from its execution events (the event
with the highest `state rank` wins), which keeps the hot write path to plain appends and gives
recovery a full history. Halts are append-only too: the latest event per scope says whether the
scope is halted, and the history is the audit trail.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tickwise.model.clients import Account, ClientBook, Portfolio
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, Side

if TYPE_CHECKING:  # for annotations only: importing the store never imports tickwise.tuning
    from tickwise.tuning.records import CurrentParams, Retune

# How far along its life an event puts an order. An order's current state is the state of its
# event with the highest rank, so events that arrive out of order (a fill before its ack, a
# replayed ack after the fill) never move an order backwards. Terminal states rank highest.
_RANK: dict[OrderState, int] = {
    OrderState.CREATED: 0,
    OrderState.JOURNALED: 1,
    OrderState.SENT: 2,
    OrderState.UNKNOWN: 3,
    OrderState.ACKED: 4,
    OrderState.PARTIALLY_FILLED: 5,
    OrderState.FILLED: 6,
    OrderState.REJECTED: 6,
    OrderState.CANCELED: 6,
    OrderState.EXPIRED: 6,
}
STATE_RANK: npt.NDArray[np.int64] = np.array([_RANK[s] for s in OrderState], dtype=np.int64)
RANK_STRIDE = 16  # rank_key = rank * RANK_STRIDE + state; the state is rank_key % RANK_STRIDE
TERMINAL_STATE_CODES: tuple[int, ...] = tuple(
    int(s) for s in OrderState if s.terminal
)  # FILLED, REJECTED, CANCELED, EXPIRED


def rank_keys(states: npt.NDArray[np.int8]) -> npt.NDArray[np.int64]:
    """Sortable keys for execution states: the larger key is the later state of an order."""
    codes = states.astype(np.int64)
    return STATE_RANK[codes] * RANK_STRIDE + codes


@dataclass(frozen=True, slots=True)
class ClientUniverse:
    """Everything about the clients: the columnar book plus the records that describe it.

    `names[i]` and `accounts[i]` belong to the client in row i of `book` (one account per client,
    at the client's venue).
    """

    book: ClientBook
    portfolios: tuple[Portfolio, ...]
    accounts: tuple[Account, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.book)
        if len(self.accounts) != n or len(self.names) != n:
            raise ValueError(
                f"client universe: {n} clients but {len(self.accounts)} accounts and "
                f"{len(self.names)} names"
            )

    def __len__(self) -> int:
        return len(self.book)


@dataclass(frozen=True, slots=True)
class PositionRows:
    """Net positions as columns, sorted by (client, instrument); zero positions left out."""

    client: npt.NDArray[np.int32]
    instrument: npt.NDArray[np.uint32]
    qty: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.client)

    def as_dict(self) -> dict[tuple[int, int], float]:
        return {
            (int(c), int(i)): float(q)
            for c, i, q in zip(self.client, self.instrument, self.qty, strict=True)
        }


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One journaled order with its derived status, as queries (CLI, dashboard) show it."""

    client_order_id: str
    run_id: str
    signal_id: int
    client: int
    venue: int
    instrument: int
    side: Side
    qty: float
    price: float
    state: OrderState
    filled_qty: float
    avg_fill_price: float
    fees: float
    ts_journal: int


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One recorded fill (an execution with a filled quantity), as queries show it."""

    client_order_id: str
    client: int
    instrument: int
    side: Side
    qty: float
    price: float
    fee: float
    ts_ack: int


@dataclass(frozen=True, slots=True)
class SignalOutcome:
    """What became of one signal's orders: how many were journaled and answered by their
    venue (acknowledged or refused); when the last was sized and the first and last were
    journaled; and among the answered, when the first and last were sent and the last answered
    (ns; 0: none). Where a fan-out's time goes, stage by stage."""

    journaled: int
    answered: int
    last_journal_ns: int
    last_sent_ns: int
    last_ack_ns: int
    last_alloc_ns: int
    first_journal_ns: int
    first_sent_ns: int


@dataclass(frozen=True, slots=True)
class EncryptedCredential:
    """One client's credentials at one venue as the store keeps them: the public fields in clear,
    the secret fields only as AES-GCM ciphertext (see `tickwise.venues.credentials`).

    `kind` names the credential shape (`CredentialKind` value); `master_key_id` names the master
    key that sealed the row, so a key rotation can be staged row by row.
    """

    client_id: int
    venue: Venue
    kind: str
    key_id: str
    account_id: str
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    master_key_id: str
    updated_ns: int


HALT = "halt"
RESUME = "resume"
HALT_GLOBAL = "global"
_HALT_SCOPE_KINDS = ("portfolio", "client")
_MAX_SCOPE_ID = 2**31 - 1  # client and portfolio ids are int32 everywhere


def parse_halt_scope(text: str) -> tuple[str, int | None]:
    """The kind and id of a halt scope: "global" -> ("global", None), "portfolio:3" ->
    ("portfolio", 3), "client:42" -> ("client", 42).

    Anything else raises ValueError: a typo in a kill-switch command must fail loudly, never halt
    (or resume) a scope that nothing reads.
    """
    if text == HALT_GLOBAL:
        return HALT_GLOBAL, None
    kind, sep, ident = text.partition(":")
    if sep and kind in _HALT_SCOPE_KINDS and ident.isascii() and ident.isdigit():
        number = int(ident)
        if number <= _MAX_SCOPE_ID:
            return kind, number
    raise ValueError(
        f"halt scope {text!r}: expected 'global', 'portfolio:<id>' or 'client:<id>' "
        f"(id a non-negative integer up to {_MAX_SCOPE_ID})"
    )


def canonical_halt_scope(text: str) -> str:
    """`text` validated and written one way ("client:007" -> "client:7"), so a halt and the
    resume that lifts it always name the same scope."""
    kind, number = parse_halt_scope(text)
    return kind if number is None else f"{kind}:{number}"


@dataclass(frozen=True, slots=True)
class Halt:
    """One halt event: `action` is "halt" (trading stopped in `scope`) or "resume".

    `seq` is the event's generation: it grows with every event, in commit order, so a poller
    that saw generation g has seen every event up to g. `cancel_open` asks that open orders in
    the scope be canceled as well.
    """

    scope: str
    reason: str
    cancel_open: bool
    actor: str
    ts_ns: int
    seq: int
    action: str = HALT


class StoreError(RuntimeError):
    """A store could not be opened or migrated."""


class Store(ABC):
    """Persistence for tickwise. Implementations are process-local objects (one connection each).

    Write methods commit before they return, each in one transaction: when `journal_orders`
    returns, the orders it reports as inserted are durable.
    """

    # --- lifecycle -----------------------------------------------------------------------------

    @abstractmethod
    def migrate(self) -> int:
        """Apply pending schema migrations (recorded in `schema_version`); returns the version."""

    @abstractmethod
    def schema_version(self) -> int:
        """The highest migration applied."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    def on_order_path(self) -> Store:
        """Mark this store object as the order path's (the journal's): its writes leave the
        store's upkeep to `maintain`, called elsewhere. Returns the store itself."""
        return self

    @abstractmethod
    def maintain(self) -> None:
        """Upkeep done off the order path, about once a second (the engine's controller): in
        SQLite, copying the write-ahead logs into the database files. Never waits for a lock."""

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- reference data ------------------------------------------------------------------------

    @abstractmethod
    def save_instruments(self, registry: InstrumentRegistry) -> None:
        """Replace the stored instruments with `registry`."""

    @abstractmethod
    def load_instruments(self) -> InstrumentRegistry:
        """The stored instruments (an empty registry when none were saved)."""

    @abstractmethod
    def save_clients(self, universe: ClientUniverse) -> None:
        """Replace every client, account, portfolio and subscription with `universe`."""

    def save_client_book(
        self,
        book: ClientBook,
        portfolios: Sequence[Portfolio],
        accounts: Sequence[Account],
        names: Sequence[str] | None = None,
    ) -> None:
        """`save_clients` for callers that hold the parts rather than a `ClientUniverse`."""
        names = names if names is not None else [f"client-{int(c)}" for c in book.client_id]
        self.save_clients(ClientUniverse(book, tuple(portfolios), tuple(accounts), tuple(names)))

    @abstractmethod
    def load_clients(self) -> ClientUniverse:
        """Everything `save_clients` stored."""

    @abstractmethod
    def load_client_book(self) -> ClientBook:
        """The clients as columns, with their subscriptions."""

    @abstractmethod
    def load_portfolios(self) -> tuple[Portfolio, ...]:
        """The model portfolios, by ascending id, instruments in their saved order."""

    @abstractmethod
    def client_count(self) -> int:
        """How many clients are stored."""

    # --- journal and executions ----------------------------------------------------------------

    @abstractmethod
    def journal_orders(self, orders: OrderBatch, run_id: str) -> npt.NDArray[np.bool_]:
        """Write-ahead: insert `orders` in one transaction; True where a row was inserted.

        The client order id is the key: a row whose id is already journaled (by any run, any
        process), or repeats an earlier row of the same batch, is not inserted and must never be
        sent.
        """

    def expand_journal(self) -> int:
        """Where the journal keeps orders in a form of its own (SQLite's chunks), write them
        out as the rows every query reads, off the order path; returns how many it wrote. The
        queries do it themselves before they read, so calling it is only ever an early start."""
        return 0

    @abstractmethod
    def record_executions(self, execs: ExecutionBatch) -> int:
        """Append venue outcomes (acks, fills, rejects) in one transaction; returns rows recorded.

        A second terminal event for an order (a fill stream replayed after a reconnect) is
        ignored, so replays never double a fill.
        """

    # --- queries -------------------------------------------------------------------------------

    @abstractmethod
    def order_stats(self, run_id: str) -> dict[str, Any]:
        """Counts for a run: orders journaled, orders by current state, fills, rejects by reason,
        and `duplicate_client_order_ids` (checked with GROUP BY; 0 by construction)."""

    @abstractmethod
    def positions_from_fills(self, run_id: str | None = None) -> PositionRows:
        """Net position per (client, instrument) from recorded fills (of one run, or all)."""

    @abstractmethod
    def orders_by_client(self, client_id: int) -> list[OrderRecord]:
        """A client's journaled orders with their current state, oldest first."""

    @abstractmethod
    def recent_orders(
        self, *, client: int | None = None, instrument: int | None = None, limit: int = 100
    ) -> list[OrderRecord]:
        """The newest orders of a client, of an instrument, or of both that their venue has
        answered, newest first, with their current state (cheap among millions of orders: an
        order only journaled, or in flight, is not among them)."""

    @abstractmethod
    def recent_fills(
        self, *, client: int | None = None, instrument: int | None = None, limit: int = 100
    ) -> list[FillRecord]:
        """The newest recorded fills of a client, of an instrument, or of both, newest first."""

    @abstractmethod
    def signal_outcome(self, signal_id: int) -> SignalOutcome:
        """The orders of one signal, counted, with their latest journal, send and answer
        times (the fan-out stress reads it)."""

    @abstractmethod
    def orders_by_ids(
        self, client_order_ids: Sequence[str] | npt.NDArray[np.bytes_]
    ) -> list[OrderRecord]:
        """The journaled orders among `client_order_ids` (text, or a `COID_DTYPE` array) with
        their current state, in the order asked; unknown ids are left out, an id asked twice is
        returned twice. Recovery uses it to see where each order it is unsure of stands."""

    @abstractmethod
    def unacked_orders(self, run_id: str | None = None) -> OrderBatch:
        """Journaled orders the venue has not acknowledged (journaled, sent or unknown): the
        orders recovery must reconcile with the venue by client order id."""

    @abstractmethod
    def unsettled_orders(self, run_id: str | None = None) -> OrderBatch:
        """Journaled orders without a terminal answer (filled, rejected, canceled, expired):
        the unacknowledged ones and those acknowledged but never reported done. After a crash
        these are the orders to settle with the venue: a fill may have come while nobody
        listened."""

    @abstractmethod
    def recorded_fills(self, run_id: str | None = None) -> ExecutionBatch:
        """Every recorded fill (of one run, or all) in the order it was recorded, with its
        order's signal, venue and event times: what rebuilds a ledger or an allocator after a
        restart (each order fills once, so the rows are one per filled order)."""

    # --- runs ----------------------------------------------------------------------------------

    @abstractmethod
    def start_run(self, run_id: str, config_json: str | Mapping[str, Any]) -> None:
        """Record the start of a run with its configuration (JSON text or a mapping)."""

    @abstractmethod
    def finish_run(self, run_id: str, summary_json: str | Mapping[str, Any]) -> None:
        """Record the end of a run with its summary; raises KeyError for an unknown run."""

    @abstractmethod
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """A run's record (config and summary parsed), or None."""

    # --- re-tuning audit trail -----------------------------------------------------------------

    @abstractmethod
    def record_retunes(self, rows: Sequence[Retune]) -> int:
        """Append re-tuning decisions (swaps, keeps and failures) in one transaction; returns
        rows recorded. NaN and infinite scores are stored as missing."""

    @abstractmethod
    def retune_history(
        self, symbol: str | None = None, limit: int = 100, run_id: str | None = None
    ) -> list[Retune]:
        """Recorded re-tunes, newest first (by decision time, then by recording order), of one
        symbol and/or one run, or all; at most `limit` (>= 1). Missing scores read as NaN."""

    @abstractmethod
    def current_params(self, strategy: str | None = None) -> dict[str, CurrentParams]:
        """Per symbol with at least one re-tune (of `strategy`, or any): the live parameters
        according to the latest swap, with the latest re-tune's time, decision and score and the
        count of re-tunes."""

    # --- venue credentials (ciphertext only) ---------------------------------------------------

    @abstractmethod
    def save_credentials(self, rows: Sequence[EncryptedCredential]) -> int:
        """Insert or replace credentials, keyed by (client, venue), in one transaction; returns
        rows written. The store only ever sees ciphertext."""

    @abstractmethod
    def load_credentials(
        self, client_ids: npt.ArrayLike, venue: Venue
    ) -> list[EncryptedCredential]:
        """The stored credentials of `client_ids` at `venue`, by ascending client id; clients
        without credentials there are left out (one call serves a whole router lane)."""

    @abstractmethod
    def credential_count(self, venue: Venue | None = None) -> int:
        """How many credentials are stored (at one venue, or at all)."""

    # --- trading halts (the kill switch) -------------------------------------------------------

    @abstractmethod
    def set_halt(
        self, scope: str, reason: str, *, cancel_open: bool = False, actor: str = "cli"
    ) -> int:
        """Halt trading in `scope` ("global", "portfolio:<id>", "client:<id>"; anything else
        raises ValueError); returns the new halt generation. Halting a halted scope records the
        new reason."""

    @abstractmethod
    def clear_halt(self, scope: str, *, actor: str = "cli", reason: str = "") -> int:
        """Resume trading in `scope`; returns the new halt generation. Clearing a scope that is
        not halted still records the event (the audit trail shows who tried)."""

    @abstractmethod
    def active_halts(self) -> list[Halt]:
        """The scopes halted now (their latest event is a halt), by scope."""

    @abstractmethod
    def halt_generation(self) -> int:
        """The generation of the latest halt event, 0 before any: one cheap read that moves on
        every set and clear, so a live allocator can poll it per batch and reload the halts only
        when it moves."""

    @abstractmethod
    def halt_history(self, limit: int = 100) -> list[Halt]:
        """Halt and resume events, newest first, at most `limit` (>= 1): the audit trail."""

    # --- checkpoints (strategy and tuner state for a restart) ----------------------------------

    @abstractmethod
    def save_checkpoint(self, name: str, payload: bytes) -> None:
        """Store `payload` under `name`, replacing what was there, in one transaction."""

    @abstractmethod
    def load_checkpoint(self, name: str) -> tuple[bytes, int] | None:
        """The payload saved under `name` and when it was saved (ns), or None."""

    @abstractmethod
    def checkpoint_names(self, prefix: str = "") -> list[str]:
        """The names of the stored checkpoints that start with `prefix`, sorted."""


def as_json(value: str | Mapping[str, Any]) -> str:
    """JSON text for a run record; text is checked to be valid JSON."""
    if isinstance(value, str):
        json.loads(value)
        return value
    return json.dumps(value, sort_keys=True, default=str)
