"""The E*Trade v1 simulator: OAuth 1.0a, accounts and the preview -> place order flow over HTTP.

    /oauth/request_token, /oauth/access_token          GET or POST (requests-oauthlib POSTs)
    /e/t/etws/authorize?key=..&token=..                auto-approved: the body is the verifier
    /oauth/renew_access_token, /oauth/revoke_access_token
    /v1/accounts/list                                  GET
    /v1/accounts/{accountIdKey}/balance | /portfolio   GET
    /v1/accounts/{accountIdKey}/orders[/{orderId}]     GET (list: status, count, marker,
                                                       fromDate, toDate, symbol); 204 when empty
    /v1/accounts/{accountIdKey}/orders/preview | place POST
    /v1/accounts/{accountIdKey}/orders/cancel          PUT

Every path takes an optional `.json`. Answers are JSON for a `.json` path, an `Accept:
application/json` or a JSON body, XML otherwise (pyetrade posts XML and reads XML back). Errors are
E*Trade's `Error{code, message}` documents with HTTP 400; OAuth refusals are 401 with
`oauth_problem=...` (see `etrade_auth`); the rate limit is E*Trade's HTTP 400 HTML page.

Orders: a place must carry the previewId of a preview of the identical order, made by the same
account within `preview_lifetime_s`, else error 101. Placed orders are OPEN until the exchange
fills them (EXECUTED); a cancel answers 5011 at once and the order shows CANCEL_REQUESTED until
the exchange has cancelled it (CANCELLED). Faults drawn per place: 5xx and 429 refuse without
the order landing; unknown (500), timeout (held `stall_s`) and drop (connection closed) land it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from tickwise.model.instruments import Venue
from tickwise.model.orders import RejectReason
from tickwise.venues.capabilities import ETRADE
from tickwise.venues.ratelimit import RateLimiter
from tickwise.venues.sim.config import venue_reject_text
from tickwise.venues.sim.exchange import SimOrder
from tickwise.venues.sim.server import etrade_render as render
from tickwise.venues.sim.server.common import SimContext
from tickwise.venues.sim.server.etrade_auth import (
    OAuthGate,
    OAuthProblemError,
    SignedCall,
    parse_authorization,
)
from tickwise.venues.sim.server.etrade_orders import (
    PREVIEW_LIFETIME_S,
    ApiError,
    DroppedError,
    OrderDesk,
    document,
    int_param,
    rate_limited,
)
from tickwise.venues.sim.server.etrade_render import RequestFormatError

ACCOUNT_NOT_YOURS = (100, "Account key does not belong to user")
ACCOUNT_INVALID = (102, "Please enter valid account key")

# (request, client, account display id, path parts, answer in JSON)
Handler = Callable[[web.Request, int, str, list[str], bool], Awaitable[web.StreamResponse]]


class _EtradeServer:
    """Routes, OAuth and account calls; order calls go to the `OrderDesk`."""

    def __init__(
        self, ctx: SimContext, clock: Callable[[], float], preview_lifetime_s: float
    ) -> None:
        self.ctx = ctx
        self.clock = clock
        self.gate = OAuthGate(ctx.accounts, clock)
        self.limiter = RateLimiter(ETRADE.limits)
        self.desk = OrderDesk(ctx, clock, preview_lifetime_s)

    # -- OAuth ------------------------------------------------------------------------------

    async def oauth(self, request: web.Request) -> web.StreamResponse:
        action = request.match_info["action"]
        try:
            call = await _signed_call(request)
            if action == "request_token":
                token = self.gate.request_token(call)
                body = urlencode(
                    {
                        "oauth_token": token.token,
                        "oauth_token_secret": token.secret,
                        "oauth_callback_confirmed": "true",
                    }
                )
            elif action == "access_token":
                token = self.gate.access_token(call)
                body = urlencode({"oauth_token": token.token, "oauth_token_secret": token.secret})
            elif action == "renew_access_token":
                self.gate.renew(call)
                body = "Access Token has been renewed"
            elif action == "revoke_access_token":
                self.gate.revoke(call)
                body = "Revoked Access Token"
            else:
                raise web.HTTPNotFound()
            response: web.StreamResponse = web.Response(text=body, content_type="text/plain")
        except OAuthProblemError as problem:
            response = _oauth_refusal(problem)
        await self.ctx.network_delay()
        return response

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        try:
            verifier = self.gate.authorize(
                request.query.get("key", ""), request.query.get("token", "")
            )
            response: web.StreamResponse = web.Response(text=verifier, content_type="text/plain")
        except OAuthProblemError as problem:
            response = _oauth_refusal(problem)
        await self.ctx.network_delay()
        return response

    # -- the v1 API -------------------------------------------------------------------------

    async def api(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        suffix_json = path.endswith(".json")
        base = path[: -len(".json")] if suffix_json else path
        as_json = (
            suffix_json
            or "application/json" in request.headers.get("Accept", "")
            or request.content_type == "application/json"
        )
        response: web.StreamResponse
        try:
            call = await _signed_call(request)
            client = self.gate.api_call(call)
            handler, parts = self._route(request.method, base)
            account_id = _display_id(client) if parts == ["list"] else self._owned(client, parts[0])
            if self.ctx.rate_limits and not self._admit(call, client, request.method, base):
                response = rate_limited()
            else:
                response = await handler(request, client, account_id, parts, as_json)
        except OAuthProblemError as problem:
            response = _oauth_refusal(problem)
        except RequestFormatError as exc:
            code, _ = venue_reject_text(Venue.ETRADE, RejectReason.VENUE_ERROR)
            response = document(render.error_doc(code, str(exc)), as_json, 400)
        except ApiError as exc:
            response = document(render.error_doc(exc.code, exc.message), as_json, exc.status)
        except DroppedError:
            return web.Response(status=500)  # never reaches the client: the connection is gone
        await self.ctx.network_delay()
        return response

    def _route(self, method: str, base: str) -> tuple[Handler, list[str]]:
        parts = base.removeprefix("/v1/accounts/").split("/")
        routes: dict[tuple[str, str], Handler] = {
            ("GET", "list"): self._accounts,
            ("GET", "balance"): self._balance,
            ("GET", "portfolio"): self._portfolio,
            ("GET", "orders"): self.desk.list_orders,
            ("POST", "preview"): self.desk.preview,
            ("POST", "place"): self.desk.place,
            ("PUT", "cancel"): self.desk.cancel,
            ("GET", "detail"): self.desk.detail,
        }
        if parts == ["list"]:
            name = "list"
        elif len(parts) == 2 and parts[1] in ("balance", "portfolio", "orders"):
            name = parts[1]
        elif len(parts) == 3 and parts[1] == "orders":
            name = "detail" if _is_order_id(parts[2]) else parts[2]
        else:
            name = ""
        handler = routes.get((method, name))
        if handler is None:
            raise ApiError(404, f"no such resource: {method} {base}", status=404)
        return handler, parts

    def _admit(self, call: SignedCall, client: int, method: str, path: str) -> bool:
        scope = {"key": call.oauth["oauth_consumer_key"], "account": str(client)}
        return self.limiter.try_acquire(scope, ETRADE.cost(f"{method} {path}")) == 0.0

    def _owned(self, client: int, account_id_key: str) -> str:
        owner = self.ctx.accounts.client_of_account(account_id_key)
        if owner is None:
            raise ApiError(*ACCOUNT_INVALID)
        if owner != client:
            raise ApiError(*ACCOUNT_NOT_YOURS)
        return _display_id(client)

    # -- accounts ---------------------------------------------------------------------------

    async def _accounts(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        entry = render.account_entry(account_id, self.ctx.accounts.account_id(client))
        doc = {"AccountListResponse": {"Accounts": {"Account": [entry]}}}
        return document(doc, as_json)

    async def _balance(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        exchange = self.ctx.exchange
        long_value = short_value = 0.0
        for instrument, qty in exchange.positions(client).items():
            value = qty * _price_or_zero(exchange.price(instrument))
            long_value += max(value, 0.0)
            short_value += min(value, 0.0)
        doc = render.balance_doc(
            account_id, exchange.cash(client), exchange.locked(client), long_value, short_value
        )
        return document(doc, as_json)

    async def _portfolio(
        self, request: web.Request, client: int, account_id: str, parts: list[str], as_json: bool
    ) -> web.StreamResponse:
        exchange = self.ctx.exchange
        count = int_param(request, "count", 50, 1, 1000)
        page = int_param(request, "pageNumber", 1, 1, 1_000_000)
        basis = _cost_basis(exchange.orders_of(client))
        held = sorted(exchange.positions(client).items())
        pages = max(1, math.ceil(len(held) / count))
        positions = [
            render.position_entry(
                instrument + 1,
                exchange.registry[instrument].symbol,
                qty,
                basis.get(instrument, (0.0, 0))[0],
                exchange.price(instrument),
                basis.get(instrument, (0.0, 0))[1],
            )
            for instrument, qty in held[(page - 1) * count : page * count]
        ]
        portfolio = {"accountId": account_id, "Position": positions, "totalPages": pages}
        return document({"PortfolioResponse": {"AccountPortfolio": [portfolio]}}, as_json)


# --- helpers ----------------------------------------------------------------------------------


async def _signed_call(request: web.Request) -> SignedCall:
    """The request as its signature covers it: the URL as the client sent it (scheme, Host
    header, raw path and query) and any form-encoded body parameters."""
    oauth = parse_authorization(request.headers.get("Authorization", ""))
    body_params: tuple[tuple[str, str], ...] = ()
    if request.content_type == "application/x-www-form-urlencoded" and request.can_read_body:
        text = (await request.read()).decode("utf-8", "replace")
        body_params = tuple(parse_qsl(text, keep_blank_values=True))
    url = f"{request.scheme}://{request.host}{request.raw_path}"
    return SignedCall(request.method, url, oauth, body_params)


def _oauth_refusal(problem: OAuthProblemError) -> web.Response:
    return web.Response(
        status=401,
        text=problem.body,
        content_type="application/x-www-form-urlencoded",
        headers={"WWW-Authenticate": f'OAuth realm="", oauth_problem="{problem.problem}"'},
    )


def _is_order_id(text: str) -> bool:
    """An orderId in a path: ASCII digits that fit an int64 (`isdigit` alone takes "²", and
    `int()` refuses thousands of digits), so the detail handler can read it."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _display_id(client: int) -> str:
    """The account number E*Trade shows (accountId), beside the opaque accountIdKey."""
    return f"{client:08d}"


