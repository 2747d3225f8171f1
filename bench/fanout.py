"""Market data fan-out: many WebSocket clients on ONE gateway process, on the demo market.

    python bench/fanout.py [--clients 1000,10000] [--seconds S] [--workers W] [--sample F]
                           [--repeat K] [--no-metrics] [--quick]

Starts a fresh `tradepit demo` (the venue, its gateway process, the reference walk and the bots
trading through the REST API, at the demo's own rates) on a free port and data directory. For
each count in `--clients`, `--workers` load-generator processes (this file with `--worker`)
open that many connections to the gateway's `/v2/iex` between them, each as alpaca-py does it
(MessagePack frames), authenticate and subscribe to `trades` and `quotes` of every symbol
("*"), then listen for `--seconds` while counting what arrives.

- `delivered_per_s`: stream messages received by all clients together per second (each frame
  is a MessagePack array; its header says how many messages it holds).
- `p50_ms` / `p99_ms`: match-to-client latency of trades: the receive time (the load
  generator's clock, the wall clock of this machine) less the trade's `t`, the timestamp of the
  command that matched (stamped by the gateway that took the taker's order). Decoding every
  frame would cost the load generators more CPU than the gateway spends sending it, so only a
  `--sample` fraction of the clients (spread over the workers) decode theirs; every client
  counts.
- `gateway_cpu_percent`: the gateway process's CPU time during the window (100 = one core),
  and `gateway_us_per_frame` the same per frame the clients received.

The clients are a minimal WebSocket client (an asyncio Protocol per connection on uvloop, a
frame parser of a few lines; the `websockets` library costs several times more CPU per frame),
so that the load generators, which share the 2 cores with the venue, cost as little as possible.
Each run's clients are closed before the next. The last line is one JSON object for the largest
count; with `--repeat` above 1 the figures are medians of the repetitions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from launch import tradepit_command, wait_until_up
from tradepit.embedded import free_port

CLOCK_TICK = os.sysconf("SC_CLK_TCK")
_decode = msgspec.msgpack.Decoder().decode


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# The load generator: one process, many connections.


def _frame(payload: bytes) -> bytes:
    """A masked client frame (opcode binary); the mask key is zeros, which XORs nothing."""
    length = len(payload)
    if length < 126:
        header = bytes([0x82, 0x80 | length])
    else:
        header = bytes([0x82, 0x80 | 126]) + length.to_bytes(2, "big")
    return header + b"\0\0\0\0" + payload


class Tally:
    def __init__(self, start_ns: int, end_ns: int) -> None:
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.messages = 0
        self.frames = 0
        self.latencies_ms: list[float] = []
        self.closed = 0
        self.errors: list[Any] = []


class Client(asyncio.Protocol):
    """One connection: the handshake, then frames parsed straight off the socket."""

    def __init__(self, host: str, port: int, tally: Tally, decode: bool) -> None:
        self.host = host
        self.port = port
        self.tally = tally
        self.decode = decode
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.setup: asyncio.Queue[Any] | None = asyncio.Queue()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /v2/iex HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                "Content-Type: application/msgpack\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.closed += 1
        if not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self.tally.errors.append(bytes(buffer[:200]).decode(errors="replace"))
                assert self.transport is not None
                self.transport.close()
                return
            del buffer[: end + 4]
            self.upgraded = True
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            start = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            end = start + length
            if len(buffer) < end:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[start:end])
            del buffer[:end]
            if opcode == 8:  # close
                self.tally.errors.append(f"closed by the server: {payload[2:]!r}")
                assert self.transport is not None
                self.transport.close()
                return
            if opcode in (1, 2):
                self.message(payload, now)

    def message(self, payload: bytes, now: int) -> None:
        if self.setup is not None:
            self.setup.put_nowait(_decode(payload))
            return
        tally = self.tally
        if not tally.start_ns <= now < tally.end_ns:
            return
        head = payload[0]
        if head & 0xF0 == 0x90:
            count = head & 0x0F
        elif head == 0xDC:
            count = int.from_bytes(payload[1:3], "big")
        else:
            count = int.from_bytes(payload[1:5], "big")
        tally.messages += count
        tally.frames += 1
        if self.decode:
            for item in _decode(payload):
                if item.get("T") == "t":
                    tally.latencies_ms.append((now - item["t"].timestamp() * 1e9) / 1e6)
                elif item.get("T") == "error":
                    tally.errors.append(item)

    async def next_message(self) -> list[Any]:
        assert self.setup is not None
        message: list[Any] = await asyncio.wait_for(self.setup.get(), 60)
        return message

    async def start(self, key: str, secret: str) -> None:
        assert self.transport is not None
        connected = await self.next_message()
        assert connected[0].get("msg") == "connected", connected
        self.transport.write(
            _frame(msgspec.msgpack.encode({"action": "auth", "key": key, "secret": secret}))
        )
        authenticated = await self.next_message()
        assert authenticated[0].get("msg") == "authenticated", authenticated
        request = {"action": "subscribe", "trades": ["*"], "quotes": ["*"]}
        self.transport.write(_frame(msgspec.msgpack.encode(request)))
        while True:  # data may come before the ack
            answer = await self.next_message()
            if any(item.get("T") == "subscription" for item in answer):
                break
        self.setup = None


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    tally = Tally(0, 0)
    clients: list[Client] = []
    gate = asyncio.Semaphore(100)
    every = round(1 / args.sample) if args.sample > 0 else 0

    async def open_one(number: int) -> None:
        async with gate:
            decode = every > 0 and (args.offset + number) % every == 0
            for attempt in range(20):
                try:
                    _, client = await loop.create_connection(
                        lambda: Client(args.host, args.port, tally, decode), args.host, args.port
                    )
                    await client.start(args.key, args.secret)
                    clients.append(client)
                    return
                except (OSError, AssertionError, TimeoutError) as error:
                    if attempt == 19:
                        tally.errors.append(f"connect: {error!r}")
                        return
                    await asyncio.sleep(0.2)

    started = time.monotonic()
    await asyncio.gather(*(open_one(number) for number in range(args.count)))
    ready_s = time.monotonic() - started
    print(json.dumps({"ready": len(clients), "ready_s": round(ready_s, 2)}), flush=True)
    # The window opens when every worker is ready: the conductor says when, on stdin.
    start_at = float(await loop.run_in_executor(None, sys.stdin.readline))
    tally.start_ns, tally.end_ns = int(start_at * 1e9), int((start_at + args.seconds) * 1e9)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu = time.process_time()
    await asyncio.sleep(max(0.0, start_at + args.seconds - time.time()))
    cpu = time.process_time() - cpu
    await asyncio.sleep(0.2)
    closed_early = sum(1 for client in clients if client.done.done())
    for client in clients:
        assert client.transport is not None
        client.transport.close()
    return {
        "clients": len(clients),
        "ready_s": round(ready_s, 2),
        "messages": tally.messages,
        "frames": tally.frames,
        "cpu_s": cpu,
        "latencies_ms": tally.latencies_ms,
        "closed_early": closed_early,
        "errors": [str(error) for error in tally.errors[:5]],
        "error_count": len(tally.errors),
    }


# The conductor: the demo, the workers, the figures.


class Demo:
    """`tradepit demo` as a subprocess on a fresh data directory and port."""

    def __init__(self, metrics: bool = True) -> None:
        self.metrics = metrics
        self.data_dir = Path(tempfile.mkdtemp(prefix="tradepit-bench-fanout-"))
        self.log = self.data_dir / "demo.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.key: tuple[str, str] = ("", "")

    def start(self, timeout: float = 60.0) -> None:
        # Every client connects from loopback: the per-address cap would refuse all but 256.
        uncapped = ["--max-connections-per-client", "0"]
        # The stages' metrics on a port of their own (the API's + 1 may be taken), or none.
        if self.metrics:
            metrics = ["--metrics-port", str(free_port())]
        else:
            metrics = ["--no-metrics", "--metrics-port", "0"]
        command = tradepit_command(
            self.data_dir / "data", "demo", "--port", str(self.port), *uncapped, *metrics
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.key = wait_until_up(
            self.process, self.log, "a demo market is trading", "the demo", timeout
        )

    def gateway_pid(self) -> int:
        assert self.process is not None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"gateway" in cmdline:
                return int(entry.name)
        raise RuntimeError("no gateway process found")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def machine_seconds() -> float:
    """CPU time the whole machine spent busy, all cores (other agents' work included)."""
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_clients(demo: Demo, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    workers = max(1, min(args.workers, clients))
    processes = []
    for index in range(workers):
        share = clients // workers + (1 if index < clients % workers else 0)
        command = [sys.executable, __file__, "--worker", "--port", str(demo.port)]
        command += ["--count", str(share), "--offset", str(index)]
        command += ["--seconds", str(args.seconds), "--sample", str(args.sample)]
        command += ["--key", demo.key[0], "--secret", demo.key[1]]
        processes.append(
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    ready = []
    for process in processes:
        assert process.stdout is not None
        ready.append(json.loads(process.stdout.readline()))
    # Every client is in and subscribed; the window opens once the gateway has settled.
    start_at = time.time() + args.settle
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(f"{start_at}\n")
        process.stdin.flush()
    gateway = demo.gateway_pid()
    time.sleep(max(0.0, start_at - time.time()))
    cpu_before, machine_before = cpu_seconds(gateway), machine_seconds()
    time.sleep(args.seconds)
    cpu_used = cpu_seconds(gateway) - cpu_before
    machine_used = machine_seconds() - machine_before
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        try:
            results.append(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            # Its traceback, if any, went to this process's stderr, above.
            raise RuntimeError(
                f"a load generator failed (exit code {process.returncode}), "
                f"its last output: {out[-2000:]!r}"
            ) from None
    latencies = [value for result in results for value in result["latencies_ms"]]
    messages = sum(result["messages"] for result in results)
    frames = sum(result["frames"] for result in results)
    return {
        "clients": sum(result["clients"] for result in results),
        "delivered_per_s": round(messages / args.seconds),
        "frames_per_s": round(frames / args.seconds),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "samples": len(latencies),
        "gateway_cpu_percent": round(cpu_used * 100 / args.seconds),
        # The gateway's CPU per frame sent: the ratio that a busy machine disturbs least.
        "gateway_us_per_frame": round(cpu_used * 1e6 / max(1, frames), 1),
        "clients_cpu_percent": round(sum(r["cpu_s"] for r in results) * 100 / args.seconds),
        "machine_cpu_percent": round(machine_used * 100 / args.seconds),
        "ready_s": max(result["ready_s"] for result in ready),
        "closed_early": sum(result["closed_early"] for result in results),
        "errors": sum(result["error_count"] for result in results),
        "error_examples": [error for result in results for error in result["errors"]][:3],
    }


def load() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", default="1000,10000", help="comma-separated counts")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before the window")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes")
    parser.add_argument("--sample", type=float, default=0.1, help="clients decoding trades")
    parser.add_argument("--repeat", type=int, default=1, help="runs per count; medians")
    parser.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="the demo without its Prometheus metrics (demo --no-metrics --metrics-port 0)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 clients for 5 s: < 30 s")
    # A load generator's own arguments.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--secret", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.worker:
        print(json.dumps(asyncio.run(worker(args))), flush=True)
        return
    if args.quick:
        args.clients, args.seconds, args.repeat, args.settle = "1000", 5.0, 1, 2.0
    counts = [int(count) for count in args.clients.split(",")]
    demo = Demo(metrics=args.metrics)
    runs: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    try:
        demo.start()
        print(f"demo up on port {demo.port}; load {load()}", flush=True)
        for repetition in range(args.repeat):
            for count in counts:
                result = run_clients(demo, count, args)
                runs[count].append(result)
                print(f"run {repetition + 1}, {count:,} clients: {json.dumps(result)}", flush=True)
                time.sleep(1.0)
    finally:
        demo.stop()
    summary = {}
    for count in counts:
        medians = {
            name: statistics.median(run[name] for run in runs[count])
            for name in (
                "delivered_per_s",
                "p50_ms",
                "p99_ms",
                "gateway_cpu_percent",
                "gateway_us_per_frame",
            )
        }
        summary[count] = medians
        print(f"{count:,} clients (median of {args.repeat}): {json.dumps(medians)}", flush=True)
    largest = counts[-1]
    print(
        json.dumps(
            {
                "bench": "fanout",
                "clients": largest,
                "delivered_per_s": summary[largest]["delivered_per_s"],
                "p50_ms": summary[largest]["p50_ms"],
                "p99_ms": summary[largest]["p99_ms"],
                "gateway_cpu_percent": summary[largest]["gateway_cpu_percent"],
                "gateway_us_per_frame": summary[largest]["gateway_us_per_frame"],
                "runs": {str(count): runs[count] for count in counts},
                "workers": args.workers,
                "sample": args.sample,
                "metrics": args.metrics,
                "seconds": args.seconds,
                "load": load(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
