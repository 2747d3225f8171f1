"""The `/stream` WebSocket: Alpaca's authenticate / listen protocol and its `trade_updates`.

Order updates come from the ledger shards' `{lN}:updates` streams, which a gateway tails with
XREAD BLOCK: durable and gapless, so a gateway that loses Redis for a moment resumes where it
was and no update is skipped. Each connection has a bounded queue; a client too slow to keep
up is told so and disconnected, and never slows the others.

Frames are JSON unless the client asks for MessagePack with `Content-Type: application/msgpack`
on the upgrade, as Alpaca's streams do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from tradepit.gateway.auth import RateLimitError, client_address
from tradepit.gateway.decoding import TooDeep, decode_frame
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Market
from tradepit.gateway.shapes import trade_update_json
from tradepit.gateway.web import gateway_of
from tradepit.metrics.gateway import GatewayMetrics
from tradepit.store import ledger
from tradepit.store.connection import Client
from tradepit.store.errors import StoreError
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import decode_updates

__all__ = ["router", "TradeUpdates", "QUEUE_LIMIT", "MAX_FRAME_BYTES"]

log = logging.getLogger("tradepit.gateway.stream")

QUEUE_LIMIT = 10_000  # frames waiting for one client before it is cut off
MAX_FRAME_BYTES = 64 * 1024

router = APIRouter(tags=["streaming"])

Frame = dict[str, Any]


class TradeUpdates:
    """Tails every ledger shard's updates and hands each to the queues of its account."""

    def __init__(self, redis: Client, config: VenueConfig, market: Market) -> None:
        self.redis = redis
        self.config = config
        self.market = market
        self.listeners: dict[int, set[asyncio.Queue[Frame | None]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # Set while anyone listens: a gateway with no stream clients reads no updates at all.
        self._wanted = asyncio.Event()
        self._streams = ledger.update_streams(config)
        self._positions: dict[str, bytes] = {}

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._tail(stream), name=stream) for stream in self._streams
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def listen(self, account_id: int) -> asyncio.Queue[Frame | None]:
        """A queue of the account's updates from now on: every update committed after this
        returns reaches it."""
        if not self._wanted.is_set():
            # Idle until now: start each tail at its stream's newest entry, before answering.
            for stream in self._streams:
                self._positions[stream] = await ledger.newest_update(self.redis, stream)
        queue: asyncio.Queue[Frame | None] = asyncio.Queue(QUEUE_LIMIT)
        self.listeners.setdefault(account_id, set()).add(queue)
        self._wanted.set()
        return queue

    def forget(self, account_id: int, queue: asyncio.Queue[Frame | None]) -> None:
        queues = self.listeners.get(account_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.listeners[account_id]
                if not self.listeners:
                    self._wanted.clear()

    async def _tail(self, stream: str) -> None:
        while True:
            await self._wanted.wait()
            try:
                entries = await ledger.read_updates(
                    self.redis, stream, self._positions[stream], count=100, block_ms=1000
                )
            except StoreError as error:
                log.warning("trade updates: %s; retrying", error)
                await asyncio.sleep(0.2)
                continue
            for entry_id, updates in entries:
                self._positions[stream] = entry_id
                self._dispatch(updates)

    def _dispatch(self, raw: bytes) -> None:
        if not self.listeners:
            return
        try:
            updates = decode_updates(raw)
        except msgspec.DecodeError:
            log.warning("undecodable order updates: %r", raw[:80])
            return
        for update in updates:
            queues = self.listeners.get(update.order.account_id)
            if not queues:
                continue
            listing = self.market.get(update.order.symbol)
            if listing is None:
                continue
            frame = trade_update_json(update, listing.symbol, listing.asset_id)
            for queue in list(queues):
                try:
                    queue.put_nowait(frame)
                except asyncio.QueueFull:
                    # Too slow: it gets one last word, and the rest of its updates are its to
                    # fetch over REST when it reconnects.
                    queues.discard(queue)
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(None)


class _Connection:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        content_type = websocket.headers.get("content-type", "")
        self.msgpack = "msgpack" in content_type.lower()

    async def send(self, frame: Frame) -> None:
        if self.msgpack:
            await self.websocket.send_bytes(msgspec.msgpack.encode(frame))
        else:
            await self.websocket.send_text(msgspec.json.encode(frame).decode())

    async def receive(self) -> Frame | None:
        """The next request, or None if it was not one (after telling the client why)."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        data: bytes | str | None = message.get("bytes") or message.get("text")
        if data is None:
            return None
        raw = data.encode() if isinstance(data, str) else data
        if len(raw) > MAX_FRAME_BYTES:
            await self.error(f"message larger than {MAX_FRAME_BYTES} bytes")
            return None
        try:
            request = decode_frame(raw)
        except TooDeep as error:
            await self.error(f"message is {error}")
            return None
        except msgspec.DecodeError as error:
            await self.error(str(error))
            return None
        if not isinstance(request, dict):
            await self.error("a message is an object with an action")
            return None
        return request

    async def error(self, message: str) -> None:
        await self.send({"stream": "listening", "data": {"error": message}})


@router.websocket("/stream")
async def trade_stream(websocket: WebSocket) -> None:
    gateway = gateway_of(websocket)  # type: ignore[arg-type]
    updates: TradeUpdates = websocket.app.state.trade_updates
    await websocket.accept()
    connection = _Connection(websocket)
    account_id: int | None = None
    queue: asyncio.Queue[Frame | None] | None = None
    sender: asyncio.Task[None] | None = None
    try:
        while True:
            request = await connection.receive()
            if request is None:
                continue
            action = request.get("action")
            data = request.get("data")
            data = data if isinstance(data, dict) else {}
            if action in ("authenticate", "auth"):
                key_id = data.get("key_id", request.get("key"))
                secret = data.get("secret_key", request.get("secret"))
                try:
                    principal = await gateway.keys.authenticate(
                        key_id if isinstance(key_id, str) else None,
                        secret if isinstance(secret, str) else None,
                        client_address(websocket.scope),
                    )
                except ApiError as error:
                    refusal = {"action": "authenticate", "status": "unauthorized"}
                    if isinstance(error, RateLimitError):  # the key was never looked at: say why
                        refusal["error"] = f"{error.message}: retry in {error.retry_after} s"
                    await connection.send({"stream": "authorization", "data": refusal})
                    await websocket.close(1008)
                    return
                account_id = principal.account_id
                await connection.send(
                    {
                        "stream": "authorization",
                        "data": {"action": "authenticate", "status": "authorized"},
                    }
                )
            elif action == "listen":
                if account_id is None:
                    await connection.send(
                        {
                            "stream": "authorization",
                            "data": {"action": "listen", "status": "unauthorized"},
                        }
                    )
                    continue
                streams = data.get("streams")
                wanted = streams if isinstance(streams, list) else []
                listening = [name for name in wanted if name == "trade_updates"]
                if listening and queue is None:
                    queue = await updates.listen(account_id)
                    sender = asyncio.create_task(_send_updates(connection, queue, gateway.metrics))
                elif not listening and queue is not None and sender is not None:
                    updates.forget(account_id, queue)
                    sender.cancel()
                    queue = sender = None
                await connection.send({"stream": "listening", "data": {"streams": listening}})
            else:
                await connection.error(f"unrecognized action {str(action)[:40]!r}")
            if sender is not None and sender.done():
                return
    except WebSocketDisconnect:
        pass
    finally:
        if queue is not None and account_id is not None:
            updates.forget(account_id, queue)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _send_updates(
    connection: _Connection, queue: asyncio.Queue[Frame | None], metrics: GatewayMetrics | None
) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            frame = await queue.get()
            if frame is None:
                if metrics is not None:
                    metrics.cut_off("/stream", "queue_full")
                await connection.error("too slow: updates were dropped; reconnect and resync")
                await connection.websocket.close(1008)
                return
            await connection.send(frame)
