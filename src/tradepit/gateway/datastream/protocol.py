"""Alpaca's market data stream on the wire: the channels, the shape of each message, and frames.

A frame is an array of messages. Each message is encoded once per codec, however many clients
get it, and a frame is those encodings joined: `[`, `,`, `]` for JSON, and for MessagePack an
array header packed here by hand, the only bytes a frame adds to the messages it holds.

Times are RFC 3339 strings in JSON and MessagePack timestamps in MessagePack, which alpaca-py
requires.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
from websockets.frames import Frame, Opcode

from tradepit.domain.symbols import Symbol
from tradepit.gateway.data_shapes import bar_json, price_of, quote_json, size_of, trade_json
from tradepit.gateway.shapes import rfc3339
from tradepit.marketdata.bars import timestamp_of
from tradepit.marketdata.feed import AnyFeedMessage, BarUpdate, Depth, Print, Quote, Status

__all__ = [
    "CHANNELS",
    "channel_of",
    "message_json",
    "Encoded",
    "Batch",
    "Outgoing",
    "frame_of",
    "control_frame",
    "error",
    "subscription_ack",
]

CHANNELS = (
    "trades",
    "quotes",
    "bars",
    "updatedBars",
    "dailyBars",
    "statuses",
    "lulds",
    "corrections",
    "cancelErrors",
    "orderbook",
)
_BAR_CHANNELS = {"b": "bars", "u": "updatedBars", "d": "dailyBars"}
_json = msgspec.json.Encoder(decimal_format="number").encode
_msgpack = msgspec.msgpack.Encoder(decimal_format="number").encode


def channel_of(message: AnyFeedMessage) -> str:
    if isinstance(message, Print):
        return "trades"
    if isinstance(message, Quote):
        return "quotes"
    if isinstance(message, BarUpdate):
        return _BAR_CHANNELS[message.kind]
    if isinstance(message, Depth):
        return "orderbook"
    return "statuses"


def message_json(symbol: Symbol, message: AnyFeedMessage, time: Any) -> dict[str, Any]:
    """One stream message in Alpaca's shape; `time` is its `t`, in the codec's form."""
    head: dict[str, Any]
    if isinstance(message, Print):
        head = {"T": "t", "S": symbol.name}
        head.update(trade_json(symbol, message, time))
    elif isinstance(message, Quote):
        head = {"T": "q", "S": symbol.name}
        head.update(quote_json(symbol, message, time))
    elif isinstance(message, BarUpdate):
        head = {"T": message.kind, "S": symbol.name}
        head.update(bar_json(symbol, message.bar, time_of(message.bar.start, time)))
    elif isinstance(message, Depth):
        head = {"T": "o", "S": symbol.name, "t": time, "seq": message.book_seq}
        if message.snapshot:
            head["snapshot"] = True
        head["b"] = [[price_of(symbol, p), size_of(symbol, s)] for p, s in message.bids]
        head["a"] = [[price_of(symbol, p), size_of(symbol, s)] for p, s in message.asks]
    else:
        assert isinstance(message, Status)
        halted = message.halted
        head = {
            "T": "s",
            "S": symbol.name,
            "sc": "H" if halted else "T",
            "sm": "Trading Halt" if halted else "Trading Resumption",
            "rc": "T1" if halted else "T3",
            "rm": "Halt News Pending" if halted else "News And Resumption Times",
            "t": time,
            "z": "C",
        }
    return head


def time_of(ts: int, form: Any) -> Any:
    """`ts` in the same form as `form`: a datetime for MessagePack, RFC 3339 for JSON."""
    return rfc3339(ts) if isinstance(form, str) or form is None else timestamp_of(ts)


class Encoded:
    """A message encoded for each codec once, on first use."""

    __slots__ = ("_json", "_msgpack", "message", "symbol")

    def __init__(self, message: AnyFeedMessage, symbol: Symbol) -> None:
        self.message = message
        self.symbol = symbol
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    def json(self) -> bytes:
        if self._json is None:
            self._json = _json(message_json(self.symbol, self.message, rfc3339(self.message.ts)))
        return self._json

    def msgpack(self) -> bytes:
        if self._msgpack is None:
            moment = timestamp_of(self.message.ts)
            self._msgpack = _msgpack(message_json(self.symbol, self.message, moment))
        return self._msgpack

    def data(self, msgpack: bool) -> bytes:
        return self.msgpack() if msgpack else self.json()


class Batch:
    """Messages that will go as one frame, in order, quotes conflated: a quote for a symbol
    whose quote is already waiting takes that quote's place, as only the latest matters."""

    __slots__ = ("messages", "quote_slots")

    def __init__(self) -> None:
        self.messages: list[Encoded] = []
        self.quote_slots: dict[str, int] = {}  # symbol -> index of its quote in `messages`

    def add(self, encoded: Encoded) -> Encoded | None:
        """Add `encoded`; the quote it replaced, if it replaced one."""
        if isinstance(encoded.message, Quote):
            slot = self.quote_slots.get(encoded.message.symbol)
            if slot is not None:
                replaced = self.messages[slot]
                self.messages[slot] = encoded
                return replaced
            self.quote_slots[encoded.message.symbol] = len(self.messages)
        self.messages.append(encoded)
        return None

    def take(self) -> list[Encoded]:
        """The messages, leaving the batch empty."""
        messages = self.messages
        self.messages, self.quote_slots = [], {}
        return messages


class Outgoing:
    """One frame's payload, as an ASGI message or as wire bytes, each made once on first use."""

    __slots__ = ("_wire", "payload", "text")

    def __init__(self, payload: bytes, text: bool) -> None:
        self.payload = payload
        self.text = text
        self._wire: bytes | None = None

    def asgi(self) -> dict[str, Any]:
        if self.text:
            return {"type": "websocket.send", "text": self.payload.decode()}
        return {"type": "websocket.send", "bytes": self.payload}

    def wire(self) -> bytes:
        """The whole WebSocket frame, unmasked as a server's are: the same bytes serve every
        connection."""
        if self._wire is None:
            opcode = Opcode.TEXT if self.text else Opcode.BINARY
            self._wire = Frame(opcode, self.payload).serialize(mask=False)
        return self._wire


def _msgpack_array_header(length: int) -> bytes:
    if length < 16:
        return bytes([0x90 | length])
    if length < 65_536:
        return b"\xdc" + struct.pack(">H", length)
    return b"\xdd" + struct.pack(">I", length)


def frame_of(messages: list[Encoded], msgpack: bool) -> Outgoing:
    """`messages` as one frame: an array of their encodings in the codec."""
    if msgpack:
        parts = [encoded.msgpack() for encoded in messages]
        return Outgoing(_msgpack_array_header(len(parts)) + b"".join(parts), False)
    return Outgoing(b"[" + b",".join([encoded.json() for encoded in messages]) + b"]", True)


def control_frame(messages: list[dict[str, Any]], msgpack: bool) -> Outgoing:
    """Messages of the protocol itself (acks, errors) as one frame."""
    if msgpack:
        return Outgoing(_msgpack(messages), False)
    return Outgoing(_json(messages), True)


def error(code: int, message: str) -> list[dict[str, Any]]:
    return [{"T": "error", "code": code, "msg": message}]


def subscription_ack(subscriptions: dict[str, set[str]]) -> list[dict[str, Any]]:
    ack: dict[str, Any] = {"T": "subscription"}
    for channel in CHANNELS:
        ack[channel] = sorted(subscriptions[channel])
    return [ack]
