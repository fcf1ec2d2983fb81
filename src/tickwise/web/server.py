"""The dashboard server on a thread of its own, beside the engine's control loop."""

from __future__ import annotations

import asyncio
import logging
import threading

from aiohttp import web

log = logging.getLogger(__name__)
# aiohttp answers a request line or header over 8,190 bytes itself, in plain text, before the
# API can refuse it in JSON as its document says. A query parameter of 200 characters may take
# 2,400 bytes percent-encoded, and a client may send a longer one than the document allows:
# the parser takes up to 64 KiB, and the API's own checks answer the rest.
_MAX_LINE_BYTES = 65_536


class DashboardServer:
    """Serves an aiohttp application on `host:port` from a background thread (port 0: any
    free port; `url` tells which)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start serving; returns the base URL. A port in use raises here, not later."""
        self._thread = threading.Thread(target=self._serve, name="tickwise-dashboard", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the dashboard did not start within {timeout_s:g} s")
        if self._error is not None:
            raise RuntimeError(
                f"the dashboard cannot listen on {self._host}:{self._port}: {self._error}"
            ) from self._error
        return self.url

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:  # reported to start()'s caller
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            loop.close()

    async def _open(self) -> None:
        self._runner = web.AppRunner(
            self._app,
            access_log=None,
            max_line_size=_MAX_LINE_BYTES,
            max_field_size=_MAX_LINE_BYTES,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving and wait for the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if thread.is_alive():
            log.warning("the dashboard thread did not stop within %.0f s", timeout_s)
