"""The gateway's view of the venue: the commands it sends and the state it reads back.

Writes go through the ledger shards (`VenueClient`), like every command; reads come straight
from the hashes and indexes the shards commit, so the API shows what is durable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import redis.asyncio as aioredis

from tradepit.admin import decode_profile
from tradepit.client import VenueClient, wait_for_server
from tradepit.domain.refusals import Refusal
from tradepit.gateway.auth import KeyStore, RateLimiter
from tradepit.gateway.errors import ApiError
from tradepit.gateway.market import Market
from tradepit.ledger import Account
from tradepit.ledger.history import Fill, OrderRecord, OrderUpdate
from tradepit.settings import GatewaySettings
from tradepit.stage.messages import Reply, decode_record
from tradepit.store.keys import (
    ACCOUNT_NAMES,
    ShardKeys,
    account_range,
    index_payload,
    ledger_of,
)

__all__ = [
    "GatewaySettings",
    "Gateway",
    "AccountSettings",
    "ledger_error",
    "decode_fill",
    "ACCOUNT_SETTINGS",
]

ACCOUNT_SETTINGS = "tradepit:account_settings"  # account id -> AccountSettings JSON
_decode_account = msgspec.json.Decoder(Account).decode
_decode_fill = msgspec.json.Decoder(Fill).decode
_decode_update = msgspec.json.Decoder(OrderUpdate).decode
_SCAN_PAGE = 200


class AccountSettings(msgspec.Struct, kw_only=True):
    """Alpaca's account configurations; tradepit enforces `suspend_trade`."""

    dtbp_check: str = "entry"
    trade_confirm_email: str = "none"
    suspend_trade: bool = False
    no_shorting: bool = True
    fractional_trading: bool = False
    max_margin_multiplier: str = "1"
    max_options_trading_level: int = 0
    pdt_check: str = "entry"
    ptp_no_exception_entry: bool = False


_decode_settings = msgspec.json.Decoder(AccountSettings).decode


def decode_fill(raw: bytes) -> Fill:
    """A fill index entry: a `Fill`, or the whole `OrderUpdate` that venues before the compact
    index wrote (their data directories still hold those)."""
    try:
        return _decode_fill(raw)
    except msgspec.ValidationError:
        return Fill.of_update(_decode_update(raw))


def ledger_error(reply: Reply) -> ApiError:
    """What a ledger's refusal means to an Alpaca client: its `Refusal`'s status and message."""
    refusal = Refusal.of(reply.code)
    if refusal is None:  # a code only a ledger of another version knows
        return ApiError.invalid(reply.code or "refused")
    return ApiError.refused(refusal, reply.message)


class Gateway:
    def __init__(self, redis_url: str, settings: GatewaySettings) -> None:
        self.settings = settings
        self.client = VenueClient(redis_url, reply_timeout=settings.reply_timeout)
        self.redis: aioredis.Redis = self.client.redis
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
        self._settings_cache: dict[int, tuple[float, AccountSettings]] = {}

    async def start(self) -> None:
        await wait_for_server(self.redis, "gateway")
        await self.client.connect()
        self.market = Market(self.redis, self.client.config)
        await self.market.start()

    async def stop(self) -> None:
        if self.market is not None:
            await self.market.stop()
        await self.client.close()

    def shard_keys(self, account_id: int) -> ShardKeys:
        return ShardKeys(ledger_of(account_id, self.client.config))

    # Accounts.

    async def account(self, account_id: int) -> Account:
        raw = await self.redis.hget(self.shard_keys(account_id).accounts, str(account_id))
        if raw is None:
            raise ApiError(403, "account not found: it may still be opening")
        return _decode_account(raw)

    async def account_created_at(self, account_id: int) -> int:
        raw: Any = await self.redis.hget(ACCOUNT_NAMES, str(account_id))
        return decode_profile(raw).created_at

    async def account_settings(self, account_id: int, *, fresh: bool = False) -> AccountSettings:
        now = time.monotonic()
        cached = self._settings_cache.get(account_id)
        if cached is not None and cached[0] > now and not fresh:
            return cached[1]
        raw = await self.redis.hget(ACCOUNT_SETTINGS, str(account_id))
        settings = _decode_settings(raw) if raw is not None else AccountSettings()
        self._settings_cache[account_id] = (now + 1.0, settings)
        return settings

    async def save_account_settings(self, account_id: int, settings: AccountSettings) -> None:
        await self.redis.hset(ACCOUNT_SETTINGS, str(account_id), msgspec.json.encode(settings))
        self._settings_cache.pop(account_id, None)

    # Orders.

    async def order(self, account_id: int, order_id: int) -> OrderRecord:
        """The account's order, or 404: another account's order is as unknown as no order."""
        raw = await self.redis.hget(self.shard_keys(account_id).orders, str(order_id))
        record = decode_record(raw) if raw is not None else None
        if record is None or record.account_id != account_id:
            raise ApiError.not_found("order not found")
        return record

    async def order_id_by_client_id(self, account_id: int, client_order_id: str) -> int:
        keys = self.shard_keys(account_id)
        raw = await self.redis.hget(keys.client_order_ids, f"{account_id}:{client_order_id}")
        if raw is None:
            raise ApiError.not_found("order not found")
        return int(raw)

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
        keys = self.shard_keys(account_id)
        index = keys.open_index if open_only else keys.order_index
        found: list[OrderRecord] = []
        async for members in self._scan(index, account_id, after, until, descending):
            ids = [str(int(index_payload(member), 16)) for member in members]
            raws = await self.redis.hmget(keys.orders, ids)
            for raw in raws:
                if raw is None:
                    continue
                record = decode_record(raw)
                if keep(record):
                    found.append(record)
                    if len(found) == limit:
                        return found
        return found

    async def fills(
        self, account_id: int, *, after: int, until: int | None, descending: bool
    ) -> Any:
        """The account's fills in time order (an async iterator of pages)."""
        keys = self.shard_keys(account_id)
        async for members in self._scan(keys.fills, account_id, after, until, descending):
            yield [decode_fill(index_payload(member)) for member in members]

    async def _scan(
        self, key: str, account_id: int, after: int, until: int | None, descending: bool
    ) -> Any:
        low, high = account_range(account_id, after, until)
        offset = 0
        while True:
            if descending:
                page: Any = await self.redis.zrevrangebylex(
                    key, high, low, start=offset, num=_SCAN_PAGE
                )
            else:
                page = await self.redis.zrangebylex(key, low, high, start=offset, num=_SCAN_PAGE)
            if not page:
                return
            yield page
            if len(page) < _SCAN_PAGE:
                return
            offset += len(page)
