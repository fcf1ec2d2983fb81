"""The composition root: builds the whole live system from a `Config` and runs it on Ray.

    Feed ─TickBatch─► StrategyShard ×S ─Signals─► Allocator ×A ─OrderBatch─► VenueRouter ×V
                                                  (journal first)             │ executions
                                                                              ▼
                                                             Ledger (and back to allocators)

`Engine.run()` starts the feed, shows the live panel, and on the end of the run or Ctrl-C stops
the feed, drains every stage (proving with counters that every batch sent was received),
flushes the journal, reconciles the ledger with every venue, and returns the summary.

With `[ticks] record` on, the feed also hands every validated tick (warm-up history included)
to a tick recorder actor that writes the Parquet tick store; the drain flushes it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tickwise.config import Config, ticks_dir
from tickwise.data.recorder import TickRecorder
from tickwise.data.tickstore import TickStore
from tickwise.engine import wiring
from tickwise.engine.actors import (
    AllocatorActor,
    FeedActor,
    LedgerActor,
    StrategyShardActor,
    TickRecorderActor,
    TunerActor,
    VenueRouterActor,
)
from tickwise.engine.cluster_view import cluster_view
from tickwise.engine.panel import LivePanel
from tickwise.engine.recovery import OUTCOMES, expire
from tickwise.engine.summary import build_summary
from tickwise.engine.venue_servers import VenueServerActor
from tickwise.execution.reconciliation import reconcile_positions
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.telemetry import merge_counters
from tickwise.venues.credentials import MASTER_KEY_ENV, MasterKey
from tickwise.web.live import LiveState, RunInfo

log = logging.getLogger(__name__)

# The live stages survive the death of their process: Ray restarts the actor (its constructor
# runs again, restoring what it needs from the store) and retries the calls it had not finished.
# Every handler is idempotent by signal id or client order id, so a retried call never doubles
# an order; what a crash left unanswered is settled with the venues (engine.recovery).
RESTARTABLE: dict[str, int] = {"max_restarts": -1, "max_task_retries": -1}


@dataclass
class Actors:
    feed: ActorHandle
    shards: list[ActorHandle]
    allocators: list[ActorHandle]
    routers: dict[Venue, list[ActorHandle]]
    ledger: ActorHandle
    recorder: ActorHandle | None = None
    tuner: ActorHandle | None = None
    servers: dict[Venue, ActorHandle] = field(default_factory=dict)

    @property
    def all_routers(self) -> list[ActorHandle]:
        return [r for handles in self.routers.values() for r in handles]


class Engine:
    """One live run of tickwise on Ray (local by default, a cluster with `address`)."""

    def __init__(self, config: Config, panel: LivePanel | None = None) -> None:
        self.config = config
        self.panel = panel
        # What the dashboard reads: the run's state, snapshots and a timeline of them.
        self.live = LiveState(account=self._account, cluster=cluster_view)
        self.run_id = f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self._stop_requested = False
        self._owns_ray = False
        self.actors: Actors | None = None
        self.world: wiring.World | None = None
        # What recovery did beyond the routers' own settlement counters: orders of earlier runs
        # expired because their venue is gone, accounts blocked for differing positions.
        self.recovery: dict[str, int] = {"expired_venue_gone": 0, "accounts_blocked": 0}
        self._pinned: list[ray.ObjectRef] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.config.venues.mode == "http" and MASTER_KEY_ENV not in os.environ:
            if self.config.engine.address:
                raise RuntimeError(
                    f"--venues http on a cluster: set {MASTER_KEY_ENV} on every node before "
                    "Ray starts there (each router opens its clients' credentials with it)"
                )
            if ray.is_initialized():
                raise RuntimeError(
                    f"--venues http: set {MASTER_KEY_ENV} before Ray starts (the routers open "
                    "the clients' credentials with it in their own processes)"
                )
            # Simulator credentials only: sealed under a key that lives as long as this run
            # (set before Ray starts, so the router processes inherit it). Live trading needs
            # the real key in the environment.
            os.environ[MASTER_KEY_ENV] = MasterKey.generate().to_base64()
        if not ray.is_initialized():
            address = self.config.engine.address or None
            ray.init(
                address=address,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
            self._owns_ray = True
        self.world = wiring.prepare_world(self.config, self.run_id)
        self.actors = self._spawn(self.world)
        self.live.started(
            RunInfo(
                run_id=self.run_id,
                tier=self.config.run.tier,
                duration_s=self.config.run.duration_s,
                instruments=self.config.instruments,
                clients=self.config.clients.count,
                store_url=self.config.store.url,
                router_venues=tuple(
                    venue.label for venue, handles in self.actors.routers.items() for _ in handles
                ),
                venue_rate_caps={v.label: self.config.risk.max_orders_per_s(v) for v in Venue},
            )
        )

    def _account(self, client: int) -> Any:
        """One client's account in the live ledger (None when there is no ledger)."""
        if self.actors is None:
            return None
        return ray.get(self.actors.ledger.client.remote(client), timeout=5.0)

    def _spawn(self, world: wiring.World) -> Actors:
        cfg = self.config
        pin = self._pin
        live = {**RESTARTABLE, **self._spread()}
        ledger = LedgerActor.options(**live).remote(  # type: ignore[attr-defined]
            pin(world.make_ledger), pin(world.make_store), history=pin(world.fill_history())
        )
        n_alloc = len(world.allocator_books)
        # Allocators need router handles and routers need allocator handles: create the
        # allocators first with a forward reference filled through `routers` below.
        routers: dict[Venue, list[ActorHandle]] = {}
        allocator_bounds = world.allocator_bounds
        allocators: list[ActorHandle] = []
        servers: dict[Venue, ActorHandle] = {}
        if cfg.venues.mode == "inproc":
            router_specs = world.router_specs()
        else:
            if cfg.venues.mode == "http":
                servers = self._start_venue_servers(world)
            started: dict[Venue, Any] = {v: h.start.remote() for v, h in servers.items()}
            endpoints = world.venue_endpoints({v: ray.get(ref) for v, ref in started.items()})
            router_specs = world.network_router_specs(endpoints)
        for i in range(n_alloc):
            allocators.append(
                AllocatorActor.options(**live).remote(  # type: ignore[attr-defined]
                    pin(world.allocator_factory(i)),
                    pin(world.journal_factory()),
                    pin(world.router_names()),
                    cfg.engine.journal_chunk,
                    history=pin(world.fill_history(i)),
                    unanswered=pin(world.range_unanswered(i)),
                    resend_within_s=cfg.engine.resend_within_s,
                )
            )
        members = pin(world.portfolio_members())
        for venue, lanes in router_specs.items():
            routers[venue] = [
                VenueRouterActor.options(  # type: ignore[attr-defined]
                    name=world.router_name(venue, lane), **live
                ).remote(
                    pin(make_venue),
                    ledger,
                    allocators,
                    pin(allocator_bounds),
                    lane_unanswered=pin(world.lane_unanswered(venue, lane)),
                    resend_within_s=cfg.engine.resend_within_s,
                    make_throttle=pin(world.throttle_factory(venue)),
                    make_store=pin(world.make_store),
                    portfolios=members,
                )
                for lane, make_venue in enumerate(lanes)
            ]
        shards = [
            StrategyShardActor.options(**live).remote(  # type: ignore[attr-defined]
                pin(world.shard_factory(s)),
                allocators,
                pin(world.shard_restore(s)),
                pin(world.make_store),
                f"{self.run_id}/strategy-shard/{s}",
            )
            for s in range(cfg.engine.strategy_shards)
        ]
        recorder = None
        if cfg.ticks.record:
            # It writes the tick store on the disk of the machine that runs the engine.
            recorder = TickRecorderActor.options(  # type: ignore[attr-defined]
                **self._on_driver_node()
            ).remote(
                partial(
                    _make_recorder,
                    str(ticks_dir(cfg).resolve()),
                    world.registry,
                    cfg.ticks.flush_s,
                    cfg.ticks.flush_rows,
                )
            )
        tuner = None
        if cfg.tuning.enabled:
            # The tuner asks Ray for a GPU when the cluster has one (its kernels then run there);
            # otherwise it takes no CPU reservation and runs at a low OS priority.
            gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            tuner = TunerActor.options(  # type: ignore[attr-defined]
                num_gpus=gpus, **live
            ).remote(
                pin(world.tuner_factory()),
                shards,
                pin(world.shard_of_instrument),
                pin(world.make_store),
                cfg.tuning.threads,
                cfg.tuning.nice,
            )
        feed = FeedActor.options(**live).remote(  # type: ignore[attr-defined]
            pin(world.make_source),
            pin(world.make_validator),
            shards,
            pin(world.shard_of_instrument),
            len(world.registry),
            cfg.market.batch_interval_ms,
            cfg.market.malformed_fraction,
            cfg.engine.max_inflight_batches,
            cfg.run.seed,
            recorder,
            # The simulator servers follow the run's market: a tap, sent ten times a second.
            record_every_s=0.1 if servers else 1.0,
            taps=[*([tuner] if tuner is not None else []), *servers.values()],
        )
        everyone = [ledger, *allocators, *[r for rs in routers.values() for r in rs], *shards]
        everyone.extend(servers.values())
        if recorder is not None:
            everyone.append(recorder)
        if tuner is not None:
            everyone.append(tuner)
        ray.get([a.stats.remote() for a in everyone] + [feed.stats.remote()])
        ray.get([r.start.remote() for rs in routers.values() for r in rs])
        actors = Actors(feed, shards, allocators, routers, ledger, recorder, tuner, servers)
        self.recover(world, actors)
        if cfg.strategy.warmup_s > 0:
            played = ray.get(feed.warm_up.remote(cfg.strategy.warmup_s))
            log.info("strategies warmed on %d ticks of history", played)
        return actors

    def recover(self, world: wiring.World, actors: Actors) -> None:
        """Before the market opens: settle what earlier runs left unanswered, rebuild what the
        clients hold, and check it against the venues that outlive a run.

        Orders of earlier runs journaled without a final answer are settled by client order id at a
        persistent venue (adopted, or expired: their signals are long stale); at a venue that
        began empty with this run they can no longer reach it and are expired. The ledger was
        built from the recorded fills; the allocators book them now, after the settlement's
        adoptions. A client whose ledger positions differ from its venue's is halted
        (`client:<id>`) until an operator resolves the difference and resumes it.
        """
        orders = world.store.unsettled_orders()
        lasting = np.isin(orders.venue, [int(v) for v in world.persistent_venues])
        gone = orders.take(np.flatnonzero(~lasting))
        if len(gone):
            world.store.record_executions(expire(gone, time.time_ns()))
            self.recovery["expired_venue_gone"] += len(gone)
        stale = time.time_ns() - int(self.config.engine.resend_within_s * 1e9)
        refs = [
            actors.routers[venue][lane].resolve.remote(part, stale)
            for (venue, lane), part in world.lanes_of(orders.take(np.flatnonzero(lasting))).items()
        ]
        ray.get(refs)
        if not world.persistent_venues:
            return
        ray.get(actors.ledger.flush.remote())
        ray.get([a.restore.remote() for a in actors.allocators])
        lasting_routers = [r for v in world.persistent_venues for r in actors.routers.get(v, [])]
        ledger_book: Any = ray.get(actors.ledger.positions.remote())
        venue_books = ray.get([r.positions.remote() for r in lasting_routers])
        at = np.isin(world.book.venue, [int(v) for v in world.persistent_venues])
        report = reconcile_positions(ledger_book.restricted(world.book.client_id[at]), venue_books)
        blocked = sorted({c for c, _, _, _ in report.mismatches})
        for client in blocked:
            world.store.set_halt(
                f"client:{client}",
                "recovery: ledger and venue positions differ; resolve, then resume",
                actor="recovery",
            )
        self.recovery["accounts_blocked"] = len(blocked)
        if blocked:
            log.warning(
                "recovery blocked %d accounts whose positions differ, e.g. (client, instrument, "
                "ledger, venue) %s",
                len(blocked),
                report.mismatches[:5],
            )

    def _pin(self, value: Any) -> Any:
        """`value` in the object store, held for the whole run: a restartable actor's
        constructor arguments must outlive its first construction, or Ray cannot build it again
        after a crash (arguments it placed in the object store itself are freed once used)."""
        ref = ray.put(value)
        self._pinned.append(ref)
        return ref

    def _start_venue_servers(self, world: wiring.World) -> dict[Venue, ActorHandle]:
        """One simulator server per venue that has clients and no `[venues] <venue>_url`."""
        # A server stands for an exchange and holds its books, which no restart could rebuild:
        # it lives with the engine's driver, whose loss ends the run anyway.
        specs = world.server_specs()
        if self.config.engine.address:  # routers on other nodes reach it at this node's address
            here = ray.util.get_node_ip_address()
            specs = {venue: replace(spec, host=here) for venue, spec in specs.items()}
        return {
            venue: VenueServerActor.options(  # type: ignore[attr-defined]
                **self._on_driver_node()
            ).remote(spec)
            for venue, spec in specs.items()
        }

    def _spread(self) -> dict[str, Any]:
        """Where the restartable live stages go: on a cluster (`[engine] address`), spread over
        its nodes by Ray's own scheduler; a local run places them as Ray does by default.

        Plain SPREAD rather than a placement group: when a node dies, Ray restarts each of its
        actors on a surviving node under the same strategy, whereas an actor of a placement
        group's bundle waits for that bundle to be placed again, which the lost node's share of
        the group may never be. Resource requests (the tuner's GPU) still decide which nodes
        can take an actor at all."""
        if not self.config.engine.address:
            return {}
        return {"scheduling_strategy": "SPREAD"}

    def _on_driver_node(self) -> dict[str, Any]:
        """On a cluster, pins an actor to the node of the process that runs the engine (what
        lives beside the driver: the simulated venues, the local tick store); a local run
        places it as Ray does by default."""
        if not self.config.engine.address:
            return {}
        here = ray.get_runtime_context().get_node_id()
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(here, soft=False)}

    def request_stop(self) -> None:
        self._stop_requested = True

    def run(self) -> dict[str, Any]:
        """Run for the configured duration (or until Ctrl-C), drain, reconcile, summarise."""
        if self.actors is None:
            self.start()
        assert self.actors is not None and self.world is not None
        actors = self.actors
        cfg = self.config
        burst = None
        if cfg.market.burst_at_s >= 0:
            burst = (
                cfg.market.burst_at_s,
                cfg.market.burst_multiplier,
                cfg.market.burst_duration_s,
            )
        previous = _install_sigint(self.request_stop)
        started = time.monotonic()
        done_ref: Any = actors.feed.run.remote(cfg.run.duration_s, burst, time.time())
        tuning_ref: Any = actors.tuner.run.remote() if actors.tuner is not None else None
        try:
            while True:
                ready, _ = ray.wait([done_ref], timeout=1.0)
                self._maintain_store()
                snap = self.snapshot()
                self.live.record(time.monotonic() - started, snap)
                if self.panel is not None:
                    self.panel.update(time.monotonic() - started, snap)
                if ready:
                    break
                if self._stop_requested:
                    actors.feed.stop.remote()
                    self._stop_requested = False
            ray.get(done_ref)
            elapsed = time.monotonic() - started
            if actors.tuner is not None:
                actors.tuner.stop.remote()  # a round in flight finishes; no new one starts
                try:
                    ray.get(tuning_ref, timeout=cfg.engine.drain_timeout_s)
                except (ray.exceptions.RayError, TimeoutError) as exc:
                    log.warning("tuner did not stop cleanly: %s", exc)
            self.live.set_state("draining")
            drained = self.drain(cfg.engine.drain_timeout_s)
            summary = self._summarise(elapsed, drained)
            self.live.record(elapsed, self.snapshot())
            self.live.set_state("finished")
        finally:
            signal.signal(signal.SIGINT, previous)
        self.world.finish_run(summary)
        return summary

    def _maintain_store(self) -> None:
        """The store's upkeep, here because the journal's writers leave it (Store.maintain);
        a failure is logged and tried again in a second, never the end of the run."""
        assert self.world is not None
        try:
            self.world.store.maintain()
        except Exception as exc:  # the back ends' own errors differ
            log.warning("store upkeep failed (tried again in 1 s): %s", exc)

    def snapshot(self) -> dict[str, Any]:
        """Every actor's cumulative stats (for the live panel and the drain check)."""
        assert self.actors is not None
        a = self.actors
        refs = {
            "feed": a.feed.stats.remote(),
            "shards": [s.stats.remote() for s in a.shards],
            "allocators": [x.stats.remote() for x in a.allocators],
            "routers": [r.stats.remote() for r in a.all_routers],
            "ledger": a.ledger.stats.remote(),
        }
        if a.tuner is not None:
            refs["tuner"] = a.tuner.stats.remote()
        if a.servers:
            refs["servers"] = [h.stats.remote() for h in a.servers.values()]
        return {
            "servers": ray.get(refs["servers"]) if "servers" in refs else [],
            "tuner": ray.get(refs["tuner"]) if "tuner" in refs else None,
            "feed": ray.get(refs["feed"]),
            "shards": ray.get(refs["shards"]),
            "allocators": ray.get(refs["allocators"]),
            "routers": ray.get(refs["routers"]),
            "ledger": ray.get(refs["ledger"]),
        }

    def drain(self, timeout_s: float) -> bool:
        """Wait until every batch sent between stages was received and venues have answered,
        then settle with the venues whatever the journal holds without a final answer.

        Without restarts the counters prove the drain (every batch sent was received). A
        restarted actor starts its counters again, so then the run is drained once nothing
        moves and no venue has an order in flight. Either way the journal has the last word:
        orders it holds without a recorded final answer are settled by client order id (adopted,
        resent or expired, see engine.recovery) until none is left. Gives up after `timeout_s`
        without progress (a venue that keeps answering, however slowly, is waited for: a
        backlog of orders over HTTP can take minutes to clear)."""
        assert self.actors is not None and self.world is not None
        deadline = time.monotonic() + timeout_s
        last_progress: tuple[int, ...] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            snap = self.snapshot()
            progress = _progress(snap)
            if progress != last_progress:
                last_progress = progress
                deadline = time.monotonic() + timeout_s
                quiet_since = time.monotonic()
            if _restarted(snap):
                settled = _quiet(snap) and time.monotonic() - quiet_since >= _QUIET_S
            else:
                settled = _drained(snap, len(self.actors.allocators))
            if settled:
                ray.get(self.actors.ledger.flush.remote())
                unanswered = self.settle()
                if unanswered == 0:
                    self.flush_recording()
                    return True
                quiet_since = time.monotonic()
            time.sleep(0.05)
        log.warning(
            "drain stopped after %.1f s without progress; the summary counts what had arrived",
            timeout_s,
        )
        ray.get(self.actors.ledger.flush.remote())
        self.flush_recording()
        return False

    def settle(self) -> int:
        """One settlement pass over this run's journaled orders without a recorded final
        answer: each router lane asks its venue about its orders (engine.recovery); returns how
        many orders were unsettled when the pass began (0: nothing to do)."""
        assert self.actors is not None and self.world is not None
        orders = self.world.store.unsettled_orders(self.run_id)
        if len(orders) == 0:
            return 0
        fresh_after = time.time_ns() - int(self.config.engine.resend_within_s * 1e9)
        refs = [
            self.actors.routers[venue][lane].resolve.remote(part, fresh_after)
            for (venue, lane), part in self.world.lanes_of(orders).items()
        ]
        counts = merge_counters(ray.get(refs))
        log.info("settled %d unanswered orders with the venues: %s", len(orders), counts)
        return len(orders)

    def flush_recording(self, timeout_s: float = 60.0) -> dict[str, Any] | None:
        """Write the recorder's buffered ticks to the tick store; its stats (None: no recorder)."""
        if self.actors is None or self.actors.recorder is None:
            return None
        recorder = self.actors.recorder
        try:
            ray.get(recorder.flush.remote(), timeout=timeout_s)
            stats: dict[str, Any] = ray.get(recorder.stats.remote(), timeout=timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            log.warning("tick recorder did not flush: %s", exc)
            return None
        return stats

    def _summarise(self, elapsed: float, drained: bool) -> dict[str, Any]:
        assert self.actors is not None and self.world is not None
        snap = self.snapshot()
        ledger_book: Any = ray.get(self.actors.ledger.positions.remote())
        venue_books, unread = self._venue_books()
        recon = wiring.reconcile(self.world, ledger_book, venue_books, unread)
        totals = ray.get(self.actors.ledger.totals.remote())
        summary = build_summary(
            self.config,
            elapsed,
            snap["feed"],
            snap["shards"],
            snap["allocators"],
            snap["routers"],
            totals,
            recon,
            self.world.store_checks(),
        )
        summary["drained"] = drained
        summary["run_id"] = self.run_id
        # Settled by the routers: at start, after a router's restart, in every drain (a
        # router's own count begins again if it restarts).
        settled = merge_counters(r["counters"] for r in snap["routers"])
        summary["recovery"] = {
            **{name: int(settled.get(f"recovered_{name}", 0)) for name in OUTCOMES},
            **self.recovery,
            "restarted_actors": sum(bool(part.get("restarted")) for part in _live_stats(snap)),
            "shards_resumed_from_checkpoint": sum(
                int(s["counters"].get("resumed_from_checkpoint", 0)) for s in snap["shards"]
            ),
        }
        summary["invariants"] = self._invariants(summary, _restarted(snap))
        summary["tick_store"] = self._recording_summary(snap["feed"])
        summary["venues"] = wiring.venue_summary(self.config, snap["routers"], snap["servers"])
        tuner = snap.get("tuner")
        summary["tuning"] = (
            {**tuner["tuning"], **tuner["counters"]} if tuner is not None else {"enabled": False}
        )
        return summary

    def _venue_books(self, attempts: int = 3) -> tuple[list[Any], list[str]]:
        """Every router's positions at its venue, each asked up to `attempts` times; what
        could not be read, as "router: error" (the reconciliation is then incomplete)."""
        assert self.actors is not None
        books: list[Any] = []
        unread: list[str] = []
        for index, router in enumerate(self.actors.all_routers):
            for attempt in range(attempts):
                try:
                    books.append(ray.get(router.positions.remote()))
                    break
                except ray.exceptions.RayError as exc:
                    if attempt + 1 == attempts:
                        cause = str(exc).strip().splitlines()[-1]
                        unread.append(f"router {index}: {cause}")
                        log.error("venue positions of router %d unreadable: %s", index, cause)
        return books, unread

    def _invariants(self, summary: dict[str, Any], restarted: bool) -> dict[str, Any]:
        """What a run must prove, from the store where counters cannot (an actor's counters
        begin again when it restarts): every journaled order has a final answer or was expired
        unsent, no client order id twice, the ledger equals the venues, and — while no actor
        restarted — every tick received was processed or rejected."""
        assert self.world is not None
        unsettled = len(self.world.store.unsettled_orders(self.run_id))
        ticks = None if restarted else int(summary["ticks"]["unaccounted"])
        checks = {
            "unsettled_orders": unsettled,
            "duplicate_client_order_ids": int(summary["orders"]["duplicate_client_order_ids"]),
            "position_mismatches": summary["reconciliation"]["position_mismatches"],
            "venue_books_unread": len(summary["reconciliation"]["venue_books_unread"]),
            "ticks_unaccounted": ticks,  # None: a restart began the counters again
        }
        ok = all(value in (0, None) for value in checks.values())
        return {**checks, "ok": ok}

    def _recording_summary(self, feed: dict[str, Any]) -> dict[str, Any]:
        if self.actors is None or self.actors.recorder is None:
            return {"recording": False}
        stats = self.flush_recording() or {"counters": {}, "dir": str(ticks_dir(self.config))}
        c = stats["counters"]
        return {
            "recording": True,
            "dir": stats["dir"],
            "ticks_sent": int(feed["counters"].get("ticks_to_recorder", 0)),
            "rows_written": int(c.get("rows_written", 0)),
            "rows_already_stored": int(c.get("rows_already_stored", 0)),
            "rows_pending": int(c.get("rows_pending", 0)),
            "rows_dropped": int(c.get("rows_dropped", 0)),
            "errors": int(c.get("errors", 0)) + int(feed["counters"].get("recorder_errors", 0)),
        }

    def shutdown(self) -> None:
        if self.actors is not None:
            self.actors.feed.stop.remote()
            self.flush_recording(timeout_s=10.0)  # a run cut short keeps what it recorded
            for handle in [
                self.actors.feed,
                *self.actors.shards,
                *self.actors.allocators,
                *self.actors.all_routers,
                self.actors.ledger,
                *([self.actors.recorder] if self.actors.recorder is not None else []),
                *([self.actors.tuner] if self.actors.tuner is not None else []),
                *self.actors.servers.values(),
            ]:
                ray.kill(handle)
            self.actors = None
            self._pinned.clear()
        if self.world is not None:
            self.world.close()
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _make_recorder(
    root: str, registry: InstrumentRegistry, flush_s: float, flush_rows: int
) -> TickRecorder:
    return TickRecorder(TickStore(Path(root)), registry, flush_s, flush_rows)


_QUIET_S = 1.0  # after a restart, a run whose counters stood still this long has drained


def _progress(snap: dict[str, Any]) -> tuple[int, ...]:
    """What moves while a drain is making progress: ticks, signals, orders and answers."""
    return (
        sum(s["counters"]["ticks_processed"] for s in snap["shards"]),
        sum(a["counters"]["signal_batches_received"] for a in snap["allocators"]),
        sum(a["counters"]["orders_routed"] for a in snap["allocators"]),
        sum(r["counters"]["orders_received"] for r in snap["routers"]),
        sum(r["counters"]["executions_forwarded"] for r in snap["routers"]),
        int(snap["ledger"]["counters"]["executions_applied"]),
    )


def _live_stats(snap: dict[str, Any]) -> list[dict[str, Any]]:
    """The stats of every restartable live actor in a snapshot."""
    return [snap["feed"], *snap["shards"], *snap["allocators"], *snap["routers"], snap["ledger"]]


def _restarted(snap: dict[str, Any]) -> bool:
    """Whether Ray restarted any live actor during the run (its counters began again)."""
    return any(part.get("restarted", False) for part in _live_stats(snap))


def _quiet(snap: dict[str, Any]) -> bool:
    """The feed has stopped and no venue has an order in flight."""
    return not snap["feed"]["running"] and sum(r["pending"] for r in snap["routers"]) == 0


def _drained(snap: dict[str, Any], n_allocators: int) -> bool:
    feed = snap["feed"]
    if feed["running"]:
        return False
    fwd = feed["counters"]["ticks_forwarded"]
    processed = sum(s["counters"]["ticks_processed"] for s in snap["shards"])
    sig_sent = sum(s["counters"]["signal_batches_sent"] for s in snap["shards"])
    sig_recv = sum(a["counters"]["signal_batches_received"] for a in snap["allocators"])
    routed = sum(a["counters"]["orders_routed"] for a in snap["allocators"])
    received = sum(r["counters"]["orders_received"] for r in snap["routers"])
    pending = sum(r["pending"] for r in snap["routers"])
    forwarded = sum(r["counters"]["executions_forwarded"] for r in snap["routers"])
    applied = snap["ledger"]["counters"]["executions_applied"]
    return (
        fwd == processed
        and sig_recv == sig_sent * n_allocators
        and routed == received
        and pending == 0
        and forwarded == applied
    )


def _install_sigint(handler: Callable[[], None]) -> Any:
    def on_sigint(signum: int, frame: FrameType | None) -> None:
        handler()

    return signal.signal(signal.SIGINT, on_sigint)


def write_summary(summary: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=_json_default)
        fh.write("\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
