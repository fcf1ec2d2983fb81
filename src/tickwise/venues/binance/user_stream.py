"""The user data stream of many Binance accounts over one WebSocket API connection.

Each account subscribes with `userDataStream.subscribe.signature` (its API key, a timestamp and
a signature over the sorted parameters, venues.md §3.10-§3.11); events arrive wrapped as
`{"subscriptionId": n, "event": {...}}` and are handed to `on_event(client, event)`. The
connection is reopened with exponential backoff whenever it drops, and every account is
subscribed again: events sent while it was down are lost, which is why the adapter never relies
on the stream alone for an order's outcome.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

from tickwise.venues.binance.signing import ServerClock, SigningKey
from tickwise.venues.http import Transport, TransportError, WebSocket, decode_json
from tickwise.venues.ratelimit import Backoff

log = logging.getLogger(__name__)

SUBSCRIBE = "userDataStream.subscribe.signature"
MAX_SUBSCRIPTIONS = 1000  # per connection (venues.md §3.10)

EventHandler = Callable[[int, Mapping[str, object]], None]
Sleep = Callable[[float], Awaitable[object]]


def subscribe_request(
    request_id: str, key: SigningKey, timestamp_ms: int, recv_window_ms: int
) -> dict[str, object]:
    """A signed `userDataStream.subscribe.signature` request for one account."""
    params: dict[str, object] = {
        "apiKey": key.api_key,
        "recvWindow": recv_window_ms,
        "timestamp": timestamp_ms,
    }
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = key.sign(payload)
    return {"id": request_id, "method": SUBSCRIBE, "params": params}


class UserDataStream:
    """One WebSocket API connection carrying the user data of up to 1000 accounts."""

    def __init__(
        self,
        url: str,
        keys: Mapping[int, SigningKey],
        *,
        transport: Callable[[], Transport],
        clock: ServerClock,
        recv_window_ms: int,
        on_event: EventHandler,
        stats: Counter[str],
        sleep: Sleep,
        rng: random.Random,
        timeout_s: float = 10.0,
    ) -> None:
        if len(keys) > MAX_SUBSCRIPTIONS:
            raise ValueError(f"one connection carries at most {MAX_SUBSCRIPTIONS} accounts")
        self.url = url
        self.keys = dict(keys)
        self._transport = transport
        self._clock = clock
        self._recv_window_ms = recv_window_ms
        self._on_event = on_event
        self._stats = stats
        self._sleep = sleep
        self._backoff = Backoff(0.1, 5.0, rng)
        self._timeout_s = timeout_s
        self.subscribed: dict[int, int] = {}  # subscriptionId -> client, on the live connection

    async def run(self) -> None:
        """Connect, subscribe, read; reconnect after any drop (cancel the task to stop)."""
        attempt = 0
        while True:
            try:
                ws = await self._transport().websocket(self.url, timeout_s=self._timeout_s)
            except TransportError as exc:
                self._stats["stream_connect_failures"] += 1
                log.warning("user data stream %s: %s", self.url, exc)
            else:
                self._stats["stream_connects"] += 1
                try:
                    if await self._serve(ws):
                        attempt = 0
                finally:
                    self.subscribed.clear()
                    await ws.close()
            await self._sleep(self._backoff.delay(attempt))
            attempt += 1

    async def _serve(self, ws: WebSocket) -> bool:
        """Subscribe every account, then hand events over until the connection closes;
        True when the connection worked (something was received)."""
        pending: dict[str, int] = {}
        for client, key in self.keys.items():
            request_id = f"sub-{client}"
            pending[request_id] = client
            frame = subscribe_request(request_id, key, self._clock.now_ms(), self._recv_window_ms)
            await ws.send(json.dumps(frame))
        worked = False
        while True:
            raw = await ws.receive()
            if raw is None:
                self._stats["stream_disconnects"] += 1
                return worked
            worked = True
            self._read(raw, pending)

    def _read(self, raw: str | bytes, pending: dict[str, int]) -> None:
        try:
            message = decode_json(raw)
        except ValueError:
            self._stats["stream_malformed"] += 1
            return
        if not isinstance(message, dict):
            self._stats["stream_malformed"] += 1
            return
        if "subscriptionId" in message and "event" in message:
            sid, event = message["subscriptionId"], message["event"]
            client = self.subscribed.get(sid) if isinstance(sid, int) else None
            if client is None or not isinstance(event, Mapping):
                self._stats["stream_unrouted"] += 1
                return
            self._stats["stream_events"] += 1
            self._on_event(client, event)
            return
        request_id = message.get("id")
        if isinstance(request_id, str) and request_id in pending:
            client = pending.pop(request_id)
            result = message.get("result")
            if message.get("status") == 200 and isinstance(result, Mapping):
                sid = result.get("subscriptionId")
                if isinstance(sid, int) and not isinstance(sid, bool):
                    self.subscribed[sid] = client
                    self._stats["stream_subscriptions"] += 1
                    return
            self._stats["stream_subscribe_errors"] += 1
            log.warning("user data subscription of client %s refused: %s", client, message)
