"""Portfolio history: each account's equity samples, one capped stream per account,
`tradepit:equity:<account id>`, whose entry ids are the sampling times in ms, so that a time
range is one XRANGE. Each stream is its own key (its own slot on a cluster): a sample of every
account is one pipeline of single-key appends.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tradepit.store.connection import Client

__all__ = ["SAMPLES_KEPT", "equity_key", "append_equity", "equity_samples"]

SAMPLES_KEPT = 60 * 24 * 31  # a month of minutes
_EQUITY = b"e"  # the field of a sample: equity in cents


def equity_key(account_id: int) -> str:
    return f"tradepit:equity:{account_id}"


async def append_equity(client: Client, equity: Mapping[int, int]) -> None:
    """Append a sample now to each account's history: account id -> equity in cents."""
    async with client.pipeline(transaction=False) as pipe:
        for account_id, cents in equity.items():
            entry: Any = {_EQUITY: cents}
            pipe.xadd(equity_key(account_id), entry, maxlen=SAMPLES_KEPT, approximate=True)
        await pipe.execute()


async def equity_samples(
    client: Client, account_id: int, start_ms: int, end_ms: int, count: int
) -> list[tuple[int, int]]:
    """Up to `count` of the account's samples within [start_ms, end_ms]: (ms, cents), oldest
    first."""
    raw: Any = await client.xrange(equity_key(account_id), start_ms, end_ms, count=count)
    return [(int(entry_id.split(b"-")[0]), int(fields[_EQUITY])) for entry_id, fields in raw]
