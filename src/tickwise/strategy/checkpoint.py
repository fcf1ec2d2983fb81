"""A strategy shard's snapshot as bytes for the store, and back: numpy's `.npz` for the arrays
and JSON for the rest, never pickle (a checkpoint is data read back by a restarted process).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

_META = "meta.json"


def snapshot_to_bytes(snapshot: dict[str, Any]) -> bytes:
    """`StrategyShard.snapshot()` as bytes."""
    families = snapshot["families"]
    meta = {
        "version": snapshot["version"],
        "strategies": list(snapshot["strategies"]),
        "counters": {k: int(v) for k, v in snapshot.get("counters", {}).items()},
        "families": list(families),
    }
    arrays: dict[str, Any] = {
        _META: np.frombuffer(json.dumps(meta).encode(), np.uint8),
        "instruments": np.asarray(snapshot["instruments"]),
    }
    for index, family in enumerate(families):
        for key in ("members", "states", "params"):
            arrays[f"{index}.{key}"] = np.asarray(families[family][key])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def snapshot_from_bytes(payload: bytes) -> dict[str, Any]:
    """The snapshot `snapshot_to_bytes` wrote; ValueError for anything else."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as saved:
            meta = json.loads(bytes(saved[_META]).decode())
            families = {
                family: {key: saved[f"{index}.{key}"] for key in ("members", "states", "params")}
                for index, family in enumerate(meta["families"])
            }
            instruments = saved["instruments"]
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a strategy checkpoint: {exc}") from None
    return {
        "version": meta["version"],
        "instruments": instruments,
        "strategies": meta["strategies"],
        "families": families,
        "counters": meta.get("counters", {}),
    }
