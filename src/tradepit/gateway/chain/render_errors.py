"""Anything raised beneath this layer, by a layer that refuses (413, 401, 403, 429) or by a
route, hot or FastAPI's, becomes Alpaca's error: a status, `{"code", "message"}`, and the
error's headers (a 429's Retry-After). `errors.error_of` says which; this layer sends it.

FastAPI answers its own two itself, in the same shape (errors.install_error_handlers): a
request its parameters refuse (422) and a path or method it has no route for (404, 405).
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.chain.scope import REQUEST_ID
from tradepit.gateway.errors import error_headers, error_of

__all__ = ["RenderErrors"]


class RenderErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # A WebSocket answers errors in its own protocol; what escapes it, the server logs.
            await self.app(scope, receive, send)
            return
        response_started = False

        def send_noting_start(message: Message) -> Awaitable[None]:  # as RequestId's
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            return send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception as error:
            if response_started:
                raise  # half an answer is out: the server logs it and cuts the connection
            await _send_error(send, error, scope.get(REQUEST_ID))


async def _send_error(send: Send, error: Exception, request_id: str | None = None) -> None:
    status, body = error_of(error, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(
        (name.lower().encode(), value.encode()) for name, value in error_headers(error).items()
    )
    if status == 413:
        # The body was not read to its end, so the connection cannot carry another request:
        # say so, or a keep-alive client sends its next request into a closed socket.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
