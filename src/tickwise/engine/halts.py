"""The kill switch: halting and resuming trading, globally, per portfolio or per client.

A halt is an event in the store (`Store.set_halt` / `clear_halt`), so it reaches every allocator
of a running engine, on every node, and survives a restart: `tickwise halt` writes it from any
shell, the dashboard through the same functions. Each allocator reads the store's halt
generation (one cheap query) before it sizes a batch of signals and reloads the halts only when
the generation moved, so a halt stops new orders from the next batch on. Orders already
journaled are not taken back; with `cancel_open` the venue routers also cancel the orders still
open at their venue.

Recovery blocks an account the same way: a client whose positions in the ledger disagree with
the venue's is halted (scope "client:<id>") until an operator resolves it and resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tickwise.store.base import Halt, Store, parse_halt_scope


@dataclass(frozen=True, slots=True)
class HaltSet:
    """The halts in force, in the shape the allocator applies them."""

    global_halt: bool = False
    portfolios: frozenset[int] = frozenset()
    clients: frozenset[int] = frozenset()
    cancel_open: bool = False  # some halt in force asked for open orders to be canceled

    @classmethod
    def from_halts(cls, halts: Sequence[Halt]) -> HaltSet:
        portfolios: set[int] = set()
        clients: set[int] = set()
        global_halt = False
        for halt in halts:
            kind, ident = parse_halt_scope(halt.scope)
            if kind == "global":
                global_halt = True
            elif kind == "portfolio" and ident is not None:
                portfolios.add(ident)
            elif kind == "client" and ident is not None:
                clients.add(ident)
        return cls(
            global_halt=global_halt,
            portfolios=frozenset(portfolios),
            clients=frozenset(clients),
            cancel_open=any(h.cancel_open for h in halts),
        )

    @property
    def any(self) -> bool:
        return self.global_halt or bool(self.portfolios) or bool(self.clients)

    def covers(self, client: int, instrument: int, portfolios: PortfolioMembers) -> bool:
        """Whether an order of `client` in `instrument` falls under these halts: globally, by
        its client, or by a halted portfolio that holds the instrument and that the client
        follows (`portfolios`: id -> (instruments, subscribed clients))."""
        if self.global_halt or client in self.clients:
            return True
        for portfolio in self.portfolios:
            instruments, clients = portfolios.get(portfolio, (frozenset(), frozenset()))
            if instrument in instruments and client in clients:
                return True
        return False


# Portfolio id -> (its instruments, the clients subscribed to it).
PortfolioMembers = Mapping[int, tuple[frozenset[int], frozenset[int]]]


class HaltWatch:
    """Follows the halts in a store for one live stage: `poll()` is one cheap read of the halt
    generation and returns the new `HaltSet` only when it moved (None otherwise).

    A failed read keeps the halts last known and is counted: the journal shares the store, so
    while the store cannot be read no order can be journaled (and sent) either.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._generation = -1
        self.current = HaltSet()
        self.read_errors = 0

    def poll(self) -> HaltSet | None:
        try:
            generation = self._store.halt_generation()
            if generation == self._generation:
                return None
            halts = self._store.active_halts()
        except Exception:  # the store's own errors differ by back end; never crash a stage
            self.read_errors += 1
            return None
        self._generation = generation
        self.current = HaltSet.from_halts(halts)
        return self.current


def halt(
    store: Store, scope: str, reason: str, *, cancel_open: bool = False, actor: str = "cli"
) -> int:
    """Stop new orders in `scope` ("global", "portfolio:<id>", "client:<id>"); returns the
    halt generation that carries it. A reason is required: it is the audit trail's why."""
    if not reason.strip():
        raise ValueError("a halt needs a reason (it is kept in the audit trail)")
    return store.set_halt(scope, reason.strip(), cancel_open=cancel_open, actor=actor)


def resume(store: Store, scope: str, *, reason: str = "", actor: str = "cli") -> int:
    """Let orders flow again in `scope`; returns the new halt generation."""
    return store.clear_halt(scope, actor=actor, reason=reason.strip())
