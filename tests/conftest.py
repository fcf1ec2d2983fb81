"""Fixtures shared by the integration and chaos tests: one local Ray for the whole session
(starting it costs seconds)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import ray

from tickwise.venues.credentials import MASTER_KEY_ENV, MasterKey


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    # Router processes open venue credentials with the master key: Ray's workers inherit the
    # environment Ray was started with, so the (throw-away) key is set before it starts.
    os.environ.setdefault(MASTER_KEY_ENV, MasterKey.generate().to_base64())
    ray.init(include_dashboard=False, num_cpus=2, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
