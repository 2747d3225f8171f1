"""A WebSocket upgrade that no route takes, said in the log: once per client address per
interval, with how many that address had refused since its last line.

A client refused an upgrade (FastAPI answers it with HTTP 403) may reconnect at once, and
forever: the legacy SDK did so ~95 times a second on a path with a trailing slash. One line per
attempt would flood the log; none at all left the storm invisible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RefusedUpgrades", "INTERVAL"]

log = logging.getLogger("tradepit.gateway.websocket")

INTERVAL = 60.0  # seconds between two lines about one client address
_MAX_ADDRESSES = 10_000  # past this many, the addresses whose interval is over are forgotten


@dataclass(slots=True)
class _Address:
    logged_at: float  # when its last line was written
    refused: int = 0  # refused since then


class RefusedUpgrades:
    def __init__(
        self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._addresses: dict[str, _Address] = {}

    def refused(self, address: str, path: str) -> None:
        """An upgrade from `address` to `path` was refused: log it, if this address has had no
        line for an interval."""
        now = self.clock()
        seen = self._addresses.get(address)
        if seen is None:
            if len(self._addresses) >= _MAX_ADDRESSES:
                self._forget_quiet(now)
            self._addresses[address] = _Address(now)
            log.warning(
                "refused a WebSocket upgrade from %s to %.100r: no WebSocket route has this path",
                address,
                path,
            )
        elif now - seen.logged_at >= self.interval:
            log.warning(
                "refused a WebSocket upgrade from %s to %.100r: no WebSocket route has this path "
                "(%d refused from this address since its last line, %.0f s ago)",
                address,
                path,
                seen.refused + 1,
                now - seen.logged_at,
            )
            seen.logged_at = now
            seen.refused = 0
        else:
            seen.refused += 1

    def _forget_quiet(self, now: float) -> None:
        # What a forgotten address had refused since its last line goes unsaid: at most one
        # interval's worth, of one client among thousands.
        self._addresses = {
            address: seen
            for address, seen in self._addresses.items()
            if now - seen.logged_at < self.interval
        }
        if len(self._addresses) >= _MAX_ADDRESSES:  # all of them recent: start again
            self._addresses.clear()
