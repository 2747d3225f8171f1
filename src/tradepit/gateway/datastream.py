"""The market data streams at `/v2/iex`, `/v2/sip` and `/v2/test`: Alpaca's protocol
(connected, auth, subscribe / unsubscribe to trades, quotes, bars, updatedBars, dailyBars and
statuses, "*" for every symbol) plus tradepit's `orderbook` channel (an L2 snapshot, then
deltas, each with the book's gapless `seq`).

One `LiveFeed` per gateway listens to the market data stage's Pub/Sub channel and hands every
message to the clients that asked for it. Pub/Sub may drop messages: every batch carries a
gapless seq, and a gap is filled from the durable `{d0}:feed` stream before anything after it
is passed on. Each message is encoded once per codec, however many clients get it.

A slow client never slows the others: each has its own queue of encoded messages, drained by
its own writer in frames of everything waiting; quotes in the queue are conflated to the latest
per symbol; past `QUEUE_LIMIT` messages the client is told (code 407) and disconnected.

Frames are MessagePack when the client says `Content-Type: application/msgpack` on the
upgrade (as alpaca-py does; times are then MessagePack timestamps, which alpaca-py requires),
and JSON otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from tradepit.domain.symbols import Symbol
from tradepit.gateway.data_shapes import bar_json, price_of, quote_json, size_of, trade_json
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Market
from tradepit.gateway.shapes import rfc3339
from tradepit.gateway.web import gateway_of
from tradepit.marketdata.bars import timestamp_of
from tradepit.marketdata.feed import (
    AnyFeedMessage,
    BarUpdate,
    Depth,
    Print,
    Quote,
    Status,
    SymbolFeed,
)
from tradepit.stage.marketdata import MESSAGE, FeedBatch, FeedKeys, decode_batch, load_feeds

__all__ = ["router", "LiveFeed", "QUEUE_LIMIT", "MAX_FRAME_BYTES", "CHANNELS"]

log = logging.getLogger("tradepit.gateway.data")

QUEUE_LIMIT = 5_000  # messages waiting for one client before it is cut off
MAX_FRAME_BYTES = 64 * 1024
MAX_SYMBOLS = 10_000  # per channel per connection
CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
    "orderbook",
)
_BAR_CHANNELS = {"b": "bars", "u": "updatedBars", "d": "dailyBars"}
_json = msgspec.json.Encoder(decimal_format="number").encode
_msgpack = msgspec.msgpack.Encoder(decimal_format="number").encode

router = APIRouter(tags=["streaming"])


def channel_of(message: AnyFeedMessage) -> str:
    if isinstance(message, Print):
        return "trades"
    if isinstance(message, Quote):
        return "quotes"
    if isinstance(message, BarUpdate):
        return _BAR_CHANNELS[message.kind]
    if isinstance(message, Depth):
        return "orderbook"
    return "statuses"


def message_json(symbol: Symbol, message: AnyFeedMessage, time: Any) -> dict[str, Any]:
    """One stream message in Alpaca's shape; `time` is its `t`, in the codec's form."""
    head: dict[str, Any]
    if isinstance(message, Print):
        head = {"T": "t", "S": symbol.name}
        head.update(trade_json(symbol, message, time))
    elif isinstance(message, Quote):
        head = {"T": "q", "S": symbol.name}
        head.update(quote_json(symbol, message, time))
    elif isinstance(message, BarUpdate):
        head = {"T": message.kind, "S": symbol.name}
        head.update(bar_json(symbol, message.bar, time_of(message.bar.start, time)))
    elif isinstance(message, Depth):
        head = {"T": "o", "S": symbol.name, "t": time, "seq": message.book_seq}
        if message.snapshot:
            head["snapshot"] = True
        head["b"] = [[price_of(symbol, p), size_of(symbol, s)] for p, s in message.bids]
        head["a"] = [[price_of(symbol, p), size_of(symbol, s)] for p, s in message.asks]
    else:
        assert isinstance(message, Status)
        halted = message.halted
        head = {
            "T": "s",
            "S": symbol.name,
            "sc": "H" if halted else "T",
            "sm": "Trading Halt" if halted else "Trading Resumption",
            "rc": "T1" if halted else "T3",
            "rm": "Halt News Pending" if halted else "News And Resumption Times",
            "t": time,
            "z": "C",
        }
    return head


def time_of(ts: int, form: Any) -> Any:
    """`ts` in the same form as `form`: a datetime for MessagePack, RFC 3339 for JSON."""
    return rfc3339(ts) if isinstance(form, str) or form is None else timestamp_of(ts)


class _Encoded:
    """A message encoded for each codec once, on first use."""

    __slots__ = ("_json", "_msgpack", "message", "symbol")

    def __init__(self, message: AnyFeedMessage, symbol: Symbol) -> None:
        self.message = message
        self.symbol = symbol
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = _json(message_json(self.symbol, self.message, rfc3339(self.message.ts)))
        return self._json

    def msgpack(self) -> bytes:
        if self._msgpack is None:
            moment = timestamp_of(self.message.ts)
            self._msgpack = _msgpack(message_json(self.symbol, self.message, moment))
        return self._msgpack


def _msgpack_array_header(length: int) -> bytes:
    if length < 16:
        return bytes([0x90 | length])
    if length < 65_536:
        return b"\xdc" + struct.pack(">H", length)
    return b"\xdd" + struct.pack(">I", length)


class DataClient:
    """One connection: what it subscribed to, and its queue of messages to send."""

    def __init__(self, websocket: WebSocket, msgpack: bool) -> None:
        self.websocket = websocket
        self.msgpack = msgpack
        self.subscriptions: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
        self.pending: list[bytes] = []
        self.quote_slots: dict[str, int] = {}  # symbol -> index of its quote in `pending`
        self.wake = asyncio.Event()
        self.cut_off = False

    def push(self, encoded: _Encoded) -> None:
        if self.cut_off:
            return
        data = encoded.msgpack() if self.msgpack else encoded.json()
        if isinstance(encoded.message, Quote):
            slot = self.quote_slots.get(encoded.message.symbol)
            if slot is not None:
                self.pending[slot] = data  # conflated: only the latest quote matters
                return
            self.quote_slots[encoded.message.symbol] = len(self.pending)
        self.pending.append(data)
        if len(self.pending) > QUEUE_LIMIT:
            self.cut_off = True
            self.pending = []
            self.quote_slots = {}
        self.wake.set()

    def take_frame(self) -> bytes | str | None:
        """Everything waiting, as one frame; None if nothing waits."""
        pending, self.pending = self.pending, []
        self.quote_slots = {}
        self.wake.clear()
        if not pending:
            return None
        if self.msgpack:
            return _msgpack_array_header(len(pending)) + b"".join(pending)
        return (b"[" + b",".join(pending) + b"]").decode()

    async def send_now(self, messages: list[dict[str, Any]]) -> None:
        """Control messages (acks, errors), sent at once, ahead of queued data."""
        if self.msgpack:
            await self.websocket.send_bytes(_msgpack(messages))
        else:
            await self.websocket.send_text(_json(messages).decode())


class LiveFeed:
    """The market data stage's live output, gap-free, handed to the clients subscribed."""

    def __init__(self, redis: aioredis.Redis, market: Market) -> None:
        self.redis = redis
        self.market = market
        self.keys = FeedKeys()
        self.feeds: dict[str, SymbolFeed] = {}  # each symbol's state: books for snapshots
        self.batch_seq = 0
        self.clients: set[DataClient] = set()
        # channel -> symbol -> clients, and channel -> clients that asked for "*".
        self.by_symbol: dict[str, dict[str, set[DataClient]]] = {c: {} for c in CHANNELS}
        self.everything: dict[str, set[DataClient]] = {c: set() for c in CHANNELS}
        self.delivered = 0
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # Subscriptions.

    def subscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        for symbol in symbols:
            if symbol == "*":
                self.everything[channel].add(client)
            else:
                self.by_symbol[channel].setdefault(symbol, set()).add(client)
            client.subscriptions[channel].add(symbol)

    def send_snapshots(self, client: DataClient, symbols: list[str]) -> None:
        """The current book of each of `symbols` ("*": all), to a new orderbook subscriber."""
        for symbol in symbols:
            for name in sorted(self.feeds) if symbol == "*" else [symbol]:
                self._send_snapshot(client, name)

    def unsubscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        for symbol in symbols:
            if symbol == "*":
                self.everything[channel].discard(client)
            else:
                listeners = self.by_symbol[channel].get(symbol)
                if listeners is not None:
                    listeners.discard(client)
                    if not listeners:
                        del self.by_symbol[channel][symbol]
            client.subscriptions[channel].discard(symbol)

    def forget(self, client: DataClient) -> None:
        for channel, symbols in client.subscriptions.items():
            self.unsubscribe(client, channel, list(symbols))
        self.clients.discard(client)

    def _send_snapshot(self, client: DataClient, name: str) -> None:
        feed = self.feeds.get(name)
        listing = self.market.get(name)
        if listing is None:
            return
        feed = feed or SymbolFeed(name)
        bids, asks = feed.depth()
        snapshot = Depth(name, feed.seq, feed.clock, feed.book_seq, True, bids, asks)
        client.push(_Encoded(snapshot, listing.symbol))

    # The feed.

    async def _run(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.channel)
                await self._catch_up(reload=not self.ready.is_set())
                self.ready.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    batch = decode_batch(message["data"])
                    if batch.seq > self.batch_seq + 1:
                        await self._catch_up(reload=False, before=batch.seq)
                    self._apply(batch)
            except (RedisError, OSError) as error:
                log.warning("live feed: %s; reconnecting", error)
                await asyncio.sleep(0.2)
            except msgspec.DecodeError as error:
                log.warning("live feed: undecodable batch (%s); resyncing", error)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _catch_up(self, *, reload: bool, before: int | None = None) -> None:
        """Apply the batches after the last one seen from the durable stream (all of them up to
        `before`, or to its end); reload the whole state if they are no longer there."""
        if reload:
            await self._reload()
            return
        low = f"{self.batch_seq + 1}-0"
        high = f"{before - 1}-1" if before is not None else "+"
        entries: Any = await self.redis.xrange(self.keys.feed, min=low, max=high)
        expected = self.batch_seq + 1
        if entries and int(entries[0][0].split(b"-")[0]) != expected:
            await self._reload()  # the gap is older than the stream keeps
            return
        for _entry_id, fields in entries:
            self._apply(decode_batch(fields[MESSAGE]))
        if before is not None and self.batch_seq != before - 1:
            await self._reload()

    async def _reload(self) -> None:
        self.feeds, self.batch_seq = await load_feeds(self.redis, self.keys)
        # Whoever watches a book gets it afresh: deltas from the old one no longer apply.
        for symbol, clients in self.by_symbol["orderbook"].items():
            for client in clients:
                self._send_snapshot(client, symbol)
        for client in self.everything["orderbook"]:
            for symbol in self.feeds:
                self._send_snapshot(client, symbol)

    def _apply(self, batch: FeedBatch) -> None:
        if batch.seq <= self.batch_seq:
            return  # already applied (read from the stream while it was being published)
        self.batch_seq = batch.seq
        for message in batch.messages:
            name = message.symbol
            feed = self.feeds.get(name)
            if feed is None:
                feed = self.feeds[name] = SymbolFeed(name)
            feed.seq, feed.clock = message.seq, max(feed.clock, message.ts)
            if isinstance(message, Depth):
                _apply_depth(feed, message)
            channel = channel_of(message)
            listeners = self.by_symbol[channel].get(name)
            star = self.everything[channel]
            if not listeners and not star:
                continue
            listing = self.market.get(name)
            if listing is None:
                continue
            encoded = _Encoded(message, listing.symbol)
            for client in listeners or ():
                client.push(encoded)
            for client in star:
                if not listeners or client not in listeners:
                    client.push(encoded)
            self.delivered += len(listeners or ()) + len(star)


