"""The classroom's routes against a real `tradepit serve --demo`: the leaderboard (equity exact
to the cent, names only by opt-in), profiles, and demo accounts (and their absence from a
gateway not in demo mode)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from live import Account, Venue, another_gateway


def board(venue: Venue, account: Account | None = None) -> list[dict[str, Any]]:
    # The ranking is reused for up to a second: wait it out so that the test sees its changes.
    time.sleep(1.1)
    headers = account.headers if account else {}
    response = httpx.get(venue.url + "/v1/leaderboard?limit=1000", headers=headers)
    assert response.status_code == 200, response.text
    accounts: list[dict[str, Any]] = response.json()["accounts"]
    return accounts


def set_profile(venue: Venue, account: Account, **body: Any) -> httpx.Response:
    return httpx.patch(venue.url + "/v1/profile", json=body, headers=account.headers)


def fill(venue: Venue, buyer: Account, seller: Account, symbol: str, qty: str, price: str) -> None:
    order = {"symbol": symbol, "qty": qty, "type": "limit", "time_in_force": "gtc"}
    sell = httpx.post(
        venue.url + "/v2/orders",
        json={**order, "side": "sell", "limit_price": price},
        headers=seller.headers,
    )
    assert sell.status_code == 200, sell.text
    buy = httpx.post(
        venue.url + "/v2/orders",
        json={**order, "side": "buy", "limit_price": price},
        headers=buyer.headers,
    )
    assert buy.status_code == 200, buy.text
    deadline = time.monotonic() + 10
    while httpx.get(venue.url + "/v2/orders?status=open", headers=buyer.headers).json():
        assert time.monotonic() < deadline, "the orders did not fill"
        time.sleep(0.05)


def test_the_leaderboard_ranks_by_equity_and_names_only_who_opted_in(venue: Venue) -> None:
    symbol = venue.symbol("10.00")
    rich = venue.account("500000.00")
    seller = venue.account("0", **{symbol: "100"})
    shy = venue.account("123.45")
    assert set_profile(
        venue, rich, display_name="  Ada   L. ", show_on_leaderboard=True
    ).json() == {
        "display_name": "Ada L.",
        "show_on_leaderboard": True,
    }
    # A name without the opt-in is not shown.
    assert set_profile(venue, shy, display_name="Shy").status_code == 200

    # The seller's 100 shares are worth 10.00 each until a trade moves the price to 10.50.
    fill(venue, rich, seller, symbol, "1", "10.50")
    rows = board(venue, seller)
    by_you = {row["you"]: row for row in rows}
    assert by_you[True]["equity"] == "1050.00"  # 99 shares at 10.50, plus 10.50 cash
    assert by_you[True]["display_name"] is None
    ada = [row for row in rows if row["display_name"] == "Ada L."]
    assert len(ada) == 1
    assert ada[0]["equity"] == "500000.00"  # 499,989.50 cash and one share at 10.50
    assert "Shy" not in {row["display_name"] for row in rows}
    equities = [int(row["equity"].replace(".", "")) for row in rows]
    assert equities == sorted(equities, reverse=True)
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    assert sum(row["you"] for row in rows) == 1
    # Without a key, nobody is "you"; the public view carries no ids.
    public = board(venue)
    assert not any(row["you"] for row in public)
    assert all(set(row) == {"rank", "display_name", "equity", "you"} for row in public)

    # Opting out hides the name again.
    set_profile(venue, rich, show_on_leaderboard=False)
    assert "Ada L." not in {row["display_name"] for row in board(venue)}


def test_a_profile_is_checked(venue: Venue) -> None:
    account = venue.account("1.00")
    got = httpx.get(venue.url + "/v1/profile", headers=account.headers)
    assert got.json() == {"display_name": None, "show_on_leaderboard": False}
    for body, status in [
        ({"show_on_leaderboard": True}, 422),  # no name to show
        ({"display_name": "x" * 33}, 422),
        ({"display_name": "bell\x07"}, 422),
        ({"display_name": 5}, 422),
        ({"nickname": "x"}, 422),
    ]:
        response = set_profile(venue, account, **body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"code", "message"}
    assert httpx.patch(venue.url + "/v1/profile", json={"display_name": "x"}).status_code == 401
    assert httpx.get(venue.url + "/v1/profile").status_code == 401


def test_a_demo_account_has_demo_cash_and_shares(venue: Venue) -> None:
    assert httpx.get(venue.url + "/v1/demo").json() == {"enabled": True}
    made = httpx.post(venue.url + "/v1/demo/accounts")
    assert made.status_code == 200, made.text
    demo = made.json()
    assert set(demo) == {"id", "key_id", "secret_key"}
    headers = {"APCA-API-KEY-ID": demo["key_id"], "APCA-API-SECRET-KEY": demo["secret_key"]}
    account = httpx.get(venue.url + "/v2/account", headers=headers).json()
    assert account["id"] == demo["id"]
    assert account["cash"] == "100000.00"
    positions = httpx.get(venue.url + "/v2/positions", headers=headers).json()
    assert {"ACME", "GLOBEX", "INITECH"} <= {position["symbol"] for position in positions}
    assert all(position["qty"] == "100" for position in positions)


def test_demo_accounts_are_rate_limited(venue: Venue) -> None:
    with another_gateway(venue, "--demo") as url:
        statuses = [httpx.post(url + "/v1/demo/accounts").status_code for _ in range(6)]
    assert statuses[:3] == [200] * 3  # the burst
    assert statuses[3:] == [429] * 3


@pytest.fixture
def plain_gateway(venue: Venue) -> Iterator[str]:
    """A gateway not in demo mode."""
    with another_gateway(venue) as url:
        yield url


def test_no_demo_accounts_outside_demo_mode(plain_gateway: str) -> None:
    assert httpx.get(plain_gateway + "/v1/demo").json() == {"enabled": False}
    refused = httpx.post(plain_gateway + "/v1/demo/accounts")
    assert refused.status_code == 404
    assert set(refused.json()) == {"code", "message"}
    # The leaderboard is public on every gateway.
    assert httpx.get(plain_gateway + "/v1/leaderboard").status_code == 200


def test_the_page_and_its_chart_library_are_served(venue: Venue) -> None:
    page = httpx.get(venue.url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/page/app.js">' in page.text
    library = httpx.get(venue.url + "/vendor/lightweight-charts.mjs")
    assert library.status_code == 200, "run `npm ci` in src/tradepit/web (make does)"
    assert "javascript" in library.headers["content-type"]
    assert httpx.get(venue.url + "/page/app.js").status_code == 200
    missing = httpx.get(venue.url + "/page/../package.json")
    assert missing.status_code == 404
