"""Client credentials for the venues, encrypted at rest and redacted everywhere else.

A `Credential` is one client's keys at one venue: public parts (key id, account id) in clear and
the secret parts in a `Secret`, whose repr, str and format all read "***" and which refuses to be
pickled, so a secret cannot leak through a log line, an exception or an actor message. The
router loads the rows of its lane from the store and opens them in its own process with a
`CredentialVault`.

The vault seals the secret parts with AES-256-GCM: a random 96-bit nonce per row, and as
associated data the row's client, venue, kind, key id and account id (a JSON list, so no field
can bleed into the next), so a row altered or moved to another client fails to open. The master
key comes from the environment (`MasterKey.from_env`) and its id is stored with every row, so a
rotation can be staged: `vault.rotate(new_key, rows)` re-seals rows under the new key while rows
still under the old one keep opening.

Errors: `CredentialError` (a ValueError) for anything that cannot be opened or built;
`MasterKeyError` (a `CredentialError`) for a missing or malformed master key. No message ever
holds a secret or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, NoReturn

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tickwise.model.instruments import Venue
from tickwise.store.base import EncryptedCredential

if TYPE_CHECKING:
    from tickwise.store.base import Store

MASTER_KEY_ENV = "TICKWISE_MASTER_KEY"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # 96-bit GCM nonce, random per row
REDACTED = "***"
SIMULATOR_PREFIX = "SIM"  # marks every credential `demo_credential` makes


class CredentialError(ValueError):
    """A credential could not be built, sealed or opened (wrong key, altered or moved row)."""


class MasterKeyError(CredentialError):
    """The master key is missing or malformed."""


class CredentialKind(Enum):
    """The shape of a venue's credentials: its venue and the names of its secret parts (a kind
    with one secret names it "secret", what `Secret("...")` builds)."""

    ALPACA_TRADING = ("alpaca_trading", Venue.ALPACA, ("secret",))
    """Trading API: key id (`APCA-API-KEY-ID`) + secret key, one account per key."""
    ALPACA_BROKER = ("alpaca_broker", Venue.ALPACA, ("secret",))
    """Broker API: broker key id + secret (HTTP Basic) and the end customer's account id."""
    BINANCE_HMAC = ("binance_hmac", Venue.BINANCE, ("secret",))
    """API key (`X-MBX-APIKEY`) + HMAC-SHA256 secret."""
    BINANCE_ED25519 = ("binance_ed25519", Venue.BINANCE, ("secret",))
    """API key + Ed25519 private key (PEM text as the secret)."""
    ETRADE_OAUTH = (
        "etrade_oauth",
        Venue.ETRADE,
        ("consumer_secret", "oauth_token", "oauth_token_secret"),
    )
    """Consumer key + consumer secret, OAuth 1.0a access token + token secret; account id key."""

    def __init__(self, label: str, venue: Venue, secret_parts: tuple[str, ...]) -> None:
        self.label = label
        self.venue = venue
        self.secret_parts = secret_parts

    def __repr__(self) -> str:
        return f"CredentialKind.{self.name}"

    @classmethod
    def parse(cls, text: str) -> CredentialKind:
        for kind in cls:
            if kind.label == text:
                return kind
        names = ", ".join(k.label for k in cls)
        raise CredentialError(f"unknown credential kind {text!r} (expected one of: {names})")


# The kind the simulator seeds per venue: one set of keys per client account.
DEFAULT_KIND: dict[Venue, CredentialKind] = {
    Venue.ALPACA: CredentialKind.ALPACA_TRADING,
    Venue.BINANCE: CredentialKind.BINANCE_HMAC,
    Venue.ETRADE: CredentialKind.ETRADE_OAUTH,
}


