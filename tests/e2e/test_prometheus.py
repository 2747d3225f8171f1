"""A real Prometheus server (Debian's `prometheus`, which `make test` installs) scrapes the running
venue, its gateway and its stages, as the README's scrape config has it, and its query API
answers with the venue's counts."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from live import Venue, eventually

from tradepit.embedded import free_port

PROMETHEUS = Path("/usr/bin/prometheus")
pytestmark = pytest.mark.skipif(
    not PROMETHEUS.exists(), reason="needs Debian's prometheus: `make test` installs it"
)

ORDER = {"qty": "1", "side": "buy", "type": "limit", "time_in_force": "gtc", "limit_price": "95.00"}


@contextlib.contextmanager
def prometheus(directory: Path, targets: list[str]) -> Iterator[str]:
    """Prometheus scraping `targets` (host:port) every second; yields its URL once it is up."""
    config = directory / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n"
        "scrape_configs:\n  - job_name: tradepit\n    static_configs:\n"
        f"      - targets: [{', '.join(repr(target) for target in targets)}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "prometheus did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query(url: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/v1/query", params={"query": expression}).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def test_prometheus_scrapes_the_venue_and_sees_the_orders(venue: Venue, tmp_path: Path) -> None:
    assert venue.stage_metrics_url is not None, "serve did not say where the stages' metrics are"
    gateway, stages = urlsplit(venue.url).netloc, urlsplit(venue.stage_metrics_url).netloc
    with prometheus(tmp_path, [gateway, stages]) as url:
        assert eventually(
            lambda: [t["health"] for t in _targets(url)] == ["up", "up"], timeout=20
        ), _targets(url)
        trader = venue.account()
        symbol = venue.symbol()
        before = _accepted(url)
        with httpx.Client(base_url=venue.url, headers=trader.headers) as http:
            for _ in range(3):
                placed = http.post("/v2/orders", json={**ORDER, "symbol": symbol})
                assert placed.status_code == 200, placed.text
        assert eventually(lambda: _accepted(url) >= before + 3, timeout=20), _accepted(url)
        # The median submit since the start, from the histogram's buckets.
        latency = query(
            url,
            "histogram_quantile(0.5, sum by (le) "
            '(tradepit_http_request_duration_seconds_bucket{route="/v2/orders"}))',
        )
        assert latency and 0 < float(latency[0]["value"][1]) < 10, latency
        # The stages' own: the ledger shard committed those orders in batches.
        batches = query(url, 'tradepit_stage_batches_total{shard="l0"}')
        assert batches and float(batches[0]["value"][1]) > 0, batches


def _targets(url: str) -> list[dict[str, Any]]:
    answer = httpx.get(url + "/api/v1/targets").json()
    targets: list[dict[str, Any]] = answer["data"]["activeTargets"]
    return targets


def _accepted(url: str) -> float:
    return sum(float(r["value"][1]) for r in query(url, "tradepit_orders_accepted_total"))
