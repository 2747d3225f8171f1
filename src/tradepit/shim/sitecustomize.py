"""Point an unchanged alpaca-py bot at tradepit: opt in by putting this directory on PYTHONPATH.

    PYTHONPATH=$(tradepit shim) TRADEPIT_URL=http://127.0.0.1:8000 python my_bot.py

alpaca-py reads no environment variables, so a bot that hard-codes
`TradingClient(key, secret, paper=True)` can only be redirected from outside. Python imports
`sitecustomize` at start-up; this one, when TRADEPIT_URL is set, wraps the constructors of
alpaca-py's four clients so that each gets tradepit's URL as its `url_override` (unless the bot
passed one). Without TRADEPIT_URL it does nothing.
"""

from __future__ import annotations

import functools
import os
from typing import Any


def _redirect(cls: Any, url: str) -> None:
    original = cls.__init__

    @functools.wraps(original)
    def redirected_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("url_override") is None:
            kwargs["url_override"] = url
        original(self, *args, **kwargs)

    cls.__init__ = redirected_init


def _install(base: str) -> None:
    try:
        from alpaca.data.historical.stock import StockHistoricalDataClient  # noqa: PLC0415
        from alpaca.data.live.stock import StockDataStream  # noqa: PLC0415
        from alpaca.trading.client import TradingClient  # noqa: PLC0415
        from alpaca.trading.stream import TradingStream  # noqa: PLC0415
    except ImportError:  # not an alpaca-py program: nothing to redirect
        return
    base = base.rstrip("/")
    websocket = "ws" + base[len("http") :] if base.startswith("http") else base
    _redirect(TradingClient, base)  # REST clients take the base; the SDK adds /v2/...
    _redirect(StockHistoricalDataClient, base)
    _redirect(TradingStream, websocket + "/stream")  # streams take the full URL
    _redirect(StockDataStream, websocket + "/v2/" + os.environ.get("TRADEPIT_FEED", "iex"))


if os.environ.get("TRADEPIT_URL"):
    _install(os.environ["TRADEPIT_URL"])
