"""What each venue accepts and how it counts requests, as data (venues.md §1.2-§1.4, §2, §3.3-§3.5,
§4.3-§4.4, §6).

`VenueCapabilities` wraps the `VenueRules` already in `tickwise.model.instruments` (fractional
shares, minimum notionals, client order id length) and adds the order types and time-in-force
values per asset class with each venue's own spelling, the client order id charset, and the
rate limits as `LimitRule`s that `tickwise.venues.ratelimit.RateLimiter` enforces. Numbers are the
documented defaults; venues change them, so callers may build their own table.

A request's cost is a mapping from meter to amount (`{"weight": 4, "requests": 1}`): a rule
charges the meter named by its `meter` (its unit, or "pool:unit" when a venue counts modules
apart, as E*Trade does). `VenueCapabilities.cost(endpoint)` builds it for one call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Literal, TypeVar

from tickwise.model.instruments import VENUE_RULES, AssetClass, Venue, VenueRules

Scope = Literal["ip", "key", "account"]
CostUnit = Literal["requests", "weight", "orders"]
WindowKind = Literal["sliding", "fixed"]
HeaderCount = Literal["used", "remaining"]

SCOPES: tuple[Scope, ...] = ("ip", "key", "account")
COST_UNITS: tuple[CostUnit, ...] = ("requests", "weight", "orders")


class OrderType(IntEnum):
    MARKET = 0
    LIMIT = 1
    STOP = 2
    STOP_LIMIT = 3
    TRAILING_STOP = 4
    LIMIT_MAKER = 5  # post-only
    TAKE_PROFIT = 6
    TAKE_PROFIT_LIMIT = 7
    MARKET_ON_CLOSE = 8


class TimeInForce(IntEnum):
    DAY = 0
    GTC = 1
    IOC = 2
    FOK = 3
    OPG = 4  # at the open
    CLS = 5  # at the close


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One budget a venue enforces: `capacity` units of `unit` per `window_s` seconds per scope.

    `scope`: what the venue counts by ("ip", "key" = API key / consumer key, "account").
    `window`: "sliding" (at most `capacity` in any `window_s` span) or "fixed" (counters reset at
    multiples of `window_s`). `pool`: a separate budget for one group of endpoints (E*Trade's
    modules); empty when the rule covers every endpoint.
    `header` / `header_counts`: the response header (lower case) that reports this budget, and
    whether it gives what is used or what remains.
    Fixed windows start at multiples of `window_s` on the limiter's clock: give the limiter a wall
    clock when a venue aligns its counters to wall time.
    """

    name: str
    scope: Scope
    window_s: float
    capacity: float
    unit: CostUnit
    window: WindowKind = "sliding"
    pool: str = ""
    header: str | None = None
    header_counts: HeaderCount = "used"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"limit rule {self.name!r}: unknown scope {self.scope!r}")
        if self.unit not in COST_UNITS:
            raise ValueError(f"limit rule {self.name!r}: unknown cost unit {self.unit!r}")
        if self.window not in ("sliding", "fixed"):
            raise ValueError(f"limit rule {self.name!r}: unknown window kind {self.window!r}")
        if not self.window_s > 0.0:
            raise ValueError(f"limit rule {self.name!r}: window_s must be > 0, got {self.window_s}")
        if not self.capacity > 0.0:
            raise ValueError(f"limit rule {self.name!r}: capacity must be > 0, got {self.capacity}")
        if self.header is not None and self.header != self.header.lower():
            raise ValueError(f"limit rule {self.name!r}: header must be lower case")

    @property
    def meter(self) -> str:
        """The key of a cost mapping this rule charges."""
        return f"{self.pool}:{self.unit}" if self.pool else self.unit


