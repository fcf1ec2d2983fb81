"""pyetrade, the most used E*Trade SDK, against the E*Trade simulator server.

pyetrade has no base-URL parameter: its instances' URL attributes are set after construction
(venues.md §5). It signs with requests-oauthlib, posts preview/place/cancel as XML, lists orders
in JSON and reads accounts in XML by default, so the server is exercised in both formats.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
from pyetrade import ETradeAccessManager, ETradeAccounts, ETradeOAuth, ETradeOrder

from tickwise.data.universe import build_universe
from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.venues.credentials import Credential
from tickwise.venues.sim.server.common import ServerThread, SimContext, SimServer, make_context
from tickwise.venues.sim.server.etrade import build_app

pytestmark = pytest.mark.conformance

CASH = 50_000.0
PRICE = 100.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def registry() -> InstrumentRegistry:
    return build_universe(3, 0)


@pytest.fixture(scope="module")
def server(registry: InstrumentRegistry) -> Iterator[ServerThread]:
    clients = [1, 2, 3, 4, 5, 6]
    ctx = make_context(
        Venue.ETRADE, registry, clients, [CASH] * len(clients), ack_delay_ms=2, rate_limits=False
    )
    with ServerThread(SimServer(ctx, build_app)) as thread:
        thread.call(lambda: ctx.exchange.mark(np.arange(len(registry)), np.full(3, PRICE)))
        yield thread


def context(server: ServerThread) -> SimContext:
    return server.server.context


def credential(server: ServerThread, client: int) -> Credential:
    return context(server).accounts.credential(client)


def keys(cred: Credential, token: dict[str, str] | None = None) -> tuple[str, str, str, str]:
    secret = cred.secret
    if token is None:
        token = {
            "oauth_token": secret.reveal("oauth_token"),
            "oauth_token_secret": secret.reveal("oauth_token_secret"),
        }
    return (
        cred.key_id,
        secret.reveal("consumer_secret"),
        token["oauth_token"],
        token["oauth_token_secret"],
    )


def accounts_api(server: ServerThread, cred: Credential, **token: str) -> ETradeAccounts:
    api = ETradeAccounts(*keys(cred, token or None), dev=False)
    api.base_url = f"{server.url}/v1/accounts"
    return api


def orders_api(server: ServerThread, cred: Credential) -> ETradeOrder:
    api = ETradeOrder(*keys(cred), dev=False, timeout=5)
    api.base_url = f"{server.url}/v1/accounts"
    return api


def eventually(probe: Callable[[], T | None], timeout_s: float = 3.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def order_ids(listed: dict[str, Any]) -> list[int]:
    """Order ids of a pyetrade `list_orders` answer (JSON; an empty list is {})."""
    return [int(o["orderId"]) for o in listed.get("OrdersResponse", {}).get("Order", [])]


def equity(cred: Credential, symbol: str, coid: str, **terms: Any) -> dict[str, Any]:
    return {
        "accountIdKey": cred.account_id,
        "symbol": symbol,
        "orderAction": "BUY",
        "clientOrderId": coid,
        "quantity": 2,
        "orderTerm": "GOOD_FOR_DAY",
        "marketSession": "REGULAR",
        **terms,
    }


def test_oauth_dance_gives_an_access_token_that_reads_the_account(server: ServerThread) -> None:
    cred = credential(server, 1)
    oauth = ETradeOAuth(cred.key_id, cred.secret.reveal("consumer_secret"))
    oauth.req_token_url = f"{server.url}/oauth/request_token"
    oauth.access_token_url = f"{server.url}/oauth/access_token"
    oauth.auth_token_url = f"{server.url}/e/t/etws/authorize"

    authorize = oauth.get_request_token()
    verifier = requests.get(authorize, timeout=5).text  # the simulator approves at once
    token = oauth.get_access_token(verifier)
    listed = accounts_api(server, cred, **token).list_accounts()

    assert authorize.startswith(f"{server.url}/e/t/etws/authorize?key={cred.key_id}&token=")
    assert token["oauth_token"] != cred.secret.reveal("oauth_token")  # a new access token
    account = listed["AccountListResponse"]["Accounts"]["Account"]
    assert account["accountIdKey"] == cred.account_id


def test_accounts_balance_and_portfolio_read_in_xml_and_json(
    server: ServerThread, registry: InstrumentRegistry
) -> None:
    cred = credential(server, 2)
    symbol = registry[0].symbol
    orders_api(server, cred).place_equity_order(**equity(cred, symbol, "P1", priceType="MARKET"))
    ctx = context(server)
    eventually(lambda: server.call(lambda: ctx.exchange.positions(2)) or None)
    api = accounts_api(server, cred)

    listed = api.list_accounts(resp_format="json")
    balance_xml = api.get_account_balance(cred.account_id)
    balance_json = api.get_account_balance(cred.account_id, resp_format="json")
    portfolio_xml = api.get_account_portfolio(cred.account_id)
    portfolio_json = api.get_account_portfolio(cred.account_id, resp_format="json")

    cash = server.call(lambda: ctx.exchange.cash(2))
    assert listed["AccountListResponse"]["Accounts"]["Account"][0]["accountId"] == "00000002"
    assert float(balance_xml["BalanceResponse"]["Computed"]["cashBalance"]) == cash
    assert balance_json["BalanceResponse"]["Computed"]["cashBalance"] == cash < CASH
    position_xml = portfolio_xml["PortfolioResponse"]["AccountPortfolio"]["Position"]
    position_json = portfolio_json["PortfolioResponse"]["AccountPortfolio"][0]["Position"][0]
    assert position_xml["Product"]["symbol"] == position_json["Product"]["symbol"] == symbol
    assert float(position_xml["quantity"]) == position_json["quantity"] == 2.0


def test_market_order_is_previewed_placed_and_executed(
    server: ServerThread, registry: InstrumentRegistry
) -> None:
    cred = credential(server, 3)
    api = orders_api(server, cred)

    placed = api.place_equity_order(**equity(cred, registry[1].symbol, "M1", priceType="MARKET"))
    order_id = int(placed["PlaceOrderResponse"]["OrderIds"]["orderId"])

    def executed() -> list[int] | None:
        ids = order_ids(api.list_orders(cred.account_id, status="EXECUTED"))
        return ids if order_id in ids else None

    assert eventually(executed) == [order_id]
    order = server.call(lambda: context(server).exchange.find(3, order_id=order_id))
    assert order.client_order_id == "M1" and order.filled_qty == 2.0


def test_limit_order_rests_until_cancel_order_cancels_it(
    server: ServerThread, registry: InstrumentRegistry
) -> None:
    cred = credential(server, 4)
    api = orders_api(server, cred)
    terms = {"priceType": "LIMIT", "limitPrice": PRICE / 2}
    placed = api.place_equity_order(**equity(cred, registry[2].symbol, "L1", **terms))
    order_id = int(placed["PlaceOrderResponse"]["OrderIds"]["orderId"])

    resting = order_ids(api.list_orders(cred.account_id, status="OPEN"))
    answered = api.cancel_order(cred.account_id, order_id)
    cancelled = eventually(
        lambda: order_ids(api.list_orders(cred.account_id, status="CANCELLED")) or None
    )

    assert resting == [order_id]
    message = answered["CancelOrderResponse"]["Messages"]["Message"]
    assert message["code"] == "5011"
    assert cancelled == [order_id]
    assert order_ids(api.list_orders(cred.account_id, status="OPEN")) == []


def test_an_order_the_venue_refuses_raises_with_its_code(server: ServerThread) -> None:
    cred = credential(server, 5)

    with pytest.raises(Exception, match="Code: 10033"):  # pyetrade raises a bare Exception
        orders_api(server, cred).place_equity_order(
            **equity(cred, "NOSUCH", "R1", priceType="MARKET")
        )


def test_access_manager_renews_then_revokes_the_token(server: ServerThread) -> None:
    cred = credential(server, 6)
    manager = ETradeAccessManager(*keys(cred))
    manager.renew_access_token_url = f"{server.url}/oauth/renew_access_token"
    manager.revoke_access_token_url = f"{server.url}/oauth/revoke_access_token"
    api = accounts_api(server, cred)

    renewed = manager.renew_access_token()
    still_good = api.list_accounts()
    revoked = manager.revoke_access_token()

    assert renewed and revoked and "AccountListResponse" in still_good
    with pytest.raises(requests.HTTPError, match="401"):
        api.list_accounts()
