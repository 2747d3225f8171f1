"""One structured line per request, or per WebSocket session, on the `tradepit.access` logger:
its id, method, route template, status, latency (a session's: its length), key id and client
address, as JSON. Off by default; a setting logs that fraction of them (1: every one).

A WebSocket's status is 101 once accepted, 403 if it was refused before that (as the server
answers it), or the status of the HTTP answer it got instead. The streams authenticate by
message, past this layer, so a session's line has no key id.
"""

from __future__ import annotations

import logging
import random
import time

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.auth import Principal, client_address
from tradepit.gateway.chain.scope import PRINCIPAL, REQUEST_ID, ROUTE

__all__ = ["AccessLog", "log"]

log = logging.getLogger("tradepit.access")


class AccessLog:
    def __init__(self, app: ASGIApp, sample: float) -> None:
        self.app = app
        self.sample = sample
        if sample > 0:
            # The setting is the switch: its lines show whatever level the rest of the log has.
            log.setLevel(logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            self.sample < 1 and random.random() >= self.sample
        ):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if status is None:
                sent = message["type"]
                if sent in ("http.response.start", "websocket.http.response.start"):
                    status = message["status"]
                elif sent == "websocket.accept":
                    status = 101
                elif sent == "websocket.close":
                    status = 403
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get(ROUTE)
            principal = scope.get(PRINCIPAL)
            line = {
                "request_id": scope.get(REQUEST_ID),
                "method": scope.get("method", "WEBSOCKET"),
                "route": route.template if route is not None else None,
                "status": status,
                "ms": round((time.perf_counter() - started) * 1e3, 3),
                "key_id": principal.key_id if isinstance(principal, Principal) else None,
                "client": client_address(scope),
            }
            log.info("%s", msgspec.json.encode(line).decode())