@dataclass(frozen=True, slots=True)
class VenueCapabilities:
    """Everything the adapters and the router need to know about a venue, with no branches.

    `order_types` / `time_in_force`: per asset class, normalised value -> the venue's spelling.
    `client_order_id_charset`: a regex character class; the length limit is `rules`'.
    `endpoint_weights`: Binance-style request weights by "METHOD path"; an endpoint missing from
    a non-empty table is refused by `cost` rather than guessed.
    `order_endpoints`: calls that also count as a new order ("orders" unit).
    `endpoint_pools`: (path fragment, pool) pairs, first match wins, for pooled rules.
    `rate_limit_statuses`: HTTP statuses that mean "slow down"; `escalating_ban`: ignoring them
    leads to a ban that grows (Binance 418).
    """

    rules: VenueRules
    order_types: Mapping[AssetClass, Mapping[OrderType, str]]
    time_in_force: Mapping[AssetClass, Mapping[TimeInForce, str]]
    client_order_id_charset: str
    limits: tuple[LimitRule, ...]
    rate_limit_statuses: frozenset[int]
    escalating_ban: bool = False
    endpoint_weights: Mapping[str, float] = field(default_factory=dict)
    order_endpoints: frozenset[str] = frozenset()
    endpoint_pools: tuple[tuple[str, str], ...] = ()
    _id_pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = re.compile(
            f"{self.client_order_id_charset}{{1,{self.rules.max_client_order_id_len}}}"
        )
        object.__setattr__(self, "_id_pattern", pattern)
        for asset_class in (*self.order_types, *self.time_in_force):
            if not self.rules.trades(asset_class):
                raise ValueError(
                    f"{self.venue.label}: capabilities for untraded {asset_class.name}"
                )
        names = [rule.name for rule in self.limits]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.venue.label}: duplicate limit rule names {names}")

    @property
    def venue(self) -> Venue:
        return self.rules.venue

    @property
    def fractional_equities(self) -> bool:
        return self.rules.fractional_equities

    def supports(
        self, asset_class: AssetClass, order_type: OrderType, tif: TimeInForce | None = None
    ) -> bool:
        """Whether the venue takes `order_type` (and `tif`) for `asset_class`."""
        if order_type not in self.order_types.get(asset_class, {}):
            return False
        return tif is None or tif in self.time_in_force.get(asset_class, {})

    def accepts_client_order_id(self, coid: str) -> bool:
        """The venue's id rule: length 1..max and every character in the charset."""
        return self._id_pattern.fullmatch(coid) is not None

    def pool_of(self, endpoint: str) -> str:
        for fragment, pool in self.endpoint_pools:
            if fragment in endpoint:
                return pool
        return ""

    def cost(self, endpoint: str) -> dict[str, float]:
        """The cost mapping of one call to `endpoint` ("METHOD path"), for `RateLimiter`."""
        pool = self.pool_of(endpoint)
        prefix = f"{pool}:" if pool else ""
        cost: dict[str, float] = {f"{prefix}requests": 1.0}
        if self.endpoint_weights:
            try:
                cost[f"{prefix}weight"] = float(self.endpoint_weights[endpoint])
            except KeyError:
                raise ValueError(
                    f"{self.venue.label}: no request weight known for endpoint {endpoint!r}"
                ) from None
        if endpoint in self.order_endpoints:
            cost[f"{prefix}orders"] = 1.0
        return cost


_E = TypeVar("_E", OrderType, TimeInForce)


def _frozen(
    mapping: Mapping[AssetClass, Mapping[_E, str]],
) -> Mapping[AssetClass, Mapping[_E, str]]:
    """A read-only copy, so the shared table cannot be changed by a caller."""
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in mapping.items()})


_EQ, _CRYPTO = AssetClass.EQUITY, AssetClass.CRYPTO
_OT, _TIF = OrderType, TimeInForce
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0

