"""The venue's catalogue: the small, rarely written keys with no shard tag.

Its configuration (`tradepit:config`, fixed at the first start), the symbols listed
(`tradepit:symbols`), the API keys (`tradepit:keys`, only a SHA-256 of each secret) and the
admin key's id, each account's name and opening time (`tradepit:accounts`), the venue's
identity, the demo's named accounts and the simulated reference prices. Each key lives in
a slot of its own on a cluster, so what writes two of them pipelines two commands rather than
a MULTI.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from tradepit.stage.messages import SymbolSpec, encode
from tradepit.store.connection import Client
from tradepit.store.errors import TimedOut, Unreachable
from tradepit.store.keys import (
    ACCOUNT_NAMES,
    ADMIN_KEY,
    API_KEYS,
    CONFIG,
    REFERENCE_PRICES,
    SYMBOLS,
    VENUE_ID,
    VenueConfig,
)

__all__ = [
    "ApiKey",
    "AccountProfile",
    "hash_secret",
    "decode_profile",
    "init_config",
    "load_config",
    "wait_for_server",
    "is_listed",
    "symbol_specs",
    "symbol_spec",
    "list_symbol",
    "api_key",
    "add_account_keys",
    "remove_account_keys",
    "claim_admin_key",
    "add_api_key",
    "account_profile",
    "account_profiles",
    "venue_id",
    "set_venue_id",
    "demo_account",
    "save_demo_account",
    "simulated_prices",
    "publish_simulated_prices",
]

log = logging.getLogger("tradepit.store")

DEMO_ACCOUNTS = "tradepit:demo"  # bot name -> its account's id and API key, as JSON

_decode_config = msgspec.json.Decoder(VenueConfig).decode
_decode_spec = msgspec.json.Decoder(SymbolSpec).decode
_decode_credentials = msgspec.json.Decoder(dict[str, str]).decode


class ApiKey(msgspec.Struct, frozen=True):
    account_id: int
    secret_sha256: str
    admin: bool = False


class AccountProfile(msgspec.Struct, frozen=True):
    """What the venue knows of an account beyond its balances."""

    name: str = ""
    created_at: int = 0  # ns


_decode_key = msgspec.json.Decoder(ApiKey).decode
_decode_profile = msgspec.json.Decoder(AccountProfile).decode


def hash_secret(secret: str) -> str:
    """What is stored of a secret: it is 240 random bits, so a fast hash is as safe as a slow
    one, and cheap to check on every request."""
    return hashlib.sha256(secret.encode()).hexdigest()


def decode_profile(raw: bytes | None) -> AccountProfile:
    if raw is None:
        return AccountProfile()
    try:
        return _decode_profile(raw)
    except msgspec.DecodeError:  # a venue from before profiles kept the bare name
        return AccountProfile(raw.decode(errors="replace"))


# The configuration.


async def init_config(client: Client, config: VenueConfig) -> VenueConfig:
    """Fix the venue's configuration on its first start; later starts get what was fixed."""
    await client.set(CONFIG, encode(config), nx=True)
    return await load_config(client)


async def load_config(client: Client) -> VenueConfig:
    raw: Any = await client.get(CONFIG)
    if raw is None:
        raise RuntimeError("this Redis holds no tradepit venue: start one with `tradepit serve`")
    return _decode_config(raw)


async def wait_for_server(client: Client, who: str) -> None:
    """Return once the server answers, trying again meanwhile with a growing pause: a process
    started (or restarted by a supervisor) while the server is down or still loading its data
    waits for it rather than exit."""
    backoff = 0.05
    while True:
        try:
            await client.ping()
            return
        except (Unreachable, TimedOut, OSError) as error:
            log.warning("%s: redis unavailable (%s); trying again", who, error)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


# Symbols.


async def is_listed(client: Client) -> bool:
    """Whether any symbol was ever listed (a venue's first start lists its defaults)."""
    return bool(await client.exists(SYMBOLS))


