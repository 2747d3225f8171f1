"""What the gateway knows of the market: the symbols, and each book's last price and halt.

Order validation reads these on every request, so they are kept in memory and refreshed in the
background; a price band is wide, so a fraction of a second of staleness costs nothing. Views
that show money (account, positions) read the prices fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

from tradepit.domain.symbols import Symbol
from tradepit.stage.messages import symbol_of
from tradepit.store import catalog
from tradepit.store.connection import Client
from tradepit.store.errors import StoreError
from tradepit.store.keys import VenueConfig
from tradepit.store.matcher import book_counters
from tradepit.store.prices import price_of

__all__ = ["Listing", "Market", "asset_id_of"]

log = logging.getLogger("tradepit.gateway")

# Asset ids are stable UUIDs derived from the symbol, the same in every gateway.
_ASSET_NAMESPACE = uuid.UUID("6f1d3c2e-8a4b-4c5d-9e6f-7a8b9c0d1e2f")


def asset_id_of(symbol: str) -> str:
    return str(uuid.uuid5(_ASSET_NAMESPACE, symbol))


@dataclass(slots=True)
class Listing:
    symbol: Symbol
    asset_id: str
    reference: int  # ticks: the price the band starts from before the first trade; 0 if none
    last_price: int = 0
    halted: bool = False
    simulated: int = 0  # ticks: the reference-price simulator's price, where one runs

    def reference_price(self) -> int:
        """The price bands and market orders are measured from: the simulated reference where
        one runs (a demo market), else the symbol's price (`tradepit.store.prices`); 0 when
        none exists. What holdings are worth is the price alone."""
        return self.simulated or price_of(self.last_price, self.reference)


class Market:
    def __init__(self, redis: Client, config: VenueConfig, refresh: float = 0.25) -> None:
        self.redis = redis
        self.config = config
        self.refresh = refresh
        self.listings: dict[str, Listing] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._refresh_forever(), name="market")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def get(self, name: str) -> Listing | None:
        return self.listings.get(name)

    async def load(self) -> None:
        listings = {}
        for spec in (await catalog.symbol_specs(self.redis)).values():
            try:
                symbol = symbol_of(spec)
            except (ValueError, ArithmeticError):
                log.warning("skipping an unreadable symbol: %r", spec)
                continue
            old = self.listings.get(spec.name)
            listing = Listing(symbol, asset_id_of(spec.name), spec.reference)
            if old is not None:
                listing.last_price, listing.halted = old.last_price, old.halted
                listing.simulated = old.simulated
            listings[spec.name] = listing
        self.listings = listings
        await self.load_prices()

    async def load_prices(self, names: list[str] | None = None) -> None:
        """Read the books' last prices and halts (of `names`, or all) into the listings."""
        wanted = list(self.listings) if names is None else names
        counters, simulated = await asyncio.gather(
            book_counters(self.redis, self.config, wanted), catalog.simulated_prices(self.redis)
        )
        for name, price in simulated.items():
            listing = self.listings.get(name)
            if listing is not None:
                listing.simulated = price
        for name, book in counters.items():
            listing = self.listings.get(name)
            if listing is not None:
                listing.last_price, listing.halted = book.last_price, book.halted

    async def _refresh_forever(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.refresh)
            ticks += 1
            try:
                if ticks % 8 == 0:
                    await self.load()  # new symbols are rare: look for them now and then
                else:
                    await self.load_prices()
            except StoreError as error:
                log.warning("market refresh failed: %s", error)
