"""The fuzz suite's Hypothesis profile: a fast, reproducible default and a deeper opt-in run.

By default every property runs a share of `DEFAULT_EXAMPLES` examples with a fixed seed per
test (`derandomize`), no deadline and no example database, so the suite takes well under a
minute and a failure reproduces on any machine. `TICKWISE_FUZZ_EXAMPLES=5000` runs deeper.
The profile is applied per test (`fuzzing.budget`), never loaded globally, so the rest of the
suite keeps its own Hypothesis settings.
"""

from __future__ import annotations

import os

from fuzzing import PROFILE
from hypothesis import HealthCheck, settings

DEFAULT_EXAMPLES = 150


def _examples() -> int:
    raw = os.environ.get("TICKWISE_FUZZ_EXAMPLES", "")
    try:
        return max(1, int(raw)) if raw else DEFAULT_EXAMPLES
    except ValueError:
        raise ValueError(f"TICKWISE_FUZZ_EXAMPLES must be a whole number, got {raw!r}") from None


settings.register_profile(
    PROFILE,
    max_examples=_examples(),
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
