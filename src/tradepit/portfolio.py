"""Portfolio history: every account's equity, sampled once a minute by `serve`.

Equity is cash (free and reserved) plus each holding at its symbol's price
(`tradepit.store.prices`); the samples are kept by `tradepit.store.portfolio`.
"""

from __future__ import annotations

import asyncio
import logging

from tradepit.store.connection import Client, open_client
from tradepit.store.errors import StoreError
from tradepit.store.keys import VenueConfig
from tradepit.store.ledger import all_accounts
from tradepit.store.portfolio import append_equity
from tradepit.store.prices import equity_of, prices

__all__ = ["SAMPLE_SECONDS", "sample_equity", "sample_forever"]

log = logging.getLogger("tradepit.portfolio")

SAMPLE_SECONDS = 60


async def sample_equity(client: Client, config: VenueConfig) -> int:
    """Append every account's equity now; how many accounts were sampled."""
    now = await prices(client, config)
    accounts = await all_accounts(client, config)
    await append_equity(
        client, {account.account_id: equity_of(account, now) for account in accounts}
    )
    return len(accounts)


async def sample_forever(redis_url: str, config: VenueConfig) -> None:
    client = await open_client(redis_url)
    try:
        while True:
            try:
                await sample_equity(client, config)
            except StoreError as error:
                log.warning("sampling equity failed: %s", error)
            await asyncio.sleep(SAMPLE_SECONDS)
    finally:
        await client.aclose()
