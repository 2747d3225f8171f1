"""Talking to a running venue through Redis: what the gateway, the admin CLI and the benchmarks
use to send commands to the stages and wait for their replies.

Commands are group-committed under load: while appends are in flight, those sent in the same
turn of the event loop are flushed at the end of the turn, as one stream entry per ledger shard
in one write that does not wait for the replies to earlier ones, so a burst of N orders costs a
handful of appends rather than N. A command sent when nothing is in flight is appended at once.
Replies come back on a Pub/Sub channel of this client's own. Both ride thin hiredis connections
(`tradepit.stage.resp`): this is the path of every order.

On a Valkey Cluster the appends go to each inbox's own primary, one write per node, each entry
followed by its inbox's doorbell (`tradepit.stage.inboxes`); an append the cluster refuses
because its slot moved (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) was not made, so it is sent again
once the client has learned where the slot went. An append whose connection was lost may or
may not have been made: its callers fail, and look the outcome up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from tradepit.errors import TradepitError
from tradepit.ledger.history import OrderRecord
from tradepit.stage.messages import (
    COMMANDS,
    REPLY_TO,
    LedgerCommand,
    MatcherCommand,
    Reply,
    decode_replies,
    encode,
)
from tradepit.stage.resp import RespConnection, RespSubscriber, pack, pack_large
from tradepit.stage.routing import ClusterRoutes, Node, slot_moved
from tradepit.store.catalog import init_config, load_config, wait_for_server
from tradepit.store.connection import Client, connect, is_cluster
from tradepit.store.keys import ShardKeys, VenueConfig, ledger_of
from tradepit.store.ledger import order_record as stored_order_record

__all__ = ["VenueClient", "ReplyTimeoutError", "init_config", "load_config", "wait_for_server"]

log = logging.getLogger("tradepit.client")

MAX_COMMANDS_PER_ENTRY = 500
POOL_CONNECTIONS = 100  # Redis connections per client process, at most
# One stream entry's worth of a shard's commands.
_Append = tuple[str, list[LedgerCommand]]


class ReplyTimeoutError(TradepitError, TimeoutError):
    """No reply came in time. The command may still have been applied: look its result up."""


class VenueClient:
    def __init__(self, redis_url: str, *, reply_timeout: float = 10.0) -> None:
        self.redis_url = redis_url
        self.reply_timeout = reply_timeout
        # A pool that waits for a free connection rather than failing: redis-py caps a pool at
        # 100 connections by default, and a gateway that many clients reach at once (thousands
        # of streams authenticating after a restart) otherwise answers them "Too many
        # connections".
        self.redis: Client = connect(
            redis_url, cluster=False, max_connections=POOL_CONNECTIONS, timeout=reply_timeout
        )
        self.routes: ClusterRoutes | None = None  # on a cluster, once connected
        self.config = VenueConfig()
        self.reply_channel = f"tradepit:reply:{uuid.uuid4().hex}"
        self._request_ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._pending: dict[str, list[LedgerCommand]] = {}
        self._flush_scheduled = False
        self._appends_in_flight = 0  # written, and their replies not yet read
        self._connecting: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The loop connect() ran on, kept: on Python 3.11 asyncio.get_running_loop() makes a
        # getpid() system call each time, and a gateway sends a command per order.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscriber: RespSubscriber | None = None
        self._wire: RespConnection | None = None  # the inboxes' appends (one server)
        self._wires: dict[Node, RespConnection] = {}  # the same, per primary (a cluster)

    async def connect(self) -> VenueClient:
        self._loop = asyncio.get_running_loop()
        if await is_cluster(self.redis_url):
            self.routes = ClusterRoutes(self.redis_url)
            await self.routes.refresh()
            await self.redis.aclose()
            self.redis = connect(
                self.redis_url,
                cluster=True,
                max_connections=POOL_CONNECTIONS,
                startup_nodes=self.routes.known,
            )
        self.config = await load_config(self.redis)
        # Subscribed before anything is sent, so that no reply can arrive before we listen.
        self._subscriber = await self._subscribe()
        await self._open_wires()
        self._tasks = [asyncio.create_task(self._listen(), name="replies")]
        return self

    async def _subscribe(self) -> RespSubscriber:
        """The replies' subscription: on a cluster, on any node that answers (a PUBLISH
        reaches every node)."""
        if self.routes is None:
            return await RespSubscriber.open(self.redis_url, self.reply_channel, self._on_replies)
        last: Exception | None = None
        for node in self.routes.known:
            try:
                return await RespSubscriber.open(
                    self.routes.url_of(node), self.reply_channel, self._on_replies, timeout=1.0
                )
            except (RedisConnectionError, OSError) as error:
                last = error
        raise RedisConnectionError(f"no node of the cluster answers: {last}")

    async def _open_wires(self) -> None:
        if self.routes is None:
            if self._wire is None or self._wire.closed:
                self._wire = await RespConnection.open(self.redis_url)
            return
        await self.routes.refresh()
        for node in self.routes.primaries:
            wire = self._wires.get(node)
            if wire is None or wire.closed:
                try:
                    self._wires[node] = await RespConnection.open(
                        self.routes.url_of(node), timeout=1.0
                    )
                except (RedisConnectionError, OSError) as error:
                    # Its shards' appends fail for now; the other nodes' go on.
                    log.warning("cannot reach %s:%d (%s)", *node, error)

    async def close(self) -> None:
        if self._connecting is not None:
            self._tasks.append(self._connecting)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._subscriber is not None:
            self._subscriber.close()
        for wire in (self._wire, *self._wires.values()):
            if wire is not None:
                wire.close()
        await self.redis.aclose()

    async def __aenter__(self) -> VenueClient:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # Sending.

    def next_request_id(self) -> int:
        return next(self._request_ids)

    def send(self, account_id: int, command: LedgerCommand) -> asyncio.Future[Reply]:
        """Queue a command for the ledger that owns `account_id`; the future gets its reply."""
        if not command.request_id:
            command.request_id = self.next_request_id()
        future: asyncio.Future[Reply] = (self._loop or asyncio.get_running_loop()).create_future()
        self._waiting[command.request_id] = future
        self._pending.setdefault(ledger_of(account_id, self.config), []).append(command)
        self._flush_soon()
        return future

    async def request(self, account_id: int, command: LedgerCommand) -> Reply:
        future = self.send(account_id, command)
        # A timer that fails the future, rather than asyncio.timeout (two coroutines, the
        # current task and the loop looked up, a handle of its own) or wait_for (more again):
        # this is paid by every order a gateway takes.
        timer = (self._loop or asyncio.get_running_loop()).call_later(
            self.reply_timeout, self._time_out, command.request_id, future
        )
        try:
            return await future
        finally:
            timer.cancel()

    def _time_out(self, request_id: int, future: asyncio.Future[Reply]) -> None:
        if self._waiting.get(request_id) is future:
            del self._waiting[request_id]
        if not future.done():
            future.set_exception(
                ReplyTimeoutError(f"no reply from the ledger in {self.reply_timeout} s")
            )

    async def replies(self, futures: Sequence[asyncio.Future[Reply]]) -> list[Reply]:
        """The replies to commands `send` queued, in their order; `ReplyTimeoutError` if they
        have not all come within the reply timeout (no ledger running, say)."""
        try:
            async with asyncio.timeout(self.reply_timeout):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            # Nobody waits for them now: not sent again should their slot move.
            given_up = set(futures)
            for request_id, future in list(self._waiting.items()):
                if future in given_up:
                    del self._waiting[request_id]
            raise ReplyTimeoutError(f"no reply from the ledger in {self.reply_timeout} s") from None

    async def request_each_ledger(self, make: Any) -> list[Reply]:
        """Send `make()` to every ledger shard; the replies in shard order."""
        futures = []
        for index in range(self.config.ledgers):
            futures.append(self.send(index, make()))
        return await self.replies(futures)

    async def send_to_matcher(self, shard: str, commands: Sequence[MatcherCommand]) -> None:
        """Append operator commands to a matcher shard's inbox (they have no reply)."""
        inbox = ShardKeys(shard).inbox
        await self.redis.xadd(inbox, {COMMANDS: encode(list(commands))})
        if self.routes is not None:
            await self.redis.spublish(inbox, b"")

    def _flush_soon(self) -> None:
        if not self._flush_scheduled:
            if not self._appends_in_flight:
                # Nothing on its way: there is nothing to coalesce with, and waiting for the end
                # of the loop's turn only delays this one (~40 us at a paced 1,000/s). Under
                # load, appends are in flight and what comes in one turn goes in one write.
                self._flush()
                return
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self._flush)

    def _flush(self, *, give_up: bool = False) -> None:
        """Append what was sent since the last flush: one write (per node, on a cluster), the
        appends pipelined. What has no connection now waits for one to be made, unless
        `give_up` (one was just tried): then its callers fail, and may retry."""
        self._flush_scheduled = False
        if not self._pending:
            return
        writes, unreachable = self._writes(self._pending)
        self._pending = {}
        for wire, appends in writes:
            packed = b"".join(self._append_command(shard, chunk) for shard, chunk in appends)
            per_append = 1 if self.routes is None else 2
            try:
                appended = wire.request(packed, per_append * len(appends))
            except Exception as error:
                self._fail(appends, error)
                continue
            self._appends_in_flight += 1
            appended.add_done_callback(functools.partial(self._appended, appends))
        if not unreachable:
            return
        if give_up:
            self._fail(unreachable.items(), RedisConnectionError("no connection to its node"))
            return
        for shard, commands in unreachable.items():
            self._pending.setdefault(shard, []).extend(commands)
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.create_task(self._reconnect(), name="connect")

    def _writes(
        self, pending: dict[str, list[LedgerCommand]]
    ) -> tuple[list[tuple[RespConnection, list[_Append]]], dict[str, list[LedgerCommand]]]:
        """Each connection's appends (one per shard and up to MAX_COMMANDS_PER_ENTRY commands),
        and the shards whose node has no connection now."""
        by_wire: dict[int, tuple[RespConnection, list[_Append]]] = {}
        unreachable: dict[str, list[LedgerCommand]] = {}
        for shard, commands in pending.items():
            wire = self._wire_of(shard)
            if wire is None or wire.closed:
                unreachable[shard] = commands
                continue
            appends = by_wire.setdefault(id(wire), (wire, []))[1]
            for start in range(0, len(commands), MAX_COMMANDS_PER_ENTRY):
                appends.append((shard, commands[start : start + MAX_COMMANDS_PER_ENTRY]))
        return list(by_wire.values()), unreachable

    def _wire_of(self, shard: str) -> RespConnection | None:
        if self.routes is None:
            return self._wire
        try:
            return self._wires.get(self.routes.node_of(ShardKeys(shard).inbox))
        except RedisConnectionError:  # no node serves its slot for now
            return None

    def _append_command(self, shard: str, commands: list[LedgerCommand]) -> bytes:
        inbox = ShardKeys(shard).inbox
        append = pack_large(
            ("XADD", inbox, "*", COMMANDS, encode(commands), REPLY_TO, self.reply_channel)
        )
        if self.routes is None:
            return append
        # Rung after the entry, on the same connection: once the stage hears it, the entry is
        # there to read.
        return append + pack(("SPUBLISH", inbox, b""))

    def _appended(self, appends: list[_Append], appended: asyncio.Future[list[Any]]) -> None:
        self._appends_in_flight -= 1
        try:
            replies = appended.result()
        except Exception as error:
            self._fail(appends, error)
            return
        if self.routes is not None:
            # Each XADD's reply, then its doorbell's: only the XADDs say what was appended (a
            # doorbell refused leaves the entry there, read at the stage's next wake).
            replies, doorbells = replies[::2], replies[1::2]
            for refused in (reply for reply in doorbells if isinstance(reply, Exception)):
                log.warning("a doorbell was refused: %s", refused)
        moved = False
        for (shard, commands), reply in zip(appends, replies, strict=True):
            if not isinstance(reply, ResponseError):
                continue
            if self.routes is not None and slot_moved(reply):
                # Not appended: its slot is elsewhere now. Send it again once we know where
                # (what nobody waits for any more stays unsent).
                waited = [command for command in commands if command.request_id in self._waiting]
                self._pending.setdefault(shard, []).extend(waited)
                moved = True
            else:
                self._fail([(shard, commands)], reply)
        if moved and (self._connecting is None or self._connecting.done()):
            self._connecting = asyncio.create_task(self._reconnect(), name="connect")

    async def _reconnect(self) -> None:
        try:
            if self.routes is not None:
                await asyncio.sleep(0.05)  # a slot in motion settles in a moment
            await self._open_wires()
        except Exception as error:
            pending, self._pending = self._pending, {}
            self._fail(pending.items(), error)
        else:
            self._flush(give_up=True)

    def _fail(self, appends: Iterable[_Append], error: BaseException) -> None:
        """Not appended (or not known to be): fail the callers, who may retry."""
        for _shard, commands in appends:
            for command in commands:
                future = self._waiting.pop(command.request_id, None)
                if future is not None and not future.done():
                    future.set_exception(error)

    # Receiving.

    def _on_replies(self, _channel: bytes, data: bytes) -> None:
        try:
            replies = decode_replies(data)
        except msgspec.DecodeError:
            log.warning("undecodable reply on %s", self.reply_channel)
            return
        waiting = self._waiting
        for reply in replies:
            future = waiting.pop(reply.request_id, None)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _listen(self) -> None:
        """Subscribe again whenever the connection is lost (replies meanwhile are lost too:
        their callers time out and look the outcome up)."""
        while True:
            if self._subscriber is not None:
                await self._subscriber.wait_closed()
            await asyncio.sleep(0.1)
            with contextlib.suppress(RedisConnectionError, OSError, TimeoutError):
                if self.routes is not None:
                    await self.routes.refresh()
                self._subscriber = await self._subscribe()

    # Reading what the stages committed.

    async def order_record(self, account_id: int, order_id: int) -> OrderRecord | None:
        return await stored_order_record(self.redis, self.config, account_id, order_id)
