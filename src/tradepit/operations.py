"""The venue's operations beyond trading: accounts, transfers, symbols, halts, the session
close. `tradepit admin` runs them, and so do the gateway's operator routes and demo accounts.

Each goes through the stages' inboxes like any other command, so it is ordered with the
trading around it and survives a crash like it. API keys are the exception: they live in the
catalogue (`tradepit.store.catalog`), where only a SHA-256 of the secret is kept.
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from typing import Any

import msgspec

from tradepit.client import ReplyTimeoutError, VenueClient
from tradepit.domain.ids import VENUE_ACCOUNT_ID, id_to_uuid, new_id
from tradepit.domain.numbers import parse_units, to_decimal
from tradepit.domain.refusals import Refusal
from tradepit.domain.session import Phase
from tradepit.domain.symbols import CASH_UNIT, Symbol, cash_to_cents, cents_to_cash
from tradepit.errors import RefusalError, TradepitError
from tradepit.ledger import CASH, account_margin
from tradepit.stage.messages import (
    AddBook,
    AddSymbol,
    CloseSession,
    OpenAccount,
    Reply,
    SetHalted,
    SetMultiplier,
    SetSession,
    Transfer,
    spec_of,
    symbol_of,
)
from tradepit.store import catalog, ledger, preferences, prices
from tradepit.store.catalog import AccountProfile, ApiKey, hash_secret
from tradepit.store.keys import SESSION, matcher_of

__all__ = [
    "AdminError",
    "AccountPendingError",
    "price_of",
    "create_account",
    "transfer",
    "set_margin",
    "add_symbol",
    "ensure_admin_key",
    "list_symbols",
    "list_accounts",
    "set_halted",
    "close_session",
    "set_session",
    "last_session_change",
]

_KEY_ALPHABET = string.ascii_uppercase + string.digits


# An operator's command refused: by the command itself, or by the ledger that carried it out
# (its `Reply`). The same class as the ledger's `LedgerError`.
AdminError = RefusalError


class AccountPendingError(ReplyTimeoutError):
    """An account's opening was queued but not answered in time: it opens, with the key in
    `credentials`, once its ledger applies it."""

    def __init__(self, message: str, credentials: dict[str, str]) -> None:
        super().__init__(message)
        self.credentials = credentials


def _check(reply: Reply) -> None:
    if reply.ok:
        return
    refusal = Refusal.of(reply.code)
    if refusal is None:  # only a ledger of another version can answer so
        raise TradepitError(
            f"a ledger refused with {reply.code!r}, which this tradepit does not know: "
            f"{reply.message}"
        )
    raise AdminError(refusal, reply.message)


async def list_symbols(client: VenueClient) -> dict[str, Symbol]:
    specs = await catalog.symbol_specs(client.redis)
    return {name: symbol_of(spec) for name, spec in specs.items()}


async def _symbol(client: VenueClient, name: str) -> Symbol:
    spec = await catalog.symbol_spec(client.redis, name)
    if spec is None:
        raise AdminError(Refusal.UNKNOWN_SYMBOL, f"unknown symbol {name}")
    return symbol_of(spec)


async def price_of(client: VenueClient, name: str) -> int:
    """A symbol's price in ticks (`tradepit.store.prices`; 0 if it has none)."""
    found = (await prices.prices(client.redis, client.config, [name])).get(name)
    return found.ticks if found is not None else 0


