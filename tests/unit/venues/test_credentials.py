"""Credentials: sealed at rest, opened only with the right key for the right client, and never
shown in a repr, a log line or an error message."""

from __future__ import annotations

import base64
import dataclasses
import logging
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickwise.model.instruments import Venue
from tickwise.store.base import EncryptedCredential
from tickwise.store.sqlite import SQLiteStore
from tickwise.store.sqlite_schema import LATEST_VERSION, MIGRATIONS
from tickwise.venues.credentials import (
    MASTER_KEY_ENV,
    Credential,
    CredentialError,
    CredentialKind,
    CredentialVault,
    MasterKey,
    MasterKeyError,
    Secret,
    demo_credential,
    seed_demo_credentials,
)

KEY_A = MasterKey(bytes(range(32)))
KEY_B = MasterKey(bytes(range(100, 132)))
PLAIN = "s3cr3t-VALUE-that-must-never-show"


def _etrade(client_id: int = 7) -> Credential:
    return Credential(
        client_id=client_id,
        venue=Venue.ETRADE,
        kind=CredentialKind.ETRADE_OAUTH,
        key_id="consumer-key",
        account_id="acct-key-1",
        secret=Secret(
            {
                "consumer_secret": PLAIN + "-consumer",
                "oauth_token": PLAIN + "-token",
                "oauth_token_secret": PLAIN + "-token-secret",
            }
        ),
    )


def _binance(client_id: int = 7, secret: str = PLAIN) -> Credential:
    return Credential(
        client_id, Venue.BINANCE, CredentialKind.BINANCE_HMAC, "api-key", "", Secret(secret)
    )


ALL_KINDS = [
    _etrade(),
    _binance(),
    Credential(1, Venue.ALPACA, CredentialKind.ALPACA_TRADING, "PK1", "", Secret(PLAIN)),
    Credential(2, Venue.ALPACA, CredentialKind.ALPACA_BROKER, "CK1", "uuid-2", Secret(PLAIN)),
    Credential(
        3,
        Venue.BINANCE,
        CredentialKind.BINANCE_ED25519,
        "api-key-3",
        "",
        Secret("-----BEGIN PRIVATE KEY-----\n" + PLAIN),
    ),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "tickwise.sqlite")
    yield s
    s.close()


# --- sealing and opening ------------------------------------------------------------------------


@pytest.mark.parametrize("credential", ALL_KINDS, ids=lambda c: c.kind.label)
def test_every_kind_round_trips_through_the_vault(credential: Credential) -> None:
    vault = CredentialVault(KEY_A)
    row = vault.seal(credential, now_ns=123)
    assert row.master_key_id == KEY_A.key_id and row.updated_ns == 123
    assert len(row.nonce) == 12 and PLAIN.encode() not in row.ciphertext
    assert vault.open(row) == credential


def test_each_seal_draws_a_fresh_nonce() -> None:
    vault = CredentialVault(KEY_A)
    rows = [vault.seal(_binance()) for _ in range(1000)]
    assert len({r.nonce for r in rows}) == 1000 and len({r.ciphertext for r in rows}) == 1000


def test_vault_accepts_raw_key_bytes() -> None:
    row = CredentialVault(KEY_A).seal(_binance())
    assert CredentialVault(bytes(range(32))).open(row).secret.reveal() == PLAIN


def _assert_refused(vault: CredentialVault, row: EncryptedCredential, words: str) -> None:
    with pytest.raises(CredentialError, match=words) as info:
        vault.open(row)
    message = str(info.value)
    assert PLAIN not in message and "\n" not in message
    error = info.value  # nothing chained: a traceback shows this one line only
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": 8},
        {"venue": Venue.ALPACA},
        {"kind": "binance_ed25519"},
        {"key_id": "someone-elses-key"},
        {"account_id": "other-account"},
        {"nonce": bytes(12)},
    ],
    ids=lambda c: next(iter(c)),
)
def test_a_row_moved_or_edited_fails_to_open(change: dict[str, object]) -> None:
    vault = CredentialVault(KEY_A)
    row = dataclasses.replace(vault.seal(_binance()), **change)  # type: ignore[arg-type]
    _assert_refused(vault, row, "failed to open: wrong master key, or the row was altered")


