"""A thin Redis connection for the hot paths: commands packed and replies parsed by hiredis, in C.

Measured on this machine, a redis-py round trip costs ~40 us more CPU than a raw one (PING: ~60-80
against ~30 us), and each command queued in a pipeline ~20 us (BUS.md: packing, response
callbacks, timeouts); at a paced 1,000 orders/s that was most of the stages' CPU, each order
being a handful of small batches. Here a caller packs its commands (`pack`, or queues them on a
`CommandBuffer`, which packs as it goes), writes them in one call, and gets the raw
replies as hiredis parses them: bytes, ints, lists, None, and `ResponseError` instances for
error replies (`raise_errors`).

Two kinds of connection: `RespConnection` answers requests in order (any number in flight),
`RespSubscriber` hands every Pub/Sub message of the channels it subscribed to a callback.
Either fails with redis-py's `ConnectionError` when the connection is lost, so callers handle
it as they handle redis-py's; they open a new one to go on.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = [
    "CommandBuffer",
    "RespConnection",
    "RespSubscriber",
    "pack",
    "pack_large",
    "transaction",
    "executed",
    "raise_errors",
    "xread_command",
    "xread_batch",
]


def pack(command: Sequence[Any]) -> bytes:
    """One command in RESP: its arguments are str, bytes, int or float."""
    packed: bytes = hiredis.pack_command(command if type(command) is tuple else tuple(command))
    return packed


def pack_large(command: Sequence[str | bytes | int]) -> bytes:
    """One command in RESP, for a few arguments of which some may be large (stream entries,
    messages): str, bytes or int.

    hiredis packs many small arguments faster than Python does, but from ~150 KB on an
    argument often costs it ~1 ns per byte (a 300 KB entry: 0.4 ms, against 8 us for this
    join), and a batch's entries to the next stage are that large."""
    out = [b"*%d\r\n" % len(command)]
    for arg in command:
        if type(arg) is bytes:
            data = arg
        elif type(arg) is str or type(arg) is int:  # not a bool or an enum: hiredis refuses them
            data = str(arg).encode()
        else:
            raise TypeError(f"cannot pack {type(arg).__name__} {arg!r} into a command")
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


MULTI = pack(("MULTI",))
EXEC = pack(("EXEC",))

XreadBatch = list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]]


Arg = str | bytes | int


class CommandBuffer:
    """What a stage core queues a transaction's writes on: the few write commands the stages
    use, named and shaped as redis-py's, each packed as it is queued (into `packed`). It never
    talks to Redis: the stage loop sends what it holds on its thin connection.

    (It was a redis-py `Pipeline` that packed: with a stage batch per order at paced rates, its
    command builders were ~15% of the stages' CPU.)"""

    __slots__ = ("appended", "packed")

    def __init__(self) -> None:
        self.packed: list[bytes] = []
        # Each XADD's stream and its place in `packed`: where EXEC's replies hold its id.
        self.appended: list[tuple[str, int]] = []

    def xadd(
        self,
        name: str,
        fields: Mapping[bytes, Arg],
        *,
        id: str = "*",
        maxlen: int | None = None,
        approximate: bool = True,
    ) -> None:
        args: list[Arg] = ["XADD", name]
        if maxlen is not None:
            args += ("MAXLEN", "~", maxlen) if approximate else ("MAXLEN", maxlen)
        args.append(id)
        for field in fields.items():
            args += field
        self.appended.append((name, len(self.packed)))
        self.packed.append(pack_large(args))

    def hset(
        self,
        name: str,
        key: Arg | None = None,
        value: Arg | None = None,
        *,
        mapping: Mapping[Any, Arg] | None = None,
    ) -> None:
        args: list[Arg] = ["HSET", name]
        if key is not None:
            if value is None:
                raise ValueError(f"HSET {name} {key!r} has no value")
            args += (key, value)
        if mapping:
            for pair in mapping.items():
                args += pair
        if len(args) == 2:
            raise ValueError("HSET needs a key and value, or a mapping")
        self.packed.append(pack(args))

    def hdel(self, name: str, *keys: Arg) -> None:
        self.packed.append(pack(("HDEL", name, *keys)))

    def zadd(self, name: str, mapping: Mapping[Any, int]) -> None:
        args: list[Arg] = ["ZADD", name]
        for member, score in mapping.items():
            args += (score, member)
        self.packed.append(pack(args))

    def zrem(self, name: str, *values: Arg) -> None:
        self.packed.append(pack(("ZREM", name, *values)))

    def zremrangebyscore(self, name: str, low: Arg, high: Arg) -> None:
        self.packed.append(pack(("ZREMRANGEBYSCORE", name, low, high)))

    def publish(self, channel: str, message: bytes) -> None:
        self.packed.append(pack_large(("PUBLISH", channel, message)))


