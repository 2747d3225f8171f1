"""The market data streams at `/v2/iex`, `/v2/sip` and `/v2/test`: Alpaca's protocol
(connected, auth, subscribe / unsubscribe to trades, quotes, bars, updatedBars, dailyBars and
statuses, "*" for every symbol) plus tradepit's `orderbook` channel (an L2 snapshot, then
deltas, each with the book's gapless `seq`).

One `LiveFeed` per gateway listens to the market data stage's Pub/Sub channel while any client
is connected (the first one after a quiet spell waits for it to load the feed's state), and
hands every message to the clients that asked for it. Pub/Sub may drop messages: every batch
carries a gapless seq, and a gap is filled from the durable `{d0}:feed` stream before anything
after it is passed on. Clients with the same subscriptions and codec form a group: each message is
encoded once per codec and each batch framed once per group, however many clients get it, so
that the work per client and batch is one `send` of a ready frame.

A slow client never slows the others: at most one frame is on its way to each client; what
comes meanwhile waits in the client's own queue (quotes conflated to the latest per symbol) and
goes as one frame after it. Past `--stream-queue-limit` messages (or `stream_queue_bytes`)
waiting, or when a frame has not been written for `--stream-send-timeout` seconds, the client
is told (code 407) and disconnected. The kernel would otherwise absorb megabytes for a client
that reads nothing before any of that shows: the gateway caps what it keeps unsent per socket
(TCP_NOTSENT_LOWAT) and in the server's write buffer (`--send-buffer` both; see server.py), so
a client that stops reading is seen once the kernel's own buffers for it (tens of kB) fill.

Served by the gateway's own server (server.py), a connection offers a `FrameSink` in its ASGI
scope: a group's frame is then encoded for the wire once, and each client's share of a batch
is one write of those bytes to its socket, with nothing built per client (a server's frames
are not masked, so the same bytes serve every client). Elsewhere the frames go through ASGI's
`send`.

Frames are MessagePack when the client says `Content-Type: application/msgpack` on the
upgrade (as alpaca-py does; times are then MessagePack timestamps, which alpaca-py requires),
and JSON otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send
from websockets.frames import Frame, Opcode

from tradepit.domain.symbols import Symbol
from tradepit.gateway.auth import RateLimitError, client_address
from tradepit.gateway.data_shapes import bar_json, price_of, quote_json, size_of, trade_json
from tradepit.gateway.decoding import TooDeep, decode_frame
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Market
from tradepit.gateway.service import Gateway, GatewaySettings
from tradepit.gateway.shapes import rfc3339
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

__all__ = [
    "serve_stream",
    "LiveFeed",
    "FrameSink",
    "FRAME_SINK",
    "STREAM_PATHS",
    "MAX_FRAME_BYTES",
    "CHANNELS",
]

log = logging.getLogger("tradepit.gateway.data")

STREAM_PATHS = frozenset({"/v2/iex", "/v2/sip", "/v2/test"})
CLOSE_GRACE = 2.0  # seconds a cut-off client has to read its error, then to read the close
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
FRAME_SINK = "tradepit.frame_sink"  # the key of a connection's FrameSink in scope["extensions"]
_json = msgspec.json.Encoder(decimal_format="number").encode
_msgpack = msgspec.msgpack.Encoder(decimal_format="number").encode


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


class FrameSink(Protocol):
    """A WebSocket connection that takes whole frames, encoded once for many connections."""

    def write_frame(self, frame: bytes) -> bool:
        """Write `frame` (a whole unmasked frame) now; False if the connection is closed."""

    @property
    def write_paused(self) -> bool:
        """Whether the connection's write buffer is full: write nothing more until resumed."""

    async def write_resumed(self) -> None:
        """Return once the write buffer has drained (or the connection is gone)."""


class _Outgoing:
    """One frame's payload, as an ASGI message or as wire bytes, each made once on first use."""

    __slots__ = ("_wire", "payload", "text")

    def __init__(self, payload: bytes, text: bool) -> None:
        self.payload = payload
        self.text = text
        self._wire: bytes | None = None

    def asgi(self) -> dict[str, Any]:
        if self.text:
            return {"type": "websocket.send", "text": self.payload.decode()}
        return {"type": "websocket.send", "bytes": self.payload}

    def wire(self) -> bytes:
        if self._wire is None:
            opcode = Opcode.TEXT if self.text else Opcode.BINARY
            self._wire = Frame(opcode, self.payload).serialize(mask=False)
        return self._wire


def _frame(parts: list[bytes], msgpack: bool) -> _Outgoing:
    """`parts` (encoded messages) as one frame: an array."""
    if msgpack:
        return _Outgoing(_msgpack_array_header(len(parts)) + b"".join(parts), False)
    return _Outgoing(b"[" + b",".join(parts) + b"]", True)