def test_tampered_ciphertext_fails_to_open() -> None:
    vault = CredentialVault(KEY_A)
    row = vault.seal(_binance())
    flipped = bytes([row.ciphertext[0] ^ 1]) + row.ciphertext[1:]
    _assert_refused(vault, dataclasses.replace(row, ciphertext=flipped), "client 7 at binance")
    _assert_refused(vault, dataclasses.replace(row, ciphertext=b""), "failed to open")


def test_wrong_master_key_fails_to_open() -> None:
    row = CredentialVault(KEY_A).seal(_binance())
    impostor = dataclasses.replace(row, master_key_id=KEY_B.key_id)
    _assert_refused(CredentialVault(KEY_B), impostor, "wrong master key")
    _assert_refused(CredentialVault(KEY_B), row, "does not hold")


def test_credential_shape_is_checked() -> None:
    with pytest.raises(CredentialError, match="is for binance, not alpaca"):
        Credential(1, Venue.ALPACA, CredentialKind.BINANCE_HMAC, "k", "", Secret("x"))
    with pytest.raises(CredentialError, match="has parts"):
        Credential(1, Venue.ETRADE, CredentialKind.ETRADE_OAUTH, "k", "", Secret("x"))
    with pytest.raises(CredentialError, match="empty key id"):
        Credential(1, Venue.BINANCE, CredentialKind.BINANCE_HMAC, "", "", Secret("x"))
    with pytest.raises(CredentialError, match="unknown credential kind"):
        CredentialKind.parse("ftp_password")


def test_secret_reveals_parts_by_name() -> None:
    secret = _etrade().secret
    assert secret.reveal("oauth_token") == PLAIN + "-token"
    assert secret.reveal_bytes("consumer_secret") == (PLAIN + "-consumer").encode()
    with pytest.raises(CredentialError, match="name the one wanted"):
        secret.reveal()
    with pytest.raises(CredentialError, match="no part 'nope'") as info:
        secret.reveal("nope")
    assert PLAIN not in str(info.value)


@settings(max_examples=60, deadline=None)
@given(
    client_id=st.integers(0, 2**31 - 1),
    key_id=st.text(min_size=1, max_size=40),
    account_id=st.text(max_size=40),
    parts=st.tuples(st.text(max_size=200), st.text(max_size=200), st.text(max_size=200)),
)
def test_any_secret_round_trips(
    client_id: int, key_id: str, account_id: str, parts: tuple[str, str, str]
) -> None:
    names = CredentialKind.ETRADE_OAUTH.secret_parts
    credential = Credential(
        client_id,
        Venue.ETRADE,
        CredentialKind.ETRADE_OAUTH,
        key_id,
        account_id,
        Secret(dict(zip(names, parts, strict=True))),
    )
    vault = CredentialVault(KEY_A)
    opened = vault.open(vault.seal(credential))
    assert opened == credential
    assert [opened.secret.reveal(n) for n in names] == list(parts)


# --- never shown --------------------------------------------------------------------------------


def _renderings(obj: object) -> list[str]:
    return [repr(obj), str(obj), f"{obj}", f"{obj!r}", "%s %r" % (obj, obj)]  # noqa: UP031


def test_secrets_never_appear_in_reprs_formats_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    credential = _etrade()
    vault = CredentialVault(KEY_A)
    key_b64 = KEY_A.to_base64()
    things: list[object] = [credential.secret, credential, vault, KEY_A, vault.seal(credential)]
    log = logging.getLogger("tickwise.test.credentials")
    with caplog.at_level(logging.DEBUG, logger="tickwise.test.credentials"):
        for thing in things:
            log.info("thing %s / %r", thing, thing)
            log.info(f"thing {thing} / {thing!r}")
            log.info("in a tuple %s", (thing,))
            log.info("in a dict %s", {"x": thing})
    assert len(caplog.records) == 4 * len(things)
    shown = caplog.text + "".join(r.getMessage() for r in caplog.records)
    shown += "".join(s for thing in things for s in _renderings(thing))
    assert "***" in shown and "consumer-key" in shown  # public parts do show
    assert PLAIN not in shown and key_b64 not in shown and KEY_A.key.hex() not in shown
    assert repr(credential.secret) == "Secret(***)" and str(credential.secret) == "***"
    assert f"{credential.secret:>40}" == "***" and format(credential.secret, "x") == "***"


