"""`tickwise dashboard --engine URL`: the dashboard on this machine, attached to an engine
running elsewhere. The pages are served here; API calls and metrics are forwarded to the
engine with its token, which never reaches the browser."""

from __future__ import annotations

from aiohttp import ClientSession, ClientTimeout, web

from tickwise.web.api import add_page_routes, auth_middleware, security_headers

_FORWARDED_HEADERS = ("Content-Type",)
SESSION: web.AppKey[ClientSession] = web.AppKey("engine_session", ClientSession)


def build_proxy_app(engine_url: str, engine_token: str, token: str) -> web.Application:
    """Pages from this package; `/api/...` and `/metrics` answered by the engine at
    `engine_url`. Local callers need `token`; the engine is called with `engine_token`."""
    base = engine_url.rstrip("/")

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {"Authorization": f"Bearer {engine_token}"}
        for name in _FORWARDED_HEADERS:
            if name in request.headers:
                headers[name] = request.headers[name]
        body = await request.read()
        try:
            async with request.app[SESSION].request(
                request.method,
                f"{base}{request.rel_url.path}",
                params=request.rel_url.query,
                headers=headers,
                data=body or None,
            ) as answer:
                payload = await answer.read()
                status = answer.status
                kind = answer.headers.get("Content-Type", "application/json")
        except (OSError, TimeoutError) as exc:
            return web.json_response({"error": f"engine unreachable: {exc}"}, status=502)
        if status == 401:  # the engine refused our engine token: say so, do not blame the user
            return web.json_response({"error": "the engine refused the engine token"}, status=502)
        response = web.Response(status=status, body=payload)
        response.headers["Content-Type"] = kind
        return response

    async def open_session(app: web.Application) -> None:
        app[SESSION] = ClientSession(timeout=ClientTimeout(total=10))

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app = web.Application(middlewares=[auth_middleware(token), security_headers])
    add_page_routes(app.router)
    app.router.add_route("*", "/api/{tail:.*}", forward)
    app.router.add_get("/metrics", forward)
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    return app
