"""Clients, their venue accounts, model portfolios and subscriptions.

Value objects describe one record; `ClientBook` holds all of them as columns so that the
allocator can size orders for tens of thousands of clients with numpy, never a loop per client.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tickwise.model.ids import AccountId, ClientId, PortfolioId
from tickwise.model.instruments import AssetClass, Venue


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Per-client limits checked before an order is journaled."""

    max_order_notional: float
    max_position_weight: float  # of the client's equity, per instrument

    def __post_init__(self) -> None:
        if not self.max_order_notional > 0:
            raise ValueError("max_order_notional must be > 0")
        if not 0 < self.max_position_weight <= 1:
            raise ValueError("max_position_weight must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Client:
    client_id: ClientId
    name: str
    venue: Venue
    equity: float
    limits: RiskLimits


@dataclass(frozen=True, slots=True)
class Account:
    """A client's account at a venue; `account_id` is the venue's own identifier."""

    account_id: AccountId
    client_id: ClientId
    venue: Venue


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A model portfolio: instruments and their base weights (summing to at most 1)."""

    portfolio_id: PortfolioId
    name: str
    asset_class: AssetClass
    instruments: tuple[int, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.instruments) != len(self.weights):
            raise ValueError(f"portfolio {self.name!r}: instruments and weights differ in length")
        if len(set(self.instruments)) != len(self.instruments):
            raise ValueError(f"portfolio {self.name!r}: an instrument appears twice")
        if any(w < 0 for w in self.weights) or sum(self.weights) > 1 + 1e-9:
            raise ValueError(f"portfolio {self.name!r}: weights must be >= 0 and sum to <= 1")


@dataclass(frozen=True, slots=True)
class Subscription:
    client_id: ClientId
    portfolio_id: PortfolioId
    allocation: float  # share of the client's equity given to the portfolio

    def __post_init__(self) -> None:
        if not 0 < self.allocation <= 1:
            raise ValueError("subscription allocation must be in (0, 1]")


@dataclass(slots=True)
class ClientBook:
    """Every client as columns, plus subscriptions as (client, portfolio, allocation) rows.

    Client ids are dense: row i of the client columns is client id `client_id[i]`, and
    `client_id` is sorted ascending so `np.searchsorted` maps ids to rows.
    """

    client_id: npt.NDArray[np.int32]
    venue: npt.NDArray[np.uint8]
    equity: npt.NDArray[np.float64]
    max_order_notional: npt.NDArray[np.float64]
    max_position_weight: npt.NDArray[np.float64]
    sub_client: npt.NDArray[np.int32]
    sub_portfolio: npt.NDArray[np.int32]
    sub_allocation: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.client_id)

    def rows_of(self, client_ids: npt.ArrayLike) -> npt.NDArray[np.intp]:
        ids = np.asarray(client_ids)
        rows = np.searchsorted(self.client_id, ids)
        if ids.size and (
            rows.max() >= len(self.client_id) or not np.array_equal(self.client_id[rows], ids)
        ):
            raise KeyError("unknown client id in lookup")
        return rows

    def select(self, client_ids: npt.ArrayLike) -> ClientBook:
        """The sub-book of the given clients (with their subscriptions)."""
        rows = self.rows_of(np.sort(np.asarray(client_ids)))
        keep = np.isin(self.sub_client, self.client_id[rows])
        return ClientBook(
            client_id=self.client_id[rows],
            venue=self.venue[rows],
            equity=self.equity[rows],
            max_order_notional=self.max_order_notional[rows],
            max_position_weight=self.max_position_weight[rows],
            sub_client=self.sub_client[keep],
            sub_portfolio=self.sub_portfolio[keep],
            sub_allocation=self.sub_allocation[keep],
        )
