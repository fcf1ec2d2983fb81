"""Identifier types and the deterministic client order id.

A client order id is derived from (signal id, client id) alone, so re-deriving it after a crash
gives the same id and a venue refuses the duplicate instead of trading twice. The format fits
every venue's rule at once (E*Trade's is the tightest: at most 20 alphanumerics):

    "T" + base36(signal_id, 13 chars) + base36(client_id, 4 chars)  ->  18 chars, [0-9A-Z]

A signal id packs the microsecond of the tick that caused it (since 2020-01-01 UTC, 50 bits)
with the instrument index (13 bits), so it is unique forever without coordination and the same
tick always yields the same signal id.
"""

from __future__ import annotations

from typing import NewType

import numpy as np
import numpy.typing as npt

ClientId = NewType("ClientId", int)
PortfolioId = NewType("PortfolioId", int)
InstrumentIndex = NewType("InstrumentIndex", int)
SignalId = NewType("SignalId", int)
AccountId = NewType("AccountId", str)
ClientOrderId = NewType("ClientOrderId", str)
VenueOrderId = NewType("VenueOrderId", str)

EPOCH_2020_NS = 1_577_836_800_000_000_000
INSTRUMENT_BITS = 13
MAX_INSTRUMENTS = 1 << INSTRUMENT_BITS
MAX_CLIENTS = 36**4
COID_PREFIX = "T"
COID_LEN = 1 + 13 + 4
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", dtype=np.uint8)
_SIGNAL_DIGITS = 13
_CLIENT_DIGITS = 4


def signal_ids(instrument: npt.ArrayLike, ts_event_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Signal ids for ticks (vectorised). Raises on instruments or times out of range."""
    inst = np.asarray(instrument, dtype=np.int64)
    ts = np.asarray(ts_event_ns, dtype=np.int64)
    if inst.size and (inst.min() < 0 or inst.max() >= MAX_INSTRUMENTS):
        raise ValueError(f"instrument index out of range 0..{MAX_INSTRUMENTS - 1}")
    micros = (ts - EPOCH_2020_NS) // 1000
    if micros.size and (micros.min() < 0 or micros.max() >= (1 << 50)):
        raise ValueError("ts_event out of the signal-id range (2020 .. 2055)")
    return np.asarray((micros << INSTRUMENT_BITS) | inst, dtype=np.int64)


def signal_id(instrument: int, ts_event_ns: int) -> SignalId:
    return SignalId(int(signal_ids(np.array([instrument]), np.array([ts_event_ns]))[0]))


def _base36(values: npt.NDArray[np.int64], digits: int) -> npt.NDArray[np.uint8]:
    out = np.empty((values.size, digits), dtype=np.uint8)
    rest = values.astype(np.int64).copy()
    for pos in range(digits - 1, -1, -1):
        out[:, pos] = _ALPHABET[rest % 36]
        rest //= 36
    if rest.size and rest.max() > 0:
        raise ValueError(f"value does not fit in {digits} base-36 digits")
    return out


def client_order_ids(signal_id: npt.ArrayLike, client_id: npt.ArrayLike) -> npt.NDArray[np.bytes_]:
    """Client order ids for (signal, client) pairs, vectorised, as a fixed-width bytes array."""
    sig = np.asarray(signal_id, dtype=np.int64).ravel()
    cli = np.asarray(client_id, dtype=np.int64).ravel()
    sig, cli = np.broadcast_arrays(sig, cli)
    if cli.size and (cli.min() < 0 or cli.max() >= MAX_CLIENTS):
        raise ValueError(f"client id out of range 0..{MAX_CLIENTS - 1}")
    if sig.size and sig.min() < 0:
        raise ValueError("signal id must be non-negative")
    chars = np.empty((sig.size, COID_LEN), dtype=np.uint8)
    chars[:, 0] = ord(COID_PREFIX)
    chars[:, 1 : 1 + _SIGNAL_DIGITS] = _base36(sig, _SIGNAL_DIGITS)
    chars[:, 1 + _SIGNAL_DIGITS :] = _base36(cli, _CLIENT_DIGITS)
    return chars.view(f"S{COID_LEN}").ravel()


def client_order_id(signal: int, client: int) -> ClientOrderId:
    return ClientOrderId(client_order_ids([signal], [client])[0].decode("ascii"))


def parse_client_order_id(coid: str) -> tuple[SignalId, ClientId]:
    """Inverse of `client_order_id`; raises ValueError on anything tickwise did not make."""
    if len(coid) != COID_LEN or not coid.startswith(COID_PREFIX) or not coid.isalnum():
        raise ValueError(f"not a tickwise client order id: {coid!r}")
    body = coid[1:]
    try:
        sig = int(body[:_SIGNAL_DIGITS], 36)
        cli = int(body[_SIGNAL_DIGITS:], 36)
    except ValueError:
        raise ValueError(f"not a tickwise client order id: {coid!r}") from None
    return SignalId(sig), ClientId(cli)
