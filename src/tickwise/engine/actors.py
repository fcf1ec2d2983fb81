"""The Ray actors: thin wrappers that move batches between the plain-Python stages.

Each actor owns one stage object (a generator and validator, a strategy shard, an allocator with
its journal, a venue, the ledger), stamps its stage's time, records latency, and forwards the
result. All logic lives in the stage objects, which are tested without Ray. Counters reported by
`stats()` are cumulative, so the controller can both show rates and prove that every batch sent
by one stage was received by the next (the drain check).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import ray
from ray.actor import ActorHandle

from tickwise.data.corruption import corrupt
from tickwise.engine.halts import HaltWatch, PortfolioMembers
from tickwise.engine.recovery import OUTCOMES, expire, resolve_orders
from tickwise.model.ids import ClientOrderId
from tickwise.model.orders import ExecutionBatch, OrderBatch, OrderState, RejectReason
from tickwise.model.signals import SignalBatch
from tickwise.model.ticks import TickBatch
from tickwise.strategy.checkpoint import snapshot_from_bytes, snapshot_to_bytes
from tickwise.telemetry import StageTimer

Stats = dict[str, Any]
_RETUNE_WRITE_EVERY_S = 10.0
LIVE_NICE = 0  # the live path's OS priority (Ray starts workers at 15)
# The ledger books what the venues answered: after the order's acknowledgement, off the path
# the latency is measured on. On a loaded machine it yields to the live path (its backlog
# waits, nothing is lost) and still comes before the recorder (15) and the tuner (19).
LEDGER_NICE = 5
_HALT_CHECK_S = 0.25  # how often a router looks for a halt that cancels open orders
_RECORD_SEND_ROWS = 100_000  # the feed sends its recording sooner than once a second past this


def _prune(pending: list[ray.ObjectRef]) -> list[ray.ObjectRef]:
    if not pending:
        return pending
    _, still = ray.wait(pending, num_returns=len(pending), timeout=0)
    return list(still)


@ray.remote(num_cpus=0)
class FeedActor:
    """Pulls ticks from a source every few ms, stamps `ts_recv`, validates, shards, forwards."""

    def __init__(
        self,
        make_source: Callable[[], Any],
        make_validator: Callable[[], Any],
        shards: Sequence[ActorHandle],
        shard_of_instrument: npt.NDArray[np.int64],
        n_instruments: int,
        batch_interval_ms: float,
        malformed_fraction: float,
        max_inflight: int,
        seed: int,
        recorder: ActorHandle | None = None,
        record_every_s: float = 1.0,
        taps: Sequence[ActorHandle] = (),
    ) -> None:
        _set_priority(LIVE_NICE)
        self._source = make_source()
        self._validator = make_validator()
        self._shards = list(shards)
        self._shard_of = shard_of_instrument
        self._n_instruments = n_instruments
        self._interval_s = batch_interval_ms / 1000.0
        self._malformed = malformed_fraction
        self._max_inflight = max_inflight
        self._rng = np.random.default_rng(seed)
        self._stop = False
        self._running = False
        self._pending: list[list[ray.ObjectRef]] = [[] for _ in self._shards]
        self._counters = {"ticks_received": 0, "ticks_forwarded": 0, "batches": 0, "stalls": 0}
        self._timer = StageTimer(["feed"])
        self._reconstructed = _reconstructed()
        self._validator_baseline: dict[str, int] = {}
        # Recording: validated ticks are gathered here and sent to the recorder about once a
        # second (one remote call instead of one per batch), fire-and-forget.
        self._recorder = recorder
        self._taps = list(taps)  # more consumers of the validated ticks (the tuner)
        self._record_every_s = record_every_s
        self._record_buffer: list[TickBatch] = []
        self._record_rows = 0
        self._record_sent_at = time.monotonic()
        self._record_counters = {"ticks_to_recorder": 0, "recorder_errors": 0}

    async def warm_up(self, history_s: float, step_s: float = 5.0) -> int:
        """Play `history_s` seconds of market history into the shards before going live.

        Strategy states need a window of history before their signals mean anything; the
        shards process these ticks like live ones but their signals are discarded. Counters
        start from zero afterwards, so a run's figures cover the live part only.
        """
        start = time.time_ns() - int(history_s * 1e9)
        self._source.next_batch(start)
        played = await self._play_history(step_s)
        self._send_recording()
        self._validator_baseline = dict(self._validator.counts)
        return played

    async def _play_history(self, step_s: float = 5.0) -> int:
        """Bring the source up to now through the shards' warm path (no signals, no stats)."""
        played = 0
        t = getattr(self._source, "now_ns", None) or time.time_ns()
        while True:
            now = time.time_ns()
            if now - t < 2 * self._interval_s * 1e9:
                return played
            t = min(now, t + int(step_s * 1e9))
            batch: TickBatch = self._source.next_batch(t)
            good: TickBatch = self._validator.validate(batch)
            self._record(good)
            parts = good.split(self._shard_of, len(self._shards))
            await asyncio.gather(
                *[s.warm.remote(p) for s, p in zip(self._shards, parts, strict=True) if len(p)]
            )
            played += len(good)

    async def run(
        self,
        duration_s: float,
        burst: tuple[float, float, float] | None,
        started_at: float | None = None,
    ) -> Stats:
        """Stream until `duration_s` has passed since `started_at` (wall clock, default now)
        or `stop()`; returns the final stats. A call Ray retries after a restart keeps the
        run's end, since `started_at` is the first call's."""
        self._running = True
        wall_start = time.time() if started_at is None else started_at
        # Ticks generated between warm-up and now are history too: a live tick must be fresh.
        base = dict(self._validator.counts)
        await self._play_history()
        caught_up = {k: v - base.get(k, 0) for k, v in self._validator.counts.items()}
        for key, extra in caught_up.items():
            self._validator_baseline[key] = self._validator_baseline.get(key, 0) + extra
        next_tick = time.monotonic()
        burst_started = False
        try:
            while not self._stop and time.time() - wall_start < duration_s:
                if burst and not burst_started and time.time() - wall_start >= burst[0]:
                    self._source.burst(burst[1], burst[2])
                    burst_started = True
                await self._step()
                next_tick += self._interval_s
                delay = next_tick - time.monotonic()
                if delay < -10 * self._interval_s:  # fell far behind: don't try to catch up
                    next_tick = time.monotonic()
                    delay = 0.0
                await asyncio.sleep(max(0.0, delay))
            for pending in self._pending:
                if pending:
                    await asyncio.gather(*pending)
        finally:
            await self._finish_recording()
            self._running = False
        return self.stats()

    async def _step(self) -> None:
        batch: TickBatch = self._source.next_batch(time.time_ns())
        if len(batch) == 0:
            return
        if self._malformed > 0.0:
            batch = corrupt(batch, self._malformed, self._rng, self._n_instruments)
        batch.ts_recv = np.full(len(batch), time.time_ns(), dtype=np.int64)
        self._counters["ticks_received"] += len(batch)
        good: TickBatch = self._validator.validate(batch)
        self._timer.record("feed", time.time_ns() - batch.ts_recv[:1])
        self._counters["batches"] += 1
        self._counters["ticks_forwarded"] += len(good)
        self._record(good)
        for shard_index, part in enumerate(good.split(self._shard_of, len(self._shards))):
            if len(part) == 0:
                continue
            pending = self._pending[shard_index]
            # Back-pressure: at most `max_inflight` batches unanswered per shard. Ray is asked
            # which are done only when the list is full (asking at every batch cost the feed a
            # fifth of its CPU); a shard still that far behind then stalls the feed.
            if len(pending) >= self._max_inflight:
                pending = _prune(pending)
                if len(pending) >= self._max_inflight:
                    self._counters["stalls"] += 1
                    await pending[0]
                    pending = _prune(pending)
            pending.append(self._shards[shard_index].on_ticks.remote(part))
            self._pending[shard_index] = pending

    def _record(self, good: TickBatch) -> None:
        """Keep validated ticks for the recorder; send them when a second has passed."""
        if (self._recorder is None and not self._taps) or len(good) == 0:
            return
        self._record_buffer.append(good)
        self._record_rows += len(good)
        due = time.monotonic() - self._record_sent_at >= self._record_every_s
        if due or self._record_rows >= _RECORD_SEND_ROWS:
            self._send_recording()

    def _send_recording(self) -> ray.ObjectRef | None:
        self._record_sent_at = time.monotonic()
        if (self._recorder is None and not self._taps) or not self._record_buffer:
            return None
        batch = TickBatch.concat(self._record_buffer)
        self._record_buffer = []
        self._record_rows = 0
        ref = ray.put(batch)  # one copy in the object store for every consumer
        for tap in self._taps:
            tap.append.remote(ref)
        if self._recorder is None:
            return None
        self._record_counters["ticks_to_recorder"] += len(batch)
        return self._recorder.append.remote(ref)

    async def _finish_recording(self) -> None:
        """Send what is left and wait until the recorder has it (so a flush comes after)."""
        ref = self._send_recording()
        if ref is None:
            return
        try:
            await ref
        except Exception:  # a recorder failure must never stop the feed
            self._record_counters["recorder_errors"] += 1

    def stop(self) -> None:
        self._stop = True

    def stats(self) -> Stats:
        base = self._validator_baseline
        rejected = {
            f"ticks_rejected_{k}": int(v) - base.get(k, 0)
            for k, v in self._validator.counts.items()
        }
        recording = self._record_counters if self._recorder is not None else {}
        return {
            "counters": {**self._counters, **recording, **rejected},
            "timer": self._timer,
            "running": self._running,
            "restarted": self._reconstructed,
        }


