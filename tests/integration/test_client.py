"""The venue client's own promises, on a real server: what a caller gets when no ledger answers."""

from __future__ import annotations

import asyncio

import pytest
from harness import running_venue

from tradepit.client import ReplyTimeoutError
from tradepit.ledger import CASH
from tradepit.stage.messages import Transfer


def test_a_command_no_ledger_answers_times_out_and_leaves_nothing_waiting(
    redis_url: str,
) -> None:
    async def main() -> None:
        async with running_venue(redis_url) as venue:
            account = await venue.account("0")
            await venue.stop_stages()  # appends still land; nobody reads them
            client = venue.client
            client.reply_timeout = 0.3
            with pytest.raises(ReplyTimeoutError, match=r"no reply from the ledger in 0\.3 s"):
                await client.request(account, Transfer(0, "t-late", account, CASH, 1_00))
            assert client._waiting == {}  # given up on: a late reply finds no one
            # The client is still usable: the stages come back, and the next command answers.
            venue.start_stages()
            client.reply_timeout = 10
            reply = await client.request(account, Transfer(0, "t-next", account, CASH, 1_00))
            assert reply.ok
            await venue.settle()

    asyncio.run(main())
