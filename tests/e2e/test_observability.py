"""What an operator sees of a running gateway: /livez, /readyz and /metrics, with real clients
(httpx, websockets) against the venue `tradepit serve` runs."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable

import httpx
import websockets
from live import Venue, another_gateway, eventually
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

HEALTH_JSON = "application/health+json"
ORDER = {"qty": "1", "side": "buy", "type": "limit", "time_in_force": "gtc", "limit_price": "95.00"}


def samples(url: str, name: str) -> list[Sample]:
    text = httpx.get(url + "/metrics").text
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(found: Iterable[Sample], **labels: str) -> float:
    return sum(s.value for s in found if all(s.labels.get(k) == v for k, v in labels.items()))


def test_livez_and_readyz_answer_health_json(venue: Venue) -> None:
    live = httpx.get(venue.url + "/livez")
    assert (live.status_code, live.headers["content-type"]) == (200, HEALTH_JSON)
    assert live.json() == {"status": "pass"}
    ready = httpx.get(venue.url + "/readyz")
    assert (ready.status_code, ready.headers["content-type"]) == (200, HEALTH_JSON), ready.text
    body = ready.json()
    assert body["status"] == "pass"
    assert body["checks"]["valkey:responseTime"][0]["status"] == "pass"
    shards = {check["componentId"] for check in body["checks"]["stages:lag"]}
    assert {"l0", "m0", "d0"} <= shards
    assert all(check["observedUnit"] == "s" for check in body["checks"]["stages:lag"])


def test_orders_and_requests_are_counted(venue: Venue) -> None:
    trader = venue.account()
    symbol = venue.symbol()
    accepted_before = value(samples(venue.url, "tradepit_orders_accepted_total"), type="limit")
    acks_before = value(samples(venue.url, "tradepit_order_ack_seconds_count"))
    with httpx.Client(base_url=venue.url, headers=trader.headers) as http:
        placed = http.post("/v2/orders", json={**ORDER, "symbol": symbol})
        assert placed.status_code == 200, placed.text
        assert http.delete(f"/v2/orders/{placed.json()['id']}").status_code == 204
        too_big = http.post("/v2/orders", json={**ORDER, "symbol": symbol, "qty": "10000000"})
        assert too_big.status_code == 403, too_big.text
        unknown = http.post("/v2/orders", json={**ORDER, "symbol": "NOSUCH"})
        assert unknown.status_code in (404, 422), unknown.text
    assert value(samples(venue.url, "tradepit_orders_accepted_total"), type="limit") == (
        accepted_before + 1
    )
    assert value(samples(venue.url, "tradepit_order_ack_seconds_count")) == acks_before + 1
    refused = samples(venue.url, "tradepit_orders_refused_total")
    assert value(refused, reason="insufficient_buying_power") >= 1, refused
    # Every reason is a word, never the request's own text.
    assert all(re.fullmatch(r"[a-z_]+", s.labels["reason"]) for s in refused)
    requests = samples(venue.url, "tradepit_http_request_duration_seconds_count")
    assert value(requests, method="POST", route="/v2/orders", status="200") >= 1
    assert value(requests, method="DELETE", route="/v2/orders/{order_id}", status="204") >= 1
    assert value(requests, method="POST", route="/v2/orders", status="403") >= 1
    # The routes are templates: no order id, key id or account id in any label.
    secrets = {placed.json()["id"], trader.key_id, placed.json()["client_order_id"]}
    text = httpx.get(venue.url + "/metrics").text
    assert not any(secret in text for secret in secrets)
    buckets = [
        s
        for s in samples(venue.url, "tradepit_http_request_duration_seconds_bucket")
        if s.labels["route"] == "/v2/orders"
    ]
    assert {"0.0001", "0.0005", "0.001", "+Inf"} <= {s.labels["le"] for s in buckets}


def test_an_unmatched_path_is_one_series(venue: Venue) -> None:
    for path in ("/nothing/1", "/nothing/2", "/v9/else"):
        assert httpx.get(venue.url + path).status_code == 404
    routes = {
        s.labels["route"]
        for s in samples(venue.url, "tradepit_http_request_duration_seconds_count")
    }
    assert "unmatched" in routes
    assert not any(route.startswith("/nothing") for route in routes)


def test_stream_clients_and_frames_are_counted(venue: Venue) -> None:
    trader = venue.account()
    stream_url = venue.url.replace("http://", "ws://") + "/stream"

    async def session() -> None:
        async with websockets.connect(stream_url) as socket:
            auth = {"key_id": trader.key_id, "secret_key": trader.secret_key}
            await socket.send(json.dumps({"action": "authenticate", "data": auth}))
            await socket.recv()
            connected = await asyncio.to_thread(
                eventually,
                lambda: (
                    value(samples(venue.url, "tradepit_websocket_clients"), stream="/stream") >= 1
                ),
            )
            assert connected
            frames = value(
                samples(venue.url, "tradepit_websocket_frames_sent_total"), stream="/stream"
            )
            assert frames >= 1
            sent = value(
                samples(venue.url, "tradepit_websocket_bytes_sent_total"), stream="/stream"
            )
            assert sent > frames

    asyncio.run(session())
    assert eventually(
        lambda: value(samples(venue.url, "tradepit_websocket_clients"), stream="/stream") == 0
    )


def test_a_burst_is_counted_by_its_limit(venue: Venue) -> None:
    trader = venue.account()
    with another_gateway(venue, "--rate-limit", "5") as url:
        statuses = [
            httpx.get(url + "/v2/account", headers=trader.headers).status_code for _ in range(30)
        ]
        assert 429 in statuses
        limited = samples(url, "tradepit_http_requests_rate_limited_total")
        assert value(limited, limit="key") == statuses.count(429)


def test_metrics_can_be_turned_off(venue: Venue) -> None:
    with another_gateway(venue, "--no-metrics") as url:
        off = httpx.get(url + "/metrics")
        assert off.status_code == 404
        assert "metrics are off" in off.json()["message"]
        assert httpx.get(url + "/readyz").status_code == 200
