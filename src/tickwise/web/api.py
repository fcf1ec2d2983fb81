"""The dashboard's HTTP server: the JSON API over the query facade, its OpenAPI document,
Prometheus metrics and the pages, all behind one token.

Every request needs the token, as `Authorization: Bearer <token>` or as the HttpOnly cookie a
page visit with `?token=` sets (then redirected to the same page without it, so the token does
not stay in the address bar or the history). A cookie-authenticated POST or DELETE must also
carry `X-Tickwise-Request: 1`, which no other site can make a browser send (CSRF). Queries run
on one worker thread that owns the store connection; the event loop never waits on the store.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, TypeVar

from aiohttp import web

from tickwise.web.metrics import render_metrics
from tickwise.web.openapi import MAX_REASON, REASON_PATTERN, SCOPE_PATTERN, openapi_document
from tickwise.web.queries import NotFoundError, Queries, QueryError

log = logging.getLogger(__name__)

TOKEN_COOKIE = "tickwise_token"
CSRF_HEADER = "X-Tickwise-Request"
STATIC_FILES = {
    "app.js": "text/javascript",
    "chart.js": "text/javascript",
    "style.css": "text/css",
}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
T = TypeVar("T")


def new_token() -> str:
    """A dashboard token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


class QueryRunner:
    """Runs facade calls on one thread that opened the store (a store connection belongs to
    the thread that made it)."""

    def __init__(self, open_queries: Callable[[], Queries]) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tickwise-queries")
        self._open = open_queries
        self._queries: Queries | None = None

    def _get(self) -> Queries:
        if self._queries is None:
            self._queries = self._open()
        return self._queries

    async def __call__(self, fn: Callable[[Queries], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._get()))

    def close(self) -> None:
        def close_store() -> None:
            if self._queries is not None:
                self._queries.store.close()

        self._executor.submit(close_store).result()
        self._executor.shutdown(wait=True)


QUERIES: web.AppKey[QueryRunner] = web.AppKey("queries", QueryRunner)


def build_app(runner: QueryRunner, token: str) -> web.Application:
    """The whole server: pages, API, OpenAPI document and metrics, behind `token`."""
    app = web.Application(middlewares=[_errors, auth_middleware(token), security_headers])
    app[QUERIES] = runner
    r = app.router
    add_page_routes(r)
    r.add_get("/api/openapi.json", _openapi)
    r.add_get("/metrics", _metrics)
    r.add_get("/api/v1/status", _json(lambda q, _: q.status()))
    r.add_get("/api/v1/throughput", _json(lambda q, a: q.throughput(a.number("since"))))
    r.add_get(
        "/api/v1/instruments",
        _json(lambda q, a: q.instruments(a.text("q"), a.count("limit", 100), a.count("offset"))),
    )
    r.add_get("/api/v1/instruments/{symbol}", _json(lambda q, a: q.instrument(a.path("symbol"))))
    r.add_get(
        "/api/v1/clients",
        _json(
            lambda q, a: q.clients(
                a.text("q"), a.text("venue"), a.count("limit", 50), a.count("offset")
            )
        ),
    )
    r.add_get("/api/v1/clients/{id}", _json(lambda q, a: q.client(a.path_int("id"))))
    r.add_get("/api/v1/venues", _json(lambda q, _: q.venues()))
    r.add_get("/api/v1/cluster", _json(lambda q, _: q.cluster()))
    r.add_get(
        "/api/v1/tuning",
        _json(lambda q, a: q.tuning(a.text("instrument"), a.count("limit", 50))),
    )
    r.add_get("/api/v1/halts", _json(lambda q, _: q.halts()))
    r.add_post("/api/v1/halts", _halt)
    r.add_delete(
        "/api/v1/halts",
        _json(lambda q, a: q.resume(a.scope(), a.text("reason"), "dashboard")),
    )
    app.on_cleanup.append(_close_runner)
    return app


async def _close_runner(app: web.Application) -> None:
    await asyncio.get_running_loop().run_in_executor(None, app[QUERIES].close)


# -- middlewares ------------------------------------------------------------------------------


def add_page_routes(router: web.UrlDispatcher) -> None:
    """The pages: the single-page app and its static files (shipped inside the package)."""
    router.add_get("/", _index)
    router.add_get("/static/{name}", _static)


def auth_middleware(token: str) -> Any:
    """Refuses every request without `token` (module docstring: header, cookie, CSRF)."""
    expected = token.encode()

    def ok(presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), expected)

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
        if ok(bearer):
            return await handler(request)
        landing = request.query.get("token")
        if landing is not None and request.method == "GET" and not _is_api(request.path):
            if not ok(landing):
                return _refused(request)
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = request.rel_url.with_query(query)
            response = web.HTTPSeeOther(str(target))
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/")
            raise response
        if ok(request.cookies.get(TOKEN_COOKIE)):
            if request.method not in ("GET", "HEAD") and request.headers.get(CSRF_HEADER) != "1":
                return web.json_response(
                    {"error": f"a state-changing call from a page needs the {CSRF_HEADER} header"},
                    status=403,
                )
            return await handler(request)
        return _refused(request)

    return auth


