"""The dashboard server over HTTP: the token on every path, the CSRF guard, input errors,
the kill switch, and no secret in any answer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from web_world import World, make_world

from tickwise.model.instruments import AssetClass
from tickwise.store import open_store
from tickwise.web.api import CSRF_HEADER, TOKEN_COOKIE, QueryRunner, build_app
from tickwise.web.openapi import openapi_document
from tickwise.web.queries import Queries

TOKEN = "t0ken-for-tests-only"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
Scenario = Callable[[TestClient[Any, Any], World], Awaitable[None]]


def serve(tmp_path: Path, scenario: Scenario) -> None:
    world = make_world(tmp_path)

    def open_queries() -> Queries:
        return Queries(
            open_store(world.url),
            store_url=world.url,
            live=world.live,
            strategies={AssetClass.EQUITY: "trend"},
        )

    async def main() -> None:
        app = build_app(QueryRunner(open_queries), TOKEN)
        async with TestClient(TestServer(app)) as client:
            await scenario(client, world)

    asyncio.run(main())


async def body(response: ClientResponse) -> Any:
    return json.loads(await response.text())


def test_every_path_refuses_a_request_without_the_token(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        for path in ("/api/v1/status", "/api/v1/clients/1", "/metrics", "/api/openapi.json"):
            answer = await client.get(path)
            assert answer.status == 401, path
            assert await body(answer) == {"error": "unauthorized"}
        page = await client.get("/")
        assert page.status == 401 and "token" in await page.text()
        wrong = await client.get("/api/v1/status", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert (await client.get("/?token=nope", allow_redirects=False)).status == 401

    serve(tmp_path, scenario)


def test_a_page_visit_with_the_token_sets_a_cookie_and_drops_it_from_the_address(
    tmp_path: Path,
) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        landing = await client.get(f"/?token={TOKEN}", allow_redirects=False)
        assert landing.status == 303 and landing.headers["Location"] == "/"
        cookie = landing.cookies[TOKEN_COOKIE]
        assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
        page = await client.get("/")  # the cookie jar now carries it
        assert page.status == 200 and "<script" in await page.text()
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        assert (await client.get("/static/app.js")).status == 200
        assert (await client.get("/static/../api.py")).status == 404
        # A page's state-changing call must say it comes from the page.
        halt = {"scope": "global", "reason": "drill"}
        forged = await client.post("/api/v1/halts", json=halt)
        assert forged.status == 403
        assert world.store.active_halts() == []
        sent = await client.post("/api/v1/halts", json=halt, headers={CSRF_HEADER: "1"})
        assert sent.status == 201

    serve(tmp_path, scenario)


def test_the_kill_switch_over_the_api_halts_and_resumes(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        answer = await client.post(
            "/api/v1/halts",
            json={"scope": "portfolio:2", "reason": "news", "cancel_open": True},
            headers=BEARER,
        )
        assert answer.status == 201
        assert (await body(answer))["halt"]["scope"] == "portfolio:2"
        (active,) = world.store.active_halts()
        assert active.scope == "portfolio:2" and active.actor == "dashboard" and active.cancel_open
        status = await body(await client.get("/api/v1/status", headers=BEARER))
        assert status["halted"] is True
        resumed = await client.delete(
            "/api/v1/halts", params={"scope": "portfolio:2", "reason": "ok"}, headers=BEARER
        )
        assert (await body(resumed))["resumed"] == 1 and world.store.active_halts() == []
        blank = ["", " \t\n", "\x1f", "\u3000\xa0", "\ufeff"]  # blank to Python or JavaScript
        for bad in (
            *({"reason": text} for text in blank),
            {"scope": "moon", "reason": "x"},
            [1],
            {"reason": 3},
        ):
            refused = await client.post("/api/v1/halts", json=bad, headers=BEARER)
            assert refused.status == 400, bad
        document = await body(await client.get("/api/openapi.json", headers=BEARER))
        pattern = document["components"]["schemas"]["HaltRequest"]["properties"]["reason"]
        assert all(re.search(pattern["pattern"], text) is None for text in blank)
        garbage = await client.post("/api/v1/halts", data=b"\xff{", headers=BEARER)
        assert garbage.status == 400

    serve(tmp_path, scenario)


def test_malformed_parameters_are_400_and_unknown_things_404(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        for path in (
            "/api/v1/clients?limit=-1",
            "/api/v1/clients?limit=ten",
            "/api/v1/throughput?since=nan",
            "/api/v1/clients?venue=nyse",
            "/api/v1/instruments?q=" + "x" * 300,
        ):
            assert (await client.get(path, headers=BEARER)).status == 400, path
        for path in ("/api/v1/clients/999999", "/api/v1/clients/abc", "/api/v1/instruments/ZZZ"):
            assert (await client.get(path, headers=BEARER)).status == 404, path
        one = await body(await client.get("/api/v1/clients/1", headers=BEARER))
        assert one["positions"][0]["qty"] == 3.0

    serve(tmp_path, scenario)


def test_metrics_are_prometheus_text_with_the_kill_switch_state(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        answer = await client.get("/metrics", headers=BEARER)
        assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(await answer.text())}
        assert families["tickwise_halted"].samples[0].value == 0.0
        sent = {s.labels["venue"]: s.value for s in families["tickwise_orders_sent"].samples}
        assert sent == {"alpaca": 60.0, "binance": 8.0}

    serve(tmp_path, scenario)


def test_no_answer_carries_a_secret(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        texts = []
        for path in [
            "/api/v1/status",
            "/api/v1/clients?q=1",
            "/api/v1/clients/1",
            "/api/v1/venues",
            "/api/v1/halts",
            "/api/v1/tuning",
            "/metrics",
            "/api/openapi.json",
        ]:
            texts.append(await (await client.get(path, headers=BEARER)).text())
        everything = "\n".join(texts)
        assert TOKEN not in everything
        for word in ("secret", "oauth_token", "api_key", "password"):
            assert word not in everything.lower(), word

    serve(tmp_path, scenario)


def test_the_openapi_document_names_every_route_the_server_has(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        served = await body(await client.get("/api/openapi.json", headers=BEARER))
        assert served == json.loads(json.dumps(openapi_document()))
        routes = {
            (route.method, route.resource.canonical)
            for route in client.server.app.router.routes()
            if route.resource is not None and route.resource.canonical.startswith("/api/v1")
        }
        documented = {
            (method.upper(), path) for path, item in served["paths"].items() for method in item
        }
        assert {(m, p) for m, p in routes if m != "HEAD"} == documented

    serve(tmp_path, scenario)


@pytest.mark.parametrize("path", ["/static/index.html", "/static/nothing.js"])
def test_only_the_shipped_static_files_are_served(tmp_path: Path, path: str) -> None:
    async def scenario(client: TestClient[Any, Any], world: World) -> None:
        assert (await client.get(path, headers=BEARER)).status == 404

    serve(tmp_path, scenario)
