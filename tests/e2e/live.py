"""The venue the end-to-end tests share, and the accounts they make on it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

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
