"""Connecting a router lane to a venue over the network: endpoints, credentials, the adapter.

A router lane (a range of clients at one venue) gets an adapter built in its own process by
`connect_venue`: the lane's credentials are read from the store and opened there with the master
key from the environment (`TICKWISE_MASTER_KEY`), so no secret ever crosses a process boundary.

Endpoints: `--venues http` uses the simulator servers (started by the run, or given by URL);
`--venues live` uses the venues' paper/sandbox hosts unless a URL is configured. Firm-level
keys for live trading (the Alpaca Broker API key) come from the environment:
`TICKWISE_ALPACA_BROKER_KEY_ID` and `TICKWISE_ALPACA_BROKER_SECRET`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tickwise.model.instruments import InstrumentRegistry, Venue
from tickwise.venues.credentials import Credential, CredentialVault, MasterKey

BROKER_KEY_ID_ENV = "TICKWISE_ALPACA_BROKER_KEY_ID"
BROKER_SECRET_ENV = "TICKWISE_ALPACA_BROKER_SECRET"


@dataclass(frozen=True, slots=True)
class VenueEndpoint:
    """Where a venue is: its REST base URL and the stream URL its adapter uses (Alpaca: the
    Broker API serves its event stream on the REST host; Binance: the WebSocket API; E*Trade
    has no stream and is polled)."""

    venue: Venue
    base_url: str
    stream_url: str = ""
    simulated: bool = True


# Paper-trading / sandbox hosts: what `--venues live` uses unless `[venues] <venue>_url` is set.
LIVE_ENDPOINTS: dict[Venue, VenueEndpoint] = {
    Venue.ALPACA: VenueEndpoint(
        Venue.ALPACA, "https://broker-api.sandbox.alpaca.markets", "", simulated=False
    ),
    Venue.BINANCE: VenueEndpoint(
        Venue.BINANCE,
        "https://testnet.binance.vision",
        "wss://ws-api.testnet.binance.vision/ws-api/v3",
        simulated=False,
    ),
    Venue.ETRADE: VenueEndpoint(Venue.ETRADE, "https://apisb.etrade.com", "", simulated=False),
}


def simulator_endpoint(venue: Venue, url: str) -> VenueEndpoint:
    """The endpoint of a simulator server at `url` (http://host:port)."""
    base = url.rstrip("/")
    ws = "ws" + base[len("http") :] if base.startswith("http") else base
    stream = f"{ws}/ws-api/v3" if venue is Venue.BINANCE else ""
    return VenueEndpoint(venue, base, stream, simulated=True)


def open_lane_credentials(
    store_url: str, venue: Venue, clients: npt.ArrayLike
) -> dict[int, Credential]:
    """The credentials of a lane's clients, opened in this process with the master key."""
    from tickwise.store import open_store

    vault = CredentialVault(MasterKey.from_env())
    store = open_store(store_url)
    try:
        rows = store.load_credentials(np.asarray(clients, dtype=np.int64), venue)
    finally:
        store.close()
    return {c.client_id: c for c in vault.open_many(rows)}


def connect_venue(
    endpoint: VenueEndpoint,
    registry: InstrumentRegistry,
    clients: npt.NDArray[np.int32],
    store_url: str,
    rate_limits: bool = True,
) -> Any:
    """The network adapter of one router lane (built inside the router's process)."""
    venue = endpoint.venue
    if venue is Venue.ALPACA:
        from tickwise.venues.alpaca.auth import BrokerCredentials
        from tickwise.venues.alpaca.client import AlpacaVenue
        from tickwise.venues.sim.server.common import (
            BROKER_KEY_ID,
            broker_account_uuid,
            broker_secret,
        )

        if endpoint.simulated:
            broker = BrokerCredentials(BROKER_KEY_ID, broker_secret(), sandbox=True)
            accounts = {int(c): str(broker_account_uuid(int(c))) for c in clients}
        else:
            broker = BrokerCredentials(
                _required_env(BROKER_KEY_ID_ENV), _required_env(BROKER_SECRET_ENV), sandbox=True
            )
            creds = open_lane_credentials(store_url, venue, clients)
            accounts = {cid: c.account_id for cid, c in creds.items() if c.account_id}
        return AlpacaVenue.broker(
            registry,
            broker,
            accounts,
            base_url=endpoint.base_url,
            rate_limits=rate_limits,
        )
    credentials = open_lane_credentials(store_url, venue, clients)
    missing = np.setdiff1d(np.asarray(clients), np.fromiter(credentials, np.int64))
    if missing.size:
        raise RuntimeError(
            f"{venue.label}: {missing.size} clients have no credentials in the store "
            f"(first: {int(missing[0])})"
        )
    if venue is Venue.BINANCE:
        from tickwise.venues.binance.client import BinanceVenue

        return BinanceVenue(
            registry,
            credentials,
            base_url=endpoint.base_url,
            stream_url=endpoint.stream_url,
            rate_limits=rate_limits,
        )
    from tickwise.venues.etrade.client import EtradeVenue
    from tickwise.venues.etrade.login import follow_authorize_page

    # The simulator approves its own login page, so its accounts log in again after midnight
    # US Eastern by themselves; a live account's user must log in, its new token be stored, and
    # the lane restarted.
    return EtradeVenue(
        registry,
        credentials,
        base_url=endpoint.base_url,
        stream_url=endpoint.stream_url,
        rate_limits=rate_limits,
        authorize_page=f"{endpoint.base_url}/e/t/etws/authorize" if endpoint.simulated else None,
        authorize=follow_authorize_page if endpoint.simulated else None,
    )


def _required_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise RuntimeError(f"--venues live needs {name} in the environment")
    return value
