"""Integration fixtures: one local Ray for the whole session (starting it costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
