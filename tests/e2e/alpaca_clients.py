"""alpaca-py's clients as the e2e tests drive them: a TradingClient for an account, and its
TradingStream in a thread of its own."""

from __future__ import annotations

import threading
import time
from typing import Any

from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream
from live import Account, Venue, eventually

__all__ = ["client", "StreamListener"]


def client(venue: Venue, account: Account) -> TradingClient:
    return TradingClient(account.key_id, account.secret_key, paper=True, url_override=venue.url)


class StreamListener:
    """A TradingStream in a thread of its own, collecting every trade update."""

    def __init__(self, venue: Venue, account: Account) -> None:
        self.updates: list[Any] = []
        self.stream = TradingStream(
            account.key_id,
            account.secret_key,
            paper=True,
            url_override=venue.url.replace("http", "ws") + "/stream",
        )

        async def collect(update: Any) -> None:
            self.updates.append(update)

        self.stream.subscribe_trade_updates(collect)
        self.thread = threading.Thread(target=self.stream.run, daemon=True)

    def __enter__(self) -> StreamListener:
        self.thread.start()
        # The stream is listening once the socket is up and authorized: wait for it.
        eventually(lambda: getattr(self.stream, "_running", False), 10)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stream.stop()
        self.thread.join(1)  # a daemon thread: no need to wait out its reconnect loop

    def events(self, order_id: Any) -> list[str]:
        return [str(update.event) for update in self.updates if update.order.id == order_id]
