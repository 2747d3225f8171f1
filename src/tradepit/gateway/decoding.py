"""Decoding what clients send, JSON or MessagePack, however deeply they nest it.

msgspec's decoders recurse once per level of nesting and stop at Python's recursion limit with
a RecursionError, which is no `msgspec.DecodeError`: a few kB of `[[[[…` sent as a body or as a
stream frame escaped every handler (a 500 on REST, a dropped connection on the streams). Here
it is `TooDeep`, a DecodeError, and refused as the bad input it is. No request tradepit takes
nests more than a few levels, so nothing a client means is refused. (Catching it costs nothing
on the way in; a scan for depth before decoding would cost a pass over every body.)
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from tradepit.errors import TradepitError

__all__ = ["TooDeep", "decode_json", "decode_frame"]

T = TypeVar("T")


# Named without "Error" (ruff's N818) because the gateway's streams and bodies import it so.
class TooDeep(TradepitError, msgspec.DecodeError):  # noqa: N818
    """The input nests more deeply than the decoder can follow."""

    def __init__(self) -> None:
        super().__init__("nested too deeply: a request nests a few levels at most")


def decode_json(raw: bytes, kind: type[T]) -> T:
    """`raw` as JSON of type `kind`; msgspec's errors, or TooDeep."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except RecursionError:
        raise TooDeep() from None


def decode_frame(raw: bytes) -> Any:
    """A stream frame, JSON or else MessagePack (Alpaca's streams take both): its value, or a
    DecodeError saying why it is neither; TooDeep if either decoder found it nested too deeply."""
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise TooDeep() from None
    except msgspec.DecodeError:
        pass
    try:
        return msgspec.msgpack.decode(raw)
    except RecursionError:
        raise TooDeep() from None
    except msgspec.DecodeError:
        raise msgspec.DecodeError("message is neither JSON nor MessagePack") from None