def _conflate(queue: list[_Encoded], quote_slots: dict[str, int], encoded: _Encoded) -> None:
    """Append `encoded` to `queue`, or, if it is a quote for a symbol already there, put it in
    the place of that quote: only the latest quote matters."""
    if isinstance(encoded.message, Quote):
        slot = quote_slots.get(encoded.message.symbol)
        if slot is not None:
            queue[slot] = encoded
            return
        quote_slots[encoded.message.symbol] = len(queue)
    queue.append(encoded)


class _Group:
    """The clients with the same subscriptions and codec: every batch is routed and framed once
    for all of them, and the same frame handed to each."""

    __slots__ = ("batch", "key", "members", "msgpack", "quote_slots")

    def __init__(self, key: tuple[bool, frozenset[tuple[str, str]]]) -> None:
        self.key = key
        self.msgpack = key[0]
        self.members: set[DataClient] = set()
        self.batch: list[_Encoded] = []
        self.quote_slots: dict[str, int] = {}


class DataClient:
    """One connection: what it subscribed to, and what waits to be sent to it.

    At most one frame is on its way to a client at a time. A frame that finds the connection
    idle is sent at once (the frame its group shares); anything that comes while a frame is on
    its way waits in `pending` (quotes conflated to the latest per symbol), and goes as one
    frame when the one before has been written. (With a `FrameSink`, a frame is written at
    once and is on its way only while the connection's write buffer is full.) A client is cut
    off when `pending` outgrows the limits, or when a frame has not been written for
    `send_timeout` seconds (checked by the feed): either means it does not read as fast as the
    market moves.
    """

    def __init__(
        self, send: Send, msgpack: bool, limits: GatewaySettings, sink: FrameSink | None = None
    ) -> None:
        self.send = send
        self.sink = sink
        self.msgpack = msgpack
        self.queue_limit = limits.stream_queue_limit
        self.queue_bytes = limits.stream_queue_bytes
        self.subscriptions: dict[str, set[str]] = {channel: set() for channel in CHANNELS}
        self.group: _Group | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.quote_slots: dict[str, int] = {}  # symbol -> index of its quote in `pending`
        # The frame on its way: ASGI's send of it, or, with a sink, the wait for the write
        # buffer to drain after it.
        self.in_flight: asyncio.Future[Any] | None = None
        self.sending_since = 0.0  # time.monotonic() when the frame in flight was handed over
        self.cut_off = ""  # why it was cut off, if it was
        self.gone = False  # the connection is closed
        self.close_code = 1000
        self.reader: asyncio.Task[None] | None = None
        self._sent = self._frame_sent  # one bound method, not one per frame

    def deliver(self, frame: _Outgoing, batch: list[_Encoded]) -> None:
        """A batch for this client, with its frame (shared with the client's group)."""
        if self.cut_off:
            return
        if self.in_flight is None and not self.pending:
            self._start(frame)
        else:
            for encoded in batch:
                self._queue(encoded)
            if self.in_flight is None and not self.cut_off:
                self._flush()

    def push(self, encoded: _Encoded) -> None:
        """One message of this client's own (an order book snapshot)."""
        if self.cut_off:
            return
        self._queue(encoded)
        if self.in_flight is None and not self.cut_off:
            self._flush()

    def _queue(self, encoded: _Encoded) -> None:
        data = encoded.msgpack() if self.msgpack else encoded.json()
        if isinstance(encoded.message, Quote):
            slot = self.quote_slots.get(encoded.message.symbol)
            if slot is not None:
                self.pending_bytes += len(data) - len(self.pending[slot])
                self.pending[slot] = data
                return
            self.quote_slots[encoded.message.symbol] = len(self.pending)
        self.pending.append(data)
        self.pending_bytes += len(data)
        if len(self.pending) > self.queue_limit or self.pending_bytes > self.queue_bytes:
            self.cut(
                f"slow client: more than {self.queue_limit} messages or "
                f"{self.queue_bytes} bytes were waiting; they were dropped"
            )

    def _flush(self) -> None:
        pending = self.pending
        self.pending, self.pending_bytes, self.quote_slots = [], 0, {}
        if pending:
            self._start(_frame(pending, self.msgpack))

    def _start(self, frame: _Outgoing) -> None:
        sink = self.sink
        if sink is not None:
            if not sink.write_frame(frame.wire()):  # the connection is gone
                self.end()
                return
            if not sink.write_paused:
                return
            future: asyncio.Future[Any] = asyncio.ensure_future(sink.write_resumed())
        else:
            try:
                # A task, so that a send waiting for a full socket holds up only this client.
                future = asyncio.ensure_future(self.send(frame.asgi()))
            except Exception:  # the connection is gone
                self.end()
                return
        self.in_flight = future
        self.sending_since = time.monotonic()
        future.add_done_callback(self._sent)

    def _frame_sent(self, future: asyncio.Future[Any]) -> None:
        self.in_flight = None
        self.sending_since = 0.0
        if future.cancelled():
            return
        if future.exception() is not None:  # the connection is gone
            self.end()
            return
        if self.pending and not self.cut_off:
            self._flush()

    def cut(self, reason: str) -> None:
        """Stop sending to this client and end its connection: it gets `reason` as an error,
        if it reads it within `CLOSE_GRACE` seconds."""
        if self.cut_off:
            return
        self.cut_off = reason
        self.close_code = 1008
        self.pending, self.pending_bytes, self.quote_slots = [], 0, {}
        if self.in_flight is not None:
            self.in_flight.cancel()  # whatever waited for the socket gives up
        self.end()

    def end(self) -> None:
        if self.reader is not None:
            self.reader.cancel()

    async def send_now(self, messages: list[dict[str, Any]]) -> None:
        """Control messages (acks, errors), sent at once, ahead of queued data."""
        frame = (
            _Outgoing(_msgpack(messages), False)
            if self.msgpack
            else _Outgoing(_json(messages), True)
        )
        if self.sink is None:
            await self.send(frame.asgi())
        elif not self.sink.write_frame(frame.wire()):
            raise ConnectionError("the stream connection is closed")


