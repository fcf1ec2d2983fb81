"""A `tiny` run on a Ray cluster of three nodes — a head and two workers, each started with
`ray start` as an operator would, here all on one machine — loses a worker node mid-run: Ray
restarts the node's actors on the surviving nodes, and nothing is lost or doubled (every
journaled order answered or expired unsent, no client order id twice, the ledger's positions
equal the venues' for every client).

The nodes are `ray start --block` processes in sessions of their own: each is the parent of its
node's processes (raylet, agents, the workers the raylet starts), so killing that process tree
at once is the death of a machine, and the teardown stops only the processes this test started.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import ray

from chaos.invariants import assert_invariants, tiny_http_config
from tickwise.engine.controller import Engine
from tickwise.venues.credentials import MASTER_KEY_ENV, MasterKey

RAY = Path(sys.executable).with_name("ray")  # the CLI installed beside this interpreter

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.skipif(not RAY.exists(), reason="the `ray` command is not installed"),
    pytest.mark.skipif(
        not Path("/proc/self/stat").exists(), reason="finds a node's processes in /proc"
    ),
]

KILL_AT_S = 5.0
# The restartable live stages (their classes in the cluster's actor table).
LIVE_STAGES = {
    "FeedActor",
    "StrategyShardActor",
    "AllocatorActor",
    "VenueRouterActor",
    "LedgerActor",
}
# The head declares a lost node dead within seconds of its last answer (the defaults take ~15 s).
FAST_NODE_DEATH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "5",
}


def _auth_env() -> dict[str, str]:
    """The nodes authenticate as this process's Ray client will: a cluster and its drivers must
    agree. Ray reads `RAY_AUTH_MODE` when it is imported (a local `ray.init()` turns it to
    token for its process); unset, it is off here, so it is off on the nodes too, where
    `ray start` would otherwise turn it on by itself whenever a token file exists."""
    mode = os.environ.get("RAY_AUTH_MODE", "disabled")
    if mode == "token":  # the token every node and this process read (created if missing)
        subprocess.run([str(RAY), "get-auth-token", "--generate"], check=True, capture_output=True)
    return {"RAY_AUTH_MODE": mode}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


@dataclass
class RayNode:
    """One node of the cluster: its `ray start --block` process and the node manager's port
    (how Ray's node table names it)."""

    name: str
    process: subprocess.Popen[bytes]
    node_manager_port: int
    node_id: str = ""

    def pids(self) -> list[int]:
        """The node's processes: `ray start` and all its descendants."""
        tree, found, todo = _children(), [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(tree.get(pid, []))
        return found

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as if its machine died."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # strays reparented away from the tree
        self.process.wait(timeout=30)


@dataclass
class LocalCluster:
    """A head and worker nodes on this machine, in a temp dir and on ports of their own."""

    root: Path
    env: dict[str, str]
    address: str = ""
    nodes: list[RayNode] = field(default_factory=list)

    def start(self, workers: dict[str, str]) -> None:
        """Start the head, then each worker (name: its resources) once the node before it has
        joined: nodes on one machine share the head's session directory, and two starting at
        once would pick the same socket names in it."""
        self._launch("head", '{"head": 1}', head=True)
        self._wait_for_gcs()
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            self._wait_for(self.nodes[0])
            for name, resources in workers.items():
                self._wait_for(self._launch(name, resources))
        finally:
            ray.shutdown()

    def _launch(self, name: str, resources: str, head: bool = False) -> RayNode:
        manager_port = _free_port()
        workers = 21_000 + 200 * len(self.nodes)  # a worker port range per node
        args = [
            str(RAY),
            "start",
            "--block",
            "--num-cpus=1",
            f"--resources={resources}",
            "--object-store-memory=300000000",
            f"--node-manager-port={manager_port}",
            f"--object-manager-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            f"--min-worker-port={workers}",
            f"--max-worker-port={workers + 199}",
            "--disable-usage-stats",
        ]
        if head:
            gcs_port = _free_port()
            # The machine's own address, the one Ray resolves a local address to anyway.
            self.address = f"{ray.util.get_node_ip_address()}:{gcs_port}"
            args += [
                "--head",
                f"--port={gcs_port}",
                "--include-dashboard=false",
                f"--temp-dir={self.root}",
            ]
            if importlib.util.find_spec("grpc") is not None:  # Ray's client server starts
                args.append(f"--ray-client-server-port={_free_port()}")  # (default 10001)
        else:
            args.append(f"--address={self.address}")
        with open(self.root / f"{name}.log", "wb") as log:  # the node keeps its own copy
            process = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        node = RayNode(name, process, manager_port)
        self.nodes.append(node)
        return node

    def _wait_for_gcs(self, timeout_s: float = 120.0) -> None:
        """Until the head's GCS takes connections (a driver can attach from then on)."""
        deadline = time.monotonic() + timeout_s
        host, port = self.address.rsplit(":", 1)
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1.0):
                return
            head = self.nodes[0]
            assert head.process.poll() is None, self._log(head)
            assert time.monotonic() < deadline, self._log(head)
            time.sleep(0.5)

    def _wait_for(self, node: RayNode, timeout_s: float = 120.0) -> None:
        """Until `node` is alive in Ray's node table; learns its node id."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = {n["NodeManagerPort"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
            if node.node_manager_port in alive:
                node.node_id = alive[node.node_manager_port]
                return
            assert node.process.poll() is None, self._log(node)
            assert time.monotonic() < deadline, self._log(node)
            time.sleep(0.5)

    def teardown(self) -> None:
        """Stop every process of every node this cluster started (and nothing else)."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def _log(self, node: RayNode) -> str:
        """The end of what `ray start` printed for `node` (why it did not come up)."""
        text = (self.root / f"{node.name}.log").read_text(errors="replace")[-3000:]
        for raylet in sorted((self.root / "session_latest" / "logs").glob("raylet*.out")):
            text += f"\n{raylet.name}: {raylet.read_text(errors='replace')[-1500:]}"
        return f"node {node.name} did not come up: {text}"


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """A head and two worker nodes, each with a resource of its own; torn down afterwards."""
    if ray.is_initialized():  # a driver attaches to one cluster at a time
        ray.shutdown()
    # Router processes open venue credentials with the master key: every node's processes
    # inherit the environment their node was started with.
    os.environ.setdefault(MASTER_KEY_ENV, MasterKey.generate().to_base64())
    env = {**os.environ, **FAST_NODE_DEATH, **_auth_env()}
    # A short root: Ray's socket paths live under it and must stay within the OS's limit.
    local = LocalCluster(Path(tempfile.mkdtemp(prefix="tw-ray-")), env)
    try:
        local.start({"node_a": '{"node_a": 1}', "node_b": '{"node_b": 1}'})
        yield local
    finally:
        if ray.is_initialized():
            ray.shutdown()
        local.teardown()


def _live_placement() -> dict[str, list[dict[str, Any]]]:
    """The live stages of this driver's job that are alive, by the node they run on, from the
    cluster's actor table (the state API needs the dashboard, which this cluster runs without)."""
    job = ray.get_runtime_context().get_job_id()
    by_node: dict[str, list[dict[str, Any]]] = {}
    for actor in ray._private.state.actors().values():
        if (
            actor["JobID"] == job
            and actor["ActorClassName"].rsplit(".", 1)[-1] in LIVE_STAGES
            and actor["State"] == "ALIVE"
        ):
            by_node.setdefault(actor["Address"]["NodeID"], []).append(actor)
    return by_node


def test_losing_a_worker_node_mid_run_moves_its_actors_and_loses_and_doubles_nothing(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    config = tiny_http_config(f"sqlite:///{tmp_path / 'tw.sqlite'}")
    config = replace(config, engine=replace(config.engine, address=cluster.address))
    engine = Engine(config)
    try:
        engine.start()
        before = _live_placement()
        workers = [n for n in cluster.nodes if n.name != "head"]
        victim = max(workers, key=lambda n: len(before.get(n.node_id, [])))
        moved = {a["ActorID"] for a in before.get(victim.node_id, [])}
        assert len(before) >= 2, before  # spread over more than one node
        assert moved, f"no live stage on a worker node: {before}, {ray._private.state.actors()}"

        timer = threading.Timer(KILL_AT_S, victim.kill)
        timer.start()
        try:
            summary = engine.run()
        finally:
            timer.cancel()
        after = _live_placement()
    finally:
        engine.shutdown()

    assert victim.process.poll() is not None, "the worker node was not killed during the run"
    assert victim.node_id not in after, after
    survivors = {a["ActorID"]: a for actors in after.values() for a in actors}
    assert moved <= survivors.keys(), (moved, survivors.keys())
    assert all(survivors[a]["NumRestarts"] >= 1 for a in moved), survivors
    assert summary["recovery"]["restarted_actors"] >= 1, summary["recovery"]
    assert_invariants(summary, config.store.url)
