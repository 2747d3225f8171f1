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
    # The key just seen is checked from the gateway's cache: a wrong secret is as wrong there.
    assert http.get("/v2/account", headers=trader.headers).status_code == 200
    assert_error(http.get("/v2/account", headers=wrong), 401)
    too_long = {**trader.headers, "APCA-API-SECRET-KEY": trader.secret_key + "x" * 5000}
    assert_error(http.get("/v2/account", headers=too_long), 401)
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
        ({**good, "trail_percent": "1"}, 422),  # (a price far off the band rests: the book's)
        ({**good, "limit_price": None}, 422),
        ({**good, "side": "short"}, 422),
        ({**good, "type": "trailing_stop"}, 422),
        (
            {**good, "type": "trailing_stop", "limit_price": None, "trail_price": "1"}
            | {"trail_percent": "1"},
            422,
        ),
        ({**good, "type": "trailing_stop", "limit_price": None, "trail_percent": "100"}, 422),
        ({**good, "type": "trailing_stop", "limit_price": None, "trail_percent": "0.00001"}, 422),
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
            # The hot route (plain ASGI) answers the same, from the same bucket.
            orders = [client.post("/v2/orders", content=b"") for _ in range(40)]
        statuses = [response.status_code for response in responses]
        assert statuses[:10] == [200] * 10  # the burst: twice the rate
        assert 429 in statuses
        # The refusal itself, not one more request: a token may have refilled since.
        refusal = responses[statuses.index(429)]
        assert_error(refusal, 429)
        assert refusal.headers["Retry-After"] == "1"  # a token every 0.2 s: within a second
        hot = next(response for response in orders if response.status_code == 429)
        assert_error(hot, 429)
        assert hot.headers["Retry-After"] == "1"


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


# JSON nested ~1,000 levels deep: a few kB that once sent the decoder past Python's recursion
# limit (a 500 on REST, a dropped connection on the streams).
DEEP_ARRAY = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000
DEEP_IN_A_FIELD = b'{"symbol": "ACME", "side": "buy", "legs": ' + DEEP_ARRAY + b"}"
DEEP_MSGPACK = b"\x91" * 1000 + b"\x90"  # arrays of one array, 1,000 deep
DEEP_BODIES = (DEEP_ARRAY, DEEP_OBJECT, DEEP_IN_A_FIELD)


def test_deeply_nested_bodies_are_refused_on_every_route(
    venue: Venue, http: httpx.Client, trader: Account
) -> None:
    before = balances(http, trader)
    order_id = "00000000-0000-4000-8000-000000000001"
    routes = [
        ("POST", "/v2/orders", trader.headers),  # the hot path, in plain ASGI
        ("PATCH", f"/v2/orders/{order_id}", trader.headers),
        ("PATCH", "/v2/account/configurations", trader.headers),
        ("POST", "/v2/watchlists", trader.headers),
        ("PATCH", "/v1/profile", trader.headers),
        ("POST", "/admin/accounts", venue.admin_headers),
        ("POST", "/admin/symbols", venue.admin_headers),
    ]
    for method, path, headers in routes:
        for body in DEEP_BODIES:
            response = http.request(
                method,
                path,
                content=body,
                headers={**headers, "Content-Type": "application/json"},
            )
            # Refused for its nesting, or earlier, for what its first bytes are: an array where
            # an object belongs, a field the route does not take.
            assert response.status_code in (400, 422), (method, path, response.text)
            error = assert_error(response, response.status_code)
            if response.status_code == 400:
                assert "nested too deeply" in error["message"], (method, path, error)
    for method, path in (("POST", "/v2/orders"), ("PATCH", f"/v2/orders/{order_id}")):
        for body in (DEEP_OBJECT, DEEP_IN_A_FIELD):
            response = http.request(
                method,
                path,
                content=body,
                headers={**trader.headers, "Content-Type": "application/json"},
            )
            assert "nested too deeply" in assert_error(response, 400)["message"]
    # Nesting the order's types never need is fine when shallow: refused for what it says.
    shallow = b'{"symbol": "ACME", "side": "buy", "legs": [[[1]]], "time_in_force": "gtc"}'
    response = http.post(
        "/v2/orders",
        content=shallow,
        headers={**trader.headers, "Content-Type": "application/json"},
    )
    assert "nested" not in assert_error(response, 422)["message"]
    assert balances(http, trader) == before


