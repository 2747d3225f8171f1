"""Every route passes the one chain (gateway/chain), the hot routes as FastAPI's: walked from
the app's own route table, each needs the key it declares (401 without, 403 for an admin route
with a trader's key), refuses a body over the cap (413, `Connection: close`), and is rate
limited (429 with Retry-After), but the static files, which are declared open. Every answer
carries a request id, and a gateway asked to logs one JSON line per request."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import Account, Venue, another_gateway, eventually
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from tradepit.embedded import free_port
from tradepit.gateway.app import build_app
from tradepit.gateway.chain import Access, Route
from tradepit.settings import GatewaySettings

# The table the running gateway built, built the same way here (nothing connects).
ROUTES = [route for route in build_app("redis://127.0.0.1:1").routes if route.kind == "http"]
NEEDS_A_KEY = [route for route in ROUTES if route.access in (Access.KEY, Access.ADMIN)]
LIMITED = [route for route in ROUTES if route.access is not Access.OPEN]
CAP = GatewaySettings().max_body_bytes


def _id(route: Route) -> str:
    return f"{_method(route)} {route.template}"


def _method(route: Route) -> str:
    return min(route.methods) if route.methods else "GET"


def _path(route: Route) -> str:
    """The route's template with a value for each parameter: a random id, or a symbol no test
    trades (an admin route must halt nothing real)."""

    def value(found: re.Match[str]) -> str:
        name = found[1]
        if name.endswith("_id"):
            return str(uuid.uuid4())
        return {"path": "app.js", "name": "swagger-ui.css", "activity_type": "FILL"}.get(
            name, "NOSUCH"
        )

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, route.template)


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    if response.request.method == "HEAD":
        return {}
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message"} and body["code"] // 100_000 == status
    return body


@pytest.fixture(scope="module")
def trader(venue: Venue) -> Account:
    return venue.account("100.00")


@pytest.fixture(scope="module")
def http(venue: Venue) -> Iterator[httpx.Client]:
    # An address of its own: its unauthenticated requests are no other test's failures.
    transport = httpx.HTTPTransport(local_address="127.0.0.31")
    with httpx.Client(base_url=venue.url, transport=transport, timeout=30) as client:
        yield client


def test_the_walk_covers_the_hot_routes() -> None:
    hot = {_id(route) for route in ROUTES if route.handler is not None}
    assert hot == {"POST /v2/orders", "DELETE /v2/orders/{order_id}"}
    assert all(route.access is Access.KEY for route in ROUTES if route.handler is not None)


@pytest.mark.parametrize("route", NEEDS_A_KEY, ids=_id)
def test_every_route_that_needs_a_key_refuses_a_request_without_one(
    http: httpx.Client, venue: Venue, trader: Account, route: Route
) -> None:
    body = assert_error(http.request(_method(route), _path(route)), 401)
    assert body == {} or "not authorized" in body["message"]
    if route.access is Access.ADMIN:
        refused = http.request(_method(route), _path(route), headers=trader.headers)
        assert "admin key" in assert_error(refused, 403)["message"]


@pytest.mark.parametrize("route", ROUTES, ids=_id)
def test_every_route_refuses_a_body_over_the_cap(http: httpx.Client, route: Route) -> None:
    # Refused for its Content-Length before anything else is looked at: no key needed.
    response = http.request(_method(route), _path(route), content=b" " * (CAP + 1))
    body = assert_error(response, 413)
    assert body == {} or str(CAP) in body["message"]
    assert response.headers["connection"] == "close"


def _chunks() -> Iterator[bytes]:
    for _ in range(CAP // 1024 + 2):
        yield b" " * 1024


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("POST", "/v2/orders", False),  # hot
        ("PATCH", f"/v2/orders/{uuid.uuid4()}", False),
        ("PATCH", "/v2/account/configurations", False),
        ("POST", "/admin/accounts", True),
    ],
)
def test_a_body_without_a_length_is_cut_at_the_cap(
    http: httpx.Client, venue: Venue, trader: Account, method: str, path: str, admin: bool
) -> None:
    headers = venue.admin_headers if admin else trader.headers
    response = http.request(method, path, content=_chunks(), headers=headers)
    assert_error(response, 413)
    assert response.headers["connection"] == "close"


# One token per bucket, refilled in ~17 minutes: once spent, every request finds it empty.
SLOW = ("--rate-limit", "0.001", "--public-rate-limit", "0.001")


def test_every_route_but_the_static_files_is_rate_limited(venue: Venue, trader: Account) -> None:
    transport = httpx.HTTPTransport(local_address="127.0.0.32")
    with (
        another_gateway(venue, *SLOW) as url,
        httpx.Client(base_url=url, transport=transport, timeout=30) as client,
    ):
        # Each bucket's one token, spent where it changes nothing: the trader's key, the admin
        # key, this address's public routes.
        assert client.get("/v2/clock", headers=trader.headers).status_code == 200
        assert client.get("/admin/accounts", headers=venue.admin_headers).status_code == 200
        assert client.get("/v1/demo").status_code == 200
        for route in LIMITED:
            headers = venue.admin_headers if route.access is Access.ADMIN else trader.headers
            response = client.request(_method(route), _path(route), headers=headers)
            assert_error(response, 429)
            assert int(response.headers["retry-after"]) >= 1, _id(route)
        for route in ROUTES:
            if route.access is Access.OPEN:
                assert client.request(_method(route), _path(route)).status_code != 429


def test_every_answer_carries_a_request_id(
    http: httpx.Client, venue: Venue, trader: Account
) -> None:
    for method, path, headers in (
        ("POST", "/v2/orders", trader.headers),  # hot: a 400, its body is empty
        ("DELETE", f"/v2/orders/{uuid.uuid4()}", trader.headers),  # hot: a 404
        ("GET", "/v2/clock", trader.headers),
        ("GET", "/v2/account", {}),  # refused by the chain: a 401
        ("GET", "/v2/nothing-here", {}),  # FastAPI's 404
        ("GET", "/", {}),
    ):
        made = http.request(method, path, headers=headers).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", made), (path, made)
        echoed = http.request(method, path, headers={**headers, "X-Request-ID": "bot-7:a.b_c"})
        assert echoed.headers["x-request-id"] == "bot-7:a.b_c"
        insane = http.request(method, path, headers={**headers, "X-Request-ID": "a b\tc"})
        assert re.fullmatch(r"[0-9a-f]{32}", insane.headers["x-request-id"])
    ids = {http.get("/v2/clock", headers=trader.headers).headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def _gateway_logging(venue: Venue, log: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "tradepit.cli", "--redis-url", venue.redis_url, "run"]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "gateway", "--port", str(port), *flags],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/v2/clock", timeout=1)
            return process, url
        except httpx.TransportError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)


def _access_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        if " tradepit.access INFO " in line:
            lines.append(json.loads(line.split(" tradepit.access INFO ", 1)[1]))
    return lines


def test_the_access_log_has_one_line_per_request(
    venue: Venue, trader: Account, tmp_path: Path
) -> None:
    log = tmp_path / "gateway.log"
    process, url = _gateway_logging(venue, log, "--access-log-sample", "1")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            order_id = str(uuid.uuid4())
            client.delete(
                f"/v2/orders/{order_id}", headers={**trader.headers, "X-Request-ID": "cancel-1"}
            )
            client.get("/v2/account", headers={"X-Request-ID": "nokey-1"})

        def logged() -> dict[str, dict[str, Any]]:
            found = {line["request_id"]: line for line in _access_lines(log)}
            return found if {"cancel-1", "nokey-1"} <= set(found) else {}

        lines = eventually(logged)
        assert lines, log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    cancel, nokey = lines["cancel-1"], lines["nokey-1"]
    assert cancel["method"] == "DELETE" and cancel["route"] == "/v2/orders/{order_id}"
    assert cancel["status"] == 404 and cancel["key_id"] == trader.key_id
    assert cancel["client"] == "127.0.0.1" and cancel["ms"] >= 0
    assert nokey["route"] == "/v2/account" and nokey["status"] == 401
    assert nokey["key_id"] is None


def test_the_access_log_is_off_by_default(venue: Venue, trader: Account, tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    process, url = _gateway_logging(venue, log)
    try:
        for _ in range(3):
            assert httpx.get(url + "/v2/clock", headers=trader.headers).status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    assert _access_lines(log) == []


def _ws(url: str) -> str:
    return url.replace("http", "ws", 1)


def test_the_streams_answer_with_or_without_a_trailing_slash(venue: Venue, trader: Account) -> None:
    """The legacy SDK's Stream connects to /stream/ (and its data stream may to /v2/iex/): one
    route each, with the slash or without, counted as one stream."""
    for path in ("/stream", "/stream/"):
        with websocket_connect(_ws(venue.url) + path) as socket:
            socket.send(json.dumps({"action": "authenticate", "data": trader_keys(trader)}))
            assert json.loads(socket.recv(10))["data"]["status"] == "authorized"
            socket.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
            assert json.loads(socket.recv(10)) == {
                "stream": "listening",
                "data": {"streams": ["trade_updates"]},
            }
            if path == "/stream/":
                streams = {
                    sample.labels["stream"]
                    for family in text_string_to_metric_families(
                        httpx.get(venue.url + "/metrics").text
                    )
                    for sample in family.samples
                    if sample.name == "tradepit_websocket_clients"
                }
                assert "/stream" in streams and "/stream/" not in streams
    for path in ("/v2/iex/", "/v2/sip/", "/v2/test/", "/v2/iex"):
        with websocket_connect(_ws(venue.url) + path) as socket:
            assert json.loads(socket.recv(10)) == [{"T": "success", "msg": "connected"}]
            socket.send(
                json.dumps({"action": "auth", "key": trader.key_id, "secret": trader.secret_key})
            )
            assert json.loads(socket.recv(10)) == [{"T": "success", "msg": "authenticated"}]


def trader_keys(trader: Account) -> dict[str, str]:
    return {"key_id": trader.key_id, "secret_key": trader.secret_key}


def test_a_refused_upgrade_is_logged_once_per_client_per_interval(
    venue: Venue, tmp_path: Path
) -> None:
    log = tmp_path / "gateway.log"
    process, url = _gateway_logging(venue, log, "--access-log-sample", "1")
    try:
        for _ in range(5):  # a reconnect storm, as the legacy SDK's on a path with no route
            with pytest.raises(InvalidStatus) as refused:
                websocket_connect(_ws(url) + "/v2/nothing-here", open_timeout=10)
            assert refused.value.response.status_code == 403
        with websocket_connect(_ws(url) + "/stream/", open_timeout=10) as socket:
            socket.send(json.dumps({"action": "listen", "data": {"streams": []}}))
            assert json.loads(socket.recv(10))["data"]["status"] == "unauthorized"

        def sessions() -> list[dict[str, Any]]:
            return [line for line in _access_lines(log) if line["route"] == "/stream"]

        stream_sessions = eventually(sessions)
        assert stream_sessions, log.read_text()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    text = log.read_text(errors="replace")
    refusals = [line for line in text.splitlines() if "refused a WebSocket upgrade" in line]
    assert len(refusals) == 1, text
    assert "127.0.0.1" in refusals[0] and "'/v2/nothing-here'" in refusals[0]
    assert "/stream" not in "".join(refusals)  # the slash found its route
