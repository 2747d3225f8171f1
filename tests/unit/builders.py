"""Order builders shared by the unit tests of the matcher and the ledger."""

from __future__ import annotations

from tradepit.domain.orders import Order, OrderType, SelfTradePrevention, Side, TimeInForce


def make(
    order_id: int,
    account_id: int,
    side: Side,
    qty: int,
    price: int,
    *,
    kind: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    stop_price: int = 0,
    post_only: bool = False,
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST,
    symbol: str = "AAA",
    ts: int = 0,
) -> Order:
    return Order(
        order_id=order_id,
        account_id=account_id,
        symbol=symbol,
        side=side,
        type=kind,
        time_in_force=tif,
        qty=qty,
        price=price,
        stop_price=stop_price,
        post_only=post_only,
        stp=stp,
        ts=ts,
    )