def test_deeply_nested_frames_get_an_error_on_the_trade_updates_stream(
    venue: Venue, trader: Account
) -> None:
    async def talk() -> list[Any]:
        async with websockets.connect(venue.url.replace("http", "ws") + "/stream") as socket:
            replies = []
            for frame in (DEEP_ARRAY.decode(), DEEP_OBJECT.decode(), DEEP_MSGPACK):
                await socket.send(frame)
                replies.append(json.loads(await socket.recv()))
            auth = {
                "action": "authenticate",
                "data": {"key_id": trader.key_id, "secret_key": trader.secret_key},
            }
            await socket.send(json.dumps(auth))
            replies.append(json.loads(await socket.recv()))
            return replies

    replies = asyncio.run(talk())
    for reply in replies[:3]:
        assert reply["stream"] == "listening"
        assert "nested" in reply["data"]["error"]
    assert replies[3]["data"]["status"] == "authorized"  # the connection is still good


def test_deeply_nested_frames_get_an_error_on_the_market_data_stream(
    venue: Venue, trader: Account
) -> None:
    async def talk() -> list[Any]:
        async with websockets.connect(venue.url.replace("http", "ws") + "/v2/iex") as socket:
            replies = [json.loads(await socket.recv())]  # connected
            for frame in (DEEP_ARRAY.decode(), DEEP_OBJECT.decode(), DEEP_MSGPACK):
                await socket.send(frame)
                replies.append(json.loads(await socket.recv()))
            await socket.send(
                json.dumps({"action": "auth", "key": trader.key_id, "secret": trader.secret_key})
            )
            replies.append(json.loads(await socket.recv()))
            return replies

    replies = asyncio.run(talk())
    assert replies[0] == [{"T": "success", "msg": "connected"}]
    for reply in replies[1:4]:
        assert len(reply) == 1 and reply[0]["T"] == "error" and reply[0]["code"] == 400
        assert reply[0]["msg"].startswith("invalid syntax") and "nested" in reply[0]["msg"]
    assert replies[4] == [{"T": "success", "msg": "authenticated"}]