def test_secret_holders_refuse_pickling() -> None:
    for thing in (_etrade().secret, _etrade(), KEY_A, CredentialVault(KEY_A)):
        with pytest.raises(TypeError, match="never pickled"):
            pickle.dumps(thing)


# --- the master key from the environment --------------------------------------------------------


def test_master_key_from_env_reads_base64() -> None:
    env = {MASTER_KEY_ENV: base64.b64encode(KEY_A.key).decode() + "\n"}
    key = MasterKey.from_env(environ=env)
    assert key == KEY_A and key.key_id == KEY_A.key_id and key.key_id != KEY_B.key_id
    assert MasterKey.from_base64(KEY_B.to_base64()) == KEY_B


def test_master_key_from_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWISE_TEST_KEY", KEY_B.to_base64())
    assert MasterKey.from_env("TICKWISE_TEST_KEY") == KEY_B


BAD_VALUE = "not!base64!" + PLAIN


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "TICKWISE_MASTER_KEY is not set"),
        ("   ", "TICKWISE_MASTER_KEY is not set"),
        (BAD_VALUE, "TICKWISE_MASTER_KEY is not valid base64"),
        (base64.b64encode(PLAIN.encode()).decode(), "decodes to 33 bytes; AES-256 needs 32"),
        (base64.b64encode(bytes(16)).decode(), "decodes to 16 bytes"),
    ],
)
def test_missing_or_malformed_master_key_is_one_clear_line(value: str | None, words: str) -> None:
    env = {} if value is None else {MASTER_KEY_ENV: value}
    with pytest.raises(MasterKeyError, match=words) as info:
        MasterKey.from_env(environ=env)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message
    assert PLAIN not in message
    if value is not None and value.strip():
        assert value not in message


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(MasterKeyError, match="must be 32 bytes, got 31"):
        MasterKey(bytes(31))
    assert MasterKey.generate() != MasterKey.generate()
    assert len(MasterKey.generate().key) == 32


# --- rotation -----------------------------------------------------------------------------------


def test_rotation_reseals_rows_and_can_be_staged() -> None:
    vault = CredentialVault(KEY_A)
    creds = [_binance(i, f"{PLAIN}-{i}") for i in range(6)]
    rows = vault.seal_many(creds)
    # Stage 1: re-seal half; the other half still opens through the old key.
    rotated = vault.rotate(KEY_B, rows[:3])
    assert vault.current_key_id == KEY_B.key_id
    assert set(vault.key_ids) == {KEY_A.key_id, KEY_B.key_id}
    assert [r.master_key_id for r in rotated] == [KEY_B.key_id] * 3
    assert vault.open_many(rotated + rows[3:]) == creds
    assert vault.seal(creds[0]).master_key_id == KEY_B.key_id
    # Stage 2: the rest; rows already under the new key come back unchanged.
    rest = vault.rotate(KEY_B, rotated[:1] + rows[3:])
    assert rest[0] is rotated[0]
    vault.retire(KEY_A.key_id)
    assert vault.key_ids == (KEY_B.key_id,)
    assert CredentialVault(KEY_B).open_many(rotated + rest[1:]) == creds
    _assert_refused(vault, rows[0], "does not hold")


def test_rotation_with_an_unopenable_row_changes_nothing() -> None:
    vault = CredentialVault(KEY_A)
    good = vault.seal(_binance(1))
    bad = dataclasses.replace(vault.seal(_binance(2)), client_id=3)
    with pytest.raises(CredentialError, match="client 3"):
        vault.rotate(KEY_B, [good, bad])
    assert vault.current_key_id == KEY_A.key_id and vault.key_ids == (KEY_A.key_id,)


def test_retire_refuses_the_current_or_an_unknown_key() -> None:
    vault = CredentialVault(KEY_A)
    with pytest.raises(CredentialError, match="is current"):
        vault.retire(KEY_A.key_id)
    with pytest.raises(CredentialError, match="holds no master key"):
        vault.retire("0000")


