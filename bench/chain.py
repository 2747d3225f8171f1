"""The gateway's chain of layers alone (gateway/chain): its CPU per request, in front of a route.

    python bench/chain.py [--requests N] [--rounds K]

The chain as the gateway builds it (`build_chain`, default settings but no rate limits), and the
same chain without its metrics layer take N requests, alternately a `POST` with a Content-Length
and a body (as a submit) and a `DELETE` without one (as a cancel), each to a trivial plain-ASGI
route that reads its body and answers 200; then the route takes the same N alone. The figures
are this process's CPU time per request, medians of K alternating rounds, and their differences:
what every request pays the chain, and its metrics. The routes need no key (a key's lookup,
cached, is KeyStore's and was paid before the chain too), so no Redis is needed: nothing
connects.

It measures what `bench/http.py` cannot see on a shared 2-core machine: a change of a fraction
of a microsecond per request, for a layer added to the chain (metrics, say). A warm loop
flatters every layer: in the gateway each request runs among the venue's other work, colder.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory is first on the path, where bench/http.py would shadow
# the standard library's `http`, which Starlette imports: take the directory off the path first.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradepit.gateway.chain import Access, Route, RouteTable, build_chain
from tradepit.gateway.service import Gateway
from tradepit.settings import GatewaySettings

HEADERS = [
    (b"host", b"tradepit"),
    (b"apca-api-key-id", b"PK0000000000000000"),
    (b"apca-api-secret-key", b"secret"),
    (b"content-type", b"application/json"),
]
SUBMIT_HEADERS = [*HEADERS, (b"content-length", b"2")]


async def route(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] == "POST":
        await receive()
    headers = [(b"content-length", b"2"), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


async def receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def send(message: Message) -> None:
    pass


def scope_of(method: str) -> dict[str, Any]:
    submit = method == "POST"
    return {
        "type": "http",
        "method": method,
        "path": "/v2/orders" if submit else "/v2/orders/00000000-0000-4000-8000-000000000001",
        "headers": SUBMIT_HEADERS if submit else HEADERS,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def cpu_per_request(app: ASGIApp, requests: int) -> float:
    started = time.process_time()
    for index in range(requests):
        await app(scope_of("POST" if index % 2 == 0 else "DELETE"), receive, send)
    return (time.process_time() - started) / requests * 1e6


def the_chain(metrics: bool = True) -> ASGIApp:
    settings = GatewaySettings(rate_limit=0, public_rate_limit=0, metrics=metrics)
    gateway = Gateway("redis://127.0.0.1:1", settings)
    routes = RouteTable(
        [
            Route("http", frozenset({"POST"}), "/v2/orders", Access.PUBLIC, route),
            Route("http", frozenset({"DELETE"}), "/v2/orders/{order_id}", Access.PUBLIC, route),
        ]
    )
    return build_chain(gateway, routes, route)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20,000 requests, 3 rounds")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rounds = 20_000, 3
    chain, unmetered = the_chain(), the_chain(metrics=False)
    for app in (chain, unmetered):
        await cpu_per_request(app, 2_000)  # warm up
    through, without_metrics, alone = [], [], []
    for _ in range(args.rounds):
        through.append(await cpu_per_request(chain, args.requests))
        without_metrics.append(await cpu_per_request(unmetered, args.requests))
        alone.append(await cpu_per_request(route, args.requests))
    result = {
        "bench": "chain",
        "requests": args.requests,
        "rounds": args.rounds,
        "chain_us": round(statistics.median(through), 3),
        "chain_without_metrics_us": round(statistics.median(without_metrics), 3),
        "route_alone_us": round(statistics.median(alone), 3),
        "chain_cost_us": round(statistics.median(through) - statistics.median(alone), 3),
        "metrics_cost_us": round(
            statistics.median(through) - statistics.median(without_metrics), 3
        ),
    }
    print(
        f"per request: through the chain {result['chain_us']} us ("
        f"{result['chain_without_metrics_us']} us without its metrics layer), the route alone "
        f"{result['route_alone_us']} us: the chain {result['chain_cost_us']} us, its metrics "
        f"{result['metrics_cost_us']} us"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
