"""The gateway's own counting (metrics/gateway.py): what a scrape reads back is what was counted,
in Prometheus' text format, parsed by prometheus_client's own parser."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tradepit.client import ReplyTimeoutError
from tradepit.domain.numbers import NumberError
from tradepit.domain.refusals import Refusal
from tradepit.gateway.errors import ApiError, refusal_reason
from tradepit.metrics.gateway import LATENCY_BUCKETS, GatewayMetrics


def scrape(metrics: GatewayMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(metrics.registry).decode()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


@given(st.lists(st.floats(0, 20, allow_nan=False), max_size=50))
def test_a_histogram_reads_back_cumulative_as_observed(values: list[float]) -> None:
    metrics = GatewayMetrics()
    for value in values:
        metrics.requests.observe(("GET", "/v2/account", "200"), value)
    if not values:
        assert "tradepit_http_request_duration_seconds_count" not in scrape(metrics)
        return
    found = scrape(metrics)
    buckets = {
        labels["le"]: count
        for labels, count in found["tradepit_http_request_duration_seconds_bucket"]
    }
    for bound in LATENCY_BUCKETS:
        expected = bisect.bisect_right(sorted(values), bound)
        assert buckets[str(bound)] == expected, bound
    assert buckets["+Inf"] == len(values)
    [(labels, count)] = found["tradepit_http_request_duration_seconds_count"]
    assert labels == {"method": "GET", "route": "/v2/account", "status": "200"}
    assert count == len(values)
    [(_labels, total)] = found["tradepit_http_request_duration_seconds_sum"]
    assert abs(total - sum(values)) < 1e-6


def test_counts_read_back_by_their_labels() -> None:
    limited = {"key": 3, "address": 1, "auth_failures": 0}
    metrics = GatewayMetrics(lambda: limited)
    metrics.order_accepted("limit", 0.001)
    metrics.order_accepted("limit", 0.002)
    metrics.order_accepted("market", 0.001)
    metrics.order_refused("insufficient_buying_power")
    metrics.websocket_opened("/stream")
    metrics.websocket_opened("/stream")
    metrics.websocket_closed("/stream")
    metrics.frame_sent("/v2/iex", 100)
    metrics.frame_sent("/v2/iex", 50)
    metrics.cut_off("/v2/iex", "queue_full")
    found = scrape(metrics)
    assert sorted(found["tradepit_orders_accepted_total"], key=str) == [
        ({"type": "limit"}, 2.0),
        ({"type": "market"}, 1.0),
    ]
    assert found["tradepit_order_ack_seconds_count"] == [({}, 3.0)]
    assert found["tradepit_orders_refused_total"] == [({"reason": "insufficient_buying_power"}, 1)]
    assert found["tradepit_websocket_clients"] == [({"stream": "/stream"}, 1.0)]
    assert found["tradepit_websocket_frames_sent_total"] == [({"stream": "/v2/iex"}, 2.0)]
    assert found["tradepit_websocket_bytes_sent_total"] == [({"stream": "/v2/iex"}, 150.0)]
    assert found["tradepit_websocket_cutoffs_total"] == [
        ({"stream": "/v2/iex", "reason": "queue_full"}, 1.0)
    ]
    assert {
        labels["limit"]: n for labels, n in found["tradepit_http_requests_rate_limited_total"]
    } == limited
    assert "process_cpu_seconds_total" in found


def test_a_refusal_is_counted_by_a_word() -> None:
    assert refusal_reason(ApiError.refused(Refusal.INSUFFICIENT_BUYING_POWER)) == (
        "insufficient_buying_power"
    )
    assert refusal_reason(ApiError(403, "trading is suspended")) == "forbidden"
    assert refusal_reason(ApiError(429, "slow down")) == "rate_limited"
    assert refusal_reason(NumberError("limit_price", "off the grid")) == "invalid"
    assert refusal_reason(ReplyTimeoutError("no reply")) == "timeout"
    assert refusal_reason(RuntimeError("a bug")) == "error"
