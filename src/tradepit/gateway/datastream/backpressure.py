"""What waits to be sent to each client, and when a client is too slow to keep.

A slow client never slows the others: at most one frame is on its way to each client; what
comes meanwhile waits in the client's own batch (quotes conflated to the latest per symbol) and
goes as one frame after it. Past `--stream-queue-limit` messages (or `stream_queue_bytes`)
waiting, or when a frame has not been written for `--stream-send-timeout` seconds, the client
is cut off: told why (code 407) and disconnected. The kernel would otherwise absorb megabytes
for a client that reads nothing before any of that shows: the gateway caps what it keeps unsent
per socket (TCP_NOTSENT_LOWAT) and in the server's write buffer (`--send-buffer` both; see
server.py), so a client that stops reading is seen once the kernel's own buffers for it (tens
of kB) fill.

Served by the gateway's own server (server.py), a connection offers a `FrameSink` in its ASGI
scope: a frame shared by many clients is then encoded for the wire once, and each client's
share of it is one write of those bytes, with nothing built per client. Elsewhere frames go
through ASGI's `send`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Protocol

from starlette.types import Send

from tradepit.gateway.datastream.protocol import Batch, Encoded, Outgoing, control_frame, frame_of
from tradepit.gateway.service import GatewaySettings
from tradepit.metrics.gateway import GatewayMetrics

__all__ = ["FRAME_SINK", "FrameSink", "DataClient", "cut_stalled"]

FRAME_SINK = "tradepit.frame_sink"  # the key of a connection's FrameSink in scope["extensions"]


class FrameSink(Protocol):
    """A WebSocket connection that takes whole frames, encoded once for many connections."""

    def write_frame(self, frame: bytes) -> bool:
        """Write `frame` (a whole unmasked frame) now; False if the connection is closed."""

    @property
    def write_paused(self) -> bool:
        """Whether the connection's write buffer is full: write nothing more until resumed."""

    async def write_resumed(self) -> None:
        """Return once the write buffer has drained (or the connection is gone)."""


class DataClient:
    """One connection, and what waits to be sent to it.

    A frame that finds the connection idle is sent at once (the frame its group shares);
    anything that comes while a frame is on its way waits in `pending`, and goes as one frame
    when the one before has been written. (With a `FrameSink`, a frame is written at once and
    is on its way only while the connection's write buffer is full.)
    """

    def __init__(
        self,
        send: Send,
        msgpack: bool,
        limits: GatewaySettings,
        sink: FrameSink | None = None,
        *,
        metrics: GatewayMetrics | None = None,
        stream: str = "",
    ) -> None:
        self.send = send
        self.sink = sink
        # Frames sent through `send` are counted by the chain (chain/metrics.py); those written
        # to the sink, past ASGI, here.
        self.metrics = metrics
        self.stream = stream  # the metrics' label: the stream's path
        self.msgpack = msgpack
        self.queue_limit = limits.stream_queue_limit
        self.queue_bytes = limits.stream_queue_bytes
        self.pending = Batch()
        self.pending_bytes = 0
        # The frame on its way: ASGI's send of it, or, with a sink, the wait for the write
        # buffer to drain after it.
        self.in_flight: asyncio.Future[Any] | None = None
        self.sending_since = 0.0  # time.monotonic() when the frame in flight was handed over
        self.cut_off = ""  # why it was cut off, if it was
        self.gone = False  # the connection is closed
        self.close_code = 1000
        self.reader: asyncio.Task[None] | None = None  # the task reading its requests
        self._sent = self._frame_sent  # one bound method, not one per frame

    def deliver(self, frame: Outgoing, batch: list[Encoded]) -> None:
        """A batch for this client, with its frame (shared with the client's group)."""
        if self.cut_off:
            return
        if self.in_flight is None and not self.pending.messages:
            self._start(frame)
        else:
            for encoded in batch:
                self._queue(encoded)
            if self.in_flight is None and not self.cut_off:
                self._flush()

    def push(self, encoded: Encoded) -> None:
        """One message of this client's own (an order book snapshot)."""
        if self.cut_off:
            return
        self._queue(encoded)
        if self.in_flight is None and not self.cut_off:
            self._flush()

    def _queue(self, encoded: Encoded) -> None:
        size = len(encoded.data(self.msgpack))
        replaced = self.pending.add(encoded)
        if replaced is not None:
            self.pending_bytes += size - len(replaced.data(self.msgpack))
            return
        self.pending_bytes += size
        if len(self.pending.messages) > self.queue_limit or self.pending_bytes > self.queue_bytes:
            self.cut(
                f"slow client: more than {self.queue_limit} messages or "
                f"{self.queue_bytes} bytes were waiting; they were dropped",
                "queue_full",
            )

    def _flush(self) -> None:
        messages = self.pending.take()
        self.pending_bytes = 0
        if messages:
            self._start(frame_of(messages, self.msgpack))

    def _start(self, frame: Outgoing) -> None:
        sink = self.sink
        if sink is not None:
            wire = frame.wire()
            if not sink.write_frame(wire):  # the connection is gone
                self.end()
                return
            if self.metrics is not None:
                self.metrics.frame_sent(self.stream, len(wire))
            if not sink.write_paused:
                return
            future: asyncio.Future[Any] = asyncio.ensure_future(sink.write_resumed())
        else:
            try:
                # A task, so that a send waiting for a full socket holds up only this client.
                future = asyncio.ensure_future(self.send(frame.asgi()))
            except Exception:  # the connection is gone
                self.end()
                return
        self.in_flight = future
        self.sending_since = time.monotonic()
        future.add_done_callback(self._sent)

    def _frame_sent(self, future: asyncio.Future[Any]) -> None:
        self.in_flight = None
        self.sending_since = 0.0
        if future.cancelled():
            return
        if future.exception() is not None:  # the connection is gone
            self.end()
            return
        if self.pending.messages and not self.cut_off:
            self._flush()

    def cut(self, reason: str, kind: str) -> None:
        """Stop sending to this client and end its connection; it is told `reason` on the way
        out (connection.py). `kind` is why in a word, for the metrics."""
        if self.cut_off:
            return
        self.cut_off = reason
        if self.metrics is not None:
            self.metrics.cut_off(self.stream, kind)
        self.close_code = 1008
        self.pending.take()
        self.pending_bytes = 0
        if self.in_flight is not None:
            self.in_flight.cancel()  # whatever waited for the socket gives up
        self.end()

    def end(self) -> None:
        if self.reader is not None:
            self.reader.cancel()

    async def send_now(self, messages: list[dict[str, Any]]) -> None:
        """Control messages (acks, errors), sent at once, ahead of queued data."""
        frame = control_frame(messages, self.msgpack)
        if self.sink is None:
            await self.send(frame.asgi())
            return
        wire = frame.wire()
        if not self.sink.write_frame(wire):
            raise ConnectionError("the stream connection is closed")
        if self.metrics is not None:
            self.metrics.frame_sent(self.stream, len(wire))


async def cut_stalled(clients: Iterable[DataClient], timeout: float) -> None:
    """Cut off, forever, the clients whose frame in flight has not been written for `timeout`
    seconds: the socket's buffers are full, so they have read nothing for that long."""
    while True:
        await asyncio.sleep(min(1.0, timeout / 4))
        now = time.monotonic()
        for client in [c for c in clients if c.sending_since]:
            if now - client.sending_since > timeout:
                client.cut(f"slow client: nothing was read for {timeout:g} s", "send_timeout")