def from_address(venue: Venue, address: str, **options: Any) -> httpx.Client:
    """A client whose connections come from `address` (any of 127.0.0.0/8 reaches the venue on
    127.0.0.1), so that its limits per client address are its own."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=venue.url, transport=transport, timeout=30, **options)


def assert_retry_after(response: httpx.Response) -> int:
    assert_error(response, 429)
    seconds = response.headers["Retry-After"]
    assert seconds.isdigit() and int(seconds) >= 1, seconds
    return int(seconds)


def test_failed_authentications_are_limited_per_address(venue: Venue, trader: Account) -> None:
    wrong = {"APCA-API-KEY-ID": trader.key_id, "APCA-API-SECRET-KEY": "guess"}

    def run_dry(guesser: httpx.Client) -> None:
        """Guess until refused: the address then has no failure left to spend, so that the
        request right after is refused as well (unless it waited a second for a refill)."""
        for _ in range(100):
            if guesser.get("/v2/account", headers=wrong).status_code == 429:
                return
        raise AssertionError("a hundred failures were never refused")

    with from_address(venue, "127.0.0.11") as guesser, from_address(venue, "127.0.0.12") as other:
        # Asking without a key guesses nothing: never counted, never refused for it.
        assert all(guesser.get("/v2/account").status_code == 401 for _ in range(20))
        statuses = [guesser.get("/v2/account", headers=wrong).status_code for _ in range(30)]
        assert statuses[:10] == [401] * 10  # the burst of failures
        assert 429 in statuses
        refused = guesser.get("/v2/account", headers=wrong)
        if refused.status_code == 429:  # (else a failure was refilled meanwhile)
            assert assert_retry_after(refused) == 1  # a failure a second
            assert "failed authentications" in refused.json()["message"]

        # While it waits, even the right key is refused from there, unread: a guess that
        # happens to be right tells the guesser nothing.
        run_dry(guesser)
        assert_retry_after(guesser.get("/v2/account", headers=trader.headers))
        run_dry(guesser)
        assert_retry_after(guesser.post("/v2/orders", headers=trader.headers, json={}))  # hot
        run_dry(guesser)
        assert_retry_after(guesser.delete(f"/v2/orders/{'0' * 8}", headers=trader.headers))

        # Other addresses are not held up: their failures are their own, their keys work.
        assert other.get("/v2/account", headers=wrong).status_code == 401
        assert other.get("/v2/account", headers=trader.headers).status_code == 200
        with httpx.Client(base_url=venue.url, timeout=30) as usual:
            assert usual.get("/v2/account", headers=trader.headers).status_code == 200

        # The streams' authentications are guarded by the same count.
        run_dry(guesser)
        stream_reply, data_reply = asyncio.run(stream_authentications(venue, trader))
    assert stream_reply["data"]["status"] == "unauthorized"
    assert "failed authentications" in stream_reply["data"]["error"]
    assert data_reply[0]["T"] == "error" and data_reply[0]["code"] == 429
    assert "failed authentications" in data_reply[0]["msg"]


async def stream_authentications(venue: Venue, trader: Account) -> tuple[Any, Any]:
    """The right key, sent on each stream from the guessing address."""
    base = venue.url.replace("http", "ws")
    local = ("127.0.0.11", 0)
    async with websockets.connect(base + "/stream", local_addr=local) as socket:
        auth = {
            "action": "authenticate",
            "data": {"key_id": trader.key_id, "secret_key": trader.secret_key},
        }
        await socket.send(json.dumps(auth))
        stream_reply = json.loads(await socket.recv())
    async with websockets.connect(base + "/v2/iex", local_addr=local) as socket:
        await socket.recv()  # connected
        await socket.send(
            json.dumps({"action": "auth", "key": trader.key_id, "secret": trader.secret_key})
        )
        data_reply = json.loads(await socket.recv())
    return stream_reply, data_reply


PUBLIC_ROUTES = ("/v1/leaderboard", "/v1/demo", "/openapi.json", "/docs")


def test_public_routes_are_limited_per_address(venue: Venue, trader: Account) -> None:
    with from_address(venue, "127.0.0.13") as busy, from_address(venue, "127.0.0.14") as other:
        responses = [busy.get(PUBLIC_ROUTES[index % len(PUBLIC_ROUTES)]) for index in range(400)]
        statuses = [response.status_code for response in responses]
        assert statuses[:40] == [200] * 40  # the burst: twice the default 20 a second
        for index, route in enumerate(PUBLIC_ROUTES):  # they share the address's bucket
            refused = [
                response
                for response in responses[index :: len(PUBLIC_ROUTES)]
                if response.status_code == 429
            ]
            assert refused, route
            assert assert_retry_after(refused[0]) == 1  # 20 a second: a token within one
            assert refused[0].json()["message"] == "rate limit exceeded for this address"
        # Other addresses are not held up, nor are routes with a key (limited per key).
        assert other.get("/v1/leaderboard").status_code == 200
        assert busy.get("/v2/account", headers=trader.headers).status_code == 200


def test_the_limits_per_address_are_flags_and_retry_after_is_their_refill(
    venue: Venue, trader: Account
) -> None:
    wrong = {"APCA-API-KEY-ID": trader.key_id, "APCA-API-SECRET-KEY": "guess"}
    flags = ("--public-rate-limit", "0.1", "--auth-failure-burst", "2")
    with another_gateway(venue, *flags) as url, httpx.Client(base_url=url, timeout=30) as client:
        # One request every 10 s, in bursts of one: the next is most of 10 s away.
        assert client.get("/v1/leaderboard").status_code == 200
        refused = client.get("/v1/leaderboard")
        assert 2 <= assert_retry_after(refused) <= 10
        statuses = [client.get("/v2/account", headers=wrong).status_code for _ in range(10)]
        assert statuses[:2] == [401, 401]
        assert 429 in statuses