# Alpaca Trading API. §1.2: equities market/limit/stop/stop_limit/trailing_stop with
# day/gtc/opg/cls/ioc/fok; crypto market/limit/stop_limit with gtc/ioc. venues.md gives no id
# charset (only <= 48 chars): any visible ASCII. §1.4: 200 requests/min per account's API key,
# X-Ratelimit-Limit/Remaining/Reset on every answer, 429 on excess.
ALPACA = VenueCapabilities(
    rules=VENUE_RULES[Venue.ALPACA],
    order_types=_frozen(
        {
            _EQ: {
                _OT.MARKET: "market",
                _OT.LIMIT: "limit",
                _OT.STOP: "stop",
                _OT.STOP_LIMIT: "stop_limit",
                _OT.TRAILING_STOP: "trailing_stop",
            },
            _CRYPTO: {_OT.MARKET: "market", _OT.LIMIT: "limit", _OT.STOP_LIMIT: "stop_limit"},
        }
    ),
    time_in_force=_frozen(
        {
            _EQ: {
                _TIF.DAY: "day",
                _TIF.GTC: "gtc",
                _TIF.OPG: "opg",
                _TIF.CLS: "cls",
                _TIF.IOC: "ioc",
                _TIF.FOK: "fok",
            },
            _CRYPTO: {_TIF.GTC: "gtc", _TIF.IOC: "ioc"},
        }
    ),
    client_order_id_charset="[!-~]",
    limits=(
        LimitRule(
            "trading-api",
            scope="key",
            window_s=MINUTE,
            capacity=200,
            unit="requests",
            header="x-ratelimit-remaining",
            header_counts="remaining",
        ),
    ),
    rate_limit_statuses=frozenset({429}),
)

# Alpaca Broker API (§2): same orders and ids as the Trading API (§1.2); 1 000 calls/min, counted
# per account for endpoints under /accounts/{account_id}/ (pool "account"), otherwise per key.
# Pass scope_keys={"account": id} for account-scoped calls and {"key": key} for the others.
ALPACA_BROKER = VenueCapabilities(
    rules=VENUE_RULES[Venue.ALPACA],
    order_types=ALPACA.order_types,
    time_in_force=ALPACA.time_in_force,
    client_order_id_charset=ALPACA.client_order_id_charset,
    limits=(
        LimitRule(
            "broker-api",
            scope="key",
            window_s=MINUTE,
            capacity=1000,
            unit="requests",
            header="x-ratelimit-remaining",
            header_counts="remaining",
        ),
        LimitRule(
            "broker-api-per-account",
            scope="account",
            window_s=MINUTE,
            capacity=1000,
            unit="requests",
            pool="account",
            header="x-ratelimit-remaining",
            header_counts="remaining",
        ),
    ),
    rate_limit_statuses=frozenset({429}),
    endpoint_pools=(("/trading/accounts/", "account"),),
)

# Binance Spot. §3.3: MARKET, LIMIT, STOP_LOSS, STOP_LOSS_LIMIT, TAKE_PROFIT, TAKE_PROFIT_LIMIT,
# LIMIT_MAKER with GTC/IOC/FOK; newClientOrderId [A-Za-z0-9._:/-], <= 36 chars; weights per
# endpoint (§3.3, §3.5-§3.7). §3.5: REQUEST_WEIGHT 6000/min and RAW_REQUESTS 61000/5 min per IP,
# ORDERS 50/10 s and 160000/day per account (all its keys), sliding windows as the simulator
# counts them; X-MBX-USED-WEIGHT-1M and X-MBX-ORDER-COUNT-10S/-1D report usage. 429 then 418 bans
# that escalate from 2 min to 3 days.
BINANCE = VenueCapabilities(
    rules=VENUE_RULES[Venue.BINANCE],
    order_types=_frozen(
        {
            _CRYPTO: {
                _OT.MARKET: "MARKET",
                _OT.LIMIT: "LIMIT",
                _OT.STOP: "STOP_LOSS",
                _OT.STOP_LIMIT: "STOP_LOSS_LIMIT",
                _OT.TAKE_PROFIT: "TAKE_PROFIT",
                _OT.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT",
                _OT.LIMIT_MAKER: "LIMIT_MAKER",
            }
        }
    ),
    time_in_force=_frozen({_CRYPTO: {_TIF.GTC: "GTC", _TIF.IOC: "IOC", _TIF.FOK: "FOK"}}),
    client_order_id_charset=r"[A-Za-z0-9._:/\-]",
    limits=(
        LimitRule(
            "request-weight",
            scope="ip",
            window_s=MINUTE,
            capacity=6000,
            unit="weight",
            header="x-mbx-used-weight-1m",
        ),
        LimitRule("raw-requests", scope="ip", window_s=5 * MINUTE, capacity=61000, unit="requests"),
        LimitRule(
            "orders-10s",
            scope="account",
            window_s=10.0,
            capacity=50,
            unit="orders",
            header="x-mbx-order-count-10s",
        ),
        LimitRule(
            "orders-1d",
            scope="account",
            window_s=DAY,
            capacity=160000,
            unit="orders",
            header="x-mbx-order-count-1d",
        ),
    ),
    rate_limit_statuses=frozenset({429, 418}),
    escalating_ban=True,
    endpoint_weights=MappingProxyType(
        {
            "POST /api/v3/order": 1,
            "POST /api/v3/order/test": 1,
            "POST /api/v3/order/test?computeCommissionRates": 20,
            "DELETE /api/v3/order": 1,
            "DELETE /api/v3/openOrders": 1,
            "GET /api/v3/order": 4,
            "GET /api/v3/openOrders": 6,
            "GET /api/v3/openOrders?all-symbols": 80,
            "GET /api/v3/allOrders": 20,
            "GET /api/v3/myTrades": 20,
            "GET /api/v3/myTrades?orderId": 5,
            "POST /api/v3/order/cancelReplace": 1,
            "GET /api/v3/rateLimit/order": 40,
            "GET /api/v3/account": 20,
            "GET /api/v3/exchangeInfo": 20,
            "GET /api/v3/time": 1,
            "GET /api/v3/ping": 1,
            "WS /ws-api/v3": 2,  # connecting to the WebSocket API
        }
    ),
    order_endpoints=frozenset({"POST /api/v3/order", "POST /api/v3/order/cancelReplace"}),
)