@ray.remote(num_cpus=0)
class TunerActor:
    """Re-tunes every instrument on a schedule and hot-swaps winners into the strategy shards.

    The feed hands it the validated ticks about once a second (`append`); `run` loops: take
    the instruments that are due, run the walk-forward search in a worker thread (the numba
    kernels release the GIL, so ticks keep arriving), send each swap to the owning shard's
    `set_params` (an actor call, so it lands between two batches: no tick is lost or seen
    twice), and record every decision in the store. The search runs at a low OS priority
    (`nice`), so on a small machine the live path's threads always come first. Any failure is
    counted and logged; the live parameters stay.
    """

    def __init__(
        self,
        make_tuner: Callable[[], Any],
        shards: Sequence[ActorHandle],
        shard_of_instrument: npt.NDArray[np.int64],
        make_store: Callable[[], Any],
        threads: int,
        nice: int,
    ) -> None:
        self._nice = nice
        # The audit writer keeps normal priority: it takes the store's write lock, which the
        # journal shares, and a lock holder at idle priority would be starved by the very live
        # path that waits for the lock (priority inversion). Its thread exists before the rest
        # of the process is lowered, and is left out of every lowering.
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._writer_tid = self._writer.submit(threading.get_native_id).result()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, self._writer_tid, LIVE_NICE)
        _set_priority(nice, spare={self._writer_tid})
        import numba

        # 0 = every core but one: one core is left to the live path even at idle priority
        # (measured on 2 cores: the search's second thread cost the live path more than it
        # added to the tuning rate).
        wanted = threads if threads > 0 else max(1, (os.cpu_count() or 2) - 1)
        numba.set_num_threads(max(1, min(wanted, numba.get_num_threads())))
        self._tuner = make_tuner()
        self._tuner.compile()  # here, before the live run starts (the engine waits for it)
        self._shards = list(shards)
        self._shard_of = shard_of_instrument
        self._store = make_store()
        self._stop = False
        self._started = time.monotonic()
        self._counters = {"swaps_sent": 0, "swap_errors": 0, "store_errors": 0, "rounds": 0}
        self._unwritten: list[Any] = []
        self._written_at = time.monotonic()

    async def append(self, batch: TickBatch) -> None:
        self._tuner.append(batch)

    async def run(self) -> None:
        self._started = time.monotonic()
        while not self._stop:
            due = self._tuner.due()
            if due.size == 0:
                await asyncio.sleep(0.25)
                continue
            records = await asyncio.to_thread(self._round, due)
            self._counters["rounds"] += 1
            swaps = [r for r in records if r.decision == "swap"]
            results = await asyncio.gather(
                *[
                    self._shards[int(self._shard_of[r.instrument])].set_params.remote(
                        r.instrument, np.asarray(r.winner_params, np.float64)
                    )
                    for r in swaps
                ],
                return_exceptions=True,
            )
            failed = sum(1 for x in results if isinstance(x, BaseException))
            self._counters["swaps_sent"] += len(swaps) - failed
            self._counters["swap_errors"] += failed
            self._unwritten.extend(records)
            if time.monotonic() - self._written_at >= _RETUNE_WRITE_EVERY_S:
                await self._write_records()
        await self._write_records()

    async def _write_records(self) -> None:
        """Audit rows go to the store in one transaction every few seconds (the store's write
        lock is the journal's too: one short transaction beats dozens)."""
        self._written_at = time.monotonic()
        rows, self._unwritten = self._unwritten, []
        if not rows:
            return
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._writer, self._store.record_retunes, rows)
        except Exception:
            self._counters["store_errors"] += 1

    def _round(self, due: npt.NDArray[np.int64]) -> list[Any]:
        _set_priority(self._nice, spare={self._writer_tid})  # numba's threads start late
        return list(self._tuner.tune(due))

    def stop(self) -> None:
        self._stop = True

    def stats(self) -> Stats:
        elapsed = time.monotonic() - self._started
        return {"tuning": self._tuner.summary(elapsed), "counters": dict(self._counters)}


