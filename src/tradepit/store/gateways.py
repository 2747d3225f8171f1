"""The gateways that are up, as each says of itself every few seconds: where it listens, since
when, its clients, and its counts of orders. `tradepit status` reads them; a gateway that stops
takes its entry out, and one that died is known by its entry's age.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tradepit.store.connection import Client

__all__ = ["GATEWAYS", "BEAT_SECONDS", "GatewayBeat", "beat", "gone", "gateways"]

GATEWAYS = "tradepit:gateways"  # hash: gateway id -> GatewayBeat JSON
BEAT_SECONDS = 2.0  # how often a gateway says it is up; status counts it gone after 5 beats


class GatewayBeat(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # host:port:pid
    host: str
    port: int
    pid: int
    started_at: float  # Unix seconds
    updated_at: float  # Unix seconds, of this beat
    requests: int = 0  # HTTP requests answered since the start
    websocket_clients: dict[str, int] = {}  # by stream: its path, as /metrics labels it
    orders_accepted: int = 0
    orders_refused: dict[str, int] = {}  # by reason, as /metrics labels it


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(GatewayBeat).decode


async def beat(client: Client, state: GatewayBeat) -> None:
    await client.hset(GATEWAYS, state.id, _encode(state))


async def gone(client: Client, gateway_id: str) -> None:
    await client.hdel(GATEWAYS, gateway_id)


async def gateways(client: Client) -> list[GatewayBeat]:
    """Every gateway's last beat, oldest id first; an unreadable one is skipped."""
    stored: Any = await client.hgetall(GATEWAYS)
    found = []
    for _id, raw in sorted(stored.items()):
        try:
            found.append(_decode(raw))
        except msgspec.DecodeError:
            continue
    return found
