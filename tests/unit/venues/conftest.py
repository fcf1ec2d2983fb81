"""Fixtures for the venue tests (the pieces themselves live in `venue_orders`)."""

from __future__ import annotations

import pytest
from venue_orders import OrderFactory, orders, small_registry

from tickwise.model.instruments import InstrumentRegistry


@pytest.fixture(scope="session")
def registry() -> InstrumentRegistry:
    return small_registry()


@pytest.fixture()
def make_orders() -> OrderFactory:
    return orders