def _reconstructed() -> bool:
    """True in an actor Ray restarted after its process died (its constructor runs again)."""
    with warnings.catch_warnings():  # Ray's property reads its own deprecated `actor_id`
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def _set_priority(nice: int, spare: Collection[int] = ()) -> None:
    """Put every thread of this process but `spare` at OS priority `nice`; at 19, in the idle
    class too.

    Ray starts its workers at nice 15; the live path's actors come back to 0 (`LIVE_NICE`) so
    that the machine's other processes, and above all the tuner, cannot take their CPU. Linux's
    SCHED_IDLE runs a thread only when no other thread wants the CPU, so the search takes the
    live path's idle time and nothing else (its weight is 3 against 1,024 at nice 0, but 36 at
    nice 15). Raising a priority needs CAP_SYS_NICE: without it the call is a no-op, as it is
    off Linux.
    """
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return
    idle = getattr(os, "SCHED_IDLE", None)
    for tid in tids:
        if tid in spare:
            continue
        with contextlib.suppress(OSError):  # a thread that just ended, or no permission
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            if nice >= 19 and idle is not None:
                os.sched_setscheduler(tid, idle, os.sched_param(0))


@ray.remote(num_cpus=0)
class TickRecorderActor:
    """Records validated live ticks into the tick store (a `TickRecorder`), off the hot path.

    The feed calls `append` fire-and-forget; the controller calls `flush` when the run drains.
    A failing write is counted by the recorder and never raised to the feed.
    """

    def __init__(self, make_recorder: Callable[[], Any]) -> None:
        self._recorder = make_recorder()
        self._errors = 0

    def append(self, batch: TickBatch) -> int:
        try:
            return int(self._recorder.append(batch))
        except Exception:
            self._errors += 1
            return 0

    def flush(self) -> int:
        try:
            return int(self._recorder.flush())
        except Exception:
            self._errors += 1
            return 0

    def stats(self) -> Stats:
        counters = dict(self._recorder.counters)
        counters["rows_pending"] = int(self._recorder.pending)
        counters["errors"] = self._errors + int(counters.get("write_errors", 0))
        return {"counters": counters, "dir": str(self._recorder.store.root)}


