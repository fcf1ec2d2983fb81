"""Alpaca credentials: the right headers for each API, paths per account, secrets never shown."""

from __future__ import annotations

import base64
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tickwise.venues import alpaca
from tickwise.venues.alpaca.auth import (
    AlpacaCredentialError,
    BrokerAccountPaths,
    BrokerCredentials,
    TradingCredentials,
    TradingPaths,
    client_order_id_query,
)

ACCOUNT = "4db36989-2b41-4f84-8d68-b37e1e0a9e5a"


def test_trading_calls_carry_the_two_key_headers() -> None:
    credentials = TradingCredentials("PKTEST", "secret-value")

    assert credentials.headers() == {
        "APCA-API-KEY-ID": "PKTEST",
        "APCA-API-SECRET-KEY": "secret-value",
    }


def test_paper_and_live_keys_point_at_their_own_host() -> None:
    assert TradingCredentials("k", "s").base_url == "https://paper-api.alpaca.markets"
    assert TradingCredentials("k", "s", paper=False).base_url == "https://api.alpaca.markets"
    assert BrokerCredentials("k", "s").base_url == "https://broker-api.sandbox.alpaca.markets"
    assert (
        BrokerCredentials("k", "s", sandbox=False).base_url == "https://broker-api.alpaca.markets"
    )


def test_broker_calls_use_basic_auth_of_key_and_secret() -> None:
    header = BrokerCredentials("CK123", "s3cr3t").headers()["Authorization"]

    assert header == "Basic " + base64.b64encode(b"CK123:s3cr3t").decode()


_token = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters=":\r\n"), min_size=1, max_size=40
).filter(lambda s: s == s.strip())


_secret = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=40
).filter(lambda s: s == s.strip())


@given(_token, _secret)
def test_basic_auth_decodes_back_to_key_and_secret(key_id: str, secret: str) -> None:
    header = BrokerCredentials(key_id, secret).headers()["Authorization"]

    scheme, _, payload = header.partition(" ")
    assert scheme == "Basic"
    decoded_key, _, decoded_secret = base64.b64decode(payload).decode().partition(":")
    assert (decoded_key, decoded_secret) == (key_id, secret)


@pytest.mark.parametrize(
    "credentials",
    [
        TradingCredentials("PKVISIBLE", "hidden-secret"),
        BrokerCredentials("CKVISIBLE", "hidden-secret"),
    ],
)
def test_secrets_never_show_in_repr_or_str(credentials: object) -> None:
    for text in (repr(credentials), str(credentials), f"{credentials!r}"):
        assert "hidden-secret" not in text
        assert "VISIBLE" in text


@pytest.mark.parametrize(("key_id", "secret"), [("", "s"), ("k", ""), (" k", "s"), ("k", "s\n")])
def test_unsendable_keys_are_refused_at_construction(key_id: str, secret: str) -> None:
    with pytest.raises(AlpacaCredentialError, match="must be non-empty"):
        TradingCredentials(key_id, secret)
    with pytest.raises(AlpacaCredentialError, match="must be non-empty"):
        BrokerCredentials(key_id, secret)


def test_only_a_basic_auth_key_id_may_not_contain_a_colon() -> None:
    assert TradingCredentials("a:b", "s:t").headers()["APCA-API-KEY-ID"] == "a:b"
    assert BrokerCredentials("ab", "s:t").headers()["Authorization"].startswith("Basic ")
    with pytest.raises(AlpacaCredentialError, match="':'"):
        BrokerCredentials("a:b", "s")


def test_the_package_exports_what_it_names() -> None:
    for name in alpaca.__all__:
        assert getattr(alpaca, name) is not None


def test_broker_trading_paths_are_scoped_by_account() -> None:
    paths = BrokerAccountPaths(ACCOUNT)
    prefix = f"/v1/trading/accounts/{ACCOUNT}"

    assert paths.orders() == f"{prefix}/orders"
    assert paths.order("61e69015-8549") == f"{prefix}/orders/61e69015-8549"
    assert paths.order_by_client_order_id("acctA-0001") == (
        f"{prefix}/orders:by_client_order_id?client_order_id=acctA-0001"
    )
    assert paths.positions() == f"{prefix}/positions"
    assert paths.position("BTC/USD") == f"{prefix}/positions/BTC%2FUSD"
    assert paths.account() == f"{prefix}/account"
    assert paths.configurations() == f"{prefix}/account/configurations"
    assert paths.portfolio_history() == f"{prefix}/account/portfolio/history"
    assert paths.order_estimation() == f"{prefix}/orders/estimation"


def test_trading_api_paths_have_no_account_in_them() -> None:
    paths = TradingPaths()

    assert paths.orders() == "/v2/orders"
    assert (
        paths.order_by_client_order_id("T01") == "/v2/orders:by_client_order_id?client_order_id=T01"
    )
    assert paths.position("AAPL") == "/v2/positions/AAPL"
    assert paths.account() == "/v2/account"


@pytest.mark.parametrize("account_id", ["", "../admin", "a/b", "x" * 65, "id with space"])
def test_an_account_id_that_would_escape_its_path_is_refused(account_id: str) -> None:
    with pytest.raises(AlpacaCredentialError, match="account id"):
        BrokerAccountPaths(account_id)


def test_client_order_ids_are_quoted_and_held_to_48_characters() -> None:
    assert client_order_id_query("a b&c") == "client_order_id=a%20b%26c"
    assert client_order_id_query("x" * 48).endswith("x" * 48)
    with pytest.raises(ValueError, match=r"1\.\.48"):
        client_order_id_query("x" * 49)
    with pytest.raises(ValueError, match=r"1\.\.48"):
        client_order_id_query("")


def test_an_empty_order_id_is_refused() -> None:
    with pytest.raises(ValueError, match="order id is empty"):
        TradingPaths().order("")


def test_credentials_refuse_to_be_pickled() -> None:
    for credentials in (TradingCredentials("k", "s"), BrokerCredentials("k", "s")):
        with pytest.raises(TypeError, match="holds a secret"):
            pickle.dumps(credentials)
