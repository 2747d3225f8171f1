"""`tradepit demo`: the venue plus a market that is alive the moment a person looks.

- A reference-price simulator: a seeded random walk per symbol, written to
  `tradepit:reference` (and published on the channel of that name) every `interval` seconds.
  The gateway measures price bands from it while it runs.
- Market makers, one account per symbol, that quote a ladder of bids and asks around the
  reference and pull their bids (asks) when they hold too many (too few) shares.
- Takers that send random market and limit orders.

Every bot is an ordinary account trading through the public REST API, as any bot would. Their
accounts are made once and remembered in `tradepit:demo`, so a restarted demo trades on with
the same accounts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tradepit import operations
from tradepit.client import VenueClient
from tradepit.domain.symbols import Symbol, cents_to_cash
from tradepit.marketdata.reference import RandomWalk
from tradepit.settings import DemoSettings
from tradepit.stage.messages import symbol_of
from tradepit.store import catalog
from tradepit.store.connection import Client
from tradepit.store.errors import StoreError
from tradepit.store.prices import prices

__all__ = [
    "ReferenceFeed",
    "run_demo",
    "demo_account",
    "person_account",
]

log = logging.getLogger("tradepit.demo")

_MAKER_INVENTORY = 2_000  # lots each market maker starts with and leans back towards


class ReferenceFeed:
    """The simulated reference price of each symbol, stepped every `interval` seconds."""

    def __init__(self, redis: Client, starts: dict[str, int], options: DemoSettings) -> None:
        self.redis = redis
        self.options = options
        self.walks = {
            name: RandomWalk(
                start,
                drift=options.drift,
                volatility=options.volatility,
                rng=random.Random(options.seed * 1_000_003 + zlib.crc32(name.encode())),
            )
            for name, start in starts.items()
        }

    def price(self, symbol: str) -> int:
        return self.walks[symbol].price

    async def run(self) -> None:
        while True:
            prices = {name: walk.step() for name, walk in self.walks.items()}
            try:
                await catalog.publish_simulated_prices(self.redis, prices)
            except StoreError as error:
                log.warning("reference feed: %s", error)
            await asyncio.sleep(self.options.interval)


async def demo_account(
    client: VenueClient, name: str, cash: str, positions: dict[str, str]
) -> dict[str, str]:
    """The demo account called `name`: made on first use, the same one ever after."""
    stored = await catalog.demo_account(client.redis, name)
    if stored is not None:
        return stored
    made = await operations.create_account(client, cash, positions, name)
    await catalog.save_demo_account(client.redis, name, made)
    return made


def _headers(account: dict[str, str]) -> dict[str, str]:
    return {"APCA-API-KEY-ID": account["key_id"], "APCA-API-SECRET-KEY": account["secret_key"]}


async def _post_order(http: httpx.AsyncClient, account: dict[str, str], **body: Any) -> str | None:
    response = await http.post("/v2/orders", json=body, headers=_headers(account))
    if response.status_code != 200:
        # Refusals (no buying power, a price off the band) are part of a market; note them.
        log.debug("demo order refused: %s %s", response.status_code, response.text[:120])
        return None
    order_id: str = response.json()["id"]
    return order_id


async def market_maker(
    http: httpx.AsyncClient,
    account: dict[str, str],
    symbol: Symbol,
    feed: ReferenceFeed,
    rng: random.Random,
    options: DemoSettings,
    inventory: int,
    limit: int,
) -> None:
    """Quote a ladder around the reference; new quotes go up before the old come down, so the
    book is never empty."""
    resting: list[str] = []
    headers = _headers(account)
    while True:
        reference = feed.price(symbol.name)
        held = inventory
        response = await http.get(f"/v2/positions/{symbol.name}", headers=headers)
        if response.status_code == 200:
            held = symbol.qty_to_lots(response.json()["qty"])
        elif response.status_code == 404:
            held = 0
        half_spread = max(1, reference * 5 // 10_000)
        step = max(1, reference * 3 // 10_000)
        placed: list[str] = []
        for level in range(options.makers_levels):
            size = rng.randint(5, 60)
            offset = half_spread + level * step + rng.randint(0, step)
            sides = []
            if held < inventory + limit:
                sides.append(("buy", reference - offset))
            if held > inventory - limit:
                sides.append(("sell", reference + offset))
            for side, price in sides:
                order_id = await _post_order(
                    http,
                    account,
                    symbol=symbol.name,
                    qty=symbol.lots_to_qty(size),
                    side=side,
                    type="limit",
                    time_in_force="gtc",
                    limit_price=symbol.ticks_to_price(max(1, price)),
                )
                if order_id is not None:
                    placed.append(order_id)
        for order_id in resting:
            await http.delete(f"/v2/orders/{order_id}", headers=headers)
        resting = placed
        await asyncio.sleep(rng.uniform(0.5, 1.5) * options.interval)


async def taker(
    http: httpx.AsyncClient,
    account: dict[str, str],
    symbols: list[Symbol],
    feed: ReferenceFeed,
    rng: random.Random,
) -> None:
    while True:
        await asyncio.sleep(rng.uniform(0.2, 1.2))
        symbol = rng.choice(symbols)
        side = rng.choice(("buy", "sell"))
        qty = symbol.lots_to_qty(rng.randint(1, 15))
        if rng.random() < 0.6:
            await _post_order(
                http, account, symbol=symbol.name, qty=qty, side=side, type="market",
                time_in_force="ioc",
            )  # fmt: skip
        else:
            reference = feed.price(symbol.name)
            price = reference + (1 if side == "buy" else -1) * rng.randint(-8, 4)
            await _post_order(
                http,
                account,
                symbol=symbol.name,
                qty=qty,
                side=side,
                type="limit",
                time_in_force="day",
                limit_price=symbol.ticks_to_price(max(1, price)),
            )


async def _listed(client: VenueClient) -> dict[str, tuple[Symbol, int]]:
    """Every listed symbol that has a price to start from, and that price."""
    specs = await catalog.symbol_specs(client.redis)
    now = await prices(client.redis, client.config, specs)
    return {
        name: (symbol_of(spec), now[name].ticks)
        for name, spec in specs.items()
        if name in now and now[name].ticks > 0
    }


async def person_account(redis_url: str) -> dict[str, str]:
    """The account `tradepit demo` offers the person who started it (the same one each time)."""
    async with VenueClient(redis_url) as client:
        listed = await _listed(client)
        positions = {name: symbol.lots_to_qty(100) for name, (symbol, _) in listed.items()}
        return await demo_account(client, "you", "100000.00", positions)


async def run_demo(redis_url: str, api_url: str, options: DemoSettings) -> None:
    """Run the reference feed and the bots until cancelled."""
    async with VenueClient(redis_url) as client:
        listed = await _listed(client)
        if not listed:
            raise RuntimeError("the venue lists no symbol with a price to start from")
        feed = ReferenceFeed(
            client.redis, {name: start for name, (_, start) in listed.items()}, options
        )
        symbols = [symbol for symbol, _ in listed.values()]
        rng = random.Random(options.seed)
        bots: list[Callable[[], Awaitable[None]]] = []
        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            for symbol, start in listed.values():
                inventory = _MAKER_INVENTORY
                cash = cents_to_cash(symbol.notional(start, inventory * 4))
                positions = {symbol.name: symbol.lots_to_qty(inventory)}
                maker = await demo_account(client, f"maker-{symbol.name}", cash, positions)
                bots.append(
                    functools.partial(
                        market_maker,
                        http,
                        maker,
                        symbol,
                        feed,
                        random.Random(rng.random()),
                        options,
                        inventory,
                        inventory // 2,
                    )
                )
            for index in range(options.takers):
                positions = {symbol.name: symbol.lots_to_qty(500) for symbol in symbols}
                account = await demo_account(client, f"taker-{index}", "1000000.00", positions)
                rng_of_taker = random.Random(rng.random())
                bots.append(functools.partial(taker, http, account, symbols, feed, rng_of_taker))
            tasks = [asyncio.create_task(feed.run())]
            tasks += [asyncio.create_task(_forever(bot)) for bot in bots]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)


async def _forever(bot: Callable[[], Awaitable[None]]) -> None:
    """Run a bot; one that trips over a lost connection starts again a moment later."""
    while True:
        try:
            await bot()
        except (httpx.HTTPError, StoreError, KeyError, ValueError) as error:
            log.warning("demo bot restarting after: %r", error)
            await asyncio.sleep(1.0)
