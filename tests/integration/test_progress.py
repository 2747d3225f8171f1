"""A stage loop counts its commits in its checkpoints hash, and its progress recorder keeps the
count in a file after each commit; a load that holds fewer than the file stops the stage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tradepit.durability import DataLossError, ProgressRecorder, decode_progress
from tradepit.stage.loop import Fields, StageCore, StageLoop
from tradepit.stage.resp import CommandBuffer, pack
from tradepit.store.keys import COMMITS, ShardKeys


class Count(StageCore):
    """Counts its inbox's entries in one key."""

    def __init__(self) -> None:
        self.keys = ShardKeys("t0")
        self.count = 0

    def inboxes(self) -> list[str]:
        return [self.keys.inbox]

    async def load(self, redis: aioredis.Redis) -> None:
        self.count = int(await redis.get(self.keys.state) or 0)

    def apply(self, stream: str, fields: Fields) -> None:
        self.count += 1

    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        tx.packed.append(pack(("SET", self.keys.state, self.count)))
        return []


def test_the_progress_file_follows_the_commits(redis_url: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        redis = aioredis.Redis.from_url(redis_url)
        core = Count()
        for value in range(20):
            await redis.xadd(core.keys.inbox, {b"v": b"%d" % value})
        recorder = ProgressRecorder("t0", tmp_path / "progress" / "t0")
        stage = StageLoop(core, redis_url, max_entries=3, block_ms=20, progress=recorder)
        running = asyncio.create_task(stage.run())
        while core.count < 20:
            await asyncio.sleep(0.005)
        stage.stop()
        await asyncio.wait_for(running, 5)
        recorder.close()
        stored: Any = await redis.hget(core.keys.checkpoints, COMMITS)
        last: Any = (await redis.xrevrange(core.keys.inbox, count=1))[0][0]
        await redis.aclose()
        written = decode_progress((tmp_path / "progress" / "t0").read_bytes())
        assert written is not None
        assert written.commits == int(stored) == stage.commits == recorder.commits >= 7
        assert written.inputs == {core.keys.inbox: last.decode()}

    asyncio.run(scenario())


def test_a_load_with_fewer_commits_than_acknowledged_stops_the_stage(
    redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "progress" / "t0"
    path.parent.mkdir()
    path.write_bytes(b'{"commits":5,"inputs":{"{t0}:in":"1796306310123-0"}}\n')

    async def scenario() -> None:
        recorder = ProgressRecorder("t0", path)
        stage = StageLoop(Count(), redis_url, block_ms=20, progress=recorder)
        try:
            with pytest.raises(DataLossError, match="t0 lost all 5 commits it acknowledged"):
                await asyncio.wait_for(stage.run(), 10)
        finally:
            recorder.close()

    asyncio.run(scenario())
