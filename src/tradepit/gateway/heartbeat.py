"""A gateway says, every `BEAT_SECONDS`, that it is up and what it serves (store/gateways.py),
for `tradepit status`; on a clean stop it takes its entry out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

import msgspec

from tradepit.gateway.service import Gateway
from tradepit.store import gateways
from tradepit.store.errors import StoreError
from tradepit.store.gateways import BEAT_SECONDS, GatewayBeat

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        settings = gateway.settings
        self.id = f"{settings.host}:{settings.port}:{os.getpid()}"
        self.started_at = time.time()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreError, OSError):
            await gateways.gone(self.gateway.redis, self.id)

    def state(self) -> GatewayBeat:
        settings = self.gateway.settings
        metrics = self.gateway.metrics
        beat = GatewayBeat(
            id=self.id,
            host=settings.host,
            port=settings.port,
            pid=os.getpid(),
            started_at=self.started_at,
            updated_at=time.time(),
        )
        if metrics is None:
            return beat
        return msgspec.structs.replace(
            beat,
            requests=sum(sum(series.counts) for series in metrics.requests.series.values()),
            websocket_clients=dict(metrics.websocket_clients),
            orders_accepted=sum(metrics.orders_accepted.values()),
            orders_refused={reason: n for (reason,), n in metrics.orders_refused.items()},
        )

    async def _beat(self) -> None:
        while True:
            try:
                await gateways.beat(self.gateway.redis, self.state())
            except (StoreError, OSError) as error:  # Valkey away: the next beat will do
                log.debug("heartbeat not written: %s", error)
            await asyncio.sleep(BEAT_SECONDS)