@ray.remote(num_cpus=0)
class StrategyShardActor:
    """Runs a strategy shard over each tick batch and fans its signals to every allocator."""

    def __init__(
        self,
        make_shard: Callable[[], Any],
        allocators: Sequence[ActorHandle],
        restore_params: Callable[[], dict[int, npt.NDArray[np.float64]]] = dict,
        make_store: Callable[[], Any] | None = None,
        checkpoint_name: str = "",
        checkpoint_s: float = 5.0,
    ) -> None:
        _set_priority(LIVE_NICE)
        self._shard = make_shard()
        # Every `checkpoint_s` the shard's states and parameters go to the store; a restarted
        # shard resumes from the latest, missing only the ticks since (seconds of them).
        self._store = make_store() if make_store is not None and checkpoint_name else None
        self._checkpoint_name = checkpoint_name
        self._checkpoint_s = checkpoint_s
        self._checkpointed = -math.inf  # the first live batch is checkpointed at once
        self._counters = {
            "ticks_processed": 0,
            "signals": 0,
            "signal_batches_sent": 0,
            "checkpoints": 0,
            "checkpoint_errors": 0,
            "resumed_from_checkpoint": 0,
        }
        if _reconstructed() and not self._resume():
            # No usable checkpoint: trade the parameters the tuner swapped in, re-warming each
            # strategy's state from the ticks that arrive (signals wait for the warm-up).
            for instrument, params in restore_params().items():
                self._shard.set_params(instrument, params, rewarm=True)
        self._allocators = list(allocators)
        self._timer = StageTimer(["signal"])
        self._reconstructed = _reconstructed()

    def _resume(self) -> bool:
        """Restore the latest checkpoint of this shard; False when there is none usable."""
        if self._store is None:
            return False
        try:
            saved = self._store.load_checkpoint(self._checkpoint_name)
            if saved is None:
                return False
            self._shard.restore(snapshot_from_bytes(saved[0]))
        except (ValueError, KeyError, OSError):
            self._counters["checkpoint_errors"] += 1
            return False
        self._counters["resumed_from_checkpoint"] += 1
        return True

    def _checkpoint(self) -> None:
        if self._store is None or time.monotonic() - self._checkpointed < self._checkpoint_s:
            return
        self._checkpointed = time.monotonic()
        try:
            self._store.save_checkpoint(
                self._checkpoint_name, snapshot_to_bytes(self._shard.snapshot())
            )
        except Exception:  # the store's errors differ by back end; trading goes on
            self._counters["checkpoint_errors"] += 1
            return
        self._counters["checkpoints"] += 1

    def on_ticks(self, batch: TickBatch) -> None:
        signals: SignalBatch = self._shard.on_batch(batch, time.time_ns())
        self._counters["ticks_processed"] += len(batch)
        self._checkpoint()
        if len(signals) == 0:
            return
        self._timer.record("signal", signals.ts_signal - signals.ts_recv)
        self._counters["signals"] += len(signals)
        for allocator in self._allocators:
            allocator.on_signals.remote(signals)
        self._counters["signal_batches_sent"] += 1

    def warm(self, batch: TickBatch) -> int:
        """Process history ticks: states warm up, signals are discarded."""
        self._shard.on_batch(batch, time.time_ns())
        self._checkpoint()
        return len(batch)

    def set_params(self, instrument: int, params: npt.NDArray[np.float64]) -> None:
        self._shard.set_params(instrument, params)

    def stats(self) -> Stats:
        return {
            "counters": dict(self._counters),
            "timer": self._timer,
            "restarted": self._reconstructed,
        }


