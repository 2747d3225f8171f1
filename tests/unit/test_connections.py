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

from tradepit.cli import _parser
from tradepit.gateway.connections import (
    DESCRIPTOR_RESERVE,
    ConnectionClock,
    ConnectionCounter,
    ConnectionGuard,
    connection_cap,
    error_response,
)
from tradepit.gateway.service import GatewaySettings
from tradepit.options import settings_from
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


class _Connection:
    """What a clock asks of its connection, and what it was told."""

    def __init__(self) -> None:
        self.body_pending = False
        self.cuts: list[bool] = []


# Its timeouts; a quarter of the shortest is above 1 s, so the guard sweeps every 1 s (SWEEP),
# and a deadline is set that much later than its timeout, so as never to pass early.
HEADER, BODY, IDLE, SWEEP = 10.0, 5.0, 30.0, 1.0


@pytest.fixture
def time() -> _Time:
    return _Time()


@pytest.fixture
def guard(time: _Time) -> Iterator[ConnectionGuard]:
    loop = asyncio.new_event_loop()
    try:
        settings = GatewaySettings(header_timeout=HEADER, body_timeout=BODY, idle_timeout=IDLE)
        guard = ConnectionGuard(settings, loop)
        assert guard.sweep_interval == SWEEP
        guard.time = time
        guard.sweep()  # the guard's time is the test's from now on
        yield guard
    finally:
        loop.close()


def _clock(guard: ConnectionGuard) -> tuple[ConnectionClock, _Connection]:
    connection = _Connection()
    clock = guard.clock(connection.cuts.append, lambda: connection.body_pending)
    return clock, connection


def _pass(guard: ConnectionGuard, time: _Time, seconds: float) -> None:
    """Let `seconds` go by, swept as the gateway sweeps."""
    end = time.now + seconds
    while time.now < end:
        time.now = min(time.now + SWEEP, end)
        guard.sweep()


def test_a_deadline_is_set_by_its_phase_not_moved_by_bytes(
    guard: ConnectionGuard, time: _Time
) -> None:
    clock, connection = _clock(guard)
    _pass(guard, time, HEADER - 0.1)
    clock.request_begun()  # bytes of a head, late: its deadline stays where it was
    _pass(guard, time, 0.1)
    assert connection.cuts == []  # not before its time...
    _pass(guard, time, 2 * SWEEP)
    assert connection.cuts == [True]  # ... and within two sweeps of it; a request began: 408
    assert guard.clocks == set()


def test_a_connection_that_asks_nothing_is_closed_without_an_answer(
    guard: ConnectionGuard, time: _Time
) -> None:
    _, connection = _clock(guard)
    _pass(guard, time, HEADER + 2 * SWEEP)
    assert connection.cuts == [False]


def test_a_request_through_its_phases(guard: ConnectionGuard, time: _Time) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    _pass(guard, time, 2)
    clock.head_complete()
    connection.body_pending = True
    _pass(guard, time, BODY - 1)
    connection.body_pending = False  # its body came; the app has it, for as long as it takes
    _pass(guard, time, 1000)
    assert connection.cuts == []
    clock.response_complete()  # then idle
    _pass(guard, time, IDLE - 1)
    clock.request_begun()  # the next request: the head's time, from its first byte
    _pass(guard, time, HEADER)
    assert connection.cuts == []
    _pass(guard, time, 2 * SWEEP)
    assert connection.cuts == [True]  # a request was under way: a 408


def test_an_idle_connection_is_closed_without_an_answer(
    guard: ConnectionGuard, time: _Time
) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    clock.head_complete()
    clock.response_complete()
    _pass(guard, time, IDLE)
    assert connection.cuts == []
    _pass(guard, time, 2 * SWEEP)
    assert connection.cuts == [False]


def test_a_stalled_body_is_cut(guard: ConnectionGuard, time: _Time) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    clock.head_complete()
    connection.body_pending = True
    _pass(guard, time, BODY + 2 * SWEEP)
    assert connection.cuts == [True]


def test_an_answer_before_the_body_starts_the_idle_wait(
    guard: ConnectionGuard, time: _Time
) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    clock.head_complete()
    connection.body_pending = True
    clock.response_complete()  # answered before its body came (a 401, a 413)
    _pass(guard, time, BODY + 2 * SWEEP)
    assert connection.cuts == []  # the rest of its body is no longer waited for
    _pass(guard, time, IDLE - BODY)
    assert connection.cuts == [False]


def test_a_pipelined_request_is_timed_from_its_turn(guard: ConnectionGuard, time: _Time) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    clock.head_complete()
    clock.request_begun()  # the next request's head, while the app has the first
    clock.head_queued()
    _pass(guard, time, 100)
    assert connection.cuts == []
    clock.head_complete()  # its turn: its body is read from now on
    connection.body_pending = True
    _pass(guard, time, BODY + 2 * SWEEP)
    assert connection.cuts == [True]


def test_a_stopped_clock_has_no_deadline(guard: ConnectionGuard, time: _Time) -> None:
    clock, connection = _clock(guard)
    clock.request_begun()
    clock.stop()  # a WebSocket now, or lost
    _pass(guard, time, 1000)
    assert connection.cuts == [] and guard.clocks == set()


def test_serve_hands_its_gateway_the_limits() -> None:
    parser = _parser()
    flags = ["--header-timeout", "2.5", "--body-timeout", "3", "--idle-timeout", "4"]
    flags += ["--max-connections-per-client", "7", "--max-connections", "900"]
    options = settings_from(GatewaySettings, parser.parse_args(["serve", *flags]))
    command = GatewayProcess(options).command(fd=3)
    gateway_args = parser.parse_args(command[command.index("tradepit.cli") + 1 :])
    assert gateway_args.stage == "gateway"
    given = gateway_args.settings  # the settings whole, as JSON
    assert (given.header_timeout, given.body_timeout) == (2.5, 3.0)
    assert given.idle_timeout == 4.0
    assert given.max_connections_per_client == 7
    assert given.max_connections == 900
