"""The floor under market data fan-out: what one process pays to write one small frame to
each of N loopback TCP connections, with nothing else to do.

    python bench/socket_floor.py [--connections 1000,10000] [--rounds R] [--bytes B] [--quick]

A reader process (uvloop, a Protocol that does nothing with the bytes) opens the connections;
this process, the writer (uvloop), accepts them and then, `--rounds` times 100 ms apart,
writes a `--bytes` WebSocket binary frame to every one of them, two ways, taking turns:

- `transport.write`, the least a Python asyncio server can do per client;
- `os.write` on the socket's descriptor in a bare loop: one `write` system call per client and
  almost nothing else, which is what a server in any language pays that writes with one call
  per client (io_uring could batch the calls, but not the kernel's TCP work behind each).

Per round it measures the wall time, the writer's CPU time, and how much of that CPU the
kernel spent (`getrusage`; the split is sampled at the scheduler's tick, so it is summed over
all rounds); and per frame the reader's CPU (from /proc/<pid>/schedstat). On loopback each
`write` also runs the receiving side's TCP, so this is what the gateway's fan-out
(bench/fanout.py) cannot go below in one process: a frame to 10,000 clients takes at least
this round time, however the gateway is written. And since the clients of a benchmark on this
machine need CPU to read what is written, `min_round_ms_on_2_cores` is the CPU of both sides
of a round spread over both cores: no server, in one thread or many, delivers a round to them
faster.

The last line is one JSON object for the largest count (medians):
`{"bench": "socket_floor", "connections": ..., "us_per_write": ..., "round_ms": ...,
"syscall_us_per_write": ..., "syscall_round_ms": ..., "kernel_share": ...,
"reader_us_per_frame": ..., "min_round_ms_on_2_cores": ...}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import time
from collections.abc import Callable

import uvloop

from fanout import raise_fd_limit


class _Reader(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        pass


async def _read(port: int, connections: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(connections):
        await loop.create_connection(_Reader, "127.0.0.1", port)
    await asyncio.Event().wait()


class _Accepted(asyncio.Protocol):
    def __init__(self, transports: list[asyncio.WriteTransport]) -> None:
        self.transports = transports

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transports.append(transport)  # type: ignore[arg-type]  # a TCP transport


def _cpu_seconds(pid: int) -> float:
    """The CPU time of another (one-threaded) process, in ns from /proc, not in 10 ms ticks."""
    with open(f"/proc/{pid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


class _Rounds:
    """What the rounds of one way of writing cost, summed or listed."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.kernel = 0.0
        self.user = 0.0
        self.reader = 0.0


async def _write_rounds(ways: list[Callable[[], None]], rounds: int, reader: int) -> list[_Rounds]:
    """Runs `rounds` rounds of each way of writing, 100 ms apart, the ways taking turns so that
    each sees the same moments of the machine (fresh connections, a neighbour's load)."""
    results = [_Rounds() for _ in ways]
    for _ in range(rounds):
        for write_round, result in zip(ways, results, strict=True):
            usage, reader_cpu = resource.getrusage(resource.RUSAGE_SELF), _cpu_seconds(reader)
            wall, cpu = time.perf_counter(), time.process_time()
            write_round()
            result.walls.append(time.perf_counter() - wall)
            result.cpus.append(time.process_time() - cpu)
            # The reader drains the round while this process sleeps.
            await asyncio.sleep(0.1)
            after = resource.getrusage(resource.RUSAGE_SELF)
            result.kernel += after.ru_stime - usage.ru_stime
            result.user += after.ru_utime - usage.ru_utime
            result.reader += _cpu_seconds(reader) - reader_cpu
    return results


async def measure(connections: int, rounds: int, size: int) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.WriteTransport] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    server = await loop.create_server(lambda: _Accepted(transports), sock=listener)
    reader = os.fork()
    if reader == 0:
        uvloop.run(_read(port, connections))
        os._exit(0)
    try:
        while len(transports) < connections:
            await asyncio.sleep(0.05)
        payload = b"x" * (size - 4)
        frame = bytes([0x82, 126]) + len(payload).to_bytes(2, "big") + payload
        descriptors = [transport.get_extra_info("socket").fileno() for transport in transports]

        def write_transports() -> None:
            for transport in transports:
                transport.write(frame)

        def write_descriptors() -> None:
            write, size = os.write, len(frame)
            for descriptor in descriptors:
                if write(descriptor, frame) != size:  # a full socket buffer: not a fair round
                    raise RuntimeError("a socket took part of a frame; try fewer --bytes")

        asyncio_way, bare = await _write_rounds(
            [write_transports, write_descriptors], rounds, reader
        )
        syscall_us = statistics.median(bare.cpus) / connections * 1e6
        reader_us = bare.reader / (rounds * connections) * 1e6
        return {
            "connections": connections,
            "us_per_write": round(statistics.median(asyncio_way.cpus) / connections * 1e6, 2),
            "round_ms": round(statistics.median(asyncio_way.walls) * 1e3, 1),
            "syscall_us_per_write": round(syscall_us, 2),
            "syscall_round_ms": round(statistics.median(bare.walls) * 1e3, 1),
            "kernel_share": round(bare.kernel / max(bare.kernel + bare.user, 1e-9), 2),
            "reader_us_per_frame": round(reader_us, 2),
            "min_round_ms_on_2_cores": round((syscall_us + reader_us) * connections / 2e3, 1),
        }
    finally:
        os.kill(reader, signal.SIGKILL)
        os.waitpid(reader, 0)
        for transport in transports:
            transport.abort()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", default="1000,10000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--bytes", type=int, default=300, help="frame size (at least 130)")
    parser.add_argument("--quick", action="store_true", help="10 rounds each: under 30 s")
    args = parser.parse_args()
    raise_fd_limit()
    rounds = 10 if args.quick else args.rounds
    result: dict[str, float] = {}
    for count in (int(value) for value in args.connections.split(",")):
        result = uvloop.run(measure(count, rounds, max(130, args.bytes)))
        r = result
        print(
            f"{count:,} connections: transport.write {r['us_per_write']} us of CPU per write, "
            f"a round {r['round_ms']} ms; bare write(2) {r['syscall_us_per_write']} us "
            f"({r['kernel_share']:.0%} in the kernel), a round {r['syscall_round_ms']} ms; "
            f"the reader {r['reader_us_per_frame']} us per frame; both sides on 2 cores: "
            f"a round >= {r['min_round_ms_on_2_cores']} ms",
            flush=True,
        )
    print(json.dumps({"bench": "socket_floor", **result}))


if __name__ == "__main__":
    main()