def raise_errors(replies: Iterable[Any]) -> None:
    for reply in replies:
        if isinstance(reply, ResponseError):
            raise reply


def xread_command(checkpoints: dict[str, bytes], count: int, block_ms: int | None = None) -> bytes:
    """XREAD [COUNT n] [BLOCK ms] STREAMS s1 s2 ... id1 id2 ..."""
    args: list[Any] = ["XREAD", "COUNT", count]
    if block_ms is not None:
        args += ["BLOCK", block_ms]
    args.append("STREAMS")
    args += checkpoints.keys()
    args += checkpoints.values()
    return pack(args)


def xread_batch(reply: Any) -> XreadBatch:
    """An XREAD reply as redis-py gives it: [(stream, [(entry id, {field: value})])]."""
    if not reply:
        return []
    batch: XreadBatch = []
    for stream, entries in reply:
        parsed = []
        for entry_id, flat in entries:
            pairs = iter(flat or ())
            parsed.append((entry_id, dict(zip(pairs, pairs, strict=False))))
        batch.append((stream, parsed))
    return batch


def transaction(commands: Sequence[bytes], after: Sequence[bytes] = ()) -> tuple[bytes, int]:
    """MULTI, `commands`, EXEC, then `after`, packed; and how many replies they get."""
    return b"".join((MULTI, *commands, EXEC, *after)), len(commands) + 2 + len(after)


def executed(replies: list[Any], commands: int) -> list[Any]:
    """The replies to `transaction(commands, after)`: EXEC's, then those of `after`.

    Raises `ResponseError` if any command failed, to be queued or to run."""
    exec_at = commands + 1
    raise_errors(replies[: exec_at + 1])
    results = replies[exec_at]
    if results is None:
        raise ResponseError("the transaction was aborted")
    raise_errors(results)
    return [*results, *replies[exec_at + 1 :]]