def _apply_depth(feed: SymbolFeed, depth: Depth) -> None:
    for side, levels in ((feed.bids, depth.bids), (feed.asks, depth.asks)):
        for price, size in levels:
            if size:
                side[price] = size
            else:
                side.pop(price, None)
    feed.book_seq = depth.book_seq


# The protocol.


def _error(code: int, message: str) -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": message}]


def _decode_request(data: bytes | str | None) -> dict[str, Any] | None:
    if data is None:
        return None
    raw = data.encode() if isinstance(data, str) else data
    for decode in (msgspec.json.decode, msgspec.msgpack.decode):
        try:
            request = decode(raw)
        except msgspec.DecodeError:
            continue
        return request if isinstance(request, dict) else None
    return None


def _symbols_of(value: Any) -> list[str] | None:
    """A channel's symbol list from a request, upper-cased; None if it is not one."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return None
    symbols = [item.strip().upper() for item in value]
    if any(not symbol or len(symbol) > 16 for symbol in symbols):
        return None
    return symbols


def _subscription_ack(client: DataClient) -> list[dict[str, Any]]:
    ack: dict[str, Any] = {"T": "subscription"}
    for channel in CHANNELS:
        ack[channel] = sorted(client.subscriptions[channel])
    return [ack]


async def _write_frames(client: DataClient) -> None:
    """The client's writer: sends whatever is queued, one frame at a time."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            await client.wake.wait()
            if client.cut_off:
                await client.send_now(_error(407, "slow client: messages were dropped"))
                await client.websocket.close(1008)
                return
            frame = client.take_frame()
            if frame is None:
                continue
            if isinstance(frame, str):
                await client.websocket.send_text(frame)
            else:
                await client.websocket.send_bytes(frame)


