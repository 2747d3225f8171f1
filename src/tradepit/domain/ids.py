"""Identifiers: 128-bit ints inside (cheap to hash and compare), UUID strings at the edge."""

from __future__ import annotations

import os
import re
import uuid

from tradepit.errors import TradepitError

__all__ = ["IdError", "new_id", "id_to_uuid", "uuid_to_id", "VENUE_ACCOUNT_ID"]

# The account that collects fees. Id 0 is the nil UUID, which no random id can collide with.
VENUE_ACCOUNT_ID = 0


class IdError(TradepitError, ValueError):
    """Text that is not a UUID."""


# A version 4 UUID's fixed bits, as uuid.UUID sets them: version 4 in bits 76-79, the RFC 4122
# variant (0b10) in bits 62-63.
_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)
# A UUID as the API writes them (any case): the form parsed without uuid.UUID's object.
_CANONICAL = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def new_id() -> int:
    """A fresh random (version 4) id. Only edges call this: the cores never make up ids.
    (What `uuid.uuid4().int` gives, without the UUID object: the gateway makes one an order.)"""
    return int.from_bytes(os.urandom(16), "big") & _CLEARED | _VERSION_4


def id_to_uuid(value: int) -> str:
    """The canonical UUID text of a 128-bit id (what `str(uuid.UUID(int=value))` gives, in a
    third of its time: ids are formatted for every order the API answers with)."""
    if not 0 <= value < 1 << 128:
        raise ValueError(f"{value} is not a 128-bit id")
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid_to_id(text: str) -> int:
    """The id of a UUID's text: the canonical form directly (every cancel parses one), any
    other form uuid.UUID accepts (braces, a urn: prefix, no hyphens) through it."""
    if isinstance(text, str) and _CANONICAL.fullmatch(text):
        return int(text.replace("-", ""), 16)
    try:
        return uuid.UUID(text).int
    except (ValueError, AttributeError, TypeError):
        raise IdError(f"{text!r} is not a UUID") from None
