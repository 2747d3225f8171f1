"""`tradepit` with the ledger's order history switched off: for `bench/pipeline.py
--without-history` only, never for a venue.

    python -P bench/no_history.py <the arguments of `python -m tradepit.cli`>

The ledger shard then keeps no `OrderRecord`s and writes no order records, order updates or
per-account indexes of orders, open orders and fills: what the Alpaca API lists and streams.
Reservations, settlement, fees, open orders, client order ids and replies are unchanged. So the
stages run the path issue 4 names (ledger -> matcher -> settlement) and nothing the API added to
it, which tells what that path costs alone. Cancels and replaces need the records: the pipeline
bench sends neither.
"""

from __future__ import annotations

import sys
from typing import Any

from tradepit import cli
from tradepit.domain.orders import Order
from tradepit.ledger.history import Change, OrderHistory
from tradepit.stage.ledger import LedgerShard


def _follow_nothing(self: OrderHistory, event: Any) -> list[Change]:
    return []


def _accept_without_record(
    self: LedgerShard, order: Order, client_order_id: str, replaces: int
) -> None:
    self.dirty_open_orders.add(order.order_id)
    self.dirty_accounts.add(order.account_id)
    if client_order_id:
        self.new_client_order_ids.append((order.account_id, client_order_id, order.order_id))


if __name__ == "__main__":
    OrderHistory.apply = _follow_nothing  # type: ignore[method-assign]
    LedgerShard._order_accepted = _accept_without_record  # type: ignore[method-assign]
    sys.exit(cli.main(sys.argv[1:]))
