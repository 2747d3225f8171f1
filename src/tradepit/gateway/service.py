"""The gateway's view of the venue: the commands it sends and the state it reads back.

Writes go through the ledger shards (`VenueClient`), like every command; reads come straight
from the hashes and indexes the shards commit, so the API shows what is durable.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from tradepit.calendars import load_calendar
from tradepit.client import VenueClient
from tradepit.domain.refusals import Refusal
from tradepit.domain.session import to_datetime
from tradepit.gateway.auth import KeyStore, RateLimiter
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Market
from tradepit.ledger import Account
from tradepit.ledger.history import Fill, OrderRecord
from tradepit.metrics.gateway import GatewayMetrics
from tradepit.settings import GatewaySettings
from tradepit.stage.messages import Reply
from tradepit.store import catalog, ledger, preferences
from tradepit.store.connection import Client
from tradepit.store.preferences import AccountSettings

__all__ = ["GatewaySettings", "Gateway", "AccountSettings", "ledger_error"]


def ledger_error(reply: Reply) -> ApiError:
    """What a ledger's refusal means to an Alpaca client: its `Refusal`'s status and message."""
    refusal = Refusal.of(reply.code)
    if refusal is None:  # a code only a ledger of another version knows
        return ApiError.invalid(reply.code or "refused")
    return ApiError.refused(refusal, reply.message)


class Gateway:
    def __init__(self, redis_url: str, settings: GatewaySettings) -> None:
        self.settings = settings
        # The venue's time, which every command is stamped with, and its market's hours.
        self.clock = settings.venue_clock()
        self.calendar = load_calendar(settings.calendar, to_datetime(self.clock.now()).date())
        self.client = VenueClient(redis_url, reply_timeout=settings.reply_timeout)
        self.redis: Client = self.client.redis
        failures = RateLimiter(
            settings.auth_failure_rate,
            settings.auth_failure_burst,
            "too many failed authentications from this address",
        )
        self.keys = KeyStore(self.redis, failures)
        self.limiter = RateLimiter(settings.rate_limit)  # per key
        self.public_limiter = RateLimiter(
            settings.public_rate_limit, message="rate limit exceeded for this address"
        )
        self.market: Market | None = None
        self.metrics = GatewayMetrics(self.rate_limited) if settings.metrics else None
        self.readiness_cache: tuple[float, dict[str, Any]] | None = None  # (when, /readyz's body)
        self._settings_cache: dict[int, tuple[float, AccountSettings]] = {}

    def rate_limited(self) -> dict[str, int]:
        """Requests refused with a 429 since the start, by the limit they met."""
        return {
            "key": self.limiter.refused,
            "address": self.public_limiter.refused,
            "auth_failures": self.keys.failures.refused,
        }

    async def start(self) -> None:
        await catalog.wait_for_server(self.redis, "gateway")
        await self.client.connect()
        # On a cluster, connecting found it and made a client of its kind: read through that.
        self.redis = self.keys.redis = self.client.redis
        self.market = Market(self.redis, self.client.config)
        await self.market.start()

    async def stop(self) -> None:
        if self.market is not None:
            await self.market.stop()
        await self.client.close()

    # Accounts.

    async def account(self, account_id: int) -> Account:
        found = await ledger.account(self.redis, self.client.config, account_id)
        if found is None:
            raise ApiError(403, "account not found: it may still be opening")
        return found

    async def account_created_at(self, account_id: int) -> int:
        return (await catalog.account_profile(self.redis, account_id)).created_at

    async def account_settings(self, account_id: int, *, fresh: bool = False) -> AccountSettings:
        now = time.monotonic()
        cached = self._settings_cache.get(account_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        settings = await preferences.account_settings(self.redis, account_id)
        self._settings_cache[account_id] = (now + 1.0, settings)
        return settings

    async def save_account_settings(self, account_id: int, settings: AccountSettings) -> None:
        await preferences.save_account_settings(self.redis, account_id, settings)
        self._settings_cache.pop(account_id, None)

    # Orders.

    async def order(self, account_id: int, order_id: int) -> OrderRecord:
        """The account's order, or 404: another account's order is as unknown as no order."""
        record = await ledger.order_record(self.redis, self.client.config, account_id, order_id)
        if record is None or record.account_id != account_id:
            raise ApiError.not_found("order not found")
        return record

    async def order_records(self, account_id: int, order_ids: list[int]) -> list[OrderRecord]:
        """The account's records of `order_ids` that it has, in one read."""
        found = await ledger.order_records(self.redis, self.client.config, account_id, order_ids)
        return [
            record for record in found if record is not None and record.account_id == account_id
        ]

    async def order_id_by_client_id(self, account_id: int, client_order_id: str) -> int:
        order_id = await ledger.order_id_by_client_id(
            self.redis, self.client.config, account_id, client_order_id
        )
        if order_id is None:
            raise ApiError.not_found("order not found")
        return order_id

    async def orders(
        self,
        account_id: int,
        *,
        open_only: bool,
        after: int,
        until: int | None,
        descending: bool,
        limit: int,
        keep: Callable[[OrderRecord], bool],
    ) -> list[OrderRecord]:
        """The account's orders created after `after` and until `until` (ns), newest first if
        `descending`, that `keep` accepts, at most `limit` of them."""
        found: list[OrderRecord] = []
        pages = ledger.orders(
            self.redis,
            self.client.config,
            account_id,
            open_only=open_only,
            after=after,
            until=until,
            descending=descending,
        )
        async for records in pages:
            for record in records:
                if keep(record):
                    found.append(record)
                    if len(found) == limit:
                        return found
        return found

    def fills(
        self, account_id: int, *, after: int, until: int | None, descending: bool
    ) -> AsyncIterator[list[Fill]]:
        """The account's fills in time order (an async iterator of pages)."""
        return ledger.fills(
            self.redis,
            self.client.config,
            account_id,
            after=after,
            until=until,
            descending=descending,
        )
