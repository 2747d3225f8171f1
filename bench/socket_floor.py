"""The floor under market data fan-out: what one process pays to write one small frame to
each of N loopback TCP connections, with nothing else to do.

    python bench/socket_floor.py [--connections 1000,10000] [--rounds R] [--bytes B] [--quick]

A reader process (uvloop, a Protocol that only counts bytes) opens the connections; this
process, the writer (uvloop), accepts them and then, `--rounds` times 100 ms apart, writes a
`--bytes` WebSocket binary frame to every one of them with `transport.write`, the least a
Python server can do per client. Per round it measures the wall time and the writer's CPU time.
On loopback, each write is a `send` system call that also runs the receiving side's TCP, so
this is what the gateway's fan-out (bench/fanout.py) cannot go below in one process: a frame
to 10,000 clients takes at least this round time, however the gateway is written.

The last line is one JSON object for the largest count:
`{"bench": "socket_floor", "connections": ..., "us_per_write": ..., "round_ms": ...}` (medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import time

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
        walls, cpus = [], []
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            for transport in transports:
                transport.write(frame)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            await asyncio.sleep(0.1)
        return {
            "connections": connections,
            "us_per_write": round(statistics.median(cpus) / connections * 1e6, 2),
            "round_ms": round(statistics.median(walls) * 1e3, 1),
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
        print(
            f"{count:,} connections: {result['us_per_write']} us of CPU per write, "
            f"a round {result['round_ms']} ms",
            flush=True,
        )
    print(json.dumps({"bench": "socket_floor", **result}))


if __name__ == "__main__":
    main()
