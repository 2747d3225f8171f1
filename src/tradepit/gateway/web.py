"""What every route shares: the gateway behind the app, the access each route declares (read
by the chain's authentication, gateway/chain), bodies, JSON out, and query parameters parsed
the lenient way Alpaca's clients send them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader

from tradepit.domain.ids import IdError, uuid_to_id
from tradepit.gateway.auth import Principal
from tradepit.gateway.chain.routes import Access
from tradepit.gateway.chain.scope import principal_of
from tradepit.gateway.errors import ApiError
from tradepit.gateway.service import Gateway
from tradepit.stage.messages import encode

__all__ = [
    "gateway_of",
    "trader",
    "public",
    "operator",
    "ACCESS_MARKERS",
    "read_body",
    "json_response",
    "body_doc",
    "parse_time",
    "parse_bool",
    "parse_int",
    "parse_order_id",
]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FRACTION = re.compile(r"(\.\d{6})\d+")


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


# Declared as security schemes so that /docs has an Authorize button for them. Each has a name
# of its own: under one shared name (FastAPI's default, the class's) Swagger UI keeps one of
# the two, sends one header, and every "Try it out" was a 401.
_KEY_ID = APIKeyHeader(
    name="APCA-API-KEY-ID",
    scheme_name="APCA-API-KEY-ID",
    description="The key's id (PK…), from `tradepit admin create-account` or a demo account.",
    auto_error=False,
)
_SECRET = APIKeyHeader(
    name="APCA-API-SECRET-KEY",
    scheme_name="APCA-API-SECRET-KEY",
    description="The key's secret, shown once when the key was made.",
    auto_error=False,
)


async def trader(
    request: Request,
    key_id: str | None = Security(_KEY_ID),
    secret: str | None = Security(_SECRET),
) -> Principal:
    """The caller, whom the chain authenticated by Alpaca's key headers and held to its rate
    limit before the route ran. (The headers are parameters for /docs, which shows them.)"""
    return principal_of(request.scope)


async def public() -> None:
    """Marks a route that needs no key: the chain limits it per client address instead."""


async def operator(principal: Principal = Security(trader)) -> Principal:
    """The caller, whom the chain let through with the venue's admin key."""
    return principal


# The dependency by which a route declares what it needs to get in (gateway/chain/routes.py).
ACCESS_MARKERS: dict[Callable[..., Any], Access] = {
    public: Access.PUBLIC,
    trader: Access.KEY,
    operator: Access.ADMIN,
}


async def read_body(request: Request) -> bytes:
    """The request's body; the chain refuses one over the cap (gateway/chain/body_limit.py)."""
    return await request.body()


def body_doc(example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI request body for /docs, for a route that decodes its body with msgspec."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


def json_response(content: Any, status: int = 200) -> Response:
    return Response(encode(content), status_code=status, media_type="application/json")


def parse_time(text: str | None, field: str) -> int | None:
    """RFC 3339 (any offset, nanoseconds allowed) or a date, as ns since the epoch (UTC)."""
    if text is None or text == "":
        return None
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip().replace(" ", "+")))
    except ValueError:
        raise ApiError.invalid(
            f"{field} must be an RFC 3339 time or a date, got {text!r}"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // timedelta(microseconds=1) * 1_000


def parse_bool(text: str | None, field: str, default: bool = False) -> bool:
    if text is None or text == "":
        return default
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError.invalid(f"{field} must be true or false, got {text!r}")


def parse_int(text: str | None, field: str, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.strip().isdigit():
        raise ApiError.invalid(f"{field} must be a whole number, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise ApiError.invalid(f"{field} must be within {low}..{high}, got {value}")
    return value


def parse_order_id(text: str) -> int:
    try:
        return uuid_to_id(text)
    except IdError:
        raise ApiError.not_found("order not found") from None
