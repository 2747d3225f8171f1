"""Who is calling, and whether they may, before any route runs: by the access its route
declares (routes.py), the API key in Alpaca's headers APCA-API-KEY-ID and APCA-API-SECRET-KEY
(checked by auth.KeyStore, which also limits failed attempts per client address), the key's
rate limit, the admin key for the operator's routes, or the per-address limit of the routes
that need no key. The principal goes in the scope, for the route (scope.principal_of).

A request no route matches is counted as a public one: FastAPI answers it 404 or 405.
WebSockets pass: the streams authenticate by message, with the same KeyStore.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from tradepit.gateway.auth import KeyStore, RateLimiter, client_address
from tradepit.gateway.chain.routes import Access
from tradepit.gateway.chain.scope import PRINCIPAL, ROUTE, headers_of
from tradepit.gateway.errors import ApiError

__all__ = ["Authenticate"]

_KEY_ID = b"apca-api-key-id"
_SECRET = b"apca-api-secret-key"


class Authenticate:
    def __init__(
        self, app: ASGIApp, *, keys: KeyStore, per_key: RateLimiter, per_address: RateLimiter
    ) -> None:
        self.app = app
        self.keys = keys
        self.per_key = per_key
        self.per_address = per_address

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope.get(ROUTE)
        access = route.access if route is not None else Access.PUBLIC
        if access is Access.KEY or access is Access.ADMIN:
            headers = headers_of(scope)
            key_id, secret = headers.get(_KEY_ID), headers.get(_SECRET)
            sent_id = key_id.decode("latin-1") if key_id is not None else None
            sent_secret = secret.decode("latin-1") if secret is not None else None
            address = client_address(scope)
            principal = self.keys.authenticate_cached(
                sent_id, sent_secret, address
            ) or await self.keys.authenticate(sent_id, sent_secret, address)
            self.per_key.check(principal.key_id)
            if access is Access.ADMIN and not principal.admin:
                raise ApiError.forbidden("this route needs the venue's admin key")
            scope[PRINCIPAL] = principal
        elif access is Access.PUBLIC:
            self.per_address.check(client_address(scope))
        await self.app(scope, receive, send)
