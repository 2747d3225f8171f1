"""The gateway's connection caps and deadlines (`gateway/connections.py`) as logic: the counter,
the cap under the descriptor limit, a connection's deadline through its phases (on a clock the
test turns), and the flags that carry them from `serve` to its gateway process. The same on
the wire: tests/e2e/test_connection_limits.py."""

from __future__ import annotations

import asyncio
import json
import resource
from collections.abc import Iterator

import pytest

from tradepit.cli import _gateway_options, _parser
from tradepit.gateway.connections import (
    DESCRIPTOR_RESERVE,
    ConnectionCounter,
    ConnectionGuard,
    connection_cap,
    error_response,
)
from tradepit.gateway.service import GatewaySettings
from tradepit.venue import GatewayProcess


def test_an_address_holds_at_most_its_cap_and_gets_its_place_back() -> None:
    counter = ConnectionCounter(per_client=2, total=3)
    assert counter.admit("10.0.0.1") is None
    assert counter.admit("10.0.0.1") is None
    refusal = counter.admit("10.0.0.1")
    assert refusal is not None and refusal[0] == 429
    assert counter.admit("10.0.0.2") is None  # another address has its own places
    refusal = counter.admit("10.0.0.3")  # ... until the total is reached
    assert refusal is not None and refusal[0] == 503
    counter.release("10.0.0.1")
    assert counter.admit("10.0.0.1") is None
    for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
        counter.release(address)
    assert counter.total == 0 and counter.held("10.0.0.1") == 0
    assert ConnectionCounter(per_client=0, total=10).admit("x") is None  # 0: no cap


def test_the_total_stays_below_the_descriptor_limit() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    bound = max(soft - DESCRIPTOR_RESERVE, soft // 2)
    assert connection_cap(GatewaySettings(max_connections=0)) == bound
    assert connection_cap(GatewaySettings(max_connections=10)) == 10
    assert connection_cap(GatewaySettings(max_connections=soft * 2)) == bound


def test_an_error_response_ends_its_connection() -> None:
    response = error_response(429, "too many", [(b"date", b"today")])
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 429 Too Many Requests",
        b"date: today",
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    assert json.loads(body) == {"code": 42910000, "message": "too many"}


class _Time:
    """The time a guard reads, turned by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def time() -> _Time:
    return _Time()


@pytest.fixture
def guard(time: _Time) -> Iterator[ConnectionGuard]:
    loop = asyncio.new_event_loop()
    try:
        settings = GatewaySettings(header_timeout=10, body_timeout=5, idle_timeout=30)
        guard = ConnectionGuard(settings, loop)
        guard.time = time
        yield guard
    finally:
        loop.close()


def test_a_deadline_is_set_by_its_phase_not_moved_by_bytes(
    guard: ConnectionGuard, time: _Time
) -> None:
    cut: list[bool] = []
    guard.clock(cut.append)
    time.now += 9.9
    guard.sweep()
    assert cut == []
    time.now += 0.1  # 10 s after the connection began, whatever has come meanwhile
    guard.sweep()
    assert cut == [False]  # nothing was asked: closed without an answer
    assert guard.clocks == set()


def test_a_request_through_its_phases(guard: ConnectionGuard, time: _Time) -> None:
    cut: list[bool] = []
    clock = guard.clock(cut.append)
    clock.request_begun()
    time.now += 2
    clock.head_complete()
    assert clock.deadline == time.now + 5  # the body's time, from the head's end
    clock.body_complete()
    time.now += 1000  # the app has it: no deadline
    guard.sweep()
    assert cut == []
    clock.response_complete()
    assert clock.deadline == time.now + 30  # idle
    time.now += 20
    clock.request_begun()
    assert clock.deadline == time.now + 10  # the head's time, from its first byte
    time.now += 10
    guard.sweep()
    assert cut == [True]  # a request was under way: a 408


def test_a_stalled_body_after_an_early_answer(guard: ConnectionGuard, time: _Time) -> None:
    cut: list[bool] = []
    clock = guard.clock(cut.append)
    clock.request_begun()
    clock.head_complete()
    clock.response_complete()  # answered before its body came (a 401, a 413)
    clock.body_complete()  # the rest of the body, late: the idle wait goes on
    assert clock.deadline == time.now + 30
    clock.request_begun()
    clock.head_complete()
    time.now += 5
    guard.sweep()
    assert cut == [True]


def test_a_pipelined_request_is_timed_from_its_turn(guard: ConnectionGuard, time: _Time) -> None:
    cut: list[bool] = []
    clock = guard.clock(cut.append)
    clock.request_begun()
    clock.head_complete()
    clock.body_complete()
    clock.request_begun()  # the next request's head, while the app has the first
    clock.head_queued()
    time.now += 100
    clock.next_request(body_pending=True)  # its turn: its body is read from now on
    assert clock.deadline == time.now + 5
    clock.body_complete()
    clock.response_complete()
    assert clock.deadline == time.now + 30  # nothing of a third request has come
    clock.stop()  # upgraded, or lost: no deadline, no sweep
    time.now += 1000
    guard.sweep()
    assert cut == []


def test_serve_hands_its_gateway_the_limits() -> None:
    parser = _parser()
    flags = ["--header-timeout", "2.5", "--body-timeout", "3", "--idle-timeout", "4"]
    flags += ["--max-connections-per-client", "7", "--max-connections", "900"]
    options = _gateway_options(parser.parse_args(["serve", *flags]), demo=False)
    command = GatewayProcess(options).command(fd=3)
    gateway_args = parser.parse_args(command[command.index("tradepit.cli") + 1 :])
    assert gateway_args.stage == "gateway"
    assert (gateway_args.header_timeout, gateway_args.body_timeout) == (2.5, 3.0)
    assert gateway_args.idle_timeout == 4.0
    assert gateway_args.max_connections_per_client == 7
    assert gateway_args.max_connections == 900
