"""Key names, hash tags and shard routing: the layout every module of `tradepit.store` shares.

Every key a shard writes carries the shard's hash tag (`{l0}`, `{m1}`), so that one MULTI/EXEC
can commit all of a batch's writes, on Redis Cluster too. A link from one shard to another is
written by the producer, so it carries the producer's tag: `{l0}:to:m1` is ledger 0's outbox
for matcher 1, and one of matcher 1's inboxes.

Keys without a shard tag are the venue's small, rarely written catalogue: its configuration,
the symbols, the API keys.
"""

from __future__ import annotations

import zlib

import msgspec

__all__ = [
    "VenueConfig",
    "CONFIG",
    "SYMBOLS",
    "API_KEYS",
    "ADMIN_KEY",
    "ACCOUNT_NAMES",
    "REFERENCE_PRICES",
    "VENUE_ID",
    "COMMITS",
    "ledger_name",
    "matcher_name",
    "ledger_of",
    "matcher_of",
    "ShardKeys",
    "index_member",
    "index_payload",
    "account_range",
    "hash_tag",
    "replicated_key",
]

CONFIG = "tradepit:config"
SYMBOLS = "tradepit:symbols"  # symbol -> SymbolSpec
API_KEYS = "tradepit:keys"  # key id -> ApiKey
ADMIN_KEY = "tradepit:admin"  # the admin key's id, once created
ACCOUNT_NAMES = "tradepit:accounts"  # account id -> AccountProfile (display name, opened at)
# The reference-price simulator's feed (symbol -> ticks), where one runs; also a Pub/Sub channel.
REFERENCE_PRICES = "tradepit:reference"
# The venue's identity, fixed at its first start and also kept in its data directory
# (`tradepit.durability`): data that carries another, or none, is not this venue's.
VENUE_ID = "tradepit:venue"
# The last change of the market's phase sent to the books, as JSON [ts, phase].
SESSION = "tradepit:session"
# The field of a shard's checkpoints hash that counts its commits (no stream is named so).
COMMITS = "commits"


class VenueConfig(msgspec.Struct, frozen=True):
    """How many shards of each stage the venue runs, and its fees. Fixed at its first start:
    accounts and symbols are routed by these counts, and balances were settled at these fees."""

    ledgers: int = 1
    matchers: int = 1
    maker_fee_bps: int = 0
    taker_fee_bps: int = 0

    def __post_init__(self) -> None:
        if not (1 <= self.ledgers <= 64 and 1 <= self.matchers <= 64):
            raise ValueError("a venue runs 1 to 64 shards of each stage")
        if not (0 <= self.maker_fee_bps < 10_000 and 0 <= self.taker_fee_bps < 10_000):
            raise ValueError("fee rates must be within 0..9999 bps")

    def ledger_names(self) -> list[str]:
        return [ledger_name(index) for index in range(self.ledgers)]

    def matcher_names(self) -> list[str]:
        return [matcher_name(index) for index in range(self.matchers)]


def ledger_name(index: int) -> str:
    return f"l{index}"


def matcher_name(index: int) -> str:
    return f"m{index}"


def ledger_of(account_id: int, config: VenueConfig) -> str:
    """The ledger shard that owns an account (ids are random, so a modulo spreads them)."""
    return ledger_name(account_id % config.ledgers)


def matcher_of(symbol: str, config: VenueConfig) -> str:
    """The matcher shard that owns a symbol: a stable hash, the same in every process."""
    return matcher_name(zlib.crc32(symbol.encode()) % config.matchers)


class ShardKeys:
    """The keys every shard has, named `l0`, `m1`, `d0`, ...; each stage's own are in its store
    module (`LedgerKeys`, `MatcherKeys`, `FeedKeys`)."""

    def __init__(self, shard: str) -> None:
        self.shard = shard
        tag = "{" + shard + "}"
        self.inbox = f"{tag}:in"  # commands from clients and the operator
        # Inbox stream -> last entry id applied; and COMMITS -> how many batches committed.
        self.checkpoints = f"{tag}:checkpoints"
        self.dead_letters = f"{tag}:dead"  # entries that could not be decoded, with the reason
        # On a cluster: stream -> the last entry id its readers may apply (committed, and
        # with replica acks held by a replica).
        self.replicated = f"{tag}:replicated"
        self.state = f"{tag}:state"  # small scalars: counters, totals, symbols
        # A ledger's order records (`LedgerKeys.orders`), here until `tradepit.client` reads
        # them through `tradepit.store.ledger.order_record`.
        self.orders = f"{tag}:orders"

    def link_to(self, other: str) -> str:
        """This shard's outbox stream to shard `other`."""
        return "{" + self.shard + "}:to:" + other

    def link_from(self, other: str) -> str:
        """Shard `other`'s outbox stream to this shard: one of this shard's inboxes."""
        return "{" + other + "}:to:" + self.shard


def hash_tag(key: str) -> str:
    """The `{tag}` a key's slot is hashed from (the whole key if it has none)."""
    start = key.find("{")
    end = key.find("}", start + 1)
    return key[start : end + 1] if start >= 0 and end > start + 1 else key


def replicated_key(stream: str) -> str:
    """Where the writer of `stream` marks how far a replica holds it."""
    return hash_tag(stream) + ":replicated"


# A per-account index is one sorted set per shard whose members all have score 0 and sort by
# their text: "<account, 32 hex>:<time, 20 digits>:<payload>". One ZADD then indexes a whole
# batch whatever its accounts, and ZRANGEBYLEX reads one account's slice in time order.


def index_member(account_id: int, ts: int, payload: bytes) -> bytes:
    return b"%032x:%020d:" % (account_id, ts) + payload


_MEMBER_PREFIX = len(b"%032x:%020d:" % (0, 0))


def index_payload(member: bytes) -> bytes:
    """What an index member carries after its account and time."""
    return member[_MEMBER_PREFIX:]


def account_range(account_id: int, after: int = 0, until: int | None = None) -> tuple[bytes, bytes]:
    """ZRANGEBYLEX bounds for an account's members with `after` < time <= `until` (ns)."""
    low = b"(%032x:%020d:\xff" % (account_id, after) if after else b"[%032x:" % account_id
    # ";" sorts right after ":", so "[<account>;" bounds all of the account's members.
    high = b"[%032x;" % account_id if until is None else b"[%032x:%020d:\xff" % (account_id, until)
    return low, high
