"""Alpaca's names for order sides, types and times in force: one for every member, both ways."""

from __future__ import annotations

from enum import IntEnum

import pytest

from tradepit.domain.orders import OrderType, Side, TimeInForce
from tradepit.gateway.order_names import (
    ORDER_TYPE_BY_NAME,
    ORDER_TYPE_NAMES,
    SIDE_BY_NAME,
    SIDE_NAMES,
    TIME_IN_FORCE_BY_NAME,
    TIME_IN_FORCE_NAMES,
)

MAPS = [
    (Side, SIDE_NAMES, SIDE_BY_NAME),
    (OrderType, ORDER_TYPE_NAMES, ORDER_TYPE_BY_NAME),
    (TimeInForce, TIME_IN_FORCE_NAMES, TIME_IN_FORCE_BY_NAME),
]


@pytest.mark.parametrize(
    ("enum", "names", "by_name"), MAPS, ids=lambda m: getattr(m, "__name__", "")
)
def test_every_member_has_one_name_and_back(
    enum: type[IntEnum], names: dict[IntEnum, str], by_name: dict[str, IntEnum]
) -> None:
    assert set(names) == set(enum)
    assert {by_name[name] for name in names.values()} == set(enum)
    assert all(name == name.lower() for name in by_name)
