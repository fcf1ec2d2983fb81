"""Shared fixtures for the market-data tests: the recorded-data folder (skip when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tickwise.data.readers import default_data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = default_data_root()
    if root is None or not (root / "equities/us/lean/tick").is_dir():
        pytest.skip("recorded market data not available (set TICKWISE_DATA)")
    return root
