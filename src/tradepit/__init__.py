"""tradepit: a self-hosted, real-time stock trading venue."""

__version__ = "0.1.0"
