"""What each account keeps about itself through the API, beside its balances: Alpaca's account
configurations (`tradepit:account_settings`), how it shows on the leaderboard
(`tradepit:profiles`), and its watchlists (`tradepit:watchlists:<account id>`, one hash per
account, keyed by watchlist id). Written by the gateway alone; no stage reads them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradepit.store.connection import Client

__all__ = [
    "AccountSettings",
    "Profile",
    "Watchlist",
    "account_settings",
    "save_account_settings",
    "profile",
    "profiles",
    "save_profile",
    "watchlists",
    "watchlist",
    "watchlist_count",
    "save_watchlist",
    "delete_watchlist",
]

ACCOUNT_SETTINGS = "tradepit:account_settings"  # account id -> AccountSettings
PROFILES = "tradepit:profiles"  # account id -> Profile


class AccountSettings(msgspec.Struct, kw_only=True):
    """Alpaca's account configurations; tradepit enforces `suspend_trade` and
    `fractional_trading` (on, as Alpaca's default is)."""

    dtbp_check: str = "entry"
    trade_confirm_email: str = "none"
    suspend_trade: bool = False
    no_shorting: bool = True
    fractional_trading: bool = True
    max_margin_multiplier: str = "1"
    max_options_trading_level: int = 0
    pdt_check: str = "entry"
    ptp_no_exception_entry: bool = False


class Profile(msgspec.Struct, kw_only=True):
    """How an account shows on the leaderboard."""

    display_name: str = ""
    show_on_leaderboard: bool = False


class Watchlist(msgspec.Struct, kw_only=True):
    id: str
    name: str
    created_at: int
    updated_at: int
    symbols: list[str]


_decode_settings = msgspec.json.Decoder(AccountSettings).decode
_decode_profile = msgspec.json.Decoder(Profile).decode
_decode_watchlist = msgspec.json.Decoder(Watchlist).decode


def _watchlists_key(account_id: int) -> str:
    return f"tradepit:watchlists:{account_id}"


async def account_settings(client: Client, account_id: int) -> AccountSettings:
    raw: Any = await client.hget(ACCOUNT_SETTINGS, str(account_id))
    return _decode_settings(raw) if raw is not None else AccountSettings()


async def save_account_settings(client: Client, account_id: int, settings: AccountSettings) -> None:
    await client.hset(ACCOUNT_SETTINGS, str(account_id), msgspec.json.encode(settings))


def _profile_of(raw: bytes | None) -> Profile:
    if raw is None:
        return Profile()
    try:
        return _decode_profile(raw)
    except msgspec.DecodeError:  # unreadable: as if never set
        return Profile()


async def profile(client: Client, account_id: int) -> Profile:
    raw: Any = await client.hget(PROFILES, str(account_id))
    return _profile_of(raw)


async def profiles(client: Client) -> dict[int, Profile]:
    """Every profile set, by account id."""
    stored: Any = await client.hgetall(PROFILES)
    return {int(account_id): _profile_of(raw) for account_id, raw in stored.items()}


async def save_profile(client: Client, account_id: int, new: Profile) -> None:
    await client.hset(PROFILES, str(account_id), msgspec.json.encode(new))


async def watchlists(client: Client, account_id: int) -> list[Watchlist]:
    """The account's watchlists, oldest first."""
    raws: Any = await client.hvals(_watchlists_key(account_id))
    return sorted((_decode_watchlist(raw) for raw in raws), key=lambda found: found.created_at)


async def watchlist(client: Client, account_id: int, watchlist_id: str) -> Watchlist | None:
    raw: Any = await client.hget(_watchlists_key(account_id), watchlist_id)
    return _decode_watchlist(raw) if raw is not None else None


async def watchlist_count(client: Client, account_id: int) -> int:
    return int(await client.hlen(_watchlists_key(account_id)))


async def save_watchlist(client: Client, account_id: int, saved: Watchlist) -> None:
    await client.hset(_watchlists_key(account_id), saved.id, msgspec.json.encode(saved))


async def delete_watchlist(client: Client, account_id: int, watchlist_id: str) -> None:
    await client.hdel(_watchlists_key(account_id), watchlist_id)
