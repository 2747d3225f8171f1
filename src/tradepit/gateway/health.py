"""What an orchestrator and Prometheus ask a gateway: `/livez` (the process answers), `/readyz`
(it can take orders: its Valkey answers and no stage is behind by more than `ready_lag`) and
`/metrics` (Prometheus' text format).

The health answers are `application/health+json`, as the IETF's draft on health checks shapes
them: a `status` of pass or fail, and `checks` by component and measurement.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tradepit.gateway.docs import error_responses
from tradepit.gateway.errors import ApiError
from tradepit.gateway.service import Gateway
from tradepit.gateway.web import gateway_of, public
from tradepit.store import server
from tradepit.store.errors import StoreError
from tradepit.store.lag import ShardLag, venue_lag

__all__ = ["router", "HEALTH_JSON", "READY_CACHE_SECONDS", "readiness"]

router = APIRouter(tags=["operations"], responses=error_responses(429))

HEALTH_JSON = "application/health+json"
PING_TIMEOUT = 1.0  # seconds: a Valkey slower than this to answer a PING is not ready
READY_CACHE_SECONDS = 1.0  # probes come often, and each reads every shard's checkpoints
_NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "not ready: the checks, and what failed",
        "content": {HEALTH_JSON: {"schema": {"type": "object"}}},
    }
}


@router.get("/livez", dependencies=[Depends(public)])
async def livez() -> Response:
    """The process is up and its event loop turns. It asks nothing of anyone."""
    return _health({"status": "pass"}, 200)


@router.get("/readyz", dependencies=[Depends(public)], responses=_NOT_READY)
async def readyz(request: Request) -> Response:
    """Whether the gateway can take orders: 200, or 503 with the checks that failed."""
    body = await readiness(gateway_of(request))
    return _health(body, 200 if body["status"] == "pass" else 503)


@router.get("/metrics", dependencies=[Depends(public)], responses=error_responses(404))
async def metrics(request: Request) -> Response:
    """The gateway's metrics, in Prometheus' text format (404 with --no-metrics)."""
    counted = gateway_of(request).metrics
    if counted is None:
        raise ApiError.not_found("metrics are off on this gateway (--no-metrics)")
    return Response(generate_latest(counted.registry), media_type=CONTENT_TYPE_LATEST)


async def readiness(gateway: Gateway) -> dict[str, Any]:
    """The checks of /readyz, made at most once a `READY_CACHE_SECONDS`."""
    cached = gateway.readiness_cache
    now = time.monotonic()
    if cached is not None and now - cached[0] < READY_CACHE_SECONDS:
        return cached[1]
    body = await _check(gateway)
    gateway.readiness_cache = (now, body)
    return body


async def _check(gateway: Gateway) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(server.ping(gateway.redis), PING_TIMEOUT)
        lags = await asyncio.wait_for(venue_lag(gateway.redis, gateway.client.config), 5.0)
    except (StoreError, OSError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        return {
            "status": "fail",
            "checks": {"valkey:responseTime": [{"status": "fail", "output": reason}]},
        }
    answered_ms = round((time.perf_counter() - started) * 1e3, 3)
    now_ms = time.time_ns() // 1_000_000
    stages = [_stage_check(lag, now_ms, gateway.settings.ready_lag) for lag in lags]
    passing = all(check["status"] == "pass" for check in stages)
    return {
        "status": "pass" if passing else "fail",
        "checks": {
            "valkey:responseTime": [
                {"status": "pass", "observedValue": answered_ms, "observedUnit": "ms"}
            ],
            "stages:lag": stages,
        },
    }


def _stage_check(lag: ShardLag, now_ms: int, bound: float) -> dict[str, Any]:
    seconds = round(lag.seconds(now_ms), 3)
    check: dict[str, Any] = {
        "componentId": lag.shard,
        "status": "pass" if seconds <= bound else "fail",
        "observedValue": seconds,
        "observedUnit": "s",
    }
    if seconds > bound:
        check["output"] = (
            f"{lag.entries} inbox entries wait, the oldest for {seconds:g} s (bound {bound:g} s)"
        )
    return check


def _health(body: dict[str, Any], status: int) -> Response:
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type=HEALTH_JSON,
        headers={"cache-control": "no-store"},
    )