async def create_account(
    client: VenueClient,
    cash: str = "0",
    positions: dict[str, str] | None = None,
    name: str = "",
) -> dict[str, str]:
    """Open an account with its cash and shares; return its id, API key id and secret."""
    cents = parse_units(cash, CASH_UNIT, "cash", allow_zero=True)
    lots = {}
    costs = {}
    for symbol_name, qty in (positions or {}).items():
        symbol = await _symbol(client, symbol_name)
        lots[symbol_name] = symbol.qty_to_lots(qty, f"position {symbol_name}")
        # Shares an account opens with cost what they are worth: their P&L starts at zero.
        costs[symbol_name] = symbol.notional(await price_of(client, symbol_name), lots[symbol_name])
    account_id = new_id()
    key_id = "PK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    secret = secrets.token_urlsafe(30)
    credentials = {"id": id_to_uuid(account_id), "key_id": key_id, "secret_key": secret}
    # The key before the account: if the ledger is slow to answer, the account still opens
    # with a key its owner has. (Until it opens, the API answers that it may still be opening.)
    await catalog.add_account_keys(
        client.redis,
        key_id,
        ApiKey(account_id, hash_secret(secret)),
        account_id,
        AccountProfile(name, time.time_ns()),
    )
    futures = [client.send(account_id, OpenAccount(0, account_id))]
    if cents:
        futures.append(
            client.send(account_id, Transfer(0, f"open-{account_id}", account_id, CASH, cents))
        )
    for symbol_name, amount in lots.items():
        futures.append(
            client.send(
                account_id,
                Transfer(
                    0,
                    f"open-{account_id}-{symbol_name}",
                    account_id,
                    symbol_name,
                    amount,
                    costs[symbol_name],
                ),
            )
        )
    try:
        replies = await client.replies(futures)
    except ReplyTimeoutError as error:
        raise AccountPendingError(
            f"{error}: account {credentials['id']} is queued, and opens with this key once "
            "its ledger runs",
            credentials,
        ) from None
    try:
        for reply in replies:
            _check(reply)
    except AdminError:  # refused: no account, so no key for it
        await catalog.remove_account_keys(client.redis, key_id, account_id)
        raise
    return credentials


async def transfer(
    client: VenueClient,
    account_id: int,
    asset: str,
    amount: str,
    withdraw: bool = False,
    transfer_id: str | None = None,
) -> dict[str, str]:
    """Deposit (or withdraw) cash (`asset` "$") or shares of a symbol; idempotent by id."""
    if asset == CASH:
        units = cash_to_cents(amount)
    else:
        units = (await _symbol(client, asset)).qty_to_lots(amount)
    transfer_id = transfer_id or str(uuid.uuid4())
    signed = -units if withdraw else units
    _check(await client.request(account_id, Transfer(0, transfer_id, account_id, asset, signed)))
    return {"transfer_id": transfer_id, "account_id": id_to_uuid(account_id)}


async def set_margin(client: VenueClient, account_id: int, multiplier: int) -> dict[str, Any]:
    """Make an account a cash account (1) or a margin account (2: Reg T overnight buying
    power; 4: intraday), which may also sell shortable symbols short. The ledger refuses a
    cash account for one that still borrows. The account's configurations follow: its
    `max_margin_multiplier`, and shorting on at margin (the owner may turn it off)."""
    _check(await client.request(account_id, SetMultiplier(0, account_id, multiplier)))
    settings = await preferences.account_settings(client.redis, account_id)
    updated = msgspec.structs.replace(
        settings, max_margin_multiplier=str(multiplier), no_shorting=multiplier == 1
    )
    await preferences.save_account_settings(client.redis, account_id, updated)
    return {"account_id": id_to_uuid(account_id), "multiplier": multiplier}


async def add_symbol(
    client: VenueClient,
    name: str,
    tick_size: str = "0.01",
    lot_size: str = "1",
    band_bps: int = 1000,
    reference_price: str | None = None,
    shortable: bool = True,
) -> dict[str, Any]:
    """Make a symbol tradable: its book first, then every ledger shard learns it, and last the
    catalogue the gateways read, so that no order for it reaches a shard that does not know it.

    `reference_price` is where its price band is centred until it trades; `shortable`
    whether margin accounts may sell it short.
    """
    try:
        symbol = Symbol(
            name,
            to_decimal(tick_size, "tick_size"),
            to_decimal(lot_size, "lot_size"),
            band_bps,
            shortable,
        )
    except ValueError as error:
        raise AdminError(Refusal.INVALID_SYMBOL, str(error)) from None
    reference = symbol.price_to_ticks(reference_price, "reference_price") if reference_price else 0
    spec = msgspec.structs.replace(spec_of(symbol), reference=reference)
    await client.send_to_matcher(matcher_of(name, client.config), [AddBook(name)])
    for reply in await client.request_each_ledger(lambda: AddSymbol(0, spec)):
        _check(reply)
    await catalog.list_symbol(client.redis, spec)
    return {
        "symbol": name,
        "tick_size": spec.tick_size,
        "lot_size": spec.lot_size,
        "band_bps": spec.band_bps,
        "reference_price": reference_price,
        "shortable": shortable,
    }


