"""The operator's commands against a running venue: accounts, transfers, symbols, halts.

Each goes through the stages' inboxes like any other command, so it is ordered with the
trading around it and survives a crash like it. API keys are the exception: they live in the
`tradepit:keys` hash, where only a SHA-256 of the secret is kept (the secret is 240 random bits,
so a fast hash is as safe as a slow one and cheap to check on every request).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from tradepit.client import ReplyTimeoutError, VenueClient
from tradepit.domain.ids import VENUE_ACCOUNT_ID, id_to_uuid, new_id
from tradepit.domain.numbers import parse_units, to_decimal
from tradepit.domain.refusals import Refusal
from tradepit.domain.symbols import CASH_UNIT, Symbol, cash_to_cents, cents_to_cash
from tradepit.errors import RefusalError, TradepitError
from tradepit.ledger import CASH, Account
from tradepit.stage.matcher import BookCounters
from tradepit.stage.messages import (
    AddBook,
    AddSymbol,
    CloseSession,
    OpenAccount,
    Reply,
    SetHalted,
    SymbolSpec,
    Transfer,
    encode,
    spec_of,
    symbol_of,
)
from tradepit.store.keys import (
    ACCOUNT_NAMES,
    ADMIN_KEY,
    API_KEYS,
    SYMBOLS,
    ShardKeys,
    matcher_of,
)

__all__ = [
    "AdminError",
    "AccountPendingError",
    "ApiKey",
    "AccountProfile",
    "decode_profile",
    "hash_secret",
    "price_of",
    "create_account",
    "transfer",
    "add_symbol",
    "ensure_admin_key",
    "list_symbols",
    "list_accounts",
    "set_halted",
    "close_session",
    "next_session_close",
]

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_decode_spec = msgspec.json.Decoder(SymbolSpec).decode
_decode_counters = msgspec.json.Decoder(BookCounters).decode
_decode_account = msgspec.json.Decoder(Account).decode


# An operator's command refused: by the command itself, or by the ledger that carried it out
# (its `Reply`). The same class as the ledger's `LedgerError`.
AdminError = RefusalError


class AccountPendingError(ReplyTimeoutError):
    """An account's opening was queued but not answered in time: it opens, with the key in
    `credentials`, once its ledger applies it."""

    def __init__(self, message: str, credentials: dict[str, str]) -> None:
        super().__init__(message)
        self.credentials = credentials


class AccountProfile(msgspec.Struct, frozen=True):
    """What the venue knows of an account beyond its balances."""

    name: str = ""
    created_at: int = 0  # ns


_decode_profile = msgspec.json.Decoder(AccountProfile).decode


def decode_profile(raw: bytes | None) -> AccountProfile:
    if raw is None:
        return AccountProfile()
    try:
        return _decode_profile(raw)
    except msgspec.DecodeError:  # a venue from before profiles kept the bare name
        return AccountProfile(raw.decode(errors="replace"))


class ApiKey(msgspec.Struct, frozen=True):
    account_id: int
    secret_sha256: str
    admin: bool = False


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


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
    raw: Any = await client.redis.hgetall(SYMBOLS)
    return {name.decode(): symbol_of(_decode_spec(spec)) for name, spec in raw.items()}


async def _symbol(client: VenueClient, name: str) -> Symbol:
    raw = await client.redis.hget(SYMBOLS, name)
    if raw is None:
        raise AdminError(Refusal.UNKNOWN_SYMBOL, f"unknown symbol {name}")
    return symbol_of(_decode_spec(raw))


async def price_of(client: VenueClient, name: str) -> int:
    """A symbol's price in ticks: its last trade, else its listed reference (0 if neither)."""
    raw: Any = await client.redis.hget(ShardKeys(matcher_of(name, client.config)).books, name)
    if raw is not None:
        last = _decode_counters(raw).last_price
        if last:
            return last
    spec: Any = await client.redis.hget(SYMBOLS, name)
    return _decode_spec(spec).reference if spec is not None else 0


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
    # Not one MULTI: the two hashes live in different slots of a cluster, and a key without a
    # profile is harmless (the account shows no display name).
    async with client.redis.pipeline(transaction=False) as tx:
        tx.hset(API_KEYS, key_id, encode(ApiKey(account_id, hash_secret(secret))))
        tx.hset(ACCOUNT_NAMES, str(account_id), encode(AccountProfile(name, time.time_ns())))
        await tx.execute()
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
        async with client.redis.pipeline(transaction=False) as tx:
            tx.hdel(API_KEYS, key_id)
            tx.hdel(ACCOUNT_NAMES, str(account_id))
            await tx.execute()
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