async def _serve_data_stream(websocket: WebSocket) -> None:
    gateway = gateway_of(websocket)  # type: ignore[arg-type]
    live: LiveFeed = websocket.app.state.live_feed
    await websocket.accept()
    client = DataClient(websocket, "msgpack" in websocket.headers.get("content-type", "").lower())
    writer: asyncio.Task[None] | None = None
    authenticated = False
    try:
        await client.send_now([{"T": "success", "msg": "connected"}])
        while writer is None or not writer.done():
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data: bytes | str | None = message.get("bytes") or message.get("text")
            if data is not None and len(data) > MAX_FRAME_BYTES:
                await client.send_now(_error(400, f"message larger than {MAX_FRAME_BYTES} bytes"))
                continue
            request = _decode_request(data)
            action = request.get("action") if request is not None else None
            if request is None or not isinstance(action, str):
                await client.send_now(_error(400, "invalid syntax"))
            elif action == "auth":
                if authenticated:
                    await client.send_now(_error(403, "already authenticated"))
                    continue
                key, secret = request.get("key"), request.get("secret")
                try:
                    await gateway.keys.authenticate(
                        key if isinstance(key, str) else None,
                        secret if isinstance(secret, str) else None,
                    )
                except ApiError:
                    await client.send_now(_error(402, "auth failed"))
                    await websocket.close(1008)
                    return
                authenticated = True
                live.clients.add(client)
                writer = asyncio.create_task(_write_frames(client))
                await client.send_now([{"T": "success", "msg": "authenticated"}])
            elif action in ("subscribe", "unsubscribe"):
                if not authenticated:
                    await client.send_now(_error(401, "not authenticated"))
                    continue
                await _change_subscriptions(client, live, request, action == "subscribe")
            else:
                await client.send_now(_error(400, "invalid syntax"))
    except WebSocketDisconnect:
        pass
    finally:
        live.forget(client)
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


