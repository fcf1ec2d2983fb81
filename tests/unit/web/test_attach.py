"""`tickwise dashboard --engine URL`: pages served here, the API forwarded to the engine with
the engine's token, which the browser never sees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from web_world import make_world

from tickwise.model.instruments import AssetClass
from tickwise.store import open_store
from tickwise.web.api import QueryRunner, build_app
from tickwise.web.attach import build_proxy_app
from tickwise.web.queries import Queries

ENGINE_TOKEN = "engine-side-token"
LOCAL_TOKEN = "local-side-token"


def test_the_attached_dashboard_forwards_the_api_with_the_engines_token(tmp_path: Path) -> None:
    world = make_world(tmp_path)

    def open_queries() -> Queries:
        return Queries(open_store(world.url), store_url=world.url, live=world.live,
                       strategies={AssetClass.EQUITY: "trend"})  # fmt: skip

    async def main() -> None:
        engine = TestServer(build_app(QueryRunner(open_queries), ENGINE_TOKEN))
        await engine.start_server()
        engine_url = str(engine.make_url("")).rstrip("/")
        local = build_proxy_app(engine_url, ENGINE_TOKEN, LOCAL_TOKEN)
        async with TestClient(TestServer(local)) as client:
            assert (await client.get("/api/v1/status")).status == 401
            as_engine = {"Authorization": f"Bearer {ENGINE_TOKEN}"}
            assert (await client.get("/api/v1/status", headers=as_engine)).status == 401
            mine = {"Authorization": f"Bearer {LOCAL_TOKEN}"}
            status = json.loads(await (await client.get("/api/v1/status", headers=mine)).text())
            assert status["run_id"] == "run-1"
            client_1: Any = json.loads(
                await (await client.get("/api/v1/clients/1", headers=mine)).text()
            )
            assert client_1["positions"][0]["qty"] == 3.0
            missing = await client.get("/api/v1/clients/99999", headers=mine)
            assert missing.status == 404
            halted = await client.post("/api/v1/halts", json={"reason": "from afar"}, headers=mine)
            assert halted.status == 201 and world.store.active_halts()[0].reason == "from afar"
            page = await client.get("/", headers=mine)
            assert page.status == 200 and ENGINE_TOKEN not in await page.text()
        wrong = build_proxy_app(engine_url, "not-the-engine-token", LOCAL_TOKEN)
        async with TestClient(TestServer(wrong)) as client:
            mine = {"Authorization": f"Bearer {LOCAL_TOKEN}"}
            refused = await client.get("/api/v1/status", headers=mine)
            assert refused.status == 502
            assert "refused the engine token" in await refused.text()
            await engine.close()
            gone = await client.get("/api/v1/status", headers=mine)
            assert gone.status == 502 and "unreachable" in await gone.text()

    asyncio.run(main())
