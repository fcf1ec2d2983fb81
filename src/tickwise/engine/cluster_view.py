"""What Ray says about the cluster, for the dashboard: nodes and resources."""

from __future__ import annotations

from typing import Any

import ray


def cluster_view() -> dict[str, Any]:
    """Every node Ray knows (alive or not) and the cluster's CPU, GPU and memory, total and
    available now."""
    nodes = [
        {
            "node_id": str(n.get("NodeID", "")),
            "address": str(n.get("NodeManagerAddress", "")),
            "alive": bool(n.get("Alive", False)),
            "cpus": float(n.get("Resources", {}).get("CPU", 0.0)),
            "gpus": float(n.get("Resources", {}).get("GPU", 0.0)),
            "memory_gb": round(float(n.get("Resources", {}).get("memory", 0.0)) / 2**30, 2),
        }
        for n in ray.nodes()
    ]
    total, free = ray.cluster_resources(), ray.available_resources()
    resources = {
        name: {"total": float(total.get(name, 0.0)), "available": float(free.get(name, 0.0))}
        for name in ("CPU", "GPU")
        if name in total
    }
    return {"nodes": nodes, "resources": resources}
