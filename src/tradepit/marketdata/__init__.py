"""The price feed: the tape, L1 quotes, L2 depth, OHLCV bars, and the reference-price
simulator. Pure, deterministic, no I/O: `tradepit.stage.marketdata` wires it to Redis."""

from tradepit.marketdata.bars import Bar, TimeFrame, TimeFrameError, aggregate, parse_timeframe
from tradepit.marketdata.feed import (
    DEPTH_LEVELS,
    AnyFeedMessage,
    BarUpdate,
    BookTop,
    Depth,
    MarketData,
    Print,
    Quote,
    Status,
    SymbolFeed,
    diff_levels,
)
from tradepit.marketdata.reference import RandomWalk

__all__ = [
    "Bar",
    "TimeFrame",
    "TimeFrameError",
    "aggregate",
    "parse_timeframe",
    "DEPTH_LEVELS",
    "AnyFeedMessage",
    "BarUpdate",
    "Depth",
    "BookTop",
    "MarketData",
    "Print",
    "Quote",
    "Status",
    "SymbolFeed",
    "diff_levels",
    "RandomWalk",
]
