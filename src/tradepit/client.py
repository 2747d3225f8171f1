"""Talking to a running venue through Redis: what the gateway, the admin CLI and the benchmarks
use to send commands to the stages and wait for their replies.

Commands are group-committed under load: while appends are in flight, those sent in the same
turn of the event loop are flushed at the end of the turn, as one stream entry per ledger shard
in one write that does not wait for the replies to earlier ones, so a burst of N orders costs a
handful of appends rather than N. A command sent when nothing is in flight is appended at once.
Replies come back on a Pub/Sub channel of this client's own. Both ride thin hiredis connections
(`tradepit.stage.resp`): this is the path of every order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradepit.errors import TradepitError
from tradepit.ledger.history import OrderRecord
from tradepit.stage.keys import CONFIG, ShardKeys, VenueConfig, ledger_of
from tradepit.stage.messages import (
    COMMANDS,
    REPLY_TO,
    LedgerCommand,
    MatcherCommand,
    Reply,
    decode_record,
    decode_replies,
    encode,
)
from tradepit.stage.resp import RespConnection, RespSubscriber, pack_large, raise_errors

__all__ = ["VenueClient", "ReplyTimeoutError", "init_config", "load_config", "wait_for_server"]

log = logging.getLogger("tradepit.client")

MAX_COMMANDS_PER_ENTRY = 500
POOL_CONNECTIONS = 100  # Redis connections per client process, at most
_decode_config = msgspec.json.Decoder(VenueConfig).decode


class ReplyTimeoutError(TradepitError, TimeoutError):
    """No reply came in time. The command may still have been applied: look its result up."""


async def init_config(redis: aioredis.Redis, config: VenueConfig) -> VenueConfig:
    """Fix the venue's configuration on its first start; later starts get what was fixed."""
    await redis.set(CONFIG, encode(config), nx=True)
    return await load_config(redis)


async def load_config(redis: aioredis.Redis) -> VenueConfig:
    raw = await redis.get(CONFIG)
    if raw is None:
        raise RuntimeError("this Redis holds no tradepit venue: start one with `tradepit serve`")
    return _decode_config(raw)


async def wait_for_server(redis: aioredis.Redis, who: str) -> None:
    """Return once the server answers, trying again meanwhile with a growing pause: a process
    started (or restarted by a supervisor) while the server is down or still loading its data
    waits for it rather than exit."""
    backoff = 0.05
    while True:
        try:
            await redis.ping()
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            log.warning("%s: redis unavailable (%s); trying again", who, error)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


