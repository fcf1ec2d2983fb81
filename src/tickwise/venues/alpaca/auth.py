"""Alpaca credentials and request addressing: Trading API key headers, Broker API Basic auth.

Trading API (one account): every private call carries `APCA-API-KEY-ID` and
`APCA-API-SECRET-KEY`; paper and live keys only work on their own host. Broker API (many
accounts): `Authorization: Basic base64(key_id:secret)` and per-account trading paths under
`/v1/trading/accounts/{account_id}/...`. Pure functions, no network.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import NoReturn
from urllib.parse import quote

TRADING_LIVE = "https://api.alpaca.markets"
TRADING_PAPER = "https://paper-api.alpaca.markets"
BROKER_LIVE = "https://broker-api.alpaca.markets"
BROKER_SANDBOX = "https://broker-api.sandbox.alpaca.markets"

KEY_ID_HEADER = "APCA-API-KEY-ID"
SECRET_KEY_HEADER = "APCA-API-SECRET-KEY"

_ACCOUNT_ID = re.compile(r"^[0-9A-Za-z-]{1,64}$")
_CLIENT_ORDER_ID_MAX = 48


class AlpacaCredentialError(ValueError):
    """A key, secret or account id that cannot be sent."""


def _check_token(value: str, what: str, *, colon_ok: bool = True) -> None:
    forbidden = "\r\n" if colon_ok else "\r\n:"
    if not value or value != value.strip() or any(c in value for c in forbidden):
        extra = "" if colon_ok else ", ':'"
        raise AlpacaCredentialError(
            f"Alpaca {what} must be non-empty, without spaces at the ends{extra} or line breaks"
        )


def _refuse_pickle(obj: object) -> NoReturn:
    raise TypeError(f"{type(obj).__name__} holds a secret and is not pickled")


@dataclass(frozen=True, slots=True)
class TradingCredentials:
    """A Trading API key pair and the host it belongs to; the secret never shows in repr/str;
    not picklable."""

    key_id: str
    secret_key: str = field(repr=False)
    paper: bool = True

    def __post_init__(self) -> None:
        _check_token(self.key_id, "key id")
        _check_token(self.secret_key, "secret key")

    def __reduce__(self) -> tuple[object, ...]:
        _refuse_pickle(self)

    @property
    def base_url(self) -> str:
        return TRADING_PAPER if self.paper else TRADING_LIVE

    def headers(self) -> dict[str, str]:
        """The two auth headers every private Trading API call carries."""
        return {KEY_ID_HEADER: self.key_id, SECRET_KEY_HEADER: self.secret_key}


@dataclass(frozen=True, slots=True)
class BrokerCredentials:
    """A Broker API key pair (HTTP Basic auth); the secret never shows in repr/str;
    not picklable."""

    key_id: str
    secret: str = field(repr=False)
    sandbox: bool = True

    def __post_init__(self) -> None:
        _check_token(self.key_id, "broker key id", colon_ok=False)  # Basic auth splits at ':'
        _check_token(self.secret, "broker secret")

    def __reduce__(self) -> tuple[object, ...]:
        _refuse_pickle(self)

    @property
    def base_url(self) -> str:
        return BROKER_SANDBOX if self.sandbox else BROKER_LIVE

    def headers(self) -> dict[str, str]:
        """`Authorization: Basic base64("key_id:secret")`."""
        raw = f"{self.key_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def _account(account_id: str) -> str:
    if not _ACCOUNT_ID.match(account_id):
        raise AlpacaCredentialError(f"not an Alpaca account id: {account_id!r}")
    return account_id


def _segment(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"Alpaca {what} is empty")
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class TradingPaths:
    """Trading API paths for the one account the keys belong to (`/v2/...`)."""

    prefix: str = "/v2"

    def orders(self) -> str:
        return f"{self.prefix}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.prefix}/orders/{_segment(order_id, 'order id')}"

    def order_by_client_order_id(self, client_order_id: str) -> str:
        return f"{self.prefix}/orders:by_client_order_id?{client_order_id_query(client_order_id)}"

    def positions(self) -> str:
        return f"{self.prefix}/positions"

    def position(self, symbol: str) -> str:
        return f"{self.prefix}/positions/{_segment(symbol, 'symbol')}"

    def account(self) -> str:
        return f"{self.prefix}/account"


@dataclass(frozen=True, slots=True)
class BrokerAccountPaths:
    """Broker API trading paths for one end-customer account (`/v1/trading/accounts/{id}/...`).

    Bodies and semantics mirror the Trading API; the rate limit and client order id uniqueness
    are per account.
    """

    account_id: str

    def __post_init__(self) -> None:
        _account(self.account_id)

    @property
    def prefix(self) -> str:
        return f"/v1/trading/accounts/{self.account_id}"

    def orders(self) -> str:
        return f"{self.prefix}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.prefix}/orders/{_segment(order_id, 'order id')}"

    def order_by_client_order_id(self, client_order_id: str) -> str:
        return f"{self.prefix}/orders:by_client_order_id?{client_order_id_query(client_order_id)}"

    def order_estimation(self) -> str:
        return f"{self.prefix}/orders/estimation"

    def positions(self) -> str:
        return f"{self.prefix}/positions"

    def position(self, symbol: str) -> str:
        return f"{self.prefix}/positions/{_segment(symbol, 'symbol')}"

    def account(self) -> str:
        return f"{self.prefix}/account"

    def configurations(self) -> str:
        return f"{self.prefix}/account/configurations"

    def portfolio_history(self) -> str:
        return f"{self.prefix}/account/portfolio/history"


def client_order_id_query(client_order_id: str) -> str:
    """`client_order_id=...`, checked against Alpaca's 48-character limit."""
    if not client_order_id or len(client_order_id) > _CLIENT_ORDER_ID_MAX:
        raise ValueError(
            f"Alpaca client_order_id must be 1..{_CLIENT_ORDER_ID_MAX} characters, "
            f"got {len(client_order_id)}"
        )
    return "client_order_id=" + quote(client_order_id, safe="")
