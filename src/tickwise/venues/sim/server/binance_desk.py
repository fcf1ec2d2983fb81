"""The simulated Binance Spot order desk: requests in Binance's words, answers in its JSON.

Shared by the REST API (`binance.py`) and the WebSocket API (`binance_ws.py`): parameters arrive
as text (query, form body or WS params), are validated as Binance validates them (mandatory
parameters, enums, precision, PRICE_FILTER and LOT_SIZE on exact decimals), then go to the
`SimExchange`, whose refusals keep Binance's code and text. Failures raise `ApiError`, which each
protocol renders in its own envelope. Rejected orders are never stored at Binance (they are
synchronous -2010 errors), so queries do not see them either.
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation

from tickwise.model.instruments import Venue
from tickwise.model.orders import OrderState
from tickwise.venues.binance.wire import (
    QUOTE_ASSET,
    SIDE_OF,
    SymbolMap,
    fmt,
    fmt_step,
)
from tickwise.venues.capabilities import BINANCE, LimitRule, OrderType, TimeInForce
from tickwise.venues.http import decode_json
from tickwise.venues.sim.config import venue_reject_text
from tickwise.venues.sim.exchange import OrderRefusedError, SimOrder
from tickwise.venues.sim.server.binance_json import (
    TIF_TEXT,
    TYPE_TEXT,
    BinanceJson,
    rate_limits_document,
)
from tickwise.venues.sim.server.common import SimContext

SETTLE_TIMEOUT_S = 10.0  # longest a RESULT/FULL answer waits for the matching core
MAX_PRICE = 10_000_000.0
MAX_QTY = 9_000_000.0
# Binance sets maxQty per symbol, in proportion to its step (BTCUSDT 9,000 at a 0.00001 step,
# SHIBUSDT 92 billion at 1): a cap of 9e11 steps, never below MAX_QTY, keeps an order of a
# coin worth a few cents as large as one of bitcoin.
MAX_STEPS = 9e11


def max_quantity(step: float) -> float:
    """The simulator's LOT_SIZE maxQty for a symbol of this step."""
    return max(MAX_QTY, step * MAX_STEPS)


