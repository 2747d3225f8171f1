"""The price of a symbol, one definition for the whole venue: its last trade; before its first
trade, the reference price it was listed with; else none (0), and a holding with no price is
worth what it cost.

That is what a trader expects a position to be worth: what the market last paid for it. Every
valuation reads it here: positions and the account's equity, portfolio history, the
leaderboard, the shares a new account opens with. The demo's simulated reference price (a
random walk the bots trade around) is not a price anyone paid: it centres the demo's price
bands and market orders' protection (`tradepit.gateway.market`), and values nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from tradepit.domain.symbols import Symbol
from tradepit.ledger import Account, Holding
from tradepit.stage.messages import symbol_of
from tradepit.store import catalog
from tradepit.store.connection import Client
from tradepit.store.keys import VenueConfig
from tradepit.store.matcher import book_counters

__all__ = ["Price", "price_of", "prices", "holding_value", "equity_of"]


class Price(NamedTuple):
    ticks: int  # 0: no price
    symbol: Symbol  # its grids, which value its lots


def price_of(last_trade: int, listed_reference: int) -> int:
    """Ticks: the definition, for what holds the two already."""
    return last_trade or listed_reference


async def prices(
    client: Client, config: VenueConfig, names: Iterable[str] | None = None
) -> dict[str, Price]:
    """The price of each listed symbol of `names`, or of every listed symbol."""
    if names is None:
        specs = await catalog.symbol_specs(client)
        books = await book_counters(client, config)
    else:
        wanted = list(names)
        specs, books = await asyncio.gather(
            catalog.symbol_specs(client, wanted), book_counters(client, config, wanted)
        )
    found = {}
    for name, spec in specs.items():
        counters = books.get(name)
        last = counters.last_price if counters is not None else 0
        found[name] = Price(price_of(last, spec.reference), symbol_of(spec))
    return found


def holding_value(holding: Holding, price: int, symbol: Symbol) -> int:
    """Cents: a holding at `price` ticks (a fraction of a cent rounded down); at its cost if
    there is no price (0)."""
    lots = holding.free + holding.reserved
    return symbol.notional(price, lots) if price else holding.cost


def equity_of(account: Account, prices: Mapping[str, Price]) -> int:
    """Cents: cash plus holdings at `prices`."""
    total = account.cash_free + account.cash_reserved
    for name, holding in account.holdings.items():
        price = prices.get(name)
        total += holding_value(holding, price.ticks, price.symbol) if price else holding.cost
    return total
