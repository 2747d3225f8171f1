"""Bad input, sent with httpx and raw WebSockets: every error is Alpaca's JSON shape with a 4xx
status, none is a 5xx, and the account is unchanged afterwards."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live import Account, Venue, another_gateway


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message"}
    assert isinstance(body["code"], int) and body["code"] // 100_000 == status
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture(scope="module")
def http(venue: Venue) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=venue.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def trader(venue: Venue) -> Account:
    return venue.account("1000.00", ACME="10")


def balances(http: httpx.Client, account: Account) -> tuple[Any, ...]:
    """What an account has, once every order it placed has ended."""
    deadline = time.monotonic() + 10
    while http.get("/v2/orders", headers=account.headers).json() and time.monotonic() < deadline:
        time.sleep(0.05)
    body = http.get("/v2/account", headers=account.headers).json()
    positions = http.get("/v2/positions", headers=account.headers).json()
    return body["cash"], body["buying_power"], [(p["symbol"], p["qty"]) for p in positions]


def test_keys_are_checked(http: httpx.Client, trader: Account) -> None:
    assert_error(http.get("/v2/account"), 401)
    assert_error(http.get("/v2/account", headers={"APCA-API-KEY-ID": trader.key_id}), 401)
    wrong = {**trader.headers, "APCA-API-SECRET-KEY": trader.secret_key + "x"}
    assert_error(http.get("/v2/account", headers=wrong), 401)
    unknown = {**trader.headers, "APCA-API-KEY-ID": "PK" + "0" * 18}
    assert_error(http.get("/v2/account", headers=unknown), 401)
    assert_error(
        http.get("/v2/account", headers={**trader.headers, "APCA-API-KEY-ID": "x" * 5000}), 401
    )
    assert_error(http.post("/admin/accounts", json={}, headers=trader.headers), 403)


def test_malformed_orders_are_refused_and_change_nothing(
    http: httpx.Client, trader: Account
) -> None:
    before = balances(http, trader)
    good = {
        "symbol": "ACME",
        "qty": "1",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "limit_price": "95.00",
    }
    cases: list[tuple[Any, int]] = [
        (b"{not json", 400),
        (b"", 400),
        (b"[1, 2]", 422),
        (b"null", 422),
        ({**good, "qty": True}, 422),
        ({**good, "qty": [1]}, 422),
        ({**good, "qty": "1.5"}, 422),
        ({**good, "qty": "-1"}, 422),
        ({**good, "qty": "0"}, 422),
        ({**good, "qty": "1e999999"}, 422),
        ({**good, "qty": "NaN"}, 422),
        ({**good, "limit_price": "95.001"}, 422),
        ({**good, "limit_price": "500.00"}, 422),
        ({**good, "limit_price": None}, 422),
        ({**good, "side": "short"}, 422),
        ({**good, "type": "trailing_stop"}, 422),
        ({**good, "time_in_force": "opg"}, 422),
        ({**good, "symbol": "NOSUCH"}, 404),
        ({**good, "symbol": 7}, 422),
        ({**good, "client_order_id": "x" * 129}, 422),
        ({**good, "order_class": "bracket"}, 422),
        ({**good, "notional": "100"}, 422),
        ({key: value for key, value in good.items() if key != "side"}, 422),
        ({**good, "qty": "100000"}, 403),
    ]
    for body, status in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = http.post(
            "/v2/orders",
            content=content,
            headers={**trader.headers, "Content-Type": "application/json"},
        )
        assert_error(response, status)
    assert balances(http, trader) == before


def test_oversized_bodies_unknown_routes_and_methods(http: httpx.Client, trader: Account) -> None:
    huge = b'{"symbol": "' + b"A" * 100_000 + b'"}'
    assert_error(http.post("/v2/orders", content=huge, headers=trader.headers), 413)

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    assert_error(http.post("/v2/orders", content=chunks(), headers=trader.headers), 413)
    assert_error(http.get("/v2/nothing-here", headers=trader.headers), 404)
    assert_error(http.put("/v2/account", headers=trader.headers), 405)
    assert_error(http.get("/v2/orders/not-a-uuid", headers=trader.headers), 404)
    assert_error(http.get("/v2/orders", params={"limit": "lots"}, headers=trader.headers), 422)
    assert_error(http.get("/v2/orders", params={"status": "maybe"}, headers=trader.headers), 422)
    assert_error(http.get("/v2/orders", params={"after": "yesterday"}, headers=trader.headers), 422)
    assert_error(http.get("/v2/orders:by_client_order_id", headers=trader.headers), 422)
    assert_error(http.get("/v2/positions/NOSUCH", headers=trader.headers), 404)
    assert_error(
        http.delete("/v2/positions/ACME", params={"percentage": "300"}, headers=trader.headers), 422
    )
    assert_error(
        http.get("/v2/calendar", params={"start": "2026-13-01"}, headers=trader.headers), 422
    )
    assert_error(
        http.get("/v2/account/portfolio/history", params={"period": "9X"}, headers=trader.headers),
        422,
    )


# Hypothesis: bodies built from the order's own field names and hostile values.
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        [
            "1",
            "0.5",
            "95.00",
            "95.001",
            "1e9",
            "buy",
            "sell",
            "limit",
            "market",
            "stop",
            "stop_limit",
            "gtc",
            "day",
            "ioc",
            "fok",
            "ACME",
            "-1",
            "NaN",
        ]
    ),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_fields = st.sampled_from(
    [
        "symbol",
        "qty",
        "notional",
        "side",
        "type",
        "time_in_force",
        "limit_price",
        "stop_price",
        "client_order_id",
        "extended_hours",
        "order_class",
        "post_only",
        "trail_price",
        "legs",
        "other",
    ]
)
_bodies = st.dictionaries(_fields, _values, max_size=9)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_bodies)
def test_fuzzed_order_bodies_never_fail_the_server(
    http: httpx.Client, trader: Account, body: dict[str, Any]
) -> None:
    content = json.dumps(body, allow_nan=True).encode()
    response = http.post(
        "/v2/orders",
        content=content,
        headers={**trader.headers, "Content-Type": "application/json"},
    )
    if response.status_code == 200:  # the fuzz found a valid order: take it back
        order_id = response.json()["id"]
        cancel = http.delete(f"/v2/orders/{order_id}", headers=trader.headers)
        assert cancel.status_code in (204, 422), cancel.text
    else:
        assert_error(response, response.status_code)
        assert response.status_code < 500


def test_after_the_fuzz_the_account_is_as_it_was(http: httpx.Client, trader: Account) -> None:
    assert balances(http, trader) == ("1000.00", "1000.00", [("ACME", "10")])


def test_a_gateway_limits_each_keys_rate(venue: Venue) -> None:
    """A second gateway, with a limit, on the same venue: gateways are stateless."""
    account = venue.account("10.00")
    with another_gateway(venue, "--rate-limit", "5") as url:
        # One keep-alive connection, so that even a loaded machine sends faster than the rate.
        with httpx.Client(base_url=url, headers=account.headers, timeout=30) as client:
            responses = [client.get("/v2/clock") for _ in range(40)]
        statuses = [response.status_code for response in responses]
        assert statuses[:10] == [200] * 10  # the burst: twice the rate
        assert 429 in statuses
        # The refusal itself, not one more request: a token may have refilled since.
        assert_error(responses[statuses.index(429)], 429)


def test_the_stream_survives_garbage(venue: Venue, trader: Account) -> None:
    async def talk() -> list[Any]:
        async with websockets.connect(venue.url.replace("http", "ws") + "/stream") as socket:
            replies = []
            for garbage in (
                b"\x00\xff\xfe",
                "not json",
                "[1,2,3]",
                json.dumps({"action": 5}),
                "x" * 70_000,
            ):
                await socket.send(garbage)
                replies.append(json.loads(await socket.recv()))
            await socket.send(
                json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})
            )
            replies.append(json.loads(await socket.recv()))
            auth = {
                "action": "authenticate",
                "data": {"key_id": trader.key_id, "secret_key": trader.secret_key},
            }
            await socket.send(json.dumps(auth))
            replies.append(json.loads(await socket.recv()))
            return replies

    replies = asyncio.run(talk())
    assert all("error" in reply["data"] for reply in replies[:5])
    assert replies[5]["data"]["status"] == "unauthorized"
    assert replies[6]["data"]["status"] == "authorized"


def test_the_stream_refuses_bad_keys(venue: Venue) -> None:
    async def talk() -> Any:
        async with websockets.connect(venue.url.replace("http", "ws") + "/stream") as socket:
            await socket.send(
                json.dumps(
                    {"action": "authenticate", "data": {"key_id": "PK1", "secret_key": "no"}}
                )
            )
            reply = json.loads(await socket.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await socket.recv()
            return reply

    assert asyncio.run(talk())["data"]["status"] == "unauthorized"
