"""The market data streams at `/v2/iex`, `/v2/sip` and `/v2/test`: Alpaca's protocol
(connected, auth, subscribe / unsubscribe to trades, quotes, bars, updatedBars, dailyBars and
statuses, "*" for every symbol) plus tradepit's `orderbook` channel (an L2 snapshot, then
deltas, each with the book's gapless `seq`).

Frames are MessagePack when the client says `Content-Type: application/msgpack` on the
upgrade (as alpaca-py does), and JSON otherwise. Read in the data's order:

- `recovery`: the market data stage's batches, gap-free, from Pub/Sub and the durable stream;
- `subscriptions`: who listens to what, in groups that share each batch's routing and frame;
- `protocol`: the channels, Alpaca's shape of each message, and frames of messages encoded once;
- `backpressure`: what waits for each client, and when one is too slow to keep;
- `live`: `LiveFeed`, which joins those four, one per gateway;
- `connection`: one client's conversation, `serve_stream`.
"""

from tradepit.gateway.datastream.backpressure import FRAME_SINK, FrameSink
from tradepit.gateway.datastream.connection import MAX_FRAME_BYTES, STREAM_PATHS, serve_stream
from tradepit.gateway.datastream.live import LiveFeed
from tradepit.gateway.datastream.protocol import CHANNELS

__all__ = [
    "serve_stream",
    "LiveFeed",
    "FrameSink",
    "FRAME_SINK",
    "STREAM_PATHS",
    "MAX_FRAME_BYTES",
    "CHANNELS",
]
