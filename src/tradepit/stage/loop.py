"""The loop every stateful stage runs, written once.

1. read a batch from the shard's inbox streams, after its checkpoints;
2. apply it to the in-memory core, deterministically;
3. in ONE MULTI/EXEC: append the outputs to the outbox streams, write the state that changed,
   advance the checkpoints, and PUBLISH the live copies; the same write carries the (blocking)
   XREAD of the next batch, so that a stage pays one round trip per batch, busy or idle.

A crash anywhere loses nothing: until EXEC, nothing of the batch is in Redis, and a restarted
stage loads the state and checkpoints that were committed together. A lost connection is
handled the same way: the stage drops its memory and loads again.

An entry that cannot be decoded is moved to the shard's dead-letter stream with the reason, in
the same transaction as the checkpoint that skips it, and the stage goes on.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradepit.stage.keys import ShardKeys
from tradepit.stage.resp import (
    CommandBuffer,
    RespConnection,
    executed,
    pack,
    transaction,
    xread_batch,
    xread_command,
)

__all__ = ["BadEntryError", "StageCore", "StageLoop", "Fields"]

log = logging.getLogger("tradepit.stage")

Fields = dict[bytes, bytes]
_START = b"0-0"
DEAD_LETTERS_KEPT = 10_000


class BadEntryError(Exception):
    """An inbox entry that cannot be applied as it is: it goes to the dead-letter stream."""


class StageCore(ABC):
    """The shard-specific half of a stage: a pure core plus how its state maps onto Redis."""

    keys: ShardKeys

    @abstractmethod
    def inboxes(self) -> list[str]:
        """The streams this shard reads, in the order each batch applies them."""

    @abstractmethod
    async def load(self, redis: aioredis.Redis) -> None:
        """Replace all in-memory state with what Redis holds."""

    @abstractmethod
    def apply(self, stream: str, fields: Fields) -> None:
        """Apply one entry. Raise BadEntryError, having changed nothing, if it cannot be decoded."""

    @abstractmethod
    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        """Queue the batch's outputs and changed state on `tx`; return what to publish after."""


class StageLoop:
    """Runs a `StageCore` against Redis until `stop()`; survives Redis restarts."""

    def __init__(
        self,
        core: StageCore,
        redis_url: str,
        *,
        max_entries: int = 200,
        block_ms: int = 100,
        trim_inputs: bool = True,
    ) -> None:
        self.core = core
        self.redis_url = redis_url
        self.max_entries = max_entries
        self.block_ms = block_ms
        self.trim_inputs = trim_inputs
        self.checkpoints: dict[str, bytes] = {}
        # The next batch's XREAD, sent with the last commit (None: not sent yet).
        self._next_read: asyncio.Future[list[Any]] | None = None
        self.batches = 0
        self.dead_letters = 0
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        backoff = 0.05
        while not self._stopping.is_set():
            redis = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            wire: RespConnection | None = None
            try:
                wire = await RespConnection.open(self.redis_url)
                await self._load(redis)
                self.ready.set()
                backoff = 0.05
                while not self._stopping.is_set():
                    await self.step(redis, wire)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                # Whatever this batch did in memory was not committed: load it all again.
                log.warning("%s: redis unavailable (%s); reloading", self.core.keys.shard, error)
                self.ready.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
            finally:
                if wire is not None:
                    wire.close()
                await redis.aclose()

    async def _load(self, redis: aioredis.Redis) -> None:
        stored: Any = await redis.hgetall(self.core.keys.checkpoints)
        self.checkpoints = {
            stream: stored.get(stream.encode(), _START) for stream in self.core.inboxes()
        }
        await self.core.load(redis)
        self._next_read = None

    async def step(self, redis: aioredis.Redis, wire: RespConnection) -> int:
        """Read, apply and commit one batch; return how many entries it held.

        The core queues its writes on a `CommandBuffer`, which packs them: they are sent on
        `wire`, the thin connection."""
        if self._next_read is None:
            block = None if self._stopping.is_set() else self.block_ms
            self._next_read = wire.request(
                xread_command(self.checkpoints, self.max_entries, block), 1
            )
        reading, self._next_read = self._next_read, None
        response = xread_batch((await reading)[0])
        if not response:
            return 0
        keys = self.core.keys
        dead: list[tuple[str, bytes, Fields, str]] = []
        advanced: dict[str, bytes] = {}
        count = 0
        # XREAD answers the streams in the order asked, which is the core's order.
        for raw_stream, entries in response:
            stream = raw_stream.decode()
            for entry_id, fields in entries:
                try:
                    self.core.apply(stream, fields)
                except BadEntryError as error:
                    dead.append((stream, entry_id, fields, str(error)))
            count += len(entries)
            advanced[stream] = entries[-1][0]
        checkpoints = {**self.checkpoints, **advanced}
        tx = CommandBuffer()
        publishes = self.core.write(tx)
        for stream, entry_id, fields, reason in dead:
            record: dict[Any, Any] = {
                b"stream": stream,
                b"id": entry_id,
                b"reason": reason,
            }
            record.update({b"field:" + name: value for name, value in fields.items()})
            tx.xadd(keys.dead_letters, record, maxlen=DEAD_LETTERS_KEPT, approximate=True)
        tx.hset(keys.checkpoints, mapping=advanced)
        # Published inside the transaction: subscribers get them once it is applied, and
        # not before it is in the append-only file (Valkey writes the AOF before replies).
        for channel, message in publishes:
            tx.publish(channel, message)
        trims = []
        if self.trim_inputs and (self.batches + 1) % 8 == 0:
            # What is applied and committed is no longer needed in the inboxes.
            trims = [
                pack(("XTRIM", stream, "MINID", "~", entry_id))
                for stream, entry_id in checkpoints.items()
                if entry_id != _START
            ]
        commands = tx.packed
        # And the next batch, read after this commit, in the same write: Valkey answers EXEC,
        # then the XREAD as soon as there is something after the new checkpoints.
        next_read = xread_command(checkpoints, self.max_entries, self.block_ms)
        committing, self._next_read = wire.send(transaction(commands, trims), (next_read, 1))
        executed(await committing, len(commands))
        self.checkpoints = checkpoints
        self.batches += 1
        self.dead_letters += len(dead)
        for stream, entry_id, _fields, reason in dead:
            log.warning("%s: dead-lettered %s %s: %s", keys.shard, stream, entry_id, reason)
        return count
