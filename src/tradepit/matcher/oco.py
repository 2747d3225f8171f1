"""Order classes: OCO pairs in the book, and where bracket and OTO legs wait. Pure, no I/O.

Design (issue 20, part 3; Alpaca's `order_class` `oco`, `bracket`, `oto`):

- **An OCO pair lives in the matcher shard of its symbol**, both legs in one book: a limit (the
  take-profit) and a stop or stop-limit (the stop-loss) of one account, symbol, side and qty,
  each naming the other in `Order.oco`. They arrive together (`SubmitOco`), and every rule
  that ties them is applied by the book inside the command that caused it, before it looks at
  the next trade or trigger: there is no moment, and no second command, in which both legs
  could trade.
  - The two legs always have the same `leaves`. The stop leg waits among the stops and does
    not trade while it is a leg; when the limit leg trades (fully or partly, as maker or
    taker), the stop leg is resized to what the limit leg has left (`Resized`), or canceled
    (`Canceled`, reason `oco`) when that is nothing. So the pair never trades more than its
    qty.
  - When the stop leg triggers, the limit leg is canceled (reason `oco`) first, and the stop
    then trades as an ordinary market (or limit) order, a leg no longer.
  - A leg that ends otherwise (canceled by its owner, by self-trade prevention, expired) ends
    its pair: the other leg is canceled (reason `oco`). A leg is replaced as one order
    would be but only at the pair's size, and the replacement is the leg in its place.
  - The link is stored on the orders themselves (`Order.oco`), so a book restored from its
    stored orders has its pairs back.
- **The ledger reserves once for a pair**: one reservation (the shares of a sell, the cash of
  a buy at the higher of the two legs' prices) is held by one leg, the other holding none
  (`OpenOrder.pair` names the other). The leg that trades holds it (it moves over if need
  be), so fills release it as for one order; a leg that ends while the other is open hands it
  to that one, and the last to end releases what is left. The two exit legs of a bracket sell
  the same shares once.
- **Bracket and OTO legs wait in the ledger** of the entry's account, not in any book, until
  the entry fills *completely* (Alpaca's rule): reserving for them then, when the entry's
  shares (or cash) exist, and sending them to the matcher (a bracket's two as one OCO pair, an
  OTO's one as a plain order). An entry that ends unfilled or partly filled (canceled,
  expired, rejected) takes its waiting legs with it: cancelling the parent cancels its legs.
"""

from __future__ import annotations

from tradepit.domain.events import RejectReason
from tradepit.domain.orders import Order, OrderType, TimeInForce

__all__ = ["check_pair"]


def check_pair(limit: Order, stop: Order) -> RejectReason | None:
    """Why `limit` and `stop` are not an OCO pair the book can hold, or None when they are."""
    if limit.type is not OrderType.LIMIT or stop.type not in (
        OrderType.STOP,
        OrderType.STOP_LIMIT,
    ):
        return RejectReason.INVALID_ORDER
    if (
        limit.account_id != stop.account_id
        or limit.symbol != stop.symbol
        or limit.side is not stop.side
        or limit.time_in_force is not stop.time_in_force
        or limit.time_in_force not in (TimeInForce.DAY, TimeInForce.GTC)
        or limit.post_only
        or limit.oco != stop.order_id
        or stop.oco != limit.order_id
        or limit.order_id == stop.order_id
    ):
        return RejectReason.INVALID_ORDER
    if limit.qty != stop.qty:
        return RejectReason.INVALID_QTY
    return None