# --- the store ----------------------------------------------------------------------------------


def test_store_saves_and_loads_30000_sealed_credentials(store: SQLiteStore) -> None:
    assert store.schema_version() == LATEST_VERSION >= 4
    vault = CredentialVault(KEY_A)
    ids = np.arange(30_000, dtype=np.int32)
    venues = (ids % 3).astype(np.uint8)
    assert seed_demo_credentials(store, vault, ids, venues) == 30_000
    assert store.credential_count() == 30_000
    assert [store.credential_count(v) for v in Venue] == [10_000, 10_000, 10_000]

    lane = store.load_credentials(ids, Venue.BINANCE)  # a whole router lane in one call
    assert [r.client_id for r in lane] == ids[venues == Venue.BINANCE].tolist()
    opened = vault.open_many(lane)
    assert opened[5] == demo_credential(int(ids[venues == Venue.BINANCE][5]), Venue.BINANCE)
    assert all(c.key_id.startswith("SIM-binance-key-") for c in opened)

    # Unsorted, repeated, at another venue, never stored: only stored rows come back, sorted.
    some = store.load_credentials([29_999, 4, 5, 5, 2, 40_000], Venue.ETRADE)
    assert [r.client_id for r in some] == [2, 5, 29_999]
    assert store.load_credentials(np.array([], dtype=np.int64), Venue.ALPACA) == []


def test_store_replaces_a_clients_credentials_and_never_holds_plaintext(
    tmp_path: Path,
) -> None:
    path = tmp_path / "creds.sqlite"
    vault = CredentialVault(KEY_A)
    with SQLiteStore(path) as store:
        assert store.save_credentials(vault.seal_many([_binance(1), _etrade(1)])) == 2
        assert store.save_credentials([vault.seal(_binance(1, PLAIN + "-new"))]) == 1
        assert store.save_credentials([]) == 0
        assert store.credential_count() == 2
        (row,) = store.load_credentials([1], Venue.BINANCE)
        assert vault.open(row).secret.reveal() == PLAIN + "-new"
        assert vault.open(store.load_credentials([1], Venue.ETRADE)[0]) == _etrade(1)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"api-key" in raw  # the public key id is stored in clear
    assert PLAIN.encode() not in raw and KEY_A.key not in raw


def test_seeding_rejects_an_unknown_venue_code(store: SQLiteStore) -> None:
    with pytest.raises(CredentialError, match="venue codes"):
        seed_demo_credentials(store, CredentialVault(KEY_A), [1, 2], [0, 9])
    assert store.credential_count() == 0


def test_demo_credentials_are_deterministic_and_marked() -> None:
    a, b = demo_credential(42, Venue.ETRADE), demo_credential(42, Venue.ETRADE)
    assert a == b and a != demo_credential(43, Venue.ETRADE)
    assert a.key_id.startswith("SIM-") and a.account_id.startswith("SIM-")
    assert all(a.secret.reveal(p).startswith("SIM") for p in a.kind.secret_parts)
    assert demo_credential(1, Venue.ALPACA).kind is CredentialKind.ALPACA_TRADING


def test_a_version_3_store_gains_the_credentials_table_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.sqlite"
    with sqlite3.connect(path) as conn:  # the schema as the release before credentials wrote it
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY,"
            " description TEXT NOT NULL, applied_ns INTEGER NOT NULL)"
        )
        for number, description, sql in MIGRATIONS:
            if number <= 3:
                conn.executescript(sql)
                conn.execute("INSERT INTO schema_version VALUES (?, ?, 0)", (number, description))
        conn.execute("INSERT INTO runs (run_id, started_ns, config_json) VALUES ('old', 1, '{}')")
    conn.close()

    with SQLiteStore(path) as store:
        assert store.schema_version() == LATEST_VERSION >= 4
        assert store.get_run("old") is not None and store.credential_count() == 0
        assert seed_demo_credentials(store, CredentialVault(KEY_A), [1, 2], Venue.ALPACA) == 2
    with SQLiteStore(path) as again:  # reopening applies nothing twice
        assert again.migrate() == LATEST_VERSION and again.credential_count(Venue.ALPACA) == 2