_ID_ALPHABET = string.ascii_letters + string.digits
_TIF_OF = {text: tif for tif, text in TIF_TEXT.items()}
_KNOWN_TYPES = frozenset(
    {"LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
    | {"LIMIT_MAKER"}
)
RESP_TYPES = ("ACK", "RESULT", "FULL")
_EIGHT_PLACES = Decimal("1e-8")


class ApiError(Exception):
    """A Binance error answer: HTTP status, Binance code and message."""

    def __init__(
        self, status: int, code: int, msg: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> ApiError:
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def not_required(name: str) -> ApiError:
    return ApiError(400, -1106, f"Parameter '{name}' sent when not required.")


def no_such_order() -> ApiError:
    return ApiError(400, -2013, "Order does not exist.")


def unknown_order() -> ApiError:
    return ApiError(400, -2011, "Unknown order sent.")


def invalid_symbol() -> ApiError:
    return ApiError(400, -1121, "Invalid symbol.")


def filter_failure(name: str) -> ApiError:
    return ApiError(400, -1013, f"Filter failure: {name}")


def new_client_order_id() -> str:
    """A server-made client order id (22 characters, as Binance makes them)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(22))


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated new-order request."""

    instrument: int
    symbol: str
    side: str
    order_type: OrderType
    tif: TimeInForce
    qty: float
    price: float  # NaN for MARKET
    client_order_id: str
    resp_type: str


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    """A decimal parameter (None when absent), refused as Binance refuses bad numbers."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
        if not value.is_finite() or value < 0:
            raise mandatory(name)
        too_precise = value != value.quantize(_EIGHT_PLACES)
    except InvalidOperation:
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ) from None
    if too_precise:
        raise ApiError(400, -1111, f"Parameter '{name}' has too much precision.")
    return value


class BinanceDesk:
    """Orders, accounts and rules of the simulated exchange, in Binance's JSON."""

    def __init__(self, ctx: SimContext, limits: tuple[LimitRule, ...] = BINANCE.limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self.exchange = ctx.exchange
        registry = ctx.exchange.registry
        self.symbols = SymbolMap.of(registry)
        self._tick = [Decimal(repr(float(t))) for t in registry.tick_size]
        self._step = [Decimal(repr(float(s))) for s in registry.quantity_increment(Venue.BINANCE)]
        self._min_notional = registry.venue_min_notional(Venue.BINANCE)
        self._fee_rate = ctx.exchange.config.fee_rate(Venue.BINANCE)
        self.json = BinanceJson(self.symbols)

    # -- rules -----------------------------------------------------------------------------

    def instrument(self, symbol: str | None) -> int:
        if not symbol:
            raise mandatory("symbol")
        inst = self.symbols.by_wire.get(symbol)
        if inst is None:
            raise invalid_symbol()
        return inst

    def exchange_info(self, params: Mapping[str, str], server_ms: int) -> dict[str, object]:
        """`GET /api/v3/exchangeInfo[?symbol=|symbols=[..]]`."""
        if params.get("symbol"):
            wanted = [self.instrument(params["symbol"])]
        elif params.get("symbols"):
            try:
                names = decode_json(params["symbols"])
            except ValueError:
                raise mandatory("symbols") from None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise mandatory("symbols")
            wanted = [self.instrument(n) for n in names]
        else:
            wanted = sorted(self.symbols.by_wire.values())
        return {
            "timezone": "UTC",
            "serverTime": server_ms,
            "rateLimits": rate_limits_document(self.limits),
            "exchangeFilters": [],
            "symbols": [self.symbol_info(i) for i in wanted],
        }

    def symbol_info(self, inst: int) -> dict[str, object]:
        symbol, base = self.symbols.wire[inst], self.symbols.base[inst]
        tick, step = float(self._tick[inst]), float(self._step[inst])
        return {
            "symbol": symbol,
            "status": "TRADING",
            "baseAsset": base,
            "baseAssetPrecision": 8,
            "quoteAsset": QUOTE_ASSET,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "icebergAllowed": False,
            "ocoAllowed": False,
            "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt_step(tick),
                    "maxPrice": fmt_step(MAX_PRICE),
                    "tickSize": fmt_step(tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt_step(step),
                    "maxQty": fmt_step(max_quantity(step)),
                    "stepSize": fmt_step(step),
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": fmt_step(float(self._min_notional[inst])),
                    "applyMinToMarket": True,
                    "maxNotional": fmt_step(MAX_PRICE * 100),
                    "applyMaxToMarket": False,
                    "avgPriceMins": 0,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_MAKER"],
        }

    # -- new orders ------------------------------------------------------------------------

    def parse_new_order(self, params: Mapping[str, str]) -> NewOrder:
        """Validate a new-order request as Binance does before matching."""
        inst = self.instrument(params.get("symbol"))
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in SIDE_OF:
            raise ApiError(400, -1117, "Invalid side.")
        type_text = params.get("type")
        if not type_text:
            raise mandatory("type")
        if type_text not in _KNOWN_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        if type_text not in TYPE_TEXT.values():
            raise ApiError(400, -2010, "Unsupported order combination")
        order_type = OrderType.MARKET if type_text == "MARKET" else OrderType.LIMIT
        qty = _decimal(params, "quantity")
        price = _decimal(params, "price")
        if order_type is OrderType.MARKET:
            tif = TimeInForce.GTC
            for name in ("timeInForce", "price"):
                if params.get(name):
                    raise not_required(name)
            quote = _decimal(params, "quoteOrderQty")
            if qty is not None and quote is not None:
                raise ApiError(
                    400, -1102, "Parameter 'quantity' or 'quoteOrderQty' must be sent, not both."
                )
            if quote is not None:
                qty = self._quantity_for(inst, quote)
        else:
            tif_text = params.get("timeInForce")
            if not tif_text:
                raise mandatory("timeInForce")
            if tif_text not in _TIF_OF:
                raise ApiError(400, -1115, "Invalid timeInForce.")
            tif = _TIF_OF[tif_text]
            if price is None:
                raise mandatory("price")
            if params.get("quoteOrderQty"):
                raise not_required("quoteOrderQty")
            tick = self._tick[inst]
            if price < tick or price > Decimal(repr(MAX_PRICE)) or price % tick != 0:
                raise filter_failure("PRICE_FILTER")
        if qty is None:
            raise mandatory("quantity")
        step = self._step[inst]
        if qty < step or qty > Decimal(repr(max_quantity(float(step)))) or qty % step != 0:
            raise filter_failure("LOT_SIZE")
        coid = params.get("newClientOrderId") or new_client_order_id()
        if not BINANCE.accepts_client_order_id(coid):
            raise ApiError(
                400,
                -1100,
                "Illegal characters found in parameter 'newClientOrderId'; legal range is "
                "'^[a-zA-Z0-9-_.:/]{1,36}$'.",
            )
        resp_type = params.get("newOrderRespType") or "FULL"
        if resp_type not in RESP_TYPES:
            raise mandatory("newOrderRespType")
        return NewOrder(
            instrument=inst,
            symbol=self.symbols.wire[inst] or "",
            side=side,
            order_type=order_type,
            tif=tif,
            qty=float(qty),
            price=float(price) if price is not None else math.nan,
            client_order_id=coid,
            resp_type=resp_type,
        )

    def _quantity_for(self, inst: int, quote: Decimal) -> Decimal:
        """A quoteOrderQty MARKET order's base quantity, floored to the lot step."""
        last = self.exchange.price(inst)
        if not (math.isfinite(last) and last > 0):
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")
        step = self._step[inst]
        return (quote / Decimal(repr(last)) / step).to_integral_value(rounding=ROUND_FLOOR) * step

    def place(self, client: int, spec: NewOrder) -> SimOrder:
        """Hand a validated order to the exchange; its refusals in Binance's words."""
        try:
            return self.exchange.submit(
                client,
                spec.instrument,
                SIDE_OF[spec.side],
                spec.qty,
                spec.client_order_id,
                spec.order_type,
                spec.tif,
                spec.price,
            )
        except OrderRefusedError as refused:
            raise ApiError(400, refused.code, refused.text) from None

    async def answer_new(self, order: SimOrder, spec: NewOrder) -> dict[str, object]:
        """The new-order answer: ACK at once; RESULT/FULL once matching has decided."""
        if spec.resp_type != "ACK":
            await self.exchange.settled(order, SETTLE_TIMEOUT_S)
        if order.state is OrderState.REJECTED:
            _, text = venue_reject_text(Venue.BINANCE, order.reason)
            raise ApiError(400, -2010, text)
        answer: dict[str, object] = {
            "symbol": spec.symbol,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": order.client_order_id,
            "transactTime": order.created_ns // 1_000_000,
        }
        if spec.resp_type == "ACK":
            return answer
        answer.update(self.json.result_fields(order))
        answer["workingTime"] = order.created_ns // 1_000_000
        answer["selfTradePreventionMode"] = "EXPIRE_MAKER"
        if spec.resp_type == "FULL":
            answer["fills"] = self.json.fills(order)
        return answer

    # -- existing orders -------------------------------------------------------------------

    def find(self, client: int, params: Mapping[str, str]) -> SimOrder:
        """The order named by `symbol` and `orderId` or `origClientOrderId` (-2013 if none)."""
        inst = self.instrument(params.get("symbol"))
        order_id, coid = params.get("orderId"), params.get("origClientOrderId")
        if not order_id and not coid:
            raise ApiError(
                400,
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        if order_id:
            try:
                found = self.exchange.find(client, order_id=int(order_id))
            except ValueError:
                raise mandatory("orderId") from None
            if found is not None and coid and found.client_order_id != coid:
                found = None
        else:
            found = next(
                (
                    o
                    for o in reversed(self.exchange.orders_of(client))
                    if o.client_order_id == coid and o.state is not OrderState.REJECTED
                ),
                None,
            )
        if found is None or found.instrument != inst or found.state is OrderState.REJECTED:
            raise no_such_order()
        return found

    def query_order(self, client: int, params: Mapping[str, str]) -> dict[str, object]:
        return self.json.order(self.find(client, params))

    async def cancel_order(self, client: int, params: Mapping[str, str]) -> dict[str, object]:
        try:
            order = self.find(client, params)
        except ApiError as err:
            if err.code == -2013:
                raise unknown_order() from None
            raise
        return await self._cancel(client, order, params.get("newClientOrderId"))

    async def _cancel(
        self, client: int, order: SimOrder, cancel_id: str | None
    ) -> dict[str, object]:
        if not order.open:
            raise unknown_order()
        self.exchange.cancel(client, order_id=order.order_id)
        if order.in_matching:  # canceled in the core, or filled first: wait for its verdict
            await self.exchange.settled(order, SETTLE_TIMEOUT_S)
        if order.state is not OrderState.CANCELED:
            raise unknown_order()
        answer: dict[str, object] = {
            "symbol": self.symbols.wire[order.instrument],
            "origClientOrderId": order.client_order_id,
            "orderId": order.order_id,
            "orderListId": -1,
            "clientOrderId": cancel_id or new_client_order_id(),
            "transactTime": order.updated_ns // 1_000_000,
        }
        answer.update(self.json.result_fields(order))
        answer["selfTradePreventionMode"] = "EXPIRE_MAKER"
        return answer

    def _open(self, client: int, params: Mapping[str, str]) -> list[SimOrder]:
        symbol = params.get("symbol")
        inst = self.instrument(symbol) if symbol else None
        return [
            o
            for o in self.exchange.orders_of(client, open_only=True)
            if inst is None or o.instrument == inst
        ]

    def open_orders(self, client: int, params: Mapping[str, str]) -> list[dict[str, object]]:
        return [self.json.order(o) for o in self._open(client, params)]

    async def cancel_open_orders(
        self, client: int, params: Mapping[str, str]
    ) -> list[dict[str, object]]:
        self.instrument(params.get("symbol"))
        orders = self._open(client, params)
        if not orders:
            raise unknown_order()
        return [await self._cancel(client, o, None) for o in orders]

    def my_trades(self, client: int, params: Mapping[str, str]) -> list[dict[str, object]]:
        """`GET /api/v3/myTrades?symbol[&orderId]`: one trade per filled order (its id)."""
        inst = self.instrument(params.get("symbol"))
        only = params.get("orderId")
        try:
            order_id = int(only) if only else None
            limit = min(max(int(params.get("limit") or 500), 1), 1000)
        except ValueError:
            raise mandatory("orderId" if only else "limit") from None
        trades = [
            self.json.trade(o)
            for o in self.exchange.orders_of(client)
            if o.instrument == inst
            and o.filled_qty > 0
            and (order_id is None or o.order_id == order_id)
        ]
        return trades[-limit:]

    # -- account ---------------------------------------------------------------------------

    def balances(self, client: int, instruments: set[int] | None = None) -> list[dict[str, str]]:
        """Free and locked per asset: USDT = cash less what resting buys lock; a base asset =
        the position less what open sells hold. `instruments` limits the base assets."""
        cash, locked = self.exchange.cash(client), self.exchange.locked(client)
        rows = [{"asset": QUOTE_ASSET, "free": fmt(cash - locked), "locked": fmt(locked)}]
        positions = self.exchange.positions(client)
        wanted = set(self.symbols.by_wire.values()) if instruments is None else instruments
        for inst in sorted(wanted):
            base = self.symbols.base[inst]
            if base is None:
                continue
            held = self.exchange.held_by_open_sells(client, inst)
            qty = positions.get(inst, 0.0)
            rows.append({"asset": base, "free": fmt(qty - held), "locked": fmt(held)})
        return rows

    def account(self, client: int, params: Mapping[str, str], now_ms: int) -> dict[str, object]:
        rows = self.balances(client)
        if params.get("omitZeroBalances") == "true":
            rows = [r for r in rows if float(r["free"]) != 0 or float(r["locked"]) != 0]
        bps = round(self._fee_rate * 1e4)
        rate = fmt(self._fee_rate)
        return {
            "makerCommission": bps,
            "takerCommission": bps,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": rate, "taker": rate, "buyer": fmt(0), "seller": fmt(0)},
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": now_ms,
            "accountType": "SPOT",
            "balances": rows,
            "permissions": ["SPOT"],
            "uid": client,
        }

    def account_position(self, client: int, instrument: int, now_ms: int) -> dict[str, object]:
        """The `outboundAccountPosition` after a change to one instrument's order."""
        rows = self.balances(client, {instrument})
        return {
            "e": "outboundAccountPosition",
            "E": now_ms,
            "u": now_ms,
            "B": [{"a": r["asset"], "f": r["free"], "l": r["locked"]} for r in rows],
        }
