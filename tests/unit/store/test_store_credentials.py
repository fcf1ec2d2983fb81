"""Encrypted venue credentials as every back end stores them: upsert, lane loads, counts. (Sealing
and opening them is tested with the vault, in the venues tests.)"""

from __future__ import annotations

import numpy as np

from tickwise.model.instruments import Venue
from tickwise.store import Store
from tickwise.store.base import EncryptedCredential


def row(
    client: int, venue: Venue, secret: bytes = b"\x00sealed\xff", ns: int = 1
) -> EncryptedCredential:
    return EncryptedCredential(
        client_id=client,
        venue=venue,
        kind="binance_hmac" if venue is Venue.BINANCE else "alpaca_trading",
        key_id=f"key-{client}",
        account_id=f"acct-{client}" if venue is not Venue.BINANCE else "",
        nonce=bytes(12),
        ciphertext=secret,
        master_key_id="mk-1",
        updated_ns=ns,
    )


def test_credentials_round_trip_by_client_and_venue(store: Store) -> None:
    rows = [row(c, Venue.BINANCE) for c in (30, 2, 11)] + [row(2, Venue.ALPACA)]
    assert store.save_credentials(rows) == 4
    lane = store.load_credentials([30, 2, 11, 2, 99], Venue.BINANCE)
    assert [r.client_id for r in lane] == [2, 11, 30]  # by client id, unknown ones left out
    assert lane[0] == rows[1]
    assert isinstance(lane[0].ciphertext, bytes) and isinstance(lane[0].venue, Venue)
    assert store.load_credentials(np.array([2]), Venue.ALPACA) == [rows[3]]
    assert store.load_credentials(np.array([], dtype=np.int64), Venue.ALPACA) == []
    assert store.credential_count() == 4
    assert store.credential_count(Venue.BINANCE) == 3
    assert store.credential_count(Venue.ETRADE) == 0


def test_saving_again_replaces_a_clients_row_at_that_venue(store: Store) -> None:
    store.save_credentials([row(5, Venue.BINANCE, b"one", ns=1)])
    assert store.save_credentials([row(5, Venue.BINANCE, b"two", ns=2)]) == 1
    assert store.save_credentials([]) == 0
    (back,) = store.load_credentials([5], Venue.BINANCE)
    assert back.ciphertext == b"two" and back.updated_ns == 2
    assert store.credential_count() == 1


def test_a_lane_of_many_clients_loads_in_one_call(store: Store) -> None:
    store.save_credentials([row(c, Venue.ALPACA) for c in range(1_500)])
    lane = store.load_credentials(np.arange(0, 1_500, 2), Venue.ALPACA)
    assert [r.client_id for r in lane] == list(range(0, 1_500, 2))