@ray.remote(num_cpus=0)
class AllocatorActor:
    """Sizes orders for one client range, journals them (write-ahead), routes them by venue."""

    def __init__(
        self,
        make_allocator: Callable[[], Any],
        make_journal: Callable[[], Any],
        router_names: dict[int, Sequence[str]],
        journal_chunk: int = 65536,
        history: Callable[[], ExecutionBatch] | None = None,
        unanswered: Callable[[], OrderBatch] | None = None,
        resend_within_s: float = 5.0,
    ) -> None:
        _set_priority(LIVE_NICE)
        self._allocator = make_allocator()
        self._chunk = journal_chunk
        self._journal = make_journal()
        self._halts = HaltWatch(self._journal.store)  # the kill switch, read per batch
        # Routers are named actors, found on first use: they are created after the allocators
        # (they hold the allocators' handles), and a restarted allocator finds them the same way.
        self._router_names = {venue: list(names) for venue, names in router_names.items()}
        self._routers: dict[int, list[ActorHandle]] = {}
        self._history = history
        self._unanswered = unanswered
        self._resend_within_ns = int(resend_within_s * 1e9)
        self._counters = {
            "signal_batches_received": 0,
            "signal_batches_injected": 0,
            "orders_created": 0,
            "orders_journaled": 0,
            "orders_routed": 0,
            "order_batches_routed": 0,
            "duplicate_client_order_ids": 0,
        }
        self._timer = StageTimer(["alloc", "journal"])
        self._reconstructed = _reconstructed()
        if self._reconstructed:
            # Restarted after a crash: expected positions and cash from the recorded fills, then
            # the orders this range journaled without a final answer are settled with the venues
            # (the crash may have come between the journal's commit and the routing).
            self.restore()
            self._settle_unanswered()

    def restore(self) -> int:
        """Book the recorded fills of this range's clients (see `World.fill_history`) into the
        allocator's expected positions and cash; returns how many fills were booked."""
        if self._history is None:
            return 0
        fills = self._history()
        self._allocator.restore_fills(fills)
        return len(fills)

    def _settle_unanswered(self) -> None:
        if self._unanswered is None:
            return
        orders = self._unanswered()
        fresh_after = time.time_ns() - self._resend_within_ns
        for venue, handles in self._router_handles().items():
            mine = orders.take(np.flatnonzero(orders.venue == venue))
            lane = mine.client % len(handles)
            for i, router in enumerate(handles):
                part = mine.take(np.flatnonzero(lane == i))
                if len(part):
                    router.resolve.remote(part, fresh_after)

    def _router_handles(self) -> dict[int, list[ActorHandle]]:
        if not self._routers:
            self._routers = {
                venue: [ray.get_actor(name) for name in names]
                for venue, names in self._router_names.items()
            }
        return self._routers

    def on_signals(self, signals: SignalBatch) -> None:
        """A strategy shard's signals: sized, journaled and routed (see `_trade`)."""
        self._counters["signal_batches_received"] += 1
        self._trade(signals)

    def inject(self, signals: SignalBatch) -> None:
        """Signals from outside the shards (the bench's fan-out stress): traded like any,
        counted apart so that the drain's count of batches between stages still holds."""
        self._counters["signal_batches_injected"] += 1
        self._trade(signals)

    def _trade(self, signals: SignalBatch) -> None:
        """Size, journal and route; the journal commits chunk by chunk (`journal_chunk`
        orders) and each chunk is routed as soon as it is durable. With SQLite's journal of
        chunks a whole fan-out in one transaction and one message per router reaches the last
        account soonest: 37,158 orders (two allocators) sent within 130-246 ms of the signal,
        against 344-483 ms in chunks of 4,096 and 429-799 ms in chunks of 1,024
        (benchmarks/README.md)."""
        halts = self._halts.poll()
        if halts is not None:
            self._allocator.set_halts(halts.global_halt, halts.portfolios, halts.clients)
        orders: OrderBatch = self._allocator.on_signals(signals, time.time_ns())
        if len(orders) == 0:
            return
        self._counters["orders_created"] += len(orders)
        self._timer.record("alloc", orders.ts_alloc - orders.ts_signal)
        for start in range(0, len(orders), self._chunk):
            chunk = orders.take(np.arange(start, min(start + self._chunk, len(orders))))
            journaled: OrderBatch = self._journal.write(chunk, time.time_ns())
            if len(journaled) < len(chunk):
                # Ids the journal already holds (a call retried after a restart, a replayed
                # signal): never sent again, so their optimistic booking is taken back.
                again = np.isin(chunk.client_order_id, journaled.client_order_id, invert=True)
                self._allocator.apply_executions(
                    expire(chunk.take(np.flatnonzero(again)), time.time_ns())
                )
            self._counters["duplicate_client_order_ids"] += len(chunk) - len(journaled)
            self._counters["orders_journaled"] += len(journaled)
            self._timer.record("journal", journaled.ts_journal - journaled.ts_alloc)
            self._route(journaled)

    def _route(self, journaled: OrderBatch) -> None:
        for venue, handles in self._router_handles().items():
            mine = journaled.take(np.flatnonzero(journaled.venue == venue))
            if len(mine) == 0:
                continue
            lane = mine.client % len(handles)
            for i, router in enumerate(handles):
                part = mine if len(handles) == 1 else mine.take(np.flatnonzero(lane == i))
                if len(part):
                    router.submit.remote(part)
                    self._counters["orders_routed"] += len(part)
                    self._counters["order_batches_routed"] += 1

    def on_executions(self, execs: ExecutionBatch) -> None:
        self._allocator.apply_executions(execs)

    def stats(self) -> Stats:
        counters = dict(self._counters)
        for reason, count in getattr(self._allocator, "counters", {}).items():
            counters[f"alloc_{reason}"] = int(count)
        counters["halt_read_errors"] = self._halts.read_errors
        return {"counters": counters, "timer": self._timer, "restarted": self._reconstructed}


