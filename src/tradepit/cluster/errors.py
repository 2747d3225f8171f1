"""The one error a local cluster raises for what it cannot do, with what to do about it."""

from __future__ import annotations

from tradepit.errors import TradepitError

__all__ = ["ClusterError"]


class ClusterError(TradepitError, RuntimeError):
    """The cluster could not be started, formed, made ready or stopped; the message says why."""