class LiveFeed:
    """The market data stage's live output, gap-free, handed to the clients subscribed."""

    def __init__(
        self, redis: aioredis.Redis, market: Market, settings: GatewaySettings | None = None
    ) -> None:
        self.redis = redis
        self.market = market
        self.settings = settings or GatewaySettings()
        self.keys = FeedKeys()
        self.feeds: dict[str, SymbolFeed] = {}  # each symbol's state: books for snapshots
        self.batch_seq = 0
        self.clients: set[DataClient] = set()
        self.groups: dict[tuple[bool, frozenset[tuple[str, str]]], _Group] = {}
        # channel -> symbol -> groups, and channel -> groups that asked for "*".
        self.by_symbol: dict[str, dict[str, set[_Group]]] = {c: {} for c in CHANNELS}
        self.everything: dict[str, set[_Group]] = {c: set() for c in CHANNELS}
        self.delivered = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()  # the feeds are current and the channel is listened to
        # Set while any client is connected: a gateway that streams to nobody reads no feed.
        self._wanted = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="live-feed"),
            asyncio.create_task(self._watch_stalls(), name="live-feed-stalls"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # Subscriptions.

    async def join(self, client: DataClient, timeout: float = 10.0) -> None:
        """Count `client` in; once this returns, the feed is current (books for snapshots)."""
        self.clients.add(client)
        self._wanted.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.ready.wait()

    def subscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        client.subscriptions[channel].update(symbols)
        self._regroup(client)

    def send_snapshots(self, client: DataClient, symbols: list[str]) -> None:
        """The current book of each of `symbols` ("*": all), to a new orderbook subscriber."""
        for symbol in symbols:
            for name in sorted(self.feeds) if symbol == "*" else [symbol]:
                self._send_snapshot(client, name)

    def unsubscribe(self, client: DataClient, channel: str, symbols: list[str]) -> None:
        client.subscriptions[channel].difference_update(symbols)
        self._regroup(client)

    def forget(self, client: DataClient) -> None:
        for symbols in client.subscriptions.values():
            symbols.clear()
        self._regroup(client)
        self.clients.discard(client)
        if not self.clients:
            self._wanted.clear()

    def _regroup(self, client: DataClient) -> None:
        """Move the client to the group of those with its (new) subscriptions."""
        subscribed = frozenset(
            (channel, symbol)
            for channel, symbols in client.subscriptions.items()
            for symbol in symbols
        )
        key = (client.msgpack, subscribed)
        old = client.group
        if old is not None and old.key == key:
            return
        if old is not None:
            old.members.discard(client)
            if not old.members:
                self._drop_group(old)
        client.group = None
        if not subscribed:
            return
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(key)
            for channel, symbol in subscribed:
                if symbol == "*":
                    self.everything[channel].add(group)
                else:
                    self.by_symbol[channel].setdefault(symbol, set()).add(group)
        group.members.add(client)
        client.group = group

    def _drop_group(self, group: _Group) -> None:
        del self.groups[group.key]
        for channel, symbol in group.key[1]:
            if symbol == "*":
                self.everything[channel].discard(group)
                continue
            listeners = self.by_symbol[channel].get(symbol)
            if listeners is not None:
                listeners.discard(group)
                if not listeners:
                    del self.by_symbol[channel][symbol]

    def _send_snapshot(self, client: DataClient, name: str) -> None:
        feed = self.feeds.get(name)
        listing = self.market.get(name)
        if listing is None:
            return
        feed = feed or SymbolFeed(name)
        bids, asks = feed.depth()
        snapshot = Depth(name, feed.seq, feed.clock, feed.book_seq, True, bids, asks)
        client.push(_Encoded(snapshot, listing.symbol))

    async def _watch_stalls(self) -> None:
        """Cut off the clients whose frame in flight has not been written for too long: the
        socket's buffers are full, so they have read nothing for at least that long."""
        timeout = self.settings.stream_send_timeout
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for client in [c for c in self.clients if c.sending_since]:
                if now - client.sending_since > timeout:
                    client.cut(f"slow client: nothing was read for {timeout:g} s")

    # The feed.

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.channel)
                await self._catch_up(reload=not self.ready.is_set())
                self.ready.set()
                while True:
                    if not self._wanted.is_set():
                        # Nobody listens: stop reading; the next client reloads the feed.
                        self.ready.clear()
                        break
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
        for client in list(self.clients):
            watched = client.subscriptions["orderbook"]
            for symbol in sorted(self.feeds) if "*" in watched else sorted(watched):
                self._send_snapshot(client, symbol)

    def _apply(self, batch: FeedBatch) -> None:
        if batch.seq <= self.batch_seq:
            return  # already applied (read from the stream while it was being published)
        self.batch_seq = batch.seq
        touched: list[_Group] = []
        for message in batch.messages:
            name = message.symbol
            feed = self.feeds.get(name)
            if feed is None:
                feed = self.feeds[name] = SymbolFeed(name)
            feed.seq, feed.clock = message.seq, max(feed.clock, message.ts)
            if isinstance(message, Depth):
                feed.apply_depth(message)
            channel = channel_of(message)
            listeners = self.by_symbol[channel].get(name)
            star = self.everything[channel]
            if not listeners and not star:
                continue
            listing = self.market.get(name)
            if listing is None:
                continue
            encoded = _Encoded(message, listing.symbol)
            for group in star:
                if not group.batch:
                    touched.append(group)
                _conflate(group.batch, group.quote_slots, encoded)
            for group in listeners or ():
                if group not in star:
                    if not group.batch:
                        touched.append(group)
                    _conflate(group.batch, group.quote_slots, encoded)
        # One frame per group, handed to each of its clients.
        for group in touched:
            messages, group.batch, group.quote_slots = group.batch, [], {}
            if group.msgpack:
                parts = [encoded.msgpack() for encoded in messages]
            else:
                parts = [encoded.json() for encoded in messages]
            frame = _frame(parts, group.msgpack)
            for client in group.members:
                client.deliver(frame, messages)
            self.delivered += len(messages) * len(group.members)


