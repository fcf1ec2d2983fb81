"""Instrument registry rules and tick batch plumbing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.model.instruments import AssetClass, Instrument, InstrumentRegistry, Venue
from tickwise.model.ticks import TickBatch


def _registry() -> InstrumentRegistry:
    return InstrumentRegistry(
        [
            Instrument(0, "AAPL", AssetClass.EQUITY, 0.01, 1e-9, 1.0, True),
            Instrument(1, "BRK.A", AssetClass.EQUITY, 0.01, 1.0, 1.0, False),
            Instrument(2, "BTC/USD", AssetClass.CRYPTO, 0.01, 1e-5, 5.0, True),
        ]
    )


def test_registry_maps_symbols_to_dense_indexes() -> None:
    reg = _registry()
    assert reg.by_symbol("BTC/USD").index == 2
    assert "AAPL" in reg and "MSFT" not in reg
    with pytest.raises(KeyError, match="MSFT"):
        reg.by_symbol("MSFT")


def test_registry_refuses_gaps_and_duplicates() -> None:
    with pytest.raises(ValueError, match="dense"):
        InstrumentRegistry([Instrument(1, "A", AssetClass.EQUITY, 0.01, 1.0, 1.0, False)])
    with pytest.raises(ValueError, match="duplicate"):
        InstrumentRegistry(
            [
                Instrument(0, "A", AssetClass.EQUITY, 0.01, 1.0, 1.0, False),
                Instrument(1, "A", AssetClass.EQUITY, 0.01, 1.0, 1.0, False),
            ]
        )


def test_venue_increments_come_from_venue_rules() -> None:
    reg = _registry()
    assert reg.quantity_increment(Venue.ALPACA).tolist() == [1e-9, 1.0, 1e-5]
    assert reg.quantity_increment(Venue.ETRADE).tolist() == [1.0, 1.0, 1e-5]
    assert reg.tradable_at(Venue.BINANCE).tolist() == [False, False, True]
    assert reg.tradable_at(Venue.ETRADE).tolist() == [True, True, False]
    assert np.isinf(reg.venue_min_notional(Venue.BINANCE)[:2]).all()
    assert reg.venue_min_notional(Venue.BINANCE)[2] == 5.0


def test_instrument_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="tick_size"):
        Instrument(0, "X", AssetClass.EQUITY, 0.0, 1.0, 1.0, False)


@given(st.lists(st.integers(0, 9), max_size=200), st.integers(1, 5))
def test_split_by_shard_keeps_every_tick_once_and_in_order(insts: list[int], shards: int) -> None:
    n = len(insts)
    batch = TickBatch.from_arrays(insts, np.arange(n), np.ones(n), np.ones(n), np.zeros(n))
    shard_of = np.arange(10) % shards
    parts = batch.split(shard_of, shards)
    assert sum(len(p) for p in parts) == n
    for s, part in enumerate(parts):
        assert (shard_of[part.instrument] == s).all()
        assert (np.diff(part.ts_event) > 0).all()


def test_records_round_trip() -> None:
    batch = TickBatch.from_arrays([1, 2], [10, 20], [1.5, 2.5], [100, 0], [0, 1], ts_recv=[11, 21])
    back = TickBatch.from_records(batch.to_records())
    assert back.ts_recv.tolist() == [11, 21] and back.price.tolist() == [1.5, 2.5]