class _Protocol(asyncio.Protocol):
    """Replies, in order, to the requests in flight (each waits for its count of replies);
    Pub/Sub messages, if any, to `on_message`."""

    def __init__(self, on_message: Callable[[bytes, bytes], None] | None = None) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = (
            collections.deque()
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}")
        self.transport = None
        self._fail(self.lost)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError as error:
                if self.transport is not None:
                    self.transport.abort()
                self._fail(RedisConnectionError(f"bad reply from Redis: {error}"))
                return
            if reply is False:
                return
            if self.on_message is not None and type(reply) is list and len(reply) == 3:
                kind = reply[0]
                if kind in (b"message", b"smessage"):
                    self.on_message(reply[1], reply[2])
                    continue
                if kind == b"sunsubscribe" and not self.waiting:
                    # The server dropped a shard channel: its slot moved (a failover, a
                    # migration). What its subscriber waited for now rings elsewhere.
                    if self.transport is not None:
                        self.transport.abort()
                    self._fail(RedisConnectionError(f"{reply[1]!r} moved to another node"))
                    return
            if not self.waiting:
                continue  # a reply nobody waits for: its caller gave up
            future, count, replies = self.waiting[0]
            replies.append(reply)
            if len(replies) == count:
                self.waiting.popleft()
                if not future.done():
                    future.set_result(replies)

    def _fail(self, error: Exception) -> None:
        waiting, self.waiting = self.waiting, collections.deque()
        for future, _count, _replies in waiting:
            if not future.done():
                future.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, packed: bytes, replies: int) -> asyncio.Future[list[Any]]:
        """Send `packed` (`replies` commands); the future gets their raw replies."""
        return self.send((packed, replies))[0]

    def send(self, *requests: tuple[bytes, int]) -> list[asyncio.Future[list[Any]]]:
        """Write several requests in one system call; a future for each one's replies."""
        if self.transport is None or self.transport.is_closing():
            raise self.lost or RedisConnectionError("connection to Redis is closed")
        create_future = asyncio.get_running_loop().create_future
        futures = []
        for _packed, replies in requests:
            future: asyncio.Future[list[Any]] = create_future()
            self.waiting.append((future, replies, []))
            futures.append(future)
        self.transport.write(b"".join(packed for packed, _replies in requests))
        return futures

    def is_closed(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def _open(
    url: str, protocol: _Protocol, timeout: float, send_buffer: int | None = None
) -> None:
    """Connect `protocol` to the server `url` names, authenticated, on the database it names."""
    options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    loop = asyncio.get_running_loop()
    connecting: Any
    if "path" in options:
        connecting = loop.create_unix_connection(lambda: protocol, options["path"])
    else:
        secure = None
        if "SSL" in getattr(options.get("connection_class"), "__name__", ""):
            secure = _tls_context(options)
        host, port = options.get("host", "localhost"), options.get("port", 6379)
        connecting = loop.create_connection(lambda: protocol, host, port, ssl=secure)
    try:
        await asyncio.wait_for(connecting, timeout)
    except (OSError, TimeoutError) as error:
        raise RedisConnectionError(f"cannot connect to Redis at {url}: {error}") from None
    if send_buffer is not None and protocol.transport is not None:
        sock = protocol.transport.get_extra_info("socket")
        # The kernel caps it at net.core.wmem_max, which is all right: it is a hint.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    setup: list[tuple[Any, ...]] = []
    password, username = options.get("password"), options.get("username")
    if password is not None:
        setup.append(("AUTH", username, password) if username else ("AUTH", password))
    if options.get("db"):
        setup.append(("SELECT", options["db"]))
    if setup:
        try:
            packed = b"".join(pack(command) for command in setup)
            raise_errors(await asyncio.wait_for(protocol.request(packed, len(setup)), timeout))
        except BaseException:
            protocol.close()
            raise


def _tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS of a `rediss://` URL, with the query options redis-py takes for it, so that the
    thin connections trust (and present) what redis-py's do: `ssl_ca_certs`, `ssl_certfile`,
    `ssl_keyfile`, `ssl_cert_reqs` (none, optional, required) and `ssl_check_hostname`."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = str(options.get("ssl_cert_reqs", "required")).lower()
    context.check_hostname = bool(options.get("ssl_check_hostname", requirement != "none"))
    context.verify_mode = {
        "none": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
    }.get(requirement, ssl.CERT_REQUIRED)
    return context


class RespConnection:
    """Requests and their replies, in order, on one connection; any number in flight."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(
        cls, url: str, *, timeout: float = 2.0, send_buffer: int | None = None
    ) -> RespConnection:
        """Connected to `url`; `send_buffer` sizes the socket's kernel send buffer (bytes)."""
        protocol = _Protocol()
        await _open(url, protocol, timeout, send_buffer)
        return cls(protocol)

    @property
    def closed(self) -> bool:
        return self._protocol.is_closed()

    def request(self, packed: bytes, replies: int) -> asyncio.Future[list[Any]]:
        """Send `packed` (`replies` commands); the future gets their raw replies."""
        return self._protocol.request(packed, replies)

    async def call(self, packed: bytes, replies: int) -> list[Any]:
        return await self._protocol.request(packed, replies)

    def send(self, *requests: tuple[bytes, int]) -> list[asyncio.Future[list[Any]]]:
        """Write several requests in one system call; a future for each one's replies."""
        return self._protocol.send(*requests)

    async def transaction(self, commands: list[bytes], after: Sequence[bytes] = ()) -> list[Any]:
        """MULTI, `commands`, EXEC, then `after`: EXEC's replies, then those of `after`.

        Raises `ResponseError` if any command failed, to be queued or to run."""
        packed, count = transaction(commands, after)
        return executed(await self.call(packed, count), len(commands))

    def close(self) -> None:
        self._protocol.close()


class RespSubscriber:
    """A Pub/Sub connection: `on_message(channel, data)` for each message of its channel."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    @classmethod
    async def open(
        cls,
        url: str,
        channel: str,
        on_message: Callable[[bytes, bytes], None],
        *,
        timeout: float = 2.0,
    ) -> RespSubscriber:
        """Connected and subscribed to `channel`: nothing published from now on is missed."""
        return await cls._subscribed(url, "SUBSCRIBE", [channel], on_message, timeout)

    @classmethod
    async def open_sharded(
        cls,
        url: str,
        channels: Sequence[str],
        on_message: Callable[[bytes, bytes], None],
        *,
        timeout: float = 2.0,
    ) -> RespSubscriber:
        """Connected to the node `url` names and subscribed to its shard `channels` (SSUBSCRIBE
        takes one slot at a time, so one command each)."""
        return await cls._subscribed(url, "SSUBSCRIBE", channels, on_message, timeout)

    @classmethod
    async def _subscribed(
        cls,
        url: str,
        subscribe: str,
        channels: Sequence[str],
        on_message: Callable[[bytes, bytes], None],
        timeout: float,
    ) -> RespSubscriber:
        protocol = _Protocol(on_message)
        await _open(url, protocol, timeout)
        try:
            packed = b"".join(pack((subscribe, channel)) for channel in channels)
            confirmed = protocol.request(packed, len(channels))
            raise_errors(await asyncio.wait_for(confirmed, timeout))
        except BaseException:
            protocol.close()
            raise
        return cls(protocol)

    @property
    def closed(self) -> bool:
        return self._protocol.is_closed()

    async def wait_closed(self) -> Exception:
        """Until the connection is lost: the error that ended it."""
        await asyncio.shield(self._protocol.closed)
        return self._protocol.lost or RedisConnectionError("connection to Redis closed")

    def close(self) -> None:
        self._protocol.close()
