"""Every operation of the OpenAPI document, called with generated input against a live server:
no answer is a server error, and every answer matches the document."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from web_world import make_world

from tickwise.model.instruments import AssetClass
from tickwise.store import open_store
from tickwise.web.api import QueryRunner, build_app
from tickwise.web.openapi import openapi_document
from tickwise.web.queries import Queries
from tickwise.web.server import DashboardServer

TOKEN = "schema-test-token"
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    world = make_world(Path(tmp_path_factory.mktemp("schema")))

    def open_queries() -> Queries:
        return Queries(
            open_store(world.url),
            store_url=world.url,
            live=world.live,
            strategies={AssetClass.EQUITY: "trend", AssetClass.CRYPTO: "trend"},
        )

    server = DashboardServer(build_app(QueryRunner(open_queries), TOKEN))
    url = server.start()
    yield url
    server.stop()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_call_gets_a_server_error_or_an_undocumented_answer(
    case: schemathesis.Case, base_url: str
) -> None:
    case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_parameter_longer_than_the_document_allows_gets_its_json_refusal(base_url: str) -> None:
    # 3,000 "ö": 18,000 bytes of request line, past aiohttp's own 8,190-byte limit.
    query = urllib.parse.urlencode({"instrument": "ö" * 3_000})
    request = urllib.request.Request(
        f"{base_url}/api/v1/tuning?{query}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert refused.value.headers.get_content_type() == "application/json"
    assert "error" in json.loads(refused.value.read())