async def symbol_specs(client: Client, names: Sequence[str] | None = None) -> dict[str, SymbolSpec]:
    """The spec of each listed symbol of `names` (or of every listed symbol), by name; one that
    cannot be read is left out, and logged."""
    raws: Any
    if names is None:
        raws = (await client.hgetall(SYMBOLS)).values()
    elif names:
        raws = await client.hmget(SYMBOLS, list(names))
    else:
        raws = []
    specs = {}
    for raw in raws:
        if raw is None:
            continue
        try:
            spec = _decode_spec(raw)
        except msgspec.DecodeError:
            log.warning("skipping an unreadable symbol: %r", raw[:80])
            continue
        specs[spec.name] = spec
    return specs


async def symbol_spec(client: Client, name: str) -> SymbolSpec | None:
    raw: Any = await client.hget(SYMBOLS, name)
    return None if raw is None else _decode_spec(raw)


async def list_symbol(client: Client, spec: SymbolSpec) -> None:
    """Add a symbol to what the gateways offer (after its book and ledgers know it)."""
    await client.hset(SYMBOLS, spec.name, encode(spec))


# API keys and account names.


async def api_key(client: Client, key_id: str) -> ApiKey | None:
    """The key by that id; None if there is none, or it cannot be read."""
    raw: Any = await client.hget(API_KEYS, key_id)
    if raw is None:
        return None
    try:
        return _decode_key(raw)
    except msgspec.DecodeError:
        return None


async def add_account_keys(
    client: Client, key_id: str, key: ApiKey, account_id: int, profile: AccountProfile
) -> None:
    """Store a new account's key and its profile (both before the account opens)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(API_KEYS, key_id, encode(key))
        pipe.hset(ACCOUNT_NAMES, str(account_id), encode(profile))
        await pipe.execute()


async def remove_account_keys(client: Client, key_id: str, account_id: int) -> None:
    """Forget an account that was refused: its key and its profile."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hdel(API_KEYS, key_id)
        pipe.hdel(ACCOUNT_NAMES, str(account_id))
        await pipe.execute()


async def claim_admin_key(client: Client, key_id: str) -> bool:
    """Name `key_id` the venue's admin key, unless it has one already: whether it did."""
    return bool(await client.hsetnx(ADMIN_KEY, "key_id", key_id))


async def add_api_key(client: Client, key_id: str, key: ApiKey) -> None:
    await client.hset(API_KEYS, key_id, encode(key))


async def account_profile(client: Client, account_id: int) -> AccountProfile:
    raw: Any = await client.hget(ACCOUNT_NAMES, str(account_id))
    return decode_profile(raw)


async def account_profiles(client: Client) -> dict[int, AccountProfile]:
    """Every account's profile, by account id."""
    stored: Any = await client.hgetall(ACCOUNT_NAMES)
    return {int(account_id): decode_profile(raw) for account_id, raw in stored.items()}


# The venue's identity (`tradepit.durability`).


async def venue_id(client: Client) -> str | None:
    raw: Any = await client.get(VENUE_ID)
    return None if raw is None else bytes(raw).decode()


async def set_venue_id(client: Client, identity: str) -> None:
    await client.set(VENUE_ID, identity)


# The demo's named accounts, and its simulated reference prices.


async def demo_account(client: Client, name: str) -> dict[str, str] | None:
    """The credentials of the demo account called `name`, if it was made."""
    raw: Any = await client.hget(DEMO_ACCOUNTS, name)
    return _decode_credentials(raw) if raw else None


async def save_demo_account(client: Client, name: str, credentials: Mapping[str, str]) -> None:
    await client.hset(DEMO_ACCOUNTS, name, msgspec.json.encode(dict(credentials)))


async def simulated_prices(client: Client) -> dict[str, int]:
    """The reference-price simulator's prices (ticks), where one runs."""
    stored: Any = await client.hgetall(REFERENCE_PRICES)
    return {name.decode(): int(raw) for name, raw in stored.items() if raw.isdigit()}


async def publish_simulated_prices(client: Client, prices: Mapping[str, int]) -> None:
    """Store the simulator's new prices, then tell whoever listens."""
    await client.hset(REFERENCE_PRICES, mapping=dict(prices))  # type: ignore[arg-type]
    await client.publish(REFERENCE_PRICES, msgspec.json.encode(dict(prices)))