def _refused(request: web.Request) -> web.StreamResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="tickwise"'}
    if _is_api(request.path):
        return web.json_response({"error": "unauthorized"}, status=401, headers=headers)
    return web.Response(
        status=401,
        headers=headers,
        content_type="text/html",
        text="<!doctype html><title>tickwise</title><p>A token is needed: open the address "
        "tickwise printed at start (it ends with <code>?token=...</code>).</p>",
    )


@web.middleware
async def security_headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except NotFoundError as exc:
        return web.json_response({"error": str(exc)}, status=404)
    except QueryError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    except Exception:
        log.exception("dashboard request %s %s failed", request.method, request.path)
        return web.json_response({"error": "internal error (see the engine's log)"}, status=500)


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/metrics"


# -- handlers ---------------------------------------------------------------------------------


class Args:
    """A request's parameters, parsed with a 400 for anything malformed."""

    def __init__(self, request: web.Request) -> None:
        self._query = request.query
        self._match = request.match_info

    def text(self, name: str, default: str = "") -> str:
        value = self._query.get(name, default)
        if len(value) > 200:
            raise QueryError(f"{name}: at most 200 characters")
        return value

    def required(self, name: str) -> str:
        value = self.text(name)
        if not value:
            raise QueryError(f"{name} is required")
        return value

    def scope(self) -> str:
        value = self.required("scope")
        if not re.fullmatch(SCOPE_PATTERN, value):
            raise QueryError(f"scope must be global, portfolio:N or client:N, got {value[:40]!r}")
        return value

    def count(self, name: str, default: int = 0) -> int:
        raw = self._query.get(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise QueryError(f"{name}: expected a whole number >= 0, got {raw[:20]!r}")
        return int(raw)

    def number(self, name: str) -> float | None:
        raw = self._query.get(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise QueryError(f"{name}: expected a number, got {raw[:20]!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise QueryError(f"{name}: expected a finite number")
        return value

    def path(self, name: str) -> str:
        return self._match[name]

    def path_int(self, name: str) -> int:
        raw = self._match[name]
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise NotFoundError(f"no {name} {raw[:20]!r}")
        return int(raw)


def _json(
    fn: Callable[[Queries, Args], Mapping[str, Any]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        args = Args(request)
        body = await request.app[QUERIES](lambda q: fn(q, args))
        return web.json_response(body, dumps=_dumps)

    return handler


async def _halt(request: web.Request) -> web.Response:
    try:
        doc = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise QueryError("the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise QueryError("the body must be a JSON object")
    scope, reason, cancel = (
        doc.get("scope", "global"),
        doc.get("reason"),
        doc.get("cancel_open", False),
    )
    if (
        not isinstance(scope, str)
        or not isinstance(reason, str)
        or not re.search(REASON_PATTERN, reason)
    ):
        raise QueryError("scope must be text and reason non-empty text")
    if not isinstance(cancel, bool):
        raise QueryError("cancel_open must be true or false")
    if not re.fullmatch(SCOPE_PATTERN, scope):
        raise QueryError(f"scope must be global, portfolio:N or client:N, got {scope[:40]!r}")
    if len(reason) > MAX_REASON:
        raise QueryError(f"reason: at most {MAX_REASON} characters")
    body = await request.app[QUERIES](lambda q: q.halt(scope, reason, cancel, "dashboard"))
    log.warning("dashboard halt: scope %s, reason %r", scope, reason)
    return web.json_response(body, status=201, dumps=_dumps)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = await request.app[QUERIES](_render_metrics)
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def _render_metrics(queries: Queries) -> tuple[bytes, str]:
    """Prometheus text from the live snapshot, with the kill switch's state."""
    live = queries.live
    snapshot = live.snapshot() if live is not None else None
    halted = float(bool(queries.store.active_halts()))
    venues = live.info.router_venues if live is not None and live.info is not None else ()
    return render_metrics(snapshot or {}, extra={"halted": halted}, router_venues=venues)


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(), dumps=_dumps)


async def _index(request: web.Request) -> web.Response:
    return web.Response(body=_read_static("index.html"), content_type="text/html")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    kind = STATIC_FILES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.Response(body=_read_static(name), content_type=kind)


def _read_static(name: str) -> bytes:
    return resources.files("tickwise.web").joinpath("static", name).read_bytes()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