class Secret:
    """The secret parts of a credential. Reads "***" in every repr, str and format; `reveal`
    gives the value to the code that signs a request, and nothing else should hold it."""

    __slots__ = ("_parts",)
    __hash__ = None  # type: ignore[assignment]  # never a dict key: hashes can be compared

    def __init__(self, parts: str | Mapping[str, str]) -> None:
        value = {"secret": parts} if isinstance(parts, str) else dict(parts)
        if not value or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise CredentialError("a secret needs at least one part, each a name and a text value")
        self._parts: Mapping[str, str] = MappingProxyType(value)

    @property
    def part_names(self) -> tuple[str, ...]:
        return tuple(self._parts)

    def reveal(self, part: str | None = None) -> str:
        """The value of `part` (the only part when None)."""
        if part is None:
            if len(self._parts) != 1:
                raise CredentialError(f"secret has parts {self.part_names}: name the one wanted")
            return next(iter(self._parts.values()))
        try:
            return self._parts[part]
        except KeyError:
            raise CredentialError(f"secret has no part {part!r} (has {self.part_names})") from None

    def reveal_bytes(self, part: str | None = None) -> bytes:
        return self.reveal(part).encode()

    def to_plaintext(self) -> bytes:
        """The bytes the vault seals (canonical JSON of the parts)."""
        return json.dumps(dict(self._parts), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_plaintext(cls, data: bytes) -> Secret:
        try:
            parts = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CredentialError("opened secret is not the expected JSON object") from None
        if not isinstance(parts, dict):
            raise CredentialError("opened secret is not the expected JSON object")
        return cls(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.to_plaintext(), other.to_plaintext())

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is never pickled: open credentials in the process that uses them")


@dataclass(frozen=True, slots=True)
class Credential:
    """One client's credentials at one venue. `key_id` is the public key id (Alpaca key id,
    Binance API key, E*Trade consumer key); `account_id` the venue account (Alpaca Broker account
    id, E*Trade account id key; "" where the key is the account)."""

    client_id: int
    venue: Venue
    kind: CredentialKind
    key_id: str
    account_id: str
    secret: Secret

    def __post_init__(self) -> None:
        if self.kind.venue is not self.venue:
            raise CredentialError(
                f"client {self.client_id}: credential kind {self.kind.label} is for "
                f"{self.kind.venue.label}, not {self.venue.label}"
            )
        if set(self.secret.part_names) != set(self.kind.secret_parts):
            raise CredentialError(
                f"client {self.client_id} at {self.venue.label}: a {self.kind.label} secret has "
                f"parts {self.kind.secret_parts}, got {self.secret.part_names}"
            )
        if not self.key_id:
            raise CredentialError(f"client {self.client_id} at {self.venue.label}: empty key id")

    def associated_data(self) -> bytes:
        return _associated_data(
            self.client_id, self.venue, self.kind.label, self.key_id, self.account_id
        )


def _associated_data(
    client_id: int, venue: Venue, kind: str, key_id: str, account_id: str
) -> bytes:
    """What a sealed row is bound to: moving or editing any of these makes it fail to open."""
    return json.dumps([int(client_id), venue.label, kind, key_id, account_id]).encode()


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The 32-byte key that seals credentials, with a short id stored beside each row."""

    key: bytes = field(repr=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.key, bytes) or len(self.key) != KEY_BYTES:
            size = len(self.key) if isinstance(self.key, bytes) else type(self.key).__name__
            raise MasterKeyError(f"master key must be {KEY_BYTES} bytes, got {size}")
        # A keyed fingerprint: names the key without helping anyone guess it.
        digest = hmac.new(self.key, b"tickwise master key id", hashlib.sha256).hexdigest()
        object.__setattr__(self, "key_id", digest[:16])

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r}, key={REDACTED})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a MasterKey is never pickled: read it from the environment where needed")

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_base64(cls, text: str, source: str = "master key") -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise MasterKeyError(f"{source} is not valid base64") from None
        if len(raw) != KEY_BYTES:
            raise MasterKeyError(
                f"{source} decodes to {len(raw)} bytes; AES-256 needs {KEY_BYTES} "
                "(make one with: python -c 'import base64, os; "
                "print(base64.b64encode(os.urandom(32)).decode())')"
            )
        return cls(raw)

    @classmethod
    def from_env(
        cls, var: str = MASTER_KEY_ENV, environ: Mapping[str, str] | None = None
    ) -> MasterKey:
        """The master key from environment variable `var` (base64 of 32 bytes)."""
        text = (os.environ if environ is None else environ).get(var, "")
        if not text.strip():
            raise MasterKeyError(
                f"environment variable {var} is not set: it must hold the base64 of a "
                f"{KEY_BYTES}-byte master key"
            )
        return cls.from_base64(text, source=f"environment variable {var}")

    def to_base64(self) -> str:
        """The key as `from_base64` reads it, for provisioning a secret store; never log it."""
        return base64.b64encode(self.key).decode()


class CredentialVault:
    """Seals and opens credentials with a current master key, and opens rows sealed under keys
    it was rotated from (until they are retired)."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, master_key: MasterKey | bytes) -> None:
        key = master_key if isinstance(master_key, MasterKey) else MasterKey(master_key)
        self._current = key.key_id
        self._ciphers: dict[str, AESGCM] = {key.key_id: AESGCM(key.key)}

    def __repr__(self) -> str:
        return f"CredentialVault(current={self._current!r}, keys={len(self._ciphers)})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a CredentialVault is never pickled: build it where credentials are used")

    @property
    def current_key_id(self) -> str:
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._ciphers)

    def seal(self, credential: Credential, now_ns: int | None = None) -> EncryptedCredential:
        """The row the store keeps for `credential`, sealed under the current key."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._ciphers[self._current].encrypt(
            nonce, credential.secret.to_plaintext(), credential.associated_data()
        )
        return EncryptedCredential(
            client_id=int(credential.client_id),
            venue=credential.venue,
            kind=credential.kind.label,
            key_id=credential.key_id,
            account_id=credential.account_id,
            nonce=nonce,
            ciphertext=ciphertext,
            master_key_id=self._current,
            updated_ns=time.time_ns() if now_ns is None else int(now_ns),
        )

    def seal_many(
        self, credentials: Iterable[Credential], now_ns: int | None = None
    ) -> list[EncryptedCredential]:
        now = time.time_ns() if now_ns is None else int(now_ns)
        return [self.seal(c, now) for c in credentials]

    def open(self, row: EncryptedCredential) -> Credential:
        """The credential in `row`; `CredentialError` when it cannot be opened."""
        where = f"credential of client {row.client_id} at {row.venue.label} ({row.kind})"
        cipher = self._ciphers.get(row.master_key_id)
        if cipher is None:
            raise CredentialError(
                f"{where} is sealed under master key {row.master_key_id!r}, which this vault "
                f"does not hold (it holds {', '.join(self._ciphers)})"
            )
        ad = _associated_data(row.client_id, row.venue, row.kind, row.key_id, row.account_id)
        try:
            plaintext = cipher.decrypt(bytes(row.nonce), bytes(row.ciphertext), ad)
        except (InvalidTag, ValueError):
            raise CredentialError(
                f"{where} failed to open: wrong master key, or the row was altered or moved"
            ) from None
        return Credential(
            client_id=row.client_id,
            venue=row.venue,
            kind=CredentialKind.parse(row.kind),
            key_id=row.key_id,
            account_id=row.account_id,
            secret=Secret.from_plaintext(plaintext),
        )

    def open_many(self, rows: Iterable[EncryptedCredential]) -> list[Credential]:
        return [self.open(r) for r in rows]

    def rotate(
        self, new_key: MasterKey | bytes, rows: Sequence[EncryptedCredential]
    ) -> list[EncryptedCredential]:
        """Make `new_key` current and re-seal `rows` under it (rows already under it are
        returned as they are). The old keys stay, so rows not yet re-sealed keep opening; drop
        one with `retire` once no stored row uses it."""
        key = new_key if isinstance(new_key, MasterKey) else MasterKey(new_key)
        opened = self.open_many(rows)  # every row must open before the vault changes
        self._ciphers.setdefault(key.key_id, AESGCM(key.key))
        self._current = key.key_id
        now = time.time_ns()
        return [
            row if row.master_key_id == key.key_id else self.seal(cred, now)
            for row, cred in zip(rows, opened, strict=True)
        ]

    def retire(self, key_id: str) -> None:
        """Forget an old master key; rows still sealed under it will no longer open."""
        if key_id == self._current:
            raise CredentialError(f"master key {key_id!r} is current and cannot be retired")
        if self._ciphers.pop(key_id, None) is None:
            raise CredentialError(f"this vault holds no master key {key_id!r}")


# --- simulator credentials ----------------------------------------------------------------------


def _sim_text(client_id: int, venue: Venue, part: str, length: int) -> str:
    seed = f"tickwise simulator credential:{venue.label}:{int(client_id)}:{part}".encode()
    return hashlib.sha256(seed).hexdigest()[:length]


def demo_credential(client_id: int, venue: Venue) -> Credential:
    """Deterministic fake credentials for a simulated client account, marked `SIM` in every
    public field; the simulator derives the same ones to check signatures. Never real keys."""
    kind = DEFAULT_KIND[venue]
    cid = int(client_id)
    parts = {p: f"{SIMULATOR_PREFIX}{_sim_text(cid, venue, p, 40)}" for p in kind.secret_parts}
    account = f"{SIMULATOR_PREFIX}-{venue.label}-acct-{cid:08d}"
    return Credential(
        client_id=cid,
        venue=venue,
        kind=kind,
        key_id=f"{SIMULATOR_PREFIX}-{venue.label}-key-{cid:08d}",
        account_id=account if venue is not Venue.ALPACA else "",
        secret=Secret(parts),
    )


def seed_demo_credentials(
    store: Store,
    vault: CredentialVault,
    clients: npt.ArrayLike,
    venues: npt.ArrayLike | Venue,
) -> int:
    """Seal and save simulator credentials for `clients` (ids), each at its venue in `venues`
    (one per client, or one for all), in one store transaction; returns rows written."""
    ids = np.asarray(clients, dtype=np.int64).ravel()
    codes = np.broadcast_to(np.asarray(venues, dtype=np.int64), ids.shape)
    known = np.array([int(v) for v in Venue], dtype=np.int64)
    if not np.isin(codes, known).all():
        raise CredentialError(f"seed credentials: venue codes must be among {known.tolist()}")
    now = time.time_ns()
    rows = [
        vault.seal(demo_credential(cid, Venue(code)), now)
        for cid, code in zip(ids.tolist(), codes.tolist(), strict=True)
    ]
    return store.save_credentials(rows)
