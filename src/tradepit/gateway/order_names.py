"""Alpaca's names for an order's side, type and time in force, both ways: the one map each.

The names are those of Alpaca's API, lower case; requests are matched case-insensitively
(orders.py lowers them). The order of each map is the order an error message lists the
choices in.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from tradepit.domain.orders import OrderType, Side, TimeInForce

__all__ = [
    "SIDE_NAMES",
    "ORDER_TYPE_NAMES",
    "TIME_IN_FORCE_NAMES",
    "SIDE_BY_NAME",
    "ORDER_TYPE_BY_NAME",
    "TIME_IN_FORCE_BY_NAME",
]

E = TypeVar("E", bound=IntEnum)

SIDE_NAMES = {Side.BUY: "buy", Side.SELL: "sell"}
ORDER_TYPE_NAMES = {
    OrderType.MARKET: "market",
    OrderType.LIMIT: "limit",
    OrderType.STOP: "stop",
    OrderType.STOP_LIMIT: "stop_limit",
    OrderType.TRAILING_STOP: "trailing_stop",
}
TIME_IN_FORCE_NAMES = {
    TimeInForce.DAY: "day",
    TimeInForce.GTC: "gtc",
    TimeInForce.IOC: "ioc",
    TimeInForce.FOK: "fok",
    TimeInForce.OPG: "opg",
    TimeInForce.CLS: "cls",
}


def _by_name(names: dict[E, str]) -> dict[str, E]:
    return {name: member for member, name in names.items()}


SIDE_BY_NAME = _by_name(SIDE_NAMES)
ORDER_TYPE_BY_NAME = _by_name(ORDER_TYPE_NAMES)
TIME_IN_FORCE_BY_NAME = _by_name(TIME_IN_FORCE_NAMES)
