"""The largest body a request may have: a 413 (with `Connection: close`: see render_errors.py)
as soon as its Content-Length says it is larger, or once that many bytes have arrived without
one (a chunked body), whichever route it is for and whether or not it has a key.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.chain.scope import headers_of
from tradepit.gateway.errors import ApiError

__all__ = ["BodyLimit"]


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # a WebSocket's frames have their own limit
            return
        limit = self.limit
        headers = headers_of(scope)
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise self._too_large()
        if declared is not None and b"transfer-encoding" not in headers:
            # The server's parser hands the app exactly Content-Length bytes (more would be the
            # next request): nothing to count.
            await self.app(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._too_large()
            return message

        await self.app(scope, receive_within_limit, send)

    def _too_large(self) -> ApiError:
        return ApiError(413, f"request body is larger than {self.limit} bytes")
