"""Venue credentials in SQL: upsert encrypted rows, load a router lane's rows in one read.

Functions take an open `Tx` so the caller decides the transaction. Rows hold ciphertext
only; sealing and opening them is `tickwise.venues.credentials`' job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import Venue
from tickwise.store.base import EncryptedCredential
from tickwise.store.tx import Tx, in_lists

_COLUMNS = (
    "client_id, venue, kind, key_id, account_id, nonce, ciphertext, master_key_id, updated_ns"
)
_UPSERT = (
    f"INSERT INTO credentials ({_COLUMNS}) VALUES ({', '.join('?' * 9)})"
    " ON CONFLICT (client_id, venue) DO UPDATE SET kind = excluded.kind,"
    " key_id = excluded.key_id, account_id = excluded.account_id, nonce = excluded.nonce,"
    " ciphertext = excluded.ciphertext, master_key_id = excluded.master_key_id,"
    " updated_ns = excluded.updated_ns"
)


def _row(c: EncryptedCredential) -> tuple[Any, ...]:
    return (
        int(c.client_id),
        int(c.venue),
        c.kind,
        c.key_id,
        c.account_id,
        bytes(c.nonce),
        bytes(c.ciphertext),
        c.master_key_id,
        int(c.updated_ns),
    )


def _credential(r: Sequence[Any]) -> EncryptedCredential:
    return EncryptedCredential(
        client_id=int(r[0]),
        venue=Venue(r[1]),
        kind=r[2],
        key_id=r[3],
        account_id=r[4],
        nonce=bytes(r[5]),
        ciphertext=bytes(r[6]),
        master_key_id=r[7],
        updated_ns=int(r[8]),
    )


def write_credentials(tx: Tx, rows: Sequence[EncryptedCredential]) -> int:
    """Insert or replace `rows` (keyed by client and venue); returns rows written."""
    return tx.many(_UPSERT, [_row(c) for c in rows])


def read_credentials(tx: Tx, client_ids: npt.ArrayLike, venue: Venue) -> list[EncryptedCredential]:
    """The rows of `client_ids` at `venue`, by ascending client id, in chunked `IN` lookups
    (each a primary-key probe), so 30,000 clients cost 60 short queries, not 30,000."""
    ids = np.unique(np.asarray(client_ids, dtype=np.int64).ravel()).tolist()
    found: list[EncryptedCredential] = []
    for marks, chunk in in_lists(ids):
        rows = tx.rows(
            f"SELECT {_COLUMNS} FROM credentials WHERE venue = ? AND client_id IN ({marks})"
            " ORDER BY client_id",
            [int(venue), *chunk],
        )
        found.extend(_credential(r) for r in rows)
    return found


def count_credentials(tx: Tx, venue: Venue | None) -> int:
    if venue is None:
        return int(tx.scalar("SELECT COUNT(*) FROM credentials"))
    return int(tx.scalar("SELECT COUNT(*) FROM credentials WHERE venue = ?", (int(venue),)))
