"""Identifiers: 128-bit ints inside (cheap to hash and compare), UUID strings at the edge."""

from __future__ import annotations

import uuid

from tradepit.errors import TradepitError

__all__ = ["IdError", "new_id", "id_to_uuid", "uuid_to_id", "VENUE_ACCOUNT_ID"]

# The account that collects fees. Id 0 is the nil UUID, which no random id can collide with.
VENUE_ACCOUNT_ID = 0


class IdError(TradepitError, ValueError):
    """Text that is not a UUID."""


def new_id() -> int:
    """A fresh random (version 4) id. Only edges call this: the cores never make up ids."""
    return uuid.uuid4().int


def id_to_uuid(value: int) -> str:
    """The canonical UUID text of a 128-bit id (what `str(uuid.UUID(int=value))` gives, in a
    third of its time: ids are formatted for every order the API answers with)."""
    if not 0 <= value < 1 << 128:
        raise ValueError(f"{value} is not a 128-bit id")
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def uuid_to_id(text: str) -> int:
    try:
        return uuid.UUID(text).int
    except (ValueError, AttributeError, TypeError):
        raise IdError(f"{text!r} is not a UUID") from None
