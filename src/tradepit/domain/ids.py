"""Identifiers: 128-bit ints inside (cheap to hash and compare), UUID strings at the edge."""

from __future__ import annotations

import uuid

__all__ = ["IdError", "new_id", "id_to_uuid", "uuid_to_id", "VENUE_ACCOUNT_ID"]

# The account that collects fees. Id 0 is the nil UUID, which no random id can collide with.
VENUE_ACCOUNT_ID = 0


class IdError(ValueError):
    """Text that is not a UUID."""


def new_id() -> int:
    """A fresh random (version 4) id. Only edges call this: the cores never make up ids."""
    return uuid.uuid4().int


def id_to_uuid(value: int) -> str:
    return str(uuid.UUID(int=value))


def uuid_to_id(text: str) -> int:
    try:
        return uuid.UUID(text).int
    except (ValueError, AttributeError, TypeError):
        raise IdError(f"{text!r} is not a UUID") from None