async def ensure_admin_key(client: VenueClient) -> dict[str, str] | None:
    """Create the venue's admin key on its first start; None if it has one already."""
    key_id = "AK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    secret = secrets.token_urlsafe(30)
    if not await catalog.claim_admin_key(client.redis, key_id):
        return None
    await catalog.add_api_key(
        client.redis, key_id, ApiKey(VENUE_ACCOUNT_ID, hash_secret(secret), admin=True)
    )
    return {"key_id": key_id, "secret_key": secret}


async def set_halted(client: VenueClient, name: str, halted: bool) -> dict[str, Any]:
    await _symbol(client, name)
    command = SetHalted(name, halted, time.time_ns())
    await client.send_to_matcher(matcher_of(name, client.config), [command])
    return {"symbol": name, "halted": halted}


async def close_session(client: VenueClient, ts: int | None = None) -> dict[str, Any]:
    """Expire every DAY order on every book, at `ts` (ns; default: now)."""
    ts = time.time_ns() if ts is None else ts
    for shard in client.config.matcher_names():
        await client.send_to_matcher(shard, [CloseSession(ts)])
    return {"closed_at": ts}


async def set_session(client: VenueClient, phase: Phase, ts: int) -> dict[str, Any]:
    """Tell every book the market is in `phase` from `ts` (ns): the auctions and expiries of
    its open and close (`tradepit.matcher.book`)."""
    for shard in client.config.matcher_names():
        await client.send_to_matcher(shard, [SetSession(phase, ts)])
    await client.redis.set(SESSION, json.dumps([ts, phase.value]))
    return {"phase": phase.value, "at": ts}


async def last_session_change(client: VenueClient) -> tuple[int, Phase] | None:
    """The last change of phase sent to the books (`set_session`), if any."""
    raw: Any = await client.redis.get(SESSION)
    if raw is None:
        return None
    ts, phase = json.loads(raw)
    return int(ts), Phase(phase)


async def list_accounts(client: VenueClient) -> list[dict[str, Any]]:
    """Every account: its cash and positions, and on margin its equity against its
    maintenance margin at the prices now (`margin_call` when below)."""
    symbols = await list_symbols(client)
    profiles = await catalog.account_profiles(client.redis)
    now = await prices.prices(client.redis, client.config)
    marks = {name: price.ticks for name, price in now.items()}
    accounts = []
    for account in await ledger.all_accounts(client.redis, client.config):
        profile = profiles.get(account.account_id, AccountProfile())
        margin = account_margin(account, symbols, marks)
        accounts.append(
            {
                "id": id_to_uuid(account.account_id),
                "name": profile.name,
                "cash": cents_to_cash(account.cash_free + account.cash_reserved),
                "cash_reserved": cents_to_cash(account.cash_reserved),
                "positions": {
                    name: symbols[name].lots_to_qty(holding.free + holding.reserved)
                    for name, holding in account.holdings.items()
                    if name in symbols
                },
                "multiplier": account.multiplier,
                "equity": cents_to_cash(margin.equity),
                "maintenance_margin": cents_to_cash(margin.maintenance_margin),
                "margin_call": margin.margin_call,
            }
        )
    return sorted(accounts, key=lambda entry: entry["id"])