def _price_or_zero(price: float) -> float:
    return price if math.isfinite(price) else 0.0


def _cost_basis(orders: list[SimOrder]) -> dict[int, tuple[float, int]]:
    """Average cost per share and when the position was opened, per instrument, from the fills
    of an account's orders (oldest first)."""
    qty: dict[int, float] = {}
    basis: dict[int, tuple[float, int]] = {}
    for order in orders:
        if order.filled_qty <= 0:
            continue
        inst, signed = order.instrument, order.filled_qty * int(order.side)
        held = qty.get(inst, 0.0)
        cost, since = basis.get(inst, (0.0, order.updated_ns))
        if held == 0 or (held > 0) == (signed > 0):
            total = abs(held) + abs(signed)
            cost = (cost * abs(held) + order.avg_fill_price * abs(signed)) / total
            since = since if held else order.updated_ns
        elif abs(signed) > abs(held):  # crossed through flat: the rest opens at this price
            cost, since = order.avg_fill_price, order.updated_ns
        qty[inst] = held + signed
        basis[inst] = (cost, since)
    return basis


def build_app(
    ctx: SimContext,
    *,
    clock: Callable[[], float] = time.time,
    preview_lifetime_s: float = PREVIEW_LIFETIME_S,
) -> web.Application:
    """The E*Trade simulator's application. `clock` (epoch seconds) drives OAuth timestamps and
    token lifetimes; tests age tokens with it."""
    server = _EtradeServer(ctx, clock, preview_lifetime_s)
    app = web.Application()
    app.router.add_route("*", "/oauth/{action}", server.oauth)
    app.router.add_get("/e/t/etws/authorize", server.authorize)
    # Any tail (a newline included) reaches `api`, which refuses unknown paths in E*Trade's shape.
    app.router.add_route("*", r"/v1/accounts/{tail:[\s\S]+}", server.api)
    return app
