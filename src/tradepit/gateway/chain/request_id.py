"""Every request and WebSocket gets an id: the client's `X-Request-ID` if it sent a sane one
(so that a bot can find its own request in the venue's log), else one made here. It goes in
the scope, for the log lines about the request, and back on the response, as Alpaca's API
answers it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.chain.scope import REQUEST_ID, headers_of

__all__ = ["RequestId"]

_HEADER = b"x-request-id"
# What an id may be to be echoed and logged as it is: no spaces, quotes or control characters.
_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# A made id counts up from a random 64-bit start shifted into the top half: as unique across the
# gateways as 128 random bits, without a system call (or a format spec) per request.
_NEXT_ID = itertools.count(int.from_bytes(os.urandom(8), "big") << 64)


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = headers_of(scope).get(_HEADER)
        if sent is not None and _SANE.fullmatch(sent):
            request_id = sent.decode("ascii")
        else:
            request_id = next(_NEXT_ID).to_bytes(16, "big").hex()  # 32 hex digits, as Alpaca's
        scope[REQUEST_ID] = request_id
        if kind == "websocket":
            # Its frames are sent one by one; the id is for its log lines, not for a header.
            await self.app(scope, receive, send)
            return
        header = (_HEADER, request_id.encode("ascii"))

        # A plain function that hands back the send it wraps, for its caller to await: no
        # coroutine of its own per message.
        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                # A new list: the sender's may be one it reuses.
                message["headers"] = [*message.get("headers", ()), header]
            return send(message)

        await self.app(scope, receive, send_with_id)
