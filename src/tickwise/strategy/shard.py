"""`StrategyShard`: the live strategies of a set of instruments, batch in, signals out.

A shard owns some instruments (by global index), each running one registered strategy with its
own parameters. Instruments are grouped by strategy family; each family keeps one state matrix
and one parameter matrix, and a batch of ticks costs one compiled call per family, never a
Python call per tick. Ticks of instruments the shard does not own are counted and ignored.

Every weight change becomes a signal, stamped with the tick that caused it, so the signals do
not depend on how the tape was cut into batches. Strategies enforce a minimum holding time of
at least one second, so one instrument changes weight at most once per tick timestamp and
signal ids (instrument, microsecond of the tick) never collide.

Plain Python and numpy: the engine wraps it in an actor; nothing here imports ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import signal_ids
from tickwise.model.signals import SignalBatch
from tickwise.model.ticks import TickBatch, TickKind
from tickwise.strategy.api import StrategySpec, get_strategy
from tickwise.strategy.kernels import (
    ASK,
    BID,
    CHANGE_TS,
    LAST_PRICE,
    LAST_TS,
    TICKS,
    WEIGHT,
    batch_runner,
    quotes_at_ticks,
)

SNAPSHOT_VERSION = 1
# Header slots a re-warm keeps: what the market and the clients already know.
_KEPT_ON_REWARM = np.array([BID, ASK, LAST_PRICE, LAST_TS, TICKS, WEIGHT, CHANGE_TS], np.intp)


@dataclass(slots=True)
class _FamilyBook:
    """The instruments of one strategy family: their states and params as matrices."""

    family: str
    step: Any
    runner: Any
    members: npt.NDArray[np.int64]  # global instrument index of each row
    states: npt.NDArray[np.float64]
    params: npt.NDArray[np.float64]


class StrategyShard:
    """Runs each owned instrument's strategy over tick batches and emits weight changes."""

    def __init__(
        self,
        instruments: npt.ArrayLike,
        strategies: str | Sequence[str],
        params: Sequence[npt.ArrayLike | None] | None = None,
    ) -> None:
        owned = np.asarray(instruments, dtype=np.int64).ravel()
        if owned.size and owned.min() < 0:
            raise ValueError("instrument indexes must be >= 0")
        if np.unique(owned).size != owned.size:
            raise ValueError("an instrument appears twice in the shard")
        names = [strategies] * owned.size if isinstance(strategies, str) else list(strategies)
        if len(names) != owned.size:
            raise ValueError(f"{owned.size} instruments but {len(names)} strategy names")
        if params is not None and len(params) != owned.size:
            raise ValueError(f"{owned.size} instruments but {len(params)} parameter vectors")
        specs = [get_strategy(n) for n in names]
        self._instruments = owned
        self._specs: tuple[StrategySpec, ...] = tuple(specs)
        self._local_of = np.full(int(owned.max()) + 1 if owned.size else 0, -1, np.int64)
        self._local_of[owned] = np.arange(owned.size)
        self._book_of = np.empty(owned.size, np.int64)
        self._row_of = np.empty(owned.size, np.int64)
        self._books: list[_FamilyBook] = []
        for family in dict.fromkeys(s.family for s in specs):
            local = np.array([i for i, s in enumerate(specs) if s.family == family], np.int64)
            first = specs[local[0]]
            rows = []
            for i in local:
                spec = specs[i]
                if spec.step is not first.step or spec.state_size != first.state_size:
                    raise ValueError(f"strategies of family {family!r} must share one kernel")
                given = None if params is None else params[i]
                rows.append(spec.validate(spec.defaults() if given is None else given))
            param_matrix = np.ascontiguousarray(np.stack(rows))
            if param_matrix.ndim != 2:
                raise ValueError(f"family {family!r}: each parameter set must be one vector")
            self._book_of[local] = len(self._books)
            self._row_of[local] = np.arange(local.size)
            self._books.append(
                _FamilyBook(
                    family=family,
                    step=first.step,
                    runner=batch_runner(first.step),
                    members=owned[local],
                    states=first.new_states(param_matrix),
                    params=param_matrix,
                )
            )
        self.ticks_processed = 0
        self.ticks_ignored = 0
        self.signals_emitted = 0
        self.batches = 0

    # ------------------------------------------------------------------ queries

    @property
    def instruments(self) -> npt.NDArray[np.int64]:
        return self._instruments.copy()

    def strategy_of(self, instrument: int) -> str:
        return self._specs[self._local(instrument)].name

    def get_params(self, instrument: int) -> npt.NDArray[np.float64]:
        book, row = self._locate(instrument)
        return book.params[row].copy()

    def get_state(self, instrument: int) -> npt.NDArray[np.float64]:
        book, row = self._locate(instrument)
        return book.states[row].copy()

    def target_weights(self) -> npt.NDArray[np.float64]:
        """Current target weight of every owned instrument, in `instruments` order."""
        out = np.empty(self._instruments.size, np.float64)
        for book in self._books:
            out[self._local_of[book.members]] = book.states[:, WEIGHT]
        return out

    def counters(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "ticks_processed": self.ticks_processed,
            "ticks_ignored": self.ticks_ignored,
            "signals_emitted": self.signals_emitted,
        }

    # ------------------------------------------------------------------ the hot path

    def on_batch(self, batch: TickBatch, now_ns: int) -> SignalBatch:
        """Apply a batch (in arrival order) to the owned strategies; return every weight change.

        `now_ns` is the emission time stamped as `ts_signal` (the caller's clock).
        """
        self.batches += 1
        n = len(batch)
        if n == 0:
            return SignalBatch.empty()
        inst = batch.instrument.astype(np.int64)
        local = np.full(n, -1, np.int64)
        inside = inst < self._local_of.size
        local[inside] = self._local_of[inst[inside]]
        owned = local >= 0
        n_owned = int(owned.sum())
        self.ticks_processed += n_owned
        self.ticks_ignored += n - n_owned
        if n_owned == 0:
            return SignalBatch.empty()

        book_of_tick = np.where(owned, self._book_of[local], -1)
        row_of_tick = self._row_of[local]
        start_bid, start_ask = self._quotes_by_local()
        changed = np.zeros(n, np.bool_)
        weight = np.full(n, np.nan)
        book_weight = np.empty(n, np.float64)
        book_changed = np.empty(n, np.bool_)
        for b, book in enumerate(self._books):
            rows = np.where(book_of_tick == b, row_of_tick, -1)
            book.runner(
                book.states,
                book.params,
                rows,
                batch.price,
                batch.size,
                batch.kind,
                batch.ts_event,
                book_weight,
                book_changed,
            )
            mine = rows >= 0
            weight[mine] = book_weight[mine]
            changed |= book_changed
        if not changed.any():
            return SignalBatch.empty()
        return self._signals(batch, local, changed, weight, start_bid, start_ask, now_ns)

    def _signals(
        self,
        batch: TickBatch,
        local: npt.NDArray[np.int64],
        changed: npt.NDArray[np.bool_],
        weight: npt.NDArray[np.float64],
        start_bid: npt.NDArray[np.float64],
        start_ask: npt.NDArray[np.float64],
        now_ns: int,
    ) -> SignalBatch:
        n = len(batch)
        bid = np.full(n, np.nan)
        ask = np.full(n, np.nan)
        quotes_at_ticks(local, batch.price, batch.kind, start_bid, start_ask, changed, bid, ask)
        at = np.flatnonzero(changed)
        tick_price = batch.price[at]
        bid, ask = bid[at], ask[at]
        mid = 0.5 * (bid + ask)
        is_trade = batch.kind[at] == TickKind.TRADE
        price = np.where(is_trade | ~np.isfinite(mid), tick_price, mid)
        ts_event = batch.ts_event[at]
        instrument = batch.instrument[at]
        self.signals_emitted += at.size
        return SignalBatch(
            signal_id=signal_ids(instrument, ts_event),
            instrument=instrument.astype(np.uint32),
            target_weight=weight[at],
            price=price,
            bid=np.where(np.isfinite(bid), bid, price),
            ask=np.where(np.isfinite(ask), ask, price),
            ts_event=ts_event,
            ts_recv=batch.ts_recv[at],
            ts_signal=np.full(at.size, now_ns, np.int64),
        )

    def _quotes_by_local(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        bid = np.empty(self._instruments.size, np.float64)
        ask = np.empty(self._instruments.size, np.float64)
        for book in self._books:
            local = self._local_of[book.members]
            bid[local] = book.states[:, BID]
            ask[local] = book.states[:, ASK]
        return bid, ask

    # ------------------------------------------------------------------ hot swap

    def set_params(self, instrument: int, params: npt.ArrayLike, rewarm: bool = False) -> None:
        """Swap an instrument's parameters in place; the state carries over.

        With `rewarm` the strategy's own state is rebuilt and it warms up again before it
        trades; quotes, the current weight and the holding clock are kept, so the swap itself
        never moves the weight.
        """
        local = self._local(instrument)
        spec = self._specs[local]
        vec = spec.validate(params)
        if vec.ndim != 1:
            raise ValueError("set_params takes one parameter vector")
        book = self._books[self._book_of[local]]
        row = int(self._row_of[local])
        book.params[row] = vec
        if rewarm:
            state = book.states[row]
            kept = state[_KEPT_ON_REWARM].copy()
            spec.init_state(state, book.params[row])
            state[_KEPT_ON_REWARM] = kept

    # ------------------------------------------------------------------ checkpoints

    def snapshot(self) -> dict[str, Any]:
        """A deep copy of everything the shard knows, for a checkpoint."""
        return {
            "version": SNAPSHOT_VERSION,
            "instruments": self._instruments.copy(),
            "strategies": [s.name for s in self._specs],
            "families": {
                book.family: {
                    "members": book.members.copy(),
                    "states": book.states.copy(),
                    "params": book.params.copy(),
                }
                for book in self._books
            },
            "counters": self.counters(),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a snapshot taken from a shard with the same instruments and strategies."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported snapshot version {snapshot.get('version')!r}")
        if not np.array_equal(snapshot["instruments"], self._instruments) or list(
            snapshot["strategies"]
        ) != [s.name for s in self._specs]:
            raise ValueError("snapshot is of a shard with other instruments or strategies")
        families = snapshot["families"]
        for book in self._books:
            saved = families.get(book.family)
            if saved is None or not np.array_equal(saved["members"], book.members):
                raise ValueError(f"snapshot lacks family {book.family!r} or its members differ")
            for key, current in (("states", book.states), ("params", book.params)):
                if np.shape(saved[key]) != current.shape:
                    raise ValueError(f"snapshot {key} of {book.family!r} have another layout")
        for book in self._books:
            saved = families[book.family]
            book.states[...] = np.asarray(saved["states"], np.float64)
            book.params[...] = np.asarray(saved["params"], np.float64)
        counters = snapshot.get("counters", {})
        self.batches = int(counters.get("batches", 0))
        self.ticks_processed = int(counters.get("ticks_processed", 0))
        self.ticks_ignored = int(counters.get("ticks_ignored", 0))
        self.signals_emitted = int(counters.get("signals_emitted", 0))

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> StrategyShard:
        """A shard rebuilt from a checkpoint (same instruments, strategies, params, states)."""
        shard = cls(snapshot["instruments"], list(snapshot["strategies"]))
        shard.restore(snapshot)
        return shard

    # ------------------------------------------------------------------ helpers

    def _local(self, instrument: int) -> int:
        i = int(instrument)
        if not 0 <= i < self._local_of.size or self._local_of[i] < 0:
            raise KeyError(f"instrument {i} is not in this shard")
        return int(self._local_of[i])

    def _locate(self, instrument: int) -> tuple[_FamilyBook, int]:
        local = self._local(instrument)
        return self._books[self._book_of[local]], int(self._row_of[local])
