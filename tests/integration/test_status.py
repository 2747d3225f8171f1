"""`tradepit status` on a running venue: `--once --json` as a script runs it, with every shard's
lag, the gateways' beats and each Valkey node's memory and AOF; and a stopped stage's lag."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest
from harness import running_venue

from tradepit.ledger import CASH
from tradepit.stage.messages import Transfer
from tradepit.status import snapshot
from tradepit.store.connection import open_client
from tradepit.store.gateways import GatewayBeat, beat, gone
from tradepit.store.keys import ledger_of
from tradepit.store.lag import venue_inboxes


@pytest.fixture
def redis_url(any_redis_url: str) -> str:
    return any_redis_url


async def _status_json(redis_url: str) -> dict[str, Any]:
    """`tradepit status --once --json`, run as a script would (while the stages run on)."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tradepit.cli", "--redis-url", redis_url],
        *["status", "--once", "--json", "--interval", "0.2"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1, out
    shown: dict[str, Any] = json.loads(lines[0])
    return shown


def test_status_json_shows_every_shard_the_gateways_and_valkey(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url) as venue:
            account = await venue.account("0")
            await venue.settle()
            redis = await open_client(redis_url)
            now = time.time()
            state = GatewayBeat(
                id="127.0.0.1:8000:4242",
                host="127.0.0.1",
                port=8000,
                pid=4242,
                started_at=now - 30,
                updated_at=now,
                requests=12,
                websocket_clients={"/stream": 3},
                orders_accepted=4,
                orders_refused={"insufficient_buying_power": 2},
            )
            try:
                await beat(redis, state)
                shown = await _status_json(redis_url)
            finally:
                await gone(redis, state.id)
                await redis.aclose()

        stages = {stage["shard"]: stage for stage in shown["stages"]}
        assert list(stages) == list(venue_inboxes(venue.config))
        for shard, stage in stages.items():
            assert (stage["lag_entries"], stage["lag_seconds"]) == (0, 0), shard
            inboxes = [inbox["stream"] for inbox in stage["inboxes"]]
            assert inboxes == venue_inboxes(venue.config)[shard]
        ledger = stages[ledger_of(account, venue.config)]
        assert ledger["commits"] > 0 and ledger["last_commit_seconds_ago"] is not None

        (gateway,) = shown["gateways"]
        assert gateway["id"] == state.id and gateway["up"]
        assert gateway["websocket_clients"] == {"/stream": 3}
        assert (gateway["requests"], gateway["orders_accepted"]) == (12, 4)
        assert shown["refusals"] == {"insufficient_buying_power": 2}

        valkey = shown["valkey"]
        assert valkey["nodes"] and valkey["used_memory_bytes"] > 0
        assert all(node["used_memory_bytes"] > 0 for node in valkey["nodes"])
        assert valkey["aof_last_write_ok"]

    asyncio.run(main())


def test_a_stopped_stage_shows_its_lag(redis_url: str) -> None:
    async def main() -> None:
        async with running_venue(redis_url) as venue:
            account = await venue.account("0")
            shard = ledger_of(account, venue.config)
            await venue.settle()
            await venue.stop_stages()
            for n in range(3):  # each its own flush, so its own entry
                venue.client.send(account, Transfer(0, f"t-{n}", account, CASH, 1_00))
                await asyncio.sleep(0.05)
            redis = await open_client(redis_url)
            try:
                status = await snapshot(redis, venue.config, 0.1)
            finally:
                await redis.aclose()
            venue.start_stages()

        stopped = next(stage for stage in status.stages if stage.shard == shard)
        assert stopped.lag_entries == 3 and stopped.lag_seconds > 0
        assert stopped.commits_per_s == 0
        waiting = [inbox for inbox in stopped.inboxes if inbox.entries]
        assert [inbox.entries for inbox in waiting] == [3]
        assert not status.gateways

    asyncio.run(main())