@ray.remote(num_cpus=0)
class VenueRouterActor:
    """Sends orders to one venue, polls acks and fills, forwards them to ledger and allocators."""

    def __init__(
        self,
        make_venue: Callable[[], Any],
        ledger: ActorHandle,
        allocators: Sequence[ActorHandle],
        allocator_bounds: npt.NDArray[np.int64],
        poll_interval_ms: float = 1.0,
        idle_poll_s: float = _HALT_CHECK_S,
        lane_unanswered: Callable[[], OrderBatch] | None = None,
        resend_within_s: float = 5.0,
        make_throttle: Callable[[], Any] = lambda: None,
        make_store: Callable[[], Any] | None = None,
        portfolios: PortfolioMembers | None = None,
    ) -> None:
        _set_priority(LIVE_NICE)
        self._venue = make_venue()
        self._throttle = make_throttle()  # the desk's order-rate cap at this venue, if any
        # The kill switch's `cancel_open`: the router follows the halts and cancels its orders
        # still working at the venue that a new halt covers.
        self._halts = HaltWatch(make_store()) if make_store is not None else None
        self._halts_checked = 0.0
        self._portfolios: PortfolioMembers = portfolios or {}
        # Restarted by Ray after a crash: the orders of this lane that the journal holds without
        # an answer are settled with the venue before anything else (see engine.recovery).
        self._lane_unanswered = lane_unanswered
        self._resend_within_ns = int(resend_within_s * 1e9)
        self._restarted = self._reconstructed = _reconstructed()
        self._ledger = ledger
        self._allocators = list(allocators)
        self._bounds = allocator_bounds
        self._poll_s = poll_interval_ms / 1000.0
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()  # set by every send: its answers may be due soonest
        self._poller: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[None] | None = None
        self._counters = {
            "orders_received": 0,
            "orders_sent": 0,
            "orders_acked": 0,
            "orders_filled": 0,
            "orders_rejected": 0,
            "executions_forwarded": 0,
            "venue_errors": 0,
            "duplicate_answers_dropped": 0,
            "orders_throttled": 0,
            "canceled_on_halt": 0,
            "cancel_errors": 0,
            "restarts_recovered": 0,
            "recovered_adopted": 0,
            "recovered_resent": 0,
            "recovered_expired": 0,
            "recovered_unresolved": 0,
        }
        self._reject_reasons: dict[str, int] = {}
        self._timer = StageTimer(["sent", "ack", "venue"])

    async def start(self) -> None:
        """Connect and start polling; idempotent and safe to call concurrently (every entry
        point calls it, so a router Ray restarted after a crash starts by itself with its next
        message, whichever it is). Callers that arrive while it connects wait for it, and for
        the settlement of the lane's unanswered orders after a restart."""
        if self._poller is not None:
            return
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            await asyncio.shield(opening)
        except Exception:
            if self._opening is opening:
                self._opening = None  # the next message tries again
            raise

    async def _open(self) -> None:
        opener = getattr(self._venue, "start", None)  # network adapters connect first
        if opener is not None:
            await opener()
        self._poller = asyncio.get_running_loop().create_task(self._poll_loop())
        if self._restarted and self._lane_unanswered is not None:
            self._restarted = False
            self._counters["restarts_recovered"] += 1
            await self.resolve(self._lane_unanswered(), time.time_ns() - self._resend_within_ns)

    async def resolve(self, orders: OrderBatch, fresh_after_ns: int) -> dict[str, int]:
        """Settle journaled orders without a recorded final answer by asking the venue about each
        client order id: adopt what it knows, resend fresh orders it never saw, expire stale
        ones (see engine.recovery). Answers travel like live ones; returns the counts."""
        await self.start()
        if len(orders) == 0:
            return dict.fromkeys(OUTCOMES, 0)
        res = await resolve_orders(self._venue, orders, fresh_after_ns, time.time_ns())
        for name, count in res.counts().items():
            self._counters[f"recovered_{name}"] += count
        # Settled answers are applied before this returns, so whoever asked for the settlement
        # reads a ledger that holds them.
        await asyncio.gather(*self._forward(ExecutionBatch.concat([res.adopted, res.expired])))
        if len(res.resend):
            await self.submit(res.resend)
        return res.counts()

    async def submit(self, orders: OrderBatch) -> None:
        await self.start()
        self._counters["orders_received"] += len(orders)
        if self._throttle is None:
            await self._send(orders)
            return
        # Over the desk's rate cap: the rest of the batch waits for the bucket, in order; an
        # order is held, never dropped (each one held counts once as throttled).
        admitted = self._throttle.admit(len(orders), time.time_ns())
        self._counters["orders_throttled"] += len(orders) - admitted
        while True:
            if admitted:
                await self._send(orders.take(np.arange(admitted)))
                orders = orders.take(np.arange(admitted, len(orders)))
            if len(orders) == 0:
                return
            await asyncio.sleep(self._throttle.delay_ns(len(orders), time.time_ns()) / 1e9)
            admitted = self._throttle.admit(len(orders), time.time_ns())

    async def _send(self, orders: OrderBatch) -> None:
        # Arrays that arrive through Ray are read-only views of the object store:
        # replace them, never write into them.
        orders.ts_sent = np.full(len(orders), time.time_ns(), dtype=np.int64)
        try:
            await self._venue.submit(orders)
        except Exception as exc:  # a venue error must never kill the router
            self._counters["venue_errors"] += 1
            self._reject_reasons[type(exc).__name__] = (
                self._reject_reasons.get(type(exc).__name__, 0) + 1
            )
            return
        self._counters["orders_sent"] += len(orders)
        self._timer.record("sent", orders.ts_sent - orders.ts_recv)
        self._wake.set()

    async def _poll_loop(self) -> None:
        """Poll the venue for answers, and look for halts every `_HALT_CHECK_S`.

        A venue that knows when its next answer is due (`next_due_ns`: the in-process
        simulator) is polled then, or when a send may have brought an earlier one, and at least
        every `idle_poll_s`; any other (a network adapter, whose answers come when they come)
        every `poll_interval_ms`. Polling an idle venue every millisecond cost each router 8 %
        of a core."""
        while True:
            self._wake.clear()  # before the poll: a send from here on wakes the wait below
            try:
                self.poll_once()
            except Exception:
                self._counters["venue_errors"] += 1
            if time.monotonic() - self._halts_checked >= _HALT_CHECK_S:
                self._halts_checked = time.monotonic()
                await self._cancel_on_halt()
            wait_s = self._until_next_answer()
            if wait_s <= self._poll_s:
                await asyncio.sleep(wait_s)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)

    def _until_next_answer(self) -> float:
        due_ns = getattr(self._venue, "next_due_ns", None)
        if due_ns is None:
            return self._poll_s
        return min(max(0.0, (int(due_ns) - time.time_ns()) / 1e9), self._idle_poll_s)

    async def _cancel_on_halt(self) -> None:
        """When the halts moved and one asks for it, cancel the working orders they cover
        (a cancel the venue refuses — the order just filled — is counted, not retried)."""
        halts = self._halts.poll() if self._halts is not None else None
        if halts is None or not halts.cancel_open:
            return
        working = getattr(self._venue, "working", None)
        if working is None:
            return
        for coid, client, instrument in working():
            if not halts.covers(client, instrument, self._portfolios):
                continue
            try:
                await self._venue.cancel(ClientOrderId(coid))
            except Exception:
                self._counters["cancel_errors"] += 1
            else:
                self._counters["canceled_on_halt"] += 1

    def poll_once(self) -> int:
        execs: ExecutionBatch = self._venue.poll(time.time_ns())
        if len(execs) == 0:
            return 0
        # The journal never lets an id be created twice, so a duplicate-id refusal answers a
        # resend (after a restart, or a settlement racing the first send) of an order the venue
        # already has: the first send's own answer is the order's outcome, never this one.
        duplicate = (execs.state == OrderState.REJECTED) & (
            execs.reason == RejectReason.DUPLICATE_CLIENT_ORDER_ID
        )
        if duplicate.any():
            self._counters["duplicate_answers_dropped"] += int(duplicate.sum())
            execs = execs.take(np.flatnonzero(~duplicate))
        n = len(execs)
        rejected = execs.state == OrderState.REJECTED
        self._counters["orders_rejected"] += int(rejected.sum())
        self._counters["orders_acked"] += int((~rejected).sum())
        self._counters["orders_filled"] += int((execs.state == OrderState.FILLED).sum())
        for code, count in zip(*np.unique(execs.reason[rejected], return_counts=True), strict=True):
            name = RejectReason(int(code)).name.lower()
            self._reject_reasons[name] = self._reject_reasons.get(name, 0) + int(count)
        acked = ~rejected
        self._timer.record("ack", execs.ts_ack[acked] - execs.ts_event[acked])
        self._timer.record("venue", execs.ts_ack - execs.ts_sent)
        self._forward(execs)
        return n

    def _forward(self, execs: ExecutionBatch) -> list[ray.ObjectRef]:
        """Answers to the ledger (which records them) and to the allocator of each client;
        returns the calls' refs (the live path does not wait for them)."""
        n = len(execs)
        if n == 0:
            return []
        refs = [self._ledger.apply.remote(execs)]
        owner = np.searchsorted(self._bounds, execs.client, side="right") - 1
        for i, allocator in enumerate(self._allocators):
            part = execs.take(np.flatnonzero(owner == i))
            if len(part):
                refs.append(allocator.on_executions.remote(part))
        self._counters["executions_forwarded"] += n
        return refs

    def pending(self) -> int:
        return int(self._venue.pending())

    async def positions(self) -> Any:
        # Possibly the first message of a router Ray restarted after the last order of the run.
        await self.start()
        return await self._venue.positions()

    def stats(self) -> Stats:
        return {
            "counters": dict(self._counters),
            "reject_reasons": dict(self._reject_reasons),
            "timer": self._timer,
            "pending": self.pending(),
            "venue": dict(getattr(self._venue, "stats", {})),  # a network adapter's counters
            "restarted": self._reconstructed,
        }