class VenueClient:
    def __init__(self, redis_url: str, *, reply_timeout: float = 10.0) -> None:
        self.redis_url = redis_url
        self.reply_timeout = reply_timeout
        # A pool that waits for a free connection rather than failing: redis-py caps a pool at
        # 100 connections by default, and a gateway that many clients reach at once (thousands
        # of streams authenticating after a restart) otherwise answers them "Too many
        # connections".
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_url, max_connections=POOL_CONNECTIONS, timeout=reply_timeout
        )
        self.redis = aioredis.Redis.from_pool(pool)
        self.config = VenueConfig()
        self.reply_channel = f"tradepit:reply:{uuid.uuid4().hex}"
        self._request_ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Reply]] = {}
        self._pending: dict[str, list[LedgerCommand]] = {}
        self._flush_scheduled = False
        self._appends_in_flight = 0  # written, and their replies not yet read
        self._connecting: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriber: RespSubscriber | None = None
        self._wire: RespConnection | None = None  # the inboxes' appends

    async def connect(self) -> VenueClient:
        self.config = await load_config(self.redis)
        # Subscribed before anything is sent, so that no reply can arrive before we listen.
        self._subscriber = await RespSubscriber.open(
            self.redis_url, self.reply_channel, self._on_replies
        )
        self._wire = await RespConnection.open(self.redis_url)
        self._tasks = [asyncio.create_task(self._listen(), name="replies")]
        return self

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
        if self._wire is not None:
            self._wire.close()
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
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[command.request_id] = future
        self._pending.setdefault(ledger_of(account_id, self.config), []).append(command)
        self._flush_soon()
        return future

    async def request(self, account_id: int, command: LedgerCommand) -> Reply:
        future = self.send(account_id, command)
        try:
            # (asyncio.timeout rather than wait_for, which wraps the future in more of its own.)
            async with asyncio.timeout(self.reply_timeout):
                return await future
        except TimeoutError:
            self._waiting.pop(command.request_id, None)
            raise ReplyTimeoutError(f"no reply from the ledger in {self.reply_timeout} s") from None

    async def replies(self, futures: Sequence[asyncio.Future[Reply]]) -> list[Reply]:
        """The replies to commands `send` queued, in their order; `ReplyTimeoutError` if they
        have not all come within the reply timeout (no ledger running, say)."""
        try:
            async with asyncio.timeout(self.reply_timeout):
                return list(await asyncio.gather(*futures))
        except TimeoutError:
            raise ReplyTimeoutError(f"no reply from the ledger in {self.reply_timeout} s") from None

    async def request_each_ledger(self, make: Any) -> list[Reply]:
        """Send `make()` to every ledger shard; the replies in shard order."""
        futures = []
        for index in range(self.config.ledgers):
            futures.append(self.send(index, make()))
        return await self.replies(futures)

    async def send_to_matcher(self, shard: str, commands: Sequence[MatcherCommand]) -> None:
        """Append operator commands to a matcher shard's inbox (they have no reply)."""
        await self.redis.xadd(ShardKeys(shard).inbox, {COMMANDS: encode(list(commands))})

    def _flush_soon(self) -> None:
        if not self._flush_scheduled:
            if not self._appends_in_flight:
                # Nothing on its way: there is nothing to coalesce with, and waiting for the end
                # of the loop's turn only delays this one (~40 us at a paced 1,000/s). Under
                # load, appends are in flight and what comes in one turn goes in one write.
                self._flush()
                return
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Append what was sent since the last flush: one write, the appends pipelined."""
        self._flush_scheduled = False
        if not self._pending:
            return
        wire = self._wire
        if wire is None or wire.closed:
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.create_task(self._reconnect(), name="connect")
            return  # flushed once connected
        pending, self._pending = self._pending, {}
        appends = []
        for shard, commands in pending.items():
            inbox = ShardKeys(shard).inbox
            for start in range(0, len(commands), MAX_COMMANDS_PER_ENTRY):
                chunk = encode(commands[start : start + MAX_COMMANDS_PER_ENTRY])
                appends.append(
                    pack_large(("XADD", inbox, "*", COMMANDS, chunk, REPLY_TO, self.reply_channel))
                )
        try:
            appended = wire.request(b"".join(appends), len(appends))
        except Exception as error:
            self._fail(pending, error)
            return
        self._appends_in_flight += 1

        def check(appended: asyncio.Future[list[Any]]) -> None:
            self._appends_in_flight -= 1
            try:
                raise_errors(appended.result())
            except Exception as error:
                self._fail(pending, error)

        appended.add_done_callback(check)

    async def _reconnect(self) -> None:
        try:
            self._wire = await RespConnection.open(self.redis_url)
        except Exception as error:
            pending, self._pending = self._pending, {}
            self._fail(pending, error)
        else:
            self._flush()

    def _fail(self, pending: dict[str, list[LedgerCommand]], error: BaseException) -> None:
        """Not appended (or not known to be): fail the callers, who may retry."""
        for commands in pending.values():
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
                self._subscriber = await RespSubscriber.open(
                    self.redis_url, self.reply_channel, self._on_replies
                )

    # Reading what the stages committed.

    async def order_record(self, account_id: int, order_id: int) -> OrderRecord | None:
        keys = ShardKeys(ledger_of(account_id, self.config))
        raw = await self.redis.hget(keys.orders, str(order_id))
        return None if raw is None else decode_record(raw)
