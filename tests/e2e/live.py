"""The venue the end-to-end tests share, and the accounts they make on it."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tradepit.embedded import free_port

_symbol_numbers = itertools.count(1)


@dataclass
class Account:
    id: str
    key_id: str
    secret_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"APCA-API-KEY-ID": self.key_id, "APCA-API-SECRET-KEY": self.secret_key}


@dataclass
class Venue:
    url: str
    redis_url: str
    data_dir: Path
    admin_headers: dict[str, str]
    stage_metrics_url: str | None = None  # the stages' /metrics, where serve said it is

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(
            method, self.url + path, json=body, headers=self.admin_headers, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()

    def account(self, cash: str = "100000.00", **positions: str) -> Account:
        made = self.admin("POST", "/admin/accounts", {"cash": cash, "positions": positions})
        return Account(made["id"], made["key_id"], made["secret_key"])

    def symbol(self, reference_price: str = "100.00") -> str:
        """A symbol of the test's own, so that no other test's orders meet its orders."""
        name = f"T{next(_symbol_numbers)}"
        self.admin("POST", "/admin/symbols", {"symbol": name, "reference_price": reference_price})
        return name


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns a truthy value (fills settle a moment after the ack)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


@contextlib.contextmanager
def another_gateway(venue: Venue, *flags: str) -> Iterator[str]:
    """A second gateway process on the same venue, with options of its own (gateways are
    stateless); yields its URL once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "tradepit.cli", "--redis-url", venue.redis_url, "run"]
    gateway = subprocess.Popen(
        [*command, "gateway", "--port", str(port), *flags], start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/v2/clock", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the second gateway did not answer"
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)