async def add_symbol(
    client: VenueClient,
    name: str,
    tick_size: str = "0.01",
    lot_size: str = "1",
    band_bps: int = 1000,
    reference_price: str | None = None,
) -> dict[str, Any]:
    """Make a symbol tradable: its book first, then every ledger shard learns it, and last the
    catalogue the gateways read, so that no order for it reaches a shard that does not know it.

    `reference_price` is where its price band is centred until it trades.
    """
    try:
        symbol = Symbol(
            name, to_decimal(tick_size, "tick_size"), to_decimal(lot_size, "lot_size"), band_bps
        )
    except ValueError as error:
        raise AdminError(Refusal.INVALID_SYMBOL, str(error)) from None
    reference = symbol.price_to_ticks(reference_price, "reference_price") if reference_price else 0
    spec = msgspec.structs.replace(spec_of(symbol), reference=reference)
    await client.send_to_matcher(matcher_of(name, client.config), [AddBook(name)])
    for reply in await client.request_each_ledger(lambda: AddSymbol(0, spec)):
        _check(reply)
    await client.redis.hset(SYMBOLS, name, encode(spec))
    return {
        "symbol": name,
        "tick_size": spec.tick_size,
        "lot_size": spec.lot_size,
        "band_bps": spec.band_bps,
        "reference_price": reference_price,
    }


async def ensure_admin_key(client: VenueClient) -> dict[str, str] | None:
    """Create the venue's admin key on its first start; None if it has one already."""
    key_id = "AK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))
    secret = secrets.token_urlsafe(30)
    created = await client.redis.hsetnx(ADMIN_KEY, "key_id", key_id)
    if not created:
        return None
    await client.redis.hset(
        API_KEYS, key_id, encode(ApiKey(VENUE_ACCOUNT_ID, hash_secret(secret), admin=True))
    )
    return {"key_id": key_id, "secret_key": secret}


async def set_halted(client: VenueClient, name: str, halted: bool) -> dict[str, Any]:
    await _symbol(client, name)
    command = SetHalted(name, halted, time.time_ns())
    await client.send_to_matcher(matcher_of(name, client.config), [command])
    return {"symbol": name, "halted": halted}


def next_session_close(now: datetime) -> datetime:
    """The session is the UTC day: it closes at the next UTC midnight after `now`."""
    return datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)


async def close_session(client: VenueClient) -> dict[str, Any]:
    """Expire every DAY order on every book."""
    ts = time.time_ns()
    for shard in client.config.matcher_names():
        await client.send_to_matcher(shard, [CloseSession(ts)])
    return {"closed_at": ts}


async def list_accounts(client: VenueClient) -> list[dict[str, Any]]:
    symbols = await list_symbols(client)
    names: Any = await client.redis.hgetall(ACCOUNT_NAMES)
    accounts = []
    for shard in client.config.ledger_names():
        for raw in await client.redis.hvals(ShardKeys(shard).accounts):
            account = _decode_account(raw)
            accounts.append(
                {
                    "id": id_to_uuid(account.account_id),
                    "name": decode_profile(names.get(str(account.account_id).encode())).name,
                    "cash": cents_to_cash(account.cash_free + account.cash_reserved),
                    "cash_reserved": cents_to_cash(account.cash_reserved),
                    "positions": {
                        name: symbols[name].lots_to_qty(holding.free + holding.reserved)
                        for name, holding in account.holdings.items()
                        if name in symbols
                    },
                }
            )
    return sorted(accounts, key=lambda entry: entry["id"])
