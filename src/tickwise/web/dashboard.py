"""Starting the dashboard: beside a run (`tickwise run`), over a store alone, or attached to
an engine elsewhere (`tickwise dashboard`)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from tickwise.config import Config, ticks_dir
from tickwise.model.instruments import AssetClass
from tickwise.web.api import QueryRunner, build_app, new_token
from tickwise.web.attach import build_proxy_app
from tickwise.web.live import LiveState
from tickwise.web.queries import Queries
from tickwise.web.server import DashboardServer

TOKEN_ENV = "TICKWISE_DASHBOARD_TOKEN"
ENGINE_TOKEN_ENV = "TICKWISE_ENGINE_TOKEN"


def dashboard_token(config: Config) -> tuple[str, bool]:
    """The token every page and call needs, and whether it was generated here (then it is
    printed once; a token from the environment or the config file never is)."""
    given = os.environ.get(TOKEN_ENV, "") or config.dashboard.token
    return (given, False) if given else (new_token(), True)


def open_queries(config: Config, live: LiveState | None) -> Callable[[], Queries]:
    """Opens the facade on the thread that calls it (the server's query thread)."""

    def make() -> Queries:
        from tickwise.store import open_store

        return Queries(
            open_store(config.store.url),
            store_url=config.store.url,
            live=live,
            strategies={
                AssetClass.EQUITY: config.strategy.equity,
                AssetClass.CRYPTO: config.strategy.crypto,
            },
            ticks_dir=ticks_dir(config),
        )

    return make


def serve(
    config: Config, live: LiveState | None, port: int | None = None
) -> tuple[DashboardServer, str, bool]:
    """Start the dashboard over the store (and the run, with `live`); returns the server,
    its token and whether the token was generated."""
    token, generated = dashboard_token(config)
    app = build_app(QueryRunner(open_queries(config, live)), token)
    server = DashboardServer(
        app, config.dashboard.host, config.dashboard.port if port is None else port
    )
    server.start()
    return server, token, generated


def attach(engine_url: str, host: str, port: int, token: str) -> DashboardServer:
    """Serve the pages here against the engine at `engine_url` (its token from
    `$TICKWISE_ENGINE_TOKEN`)."""
    engine_token = os.environ.get(ENGINE_TOKEN_ENV, "")
    if not engine_token:
        raise RuntimeError(f"set {ENGINE_TOKEN_ENV} to the engine's dashboard token")
    server = DashboardServer(build_proxy_app(engine_url, engine_token, token), host, port)
    server.start()
    return server


def announce(url: str, token: str, generated: bool) -> str:
    """The line that tells the operator where the dashboard is (the only place a generated
    token is ever shown)."""
    if generated:
        return f"dashboard: {url}/?token={token}  (token shown once)"
    return f"dashboard: {url}/  (token from ${TOKEN_ENV} or [dashboard] token)"


def wait_forever() -> None:
    """Block until interrupted (Ctrl-C)."""
    while True:
        time.sleep(3600)
