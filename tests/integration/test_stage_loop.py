"""The stage loop's own promises, with a small core of the test's making on a real Valkey.

The loop reads and applies a batch while the last one's commit is still in Valkey: these check
that a commit is only ever sent once the one before it succeeded, so that a failed commit
leaves nothing after it committed: the stage loads again and retries, and its entries are still
there to apply."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from tradepit.stage.loop import Fields, StageCore, StageLoop
from tradepit.stage.resp import CommandBuffer, pack
from tradepit.store.keys import ShardKeys


class Tally(StageCore):
    """Appends its inbox's entries to a list, one RPUSH per batch; an entry `fail` makes its
    batch's commit fail in Valkey (an unknown command, refused as it is queued: EXECABORT)."""

    def __init__(self) -> None:
        self.keys = ShardKeys("t0")
        self.seen: list[bytes] = []
        self._batch: list[bytes] = []

    def inboxes(self) -> list[str]:
        return [self.keys.inbox]

    async def load(self, redis: aioredis.Redis) -> None:
        stored: Any = await redis.lrange(self.keys.state, 0, -1)
        self.seen = list(stored)
        self._batch = []

    def apply(self, stream: str, fields: Fields) -> None:
        self._batch.append(fields[b"v"])

    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        batch, self._batch = self._batch, []
        self.seen += batch
        tx.packed.append(pack(("RPUSH", self.keys.state, *batch)))
        if b"fail" in batch:
            tx.packed.append(pack(("NO_SUCH_THING",)))
        return []


def test_no_commit_follows_a_failed_one_and_the_stage_retries(redis_url: str) -> None:
    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        core = Tally()
        inbox = core.keys.inbox
        # One entry per batch: "fail" is batch 2, and batches 3.. are read and applied while
        # its commit is in flight.
        for value in (b"a", b"fail", b"c", b"d", b"e"):
            await redis.xadd(inbox, {b"v": value})
        stage = StageLoop(core, redis_url, max_entries=1, block_ms=20)
        running = asyncio.create_task(stage.run())
        # It fails, reloads and tries again, and again: batch 1 is in, nothing after the
        # failed batch 2 is, and the checkpoint still points at batch 1.
        await asyncio.sleep(1.0)
        assert not running.done()  # the stage goes on
        assert await redis.lrange(core.keys.state, 0, -1) == [b"a"]
        entries: Any = await redis.xrange(inbox)
        checkpoint: Any = await redis.hget(core.keys.checkpoints, inbox)
        assert checkpoint == entries[0][0]

        # Once what made it fail is gone, the same stage applies each entry exactly once.
        await redis.xdel(inbox, entries[1][0])
        for _ in range(200):
            if len(await redis.lrange(core.keys.state, 0, -1)) == 4:
                break
            await asyncio.sleep(0.02)
        stage.stop()
        await asyncio.wait_for(running, 5)
        assert await redis.lrange(core.keys.state, 0, -1) == [b"a", b"c", b"d", b"e"]
        await redis.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("entries", [1, 50])
def test_a_stopped_stage_has_committed_all_it_applied(redis_url: str, entries: int) -> None:
    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        core = Tally()
        values = [b"%d" % number for number in range(entries)]
        for value in values:
            await redis.xadd(core.keys.inbox, {b"v": value})
        stage = StageLoop(core, redis_url, max_entries=2, block_ms=20)
        running = asyncio.create_task(stage.run())
        while len(core.seen) < entries:
            await asyncio.sleep(0.005)
        stage.stop()
        await asyncio.wait_for(running, 5)
        assert await redis.lrange(core.keys.state, 0, -1) == values
        await redis.aclose()

    asyncio.run(scenario())