@ray.remote(num_cpus=0)
class LedgerActor:
    """Applies fills to positions, cash and PnL, and records executions in the store in batches."""

    def __init__(
        self,
        make_ledger: Callable[[], Any],
        make_store: Callable[[], Any],
        flush_interval_s: float = 0.25,
        chunk: int = 2048,
        history: Callable[[], ExecutionBatch] | None = None,
    ) -> None:
        _set_priority(LEDGER_NICE)
        self._ledger = make_ledger()
        self._chunk = chunk
        self._store = make_store()
        self._buffer: list[ExecutionBatch] = []
        self._flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()
        self._counters = {
            "executions_applied": 0,
            "executions_recorded": 0,
            "fills_restored": 0,
            "orders_written_out": 0,
        }
        self._reconstructed = _reconstructed()
        # Positions, cash and PnL rebuilt from the fills the store recorded (those of persistent
        # venues from earlier runs; this run's too after a restart). Fills applied but not yet
        # recorded when a crash came are unanswered in the journal and come back by settlement.
        if history is not None:
            fills = history()
            self._ledger.apply(fills)
            self._counters["fills_restored"] = len(fills)

    def apply(self, execs: ExecutionBatch) -> None:
        self._ledger.apply(execs)
        self._counters["executions_applied"] += len(execs)
        self._buffer.append(execs)
        if time.monotonic() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self) -> int:
        """Record buffered executions in short transactions, then write out the orders the
        journal keeps in its own form (`Store.expand_journal`): both off the order path."""
        if self._buffer:
            batch = ExecutionBatch.concat(self._buffer)
            self._buffer.clear()
            for start in range(0, len(batch), self._chunk):
                part = batch.take(np.arange(start, min(start + self._chunk, len(batch))))
                self._store.record_executions(part)
                self._counters["executions_recorded"] += len(part)
            self._counters["orders_written_out"] += self._store.expand_journal()
        self._last_flush = time.monotonic()
        return self._counters["executions_recorded"]

    def positions(self) -> Any:
        return self._ledger.positions

    def client(self, client: int) -> Any:
        """One client's account now (a `ClientSnapshot`), None for a client it does not keep."""
        try:
            return self._ledger.snapshot(int(client))
        except KeyError:
            return None

    def totals(self) -> dict[str, Any]:
        return dict(self._ledger.totals())

    def stats(self) -> Stats:
        return {"counters": dict(self._counters), "restarted": self._reconstructed}
