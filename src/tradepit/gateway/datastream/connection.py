"""One client's connection to a market data stream: Alpaca's conversation, from `connected`
through `auth` and `subscribe` / `unsubscribe` to the farewell of a client cut off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.types import Receive, Scope, Send

from tradepit.gateway.auth import RateLimitError, client_address
from tradepit.gateway.datastream.backpressure import FRAME_SINK, DataClient
from tradepit.gateway.datastream.live import LiveFeed
from tradepit.gateway.datastream.protocol import CHANNELS, error, subscription_ack
from tradepit.gateway.decoding import TooDeep, decode_frame
from tradepit.gateway.errors import ApiError
from tradepit.gateway.service import Gateway

__all__ = ["STREAM_PATHS", "MAX_FRAME_BYTES", "serve_stream"]

STREAM_PATHS = frozenset({"/v2/iex", "/v2/sip", "/v2/test"})
CLOSE_GRACE = 2.0  # seconds a cut-off client has to read its error, then to read the close
MAX_FRAME_BYTES = 64 * 1024
MAX_SYMBOLS = 10_000  # per channel per connection


async def serve_stream(
    scope: Scope, receive: Receive, send: Send, gateway: Gateway, live: LiveFeed
) -> None:
    """One connection to a market data stream, in plain ASGI: a frame per batch is handed to
    the server as it is, with no framework between (thousands of clients make that count)."""
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.lower()
    sink = scope.get("extensions", {}).get(FRAME_SINK)
    client = DataClient(
        send,
        b"msgpack" in content_type,
        live.settings,
        sink,
        metrics=gateway.metrics,
        stream=scope["path"],
    )
    address = client_address(scope)
    reader = asyncio.create_task(_read_requests(client, receive, gateway, live, address))
    client.reader = reader
    try:
        await asyncio.wait([reader])
        if not reader.cancelled() and reader.exception() is not None:
            client.gone = True  # a send to it failed: the connection is gone
    finally:
        reader.cancel()
        live.forget(client)
        if client.in_flight is not None:
            client.in_flight.cancel()
        await _farewell(client)


async def _farewell(client: DataClient) -> None:
    """Tell a cut-off client why and close the connection, each within `CLOSE_GRACE`: past
    it, the connection is dropped (a client that does not read would hold it forever)."""
    if client.gone:
        return
    if client.cut_off:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_GRACE):
                await client.send_now(error(407, client.cut_off))
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_GRACE):
            await client.send({"type": "websocket.close", "code": client.close_code})


async def _read_requests(
    client: DataClient, receive: Receive, gateway: Gateway, live: LiveFeed, address: str
) -> None:
    """The client's requests, until it leaves, fails to authenticate, or is cut off."""
    authenticated = False
    await client.send_now([{"T": "success", "msg": "connected"}])
    while True:
        try:
            message = await receive()
        except Exception:  # the server says the connection is gone
            client.gone = True
            return
        if message["type"] == "websocket.disconnect":
            client.gone = True
            return
        data: bytes | str | None = message.get("bytes") or message.get("text")
        if data is not None and len(data) > MAX_FRAME_BYTES:
            await client.send_now(error(400, f"message larger than {MAX_FRAME_BYTES} bytes"))
            continue
        try:
            request = _decode_request(data)
        except TooDeep as too_deep:
            await client.send_now(error(400, f"invalid syntax: {too_deep}"))
            continue
        action = request.get("action") if request is not None else None
        if request is None or not isinstance(action, str):
            await client.send_now(error(400, "invalid syntax"))
        elif action == "auth":
            if authenticated:
                await client.send_now(error(403, "already authenticated"))
                continue
            key, secret = request.get("key"), request.get("secret")
            try:
                await gateway.keys.authenticate(
                    key if isinstance(key, str) else None,
                    secret if isinstance(secret, str) else None,
                    address,
                )
            except RateLimitError as limited:  # the key was never looked at: say why
                await client.send_now(
                    error(429, f"{limited.message}: retry in {limited.retry_after} s")
                )
                client.close_code = 1008
                return
            except ApiError:
                await client.send_now(error(402, "auth failed"))
                client.close_code = 1008
                return
            authenticated = True
            await live.join(client)
            await client.send_now([{"T": "success", "msg": "authenticated"}])
        elif action in ("subscribe", "unsubscribe"):
            if not authenticated:
                await client.send_now(error(401, "not authenticated"))
                continue
            await _change_subscriptions(client, live, request, action == "subscribe")
        else:
            await client.send_now(error(400, "invalid syntax"))


def _decode_request(data: bytes | str | None) -> dict[str, Any] | None:
    """The request, None if it is not one, or TooDeep (which the client is told)."""
    if data is None:
        return None
    raw = data.encode() if isinstance(data, str) else data
    try:
        request = decode_frame(raw)
    except TooDeep:
        raise
    except msgspec.DecodeError:
        return None
    return request if isinstance(request, dict) else None


def _symbols_of(value: Any) -> list[str] | None:
    """A channel's symbol list from a request, upper-cased; None if it is not one."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    symbols = [item.strip().upper() for item in value]
    if any(not symbol or len(symbol) > 16 for symbol in symbols):
        return None
    return symbols


async def _change_subscriptions(
    client: DataClient, live: LiveFeed, request: dict[str, Any], subscribe: bool
) -> None:
    changes: list[tuple[str, list[str]]] = []
    for channel in CHANNELS:
        if channel not in request:
            continue
        symbols = _symbols_of(request[channel])
        if symbols is None:
            await client.send_now(error(400, "invalid syntax"))
            return
        changes.append((channel, symbols))
    unknown = [name for name in request if name != "action" and name not in CHANNELS]
    if unknown:
        await client.send_now(error(400, f"invalid syntax: unknown channel {unknown[0][:30]!r}"))
        return
    registry = live.subscriptions
    before = registry.of(client)
    for channel, symbols in changes:
        if subscribe and len(before[channel] | set(symbols)) > MAX_SYMBOLS:
            await client.send_now(error(405, "symbol limit exceeded"))
            return
    change: Callable[[DataClient, str, list[str]], None] = (
        registry.subscribe if subscribe else registry.unsubscribe
    )
    after = {channel: set(symbols) for channel, symbols in before.items()}
    for channel, symbols in changes:
        if subscribe:
            after[channel].update(symbols)
        else:
            after[channel].difference_update(symbols)
    # The ack first; then the change and the books' snapshots with no await between them, so
    # that no order book delta can reach the client before the snapshot it applies to.
    await client.send_now(subscription_ack(after))
    for channel, symbols in changes:
        change(client, channel, symbols)
    for channel, symbols in changes:
        if subscribe and channel == "orderbook":
            live.send_snapshots(client, symbols)