# The protocol.


def _error(code: int, message: str) -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": message}]


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


def _subscription_ack(subscriptions: dict[str, set[str]]) -> list[dict[str, Any]]:
    ack: dict[str, Any] = {"T": "subscription"}
    for channel in CHANNELS:
        ack[channel] = sorted(subscriptions[channel])
    return [ack]


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
    client = DataClient(send, b"msgpack" in content_type, live.settings, sink)
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
                await client.send_now(_error(407, client.cut_off))
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
            await client.send_now(_error(400, f"message larger than {MAX_FRAME_BYTES} bytes"))
            continue
        try:
            request = _decode_request(data)
        except TooDeep as error:
            await client.send_now(_error(400, f"invalid syntax: {error}"))
            continue
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
                    address,
                )
            except RateLimitError as error:  # the key was never looked at: say why
                await client.send_now(
                    _error(429, f"{error.message}: retry in {error.retry_after} s")
                )
                client.close_code = 1008
                return
            except ApiError:
                await client.send_now(_error(402, "auth failed"))
                client.close_code = 1008
                return
            authenticated = True
            await live.join(client)
            await client.send_now([{"T": "success", "msg": "authenticated"}])
        elif action in ("subscribe", "unsubscribe"):
            if not authenticated:
                await client.send_now(_error(401, "not authenticated"))
                continue
            await _change_subscriptions(client, live, request, action == "subscribe")
        else:
            await client.send_now(_error(400, "invalid syntax"))


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
    after = {channel: set(symbols) for channel, symbols in client.subscriptions.items()}
    for channel, symbols in changes:
        if subscribe:
            after[channel].update(symbols)
        else:
            after[channel].difference_update(symbols)
    # The ack first; then the change and the books' snapshots with no await between them, so
    # that no order book delta can reach the client before the snapshot it applies to.
    await client.send_now(_subscription_ack(after))
    for channel, symbols in changes:
        change(client, channel, symbols)
    for channel, symbols in changes:
        if subscribe and channel == "orderbook":
            live.send_snapshots(client, symbols)
