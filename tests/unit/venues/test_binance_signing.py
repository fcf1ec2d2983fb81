"""Binance request signing: the documented HMAC vector, Ed25519 round trips, the server clock."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import unquote

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from hypothesis import given
from hypothesis import strategies as st

from tickwise.venues.binance import (
    API_KEY_HEADER,
    ServerClock,
    SigningError,
    SigningKey,
    encode_query,
    sign_ed25519,
    sign_hmac,
    signed_query,
)

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    "&recvWindow=5000&timestamp=1499827319559"
)
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
ORDER = {
    "symbol": "LTCBTC",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": 1,
    "price": 0.1,
}


def _ed25519() -> tuple[bytes, Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, private


def test_hmac_matches_the_documented_vector() -> None:
    assert sign_hmac(SECRET, PAYLOAD) == SIGNATURE
    assert sign_hmac(SECRET.encode(), PAYLOAD) == SIGNATURE


def test_signed_query_rebuilds_the_documented_request() -> None:
    key = SigningKey("my-api-key", "hmac", SECRET)
    query = signed_query(ORDER, key=key, timestamp_ms=1499827319559, recv_window_ms=5000)
    assert query == f"{PAYLOAD}&signature={SIGNATURE}"


def test_signed_query_signs_the_body_too() -> None:
    key = SigningKey("k", "hmac", SECRET)
    body = "quantity=1&price=0.1"
    query = signed_query({"symbol": "LTCBTC"}, key=key, timestamp_ms=1, body=body)
    unsigned, signature = query.rsplit("&signature=", 1)
    assert unsigned == "symbol=LTCBTC&recvWindow=5000&timestamp=1"
    assert signature == sign_hmac(SECRET, unsigned + body)


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    pem, private = _ed25519()
    signature = sign_ed25519(pem, PAYLOAD)
    private.public_key().verify(base64.b64decode(signature), PAYLOAD.encode())
    with pytest.raises(InvalidSignature):
        private.public_key().verify(base64.b64decode(signature), (PAYLOAD + "0").encode())


def test_ed25519_signed_query_is_url_encoded_and_verifies() -> None:
    pem, private = _ed25519()
    key = SigningKey("k", "ed25519", pem)
    query = signed_query(ORDER, key=key, timestamp_ms=1499827319559)
    unsigned, encoded = query.rsplit("&signature=", 1)
    assert not set(encoded) & set("+/=")  # base64's specials are percent-encoded
    private.public_key().verify(base64.b64decode(unquote(encoded)), unsigned.encode())


def test_ed25519_refuses_a_key_of_another_kind() -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(SigningError, match="not an Ed25519 key"):
        sign_ed25519(rsa, PAYLOAD)
    with pytest.raises(SigningError, match="PEM"):
        sign_ed25519(b"not a key", PAYLOAD)


def test_key_repr_and_str_never_show_the_secret() -> None:
    key = SigningKey("public-part", "hmac", SECRET)
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert SECRET not in text
        assert "public-part" in text


def test_key_rejects_unknown_kind_and_empty_secret() -> None:
    with pytest.raises(SigningError, match="kind"):
        SigningKey("k", "rsa", "x")  # type: ignore[arg-type]
    with pytest.raises(SigningError, match="empty secret"):
        SigningKey("k", "hmac", "")


def test_values_are_percent_encoded_and_written_as_binance_reads_them() -> None:
    query = encode_query(
        {"newClientOrderId": "a b/c+d=é", "quantity": 1e-05, "flag": True, "symbols": ["A", "B"]}
    )
    assert query == (
        "newClientOrderId=a%20b%2Fc%2Bd%3D%C3%A9&quantity=0.00001&flag=true"
        "&symbols=%5B%22A%22%2C%22B%22%5D"
    )


@pytest.mark.parametrize(
    ("params", "kwargs", "match"),
    [
        ({"timestamp": 1}, {}, "set by signed_query"),
        ({"signature": "x"}, {}, "set by signed_query"),
        ({}, {"recv_window_ms": 60_001}, "recvWindow"),
        ({}, {"recv_window_ms": 0}, "recvWindow"),
        ({"price": float("nan")}, {}, "finite"),
        ({"price": object()}, {}, "cannot be sent"),
    ],
)
def test_signed_query_refuses_bad_requests(
    params: dict[str, object], kwargs: dict[str, Any], match: str
) -> None:
    key = SigningKey("k", "hmac", SECRET)
    with pytest.raises(SigningError, match=match):
        signed_query(params, key=key, timestamp_ms=1_700_000_000_000, **kwargs)


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=5))
def test_any_text_params_give_an_ascii_query_whose_signature_checks(
    params: dict[str, str],
) -> None:
    params = {k: v for k, v in params.items() if k not in ("timestamp", "recvWindow", "signature")}
    key = SigningKey("k", "hmac", SECRET)
    query = signed_query(params, key=key, timestamp_ms=1_700_000_000_000)
    assert query.isascii()
    unsigned, signature = query.rsplit("&signature=", 1)
    assert sign_hmac(SECRET, unsigned) == signature
    pairs = [p.split("=") for p in unsigned.split("&")]
    assert all(len(p) == 2 for p in pairs)  # no raw '&' or '=' inside a value
    assert [unquote(k) for k, _ in pairs[: len(params)]] == list(params)


def test_api_key_header_name() -> None:
    assert API_KEY_HEADER == "X-MBX-APIKEY"


def test_server_clock_uses_the_midpoint_of_the_round_trip() -> None:
    local = [1_000_000]
    clock = ServerClock(local_ms=lambda: local[0])
    # sent at 1000, answered at 1100: the server read 5050 at local 1050.
    assert clock.update(server_ms=5050, sent_ms=1000, received_ms=1100) == 4000
    local[0] = 2000
    assert clock.now_ms() == 6000


def test_server_clock_keeps_the_tightest_sample_until_reset() -> None:
    clock = ServerClock(local_ms=lambda: 0)
    clock.update(server_ms=500, sent_ms=0, received_ms=10)  # offset 495, rtt 10
    clock.update(server_ms=9999, sent_ms=0, received_ms=400)  # slower answer: ignored
    assert clock.offset_ms == 495
    clock.reset()
    clock.update_from_body({"serverTime": 900}, sent_ms=0, received_ms=400)
    assert clock.offset_ms == 700
    assert clock.now_ms() == 700


def test_server_clock_refuses_impossible_answers() -> None:
    clock = ServerClock(local_ms=lambda: 0)
    with pytest.raises(ValueError, match="before it was sent"):
        clock.update(server_ms=1, sent_ms=10, received_ms=5)
    with pytest.raises(ValueError, match="serverTime"):
        clock.update_from_body({"serverTime": "soon"}, sent_ms=0, received_ms=1)