async def _change_subscriptions(
    client: DataClient, live: LiveFeed, request: dict[str, Any], subscribe: bool
) -> None:
    changes: list[tuple[str, list[str]]] = []
    for channel in CHANNELS:
        if channel not in request:
            continue
        symbols = _symbols_of(request[channel])
        if symbols is None:
            await client.send_now(_error(400, "invalid syntax"))
            return
        changes.append((channel, symbols))
    unknown = [name for name in request if name != "action" and name not in CHANNELS]
    if unknown:
        await client.send_now(_error(400, f"invalid syntax: unknown channel {unknown[0][:30]!r}"))
        return
    for channel, symbols in changes:
        if subscribe and len(client.subscriptions[channel] | set(symbols)) > MAX_SYMBOLS:
            await client.send_now(_error(405, "symbol limit exceeded"))
            return
    change: Callable[[DataClient, str, list[str]], None] = (
        live.subscribe if subscribe else live.unsubscribe
    )
    for channel, symbols in changes:
        change(client, channel, symbols)
    # The ack goes before the order books' snapshots, which go through the client's queue.
    await client.send_now(_subscription_ack(client))
    for channel, symbols in changes:
        if subscribe and channel == "orderbook":
            live.send_snapshots(client, symbols)


@router.websocket("/v2/iex")
async def iex_stream(websocket: WebSocket) -> None:
    await _serve_data_stream(websocket)


@router.websocket("/v2/sip")
async def sip_stream(websocket: WebSocket) -> None:
    await _serve_data_stream(websocket)


@router.websocket("/v2/test")
async def test_stream(websocket: WebSocket) -> None:
    await _serve_data_stream(websocket)