# E*Trade v1. §4.3: priceType MARKET/LIMIT/STOP/STOP_LIMIT/MARKET_ON_CLOSE, orderTerm
# GOOD_FOR_DAY/GOOD_UNTIL_CANCEL/IMMEDIATE_OR_CANCEL/FILL_OR_KILL (the last two limit-only);
# clientOrderId <= 20 alphanumerics. §4.4 (legacy numbers): per consumer key and per user, per
# module: Accounts 2/s and 7000/h, Market 4/s and 14000/h, Order 2/s and 7000/h; excess is an HTTP
# 400 HTML page, not 429. "key" = the consumer key, "account" = the user.
_ETRADE_MODULES: tuple[tuple[str, float, float], ...] = (
    ("order", 2, 7000),
    ("market", 4, 14000),
    ("accounts", 2, 7000),
)
ETRADE = VenueCapabilities(
    rules=VENUE_RULES[Venue.ETRADE],
    order_types=_frozen(
        {
            _EQ: {
                _OT.MARKET: "MARKET",
                _OT.LIMIT: "LIMIT",
                _OT.STOP: "STOP",
                _OT.STOP_LIMIT: "STOP_LIMIT",
                _OT.MARKET_ON_CLOSE: "MARKET_ON_CLOSE",
            }
        }
    ),
    time_in_force=_frozen(
        {
            _EQ: {
                _TIF.DAY: "GOOD_FOR_DAY",
                _TIF.GTC: "GOOD_UNTIL_CANCEL",
                _TIF.IOC: "IMMEDIATE_OR_CANCEL",
                _TIF.FOK: "FILL_OR_KILL",
            }
        }
    ),
    client_order_id_charset="[A-Za-z0-9]",
    limits=tuple(
        LimitRule(f"{module}-{label}-{scope}", scope, window_s, capacity, "requests", pool=module)
        for module, per_s, per_h in _ETRADE_MODULES
        for scope in ("key", "account")
        for label, window_s, capacity in (("1s", 1.0, per_s), ("1h", HOUR, per_h))
    ),
    rate_limit_statuses=frozenset({400, 429}),
    endpoint_pools=(("/orders", "order"), ("/v1/market/", "market"), ("/v1/accounts", "accounts")),
)

CAPABILITIES: dict[Venue, VenueCapabilities] = {
    Venue.ALPACA: ALPACA,
    Venue.BINANCE: BINANCE,
    Venue.ETRADE: ETRADE,
}
