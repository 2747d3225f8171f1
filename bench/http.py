"""Orders through the REST gateway: POST /v2/orders then DELETE /v2/orders/{id}, as clients do.

    python bench/http.py [--fsync everysec|always] [--rate R] [--paced-seconds S]
                         [--flat-seconds S] [--clients N] [--repeat K] [--no-metrics]
                         [--quick]

Each repetition starts a fresh venue as production runs it, `tradepit --data-dir TMP serve
--rate-limit 0 --fsync F --metrics-port P` (an embedded Valkey with AOF on, the stages in the
serve process, the gateway, uvicorn, in its child process; with `--no-metrics`, serve's
`--no-metrics --metrics-port 0` instead: the difference is what the metrics cost), opens `--clients`
accounts through the admin API with ample cash and shares, and connects one HTTP/1.1 keep-alive
connection per account. An order is a buy limit of 1 ACME at 95.00 (below the 100.00 reference,
no sellers: it rests, never trades) followed, after its 200, by its cancel (204). The venue
answers the 200 once the ledger shard has committed the order to Valkey: a durable ack. This
process is the clients, on one event loop (uvloop), with a minimal HTTP/1.1 client (a Protocol
per connection; httpx would be the bottleneck); everything, Valkey included, shares the
machine's cores.

- paced: an open-loop schedule of `--rate` orders/s for `--paced-seconds`; each order is sent
  at its scheduled time (in 1 ms ticks) on an idle connection, whatever the earlier ones do.
  Latency is from the request's write to the arrival of its whole response (`submit` is the
  ack of the POST, `cancel` the 204 of the DELETE). `late` is how far behind its schedule the
  generator sent (ms, p99 and max), `stalled` the orders that found no idle connection;
  `from schedule` is the submit latency counted from the scheduled time instead.
- flat out: every connection loops submit + cancel as fast as the venue answers for
  `--flat-seconds`; orders/s = orders completed (submit and cancel) / elapsed.

Each phase also reports `cpu_ms_per_order`, the CPU time each process spent in it (`gateway`,
`stages` (the serve process), `valkey`, `load generator` (this one), `machine`, all
cores, and `other`, the machine less those: interrupts and other work, the noise) divided by
the orders completed, and `cpu_percent`, the same as a load (100 = a core).
`errors` counts answers other than 200/204; `lost` is orders acked (200) but absent from the
ledger's order table at the end; both must be 0. With `--repeat` above 1 the figures are
medians.

The last line is one JSON object: `orders_per_s` is the flat-out orders/s (submit + cancel
pairs), `p50_ms` and `p99_ms` the paced run's submit (ack) latency; `paced` and `flat` hold the
rest (medians over the repetitions), `runs` each repetition's own.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from launch import tradepit_command, wait_until_up
from tradepit.client import load_config
from tradepit.embedded import free_port
from tradepit.store.keys import ledger_name
from tradepit.store.ledger import LedgerKeys

# Run as a script, this file's directory is first on the path, where this file would shadow the
# standard library's `http` for anything imported later: take the directory off the path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

ORDER_BODY = (
    b'{"symbol":"ACME","qty":"1","side":"buy","type":"limit",'
    b'"time_in_force":"gtc","limit_price":"95.00"}'
)
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


class HttpError(Exception):
    pass


class Connection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection, one request at a time; responses must carry a
    Content-Length (the gateway's do) or have no body (204)."""

    def __init__(self, host: str, key_id: str, secret: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, int]] | None = None
        self.headers = (
            f"Host: {host}\r\nAPCA-API-KEY-ID: {key_id}\r\nAPCA-API-SECRET-KEY: {secret}\r\n"
        ).encode()
        self.submit_request = (
            b"POST /v2/orders HTTP/1.1\r\n"
            + self.headers
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(ORDER_BODY)).encode()
            + b"\r\n\r\n"
            + ORDER_BODY
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(HttpError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        status = int(buffer[9:12])
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop > 0 else len(head)])
        elif status in (204, 304) or status < 200:
            length = 0
        else:
            self._fail(HttpError(f"a {status} response without Content-Length"))
            return
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body, time.perf_counter_ns()))

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.close()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, int]]:
        if self.transport is None or self.transport.is_closing():
            raise HttpError("connection closed")
        assert self.waiter is None, "one request at a time"
        self.waiter = self.loop.create_future()
        self.transport.write(request)
        return self.waiter

    async def call(self, request: bytes) -> tuple[int, bytes, int, int]:
        """(status, body, sent ns, answered ns)"""
        sent = time.perf_counter_ns()
        status, body, answered = await self.send(request)
        return status, body, sent, answered

    def cancel_request(self, order_id: bytes) -> bytes:
        return (
            b"DELETE /v2/orders/"
            + order_id
            + b" HTTP/1.1\r\n"
            + self.headers
            + b"Content-Length: 0\r\n\r\n"
        )

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, key_id: str, secret: str) -> Connection:
    loop = asyncio.get_running_loop()
    host = f"127.0.0.1:{port}"
    _, protocol = await loop.create_connection(
        lambda: Connection(host, key_id, secret), "127.0.0.1", port
    )
    return protocol


def order_id_of(body: bytes) -> bytes:
    at = body.find(b'"id":"')
    if at >= 0:
        return body[at + 6 : at + 42]
    return str(json.loads(body)["id"]).encode()


class Tally:
    """Latencies (ns) and outcomes of one run."""

    def __init__(self) -> None:
        self.submit: list[int] = []
        self.cancel: list[int] = []
        self.from_schedule: list[int] = []
        self.late: list[int] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.acked = 0
        self.orders = 0  # submit and cancel both answered

    async def order(self, connection: Connection, scheduled: int | None = None) -> None:
        try:
            status, body, sent, answered = await connection.call(connection.submit_request)
            if status != 200:
                self.errors[f"submit {status}: {body[:120]!r}"] += 1
                return
            self.acked += 1
            self.submit.append(answered - sent)
            if scheduled is not None:
                self.from_schedule.append(answered - scheduled)
            status, body, sent, answered = await connection.call(
                connection.cancel_request(order_id_of(body))
            )
            if status != 204:
                self.errors[f"cancel {status}: {body[:120]!r}"] += 1
                return
            self.cancel.append(answered - sent)
            self.orders += 1
        except (HttpError, ValueError) as error:
            self.errors[f"{type(error).__name__}: {error}"] += 1


def percentile(values: list[int], fraction: float) -> float:
    """Nearest rank, in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def latency(values: list[int]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) / 1e6, 3) if values else float("nan"),
        "p99_ms": round(percentile(values, 0.99), 3),
        "max_ms": round(max(values) / 1e6, 3) if values else float("nan"),
    }


async def paced(connections: list[Connection], rate: int, seconds: float) -> dict[str, Any]:
    """Send `rate` orders/s on schedule, each on an idle connection, for `seconds`."""
    tally = Tally()
    idle = collections.deque(connections)
    freed = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    stalled = 0

    async def one(connection: Connection, scheduled: int) -> None:
        await tally.order(connection, scheduled)
        idle.append(connection)
        freed.set()

    count = round(rate * seconds)
    interval = 1e9 / rate
    start = time.perf_counter_ns()
    sent = 0
    while sent < count:
        now = time.perf_counter_ns()
        due = min(count, int((now - start) / interval) + 1)
        while sent < due:
            if not idle:
                stalled += 1
            while not idle:
                freed.clear()
                await freed.wait()
            scheduled = start + int(sent * interval)
            tally.late.append(time.perf_counter_ns() - scheduled)
            task = asyncio.create_task(one(idle.popleft(), scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        if sent < count:
            # uvloop's timers have 1 ms resolution (and round): never ask for less.
            delay = (start + sent * interval - time.perf_counter_ns()) / 1e9
            await asyncio.sleep(max(0.001, delay))
    last_send = time.perf_counter_ns()
    if tasks:
        await asyncio.gather(*tasks)
    return {
        "offered_per_s": rate,
        "sent_per_s": round(sent / ((last_send - start) / 1e9 + interval / 1e9)),
        "orders": tally.orders,
        "submit": latency(tally.submit),
        "cancel": latency(tally.cancel),
        "from_schedule": latency(tally.from_schedule),
        "late_p99_ms": round(percentile(tally.late, 0.99), 3),
        "late_max_ms": round(max(tally.late) / 1e6, 3) if tally.late else 0.0,
        "stalled": stalled,
        "errors": dict(tally.errors),
        "acked": tally.acked,
    }


async def flat_out(connections: list[Connection], seconds: float) -> dict[str, Any]:
    """Every connection loops submit + cancel for `seconds`."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def client(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            await tally.order(connection)

    start = time.perf_counter()
    await asyncio.gather(*(client(connection) for connection in connections))
    elapsed = time.perf_counter() - start
    return {
        "clients": len(connections),
        "orders_per_s": round(tally.orders / elapsed),
        "orders": tally.orders,
        "elapsed_s": round(elapsed, 3),
        "submit": latency(tally.submit),
        "cancel": latency(tally.cancel),
        "errors": dict(tally.errors),
        "acked": tally.acked,
    }


# The venue.


class Venue:
    """`tradepit serve` as a subprocess on a fresh data directory."""

    def __init__(self, fsync: str, metrics: bool = True) -> None:
        self.fsync = fsync
        self.metrics = metrics
        self.data_dir = Path(tempfile.mkdtemp(prefix="tradepit-bench-http-"))
        self.log = self.data_dir / "serve.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.admin: tuple[str, str] = ("", "")

    def start(self, timeout: float = 60.0) -> None:
        command = tradepit_command(self.data_dir / "data", "serve", "--port", str(self.port))
        command += ["--rate-limit", "0", "--fsync", self.fsync]
        if self.metrics:  # the gateway's /metrics, and the stages' on a port of their own
            command += ["--metrics-port", str(free_port())]
        else:
            command += ["--no-metrics", "--metrics-port", "0"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self.admin = wait_until_up(self.process, self.log, "APCA-API-KEY-ID=", "serve", timeout)

    def pids(self) -> dict[str, int]:
        """serve (the stages), its gateway and Valkey children."""
        assert self.process is not None
        found = {"stages": self.process.pid}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != self.process.pid:
                continue
            # The gateway's command line names the server's socket (…/valkey.sock): test it first.
            if b"gateway" in cmdline:
                found["gateway"] = int(entry.name)
            elif b"valkey" in cmdline:
                found["valkey"] = int(entry.name)
        return found

    async def create_accounts(self, count: int) -> list[tuple[str, str]]:
        admin = await connect(self.port, *self.admin)
        body = b'{"cash":"100000000.00","positions":{"ACME":"1000000"},"name":"bench-%d"}'
        accounts = []
        try:
            for number in range(count):
                payload = body % number
                request = (
                    b"POST /admin/accounts HTTP/1.1\r\n"
                    + admin.headers
                    + b"Content-Type: application/json\r\nContent-Length: "
                    + str(len(payload)).encode()
                    + b"\r\n\r\n"
                    + payload
                )
                status, answer, _, _ = await admin.call(request)
                if status != 200:
                    raise RuntimeError(f"creating an account: {status} {answer!r}")
                created = json.loads(answer)
                accounts.append((created["key_id"], created["secret_key"]))
        finally:
            admin.close()
        return accounts

    async def stored_orders(self) -> int:
        """Orders in the ledger shards' order tables."""
        venue = json.loads((self.data_dir / "data" / "venue.json").read_text())
        redis = aioredis.Redis.from_url(venue["redis_url"])
        try:
            config = await load_config(redis)
            total = 0
            for index in range(config.ledgers):
                total += await redis.hlen(LedgerKeys(ledger_name(index)).orders)
            return total
        finally:
            await redis.aclose()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, all threads) of each process, and of the whole machine."""
    times = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        times[name] = (int(fields[11]) + int(fields[12])) / CLOCK_TICK
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    times["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICK
    return times


async def with_cpu(pids: dict[str, int], phase: Coroutine[Any, Any, dict[str, Any]]) -> Any:
    """Run a phase; add each process's CPU time per order (ms) and its load (% of a core)."""
    before = cpu_seconds(pids)
    started = time.perf_counter()
    result = await phase
    elapsed = time.perf_counter() - started
    after = cpu_seconds(pids)
    orders = max(1, result["orders"])
    used = {name: after[name] - before[name] for name in before if name in after}
    # What else ran meanwhile (interrupts, other work on a shared machine): the noise.
    ours = sum(cpu for name, cpu in used.items() if name != "machine")
    used["other"] = max(0.0, used["machine"] - ours)
    result["cpu_ms_per_order"] = {name: round(cpu * 1e3 / orders, 3) for name, cpu in used.items()}
    result["cpu_percent"] = {name: round(cpu * 100 / elapsed) for name, cpu in used.items()}
    return result


async def run_once(args: argparse.Namespace, number: int) -> dict[str, Any]:
    venue = Venue(args.fsync, metrics=args.metrics)
    connections: list[Connection] = []
    try:
        started = time.perf_counter()
        venue.start()
        accounts = await venue.create_accounts(args.clients)
        connections = [await connect(venue.port, *account) for account in accounts]
        pids = {**venue.pids(), "load generator": os.getpid()}
        print(
            f"run {number}: venue up in {time.perf_counter() - started:.1f} s "
            f"(fsync {args.fsync}), {len(connections)} connections",
            flush=True,
        )
        warm = await flat_out(connections, args.warmup)
        result_paced = await with_cpu(pids, paced(connections, args.rate, args.paced_seconds))
        result_flat = await with_cpu(pids, flat_out(connections, args.flat_seconds))
        acked = warm["acked"] + result_paced["acked"] + result_flat["acked"]
        stored = await venue.stored_orders()
        lost = max(0, acked - stored)
        report_run(number, result_paced, result_flat, lost)
        return {"paced": result_paced, "flat": result_flat, "lost": lost}
    finally:
        for connection in connections:
            connection.close()
        venue.stop()


def report_run(number: int, paced: dict[str, Any], flat: dict[str, Any], lost: int) -> None:
    s, c, f = paced["submit"], paced["cancel"], paced["from_schedule"]
    print(
        f"run {number} paced {paced['offered_per_s']:,}/s (sent {paced['sent_per_s']:,}/s, "
        f"{paced['orders']:,} orders): submit p50 {s['p50_ms']} ms p99 {s['p99_ms']} ms "
        f"max {s['max_ms']} ms; cancel p50 {c['p50_ms']} ms p99 {c['p99_ms']} ms; "
        f"from schedule p99 {f['p99_ms']} ms; late p99 {paced['late_p99_ms']} ms "
        f"max {paced['late_max_ms']} ms; stalled {paced['stalled']}",
        flush=True,
    )
    s, c = flat["submit"], flat["cancel"]
    cpu = ", ".join(
        f"{name} {flat['cpu_ms_per_order'][name]} ms ({flat['cpu_percent'][name]}%)"
        for name in flat["cpu_ms_per_order"]
    )
    print(
        f"run {number} flat out, {flat['clients']} clients: {flat['orders_per_s']:,} orders/s "
        f"({flat['orders']:,} in {flat['elapsed_s']} s); submit p50 {s['p50_ms']} ms "
        f"p99 {s['p99_ms']} ms; cancel p50 {c['p50_ms']} ms p99 {c['p99_ms']} ms",
        flush=True,
    )
    print(f"run {number} CPU per order, flat out: {cpu}", flush=True)
    cpu = ", ".join(
        f"{name} {paced['cpu_ms_per_order'][name]} ms ({paced['cpu_percent'][name]}%)"
        for name in paced["cpu_ms_per_order"]
    )
    print(f"run {number} CPU per order, paced: {cpu}", flush=True)
    errors = {**paced["errors"], **flat["errors"]}
    if errors or lost:
        print(f"run {number} errors: {errors}, lost {lost}", flush=True)


def median_of(runs: list[dict[str, Any]], *path: str) -> Any:
    values = []
    for run in runs:
        value: Any = run
        for key in path:
            value = value[key]
        values.append(value)
    middle = statistics.median(values)
    return round(middle, 3) if isinstance(middle, float) else middle


def cpu_medians(runs: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    return {
        figure: {name: median_of(runs, phase, figure, name) for name in runs[0][phase][figure]}
        for figure in ("cpu_ms_per_order", "cpu_percent")
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    runs = [await run_once(args, number + 1) for number in range(args.repeat)]
    paced = {
        "offered_per_s": args.rate,
        "seconds": args.paced_seconds,
        "sent_per_s": median_of(runs, "paced", "sent_per_s"),
        "submit_p50_ms": median_of(runs, "paced", "submit", "p50_ms"),
        "submit_p99_ms": median_of(runs, "paced", "submit", "p99_ms"),
        "cancel_p50_ms": median_of(runs, "paced", "cancel", "p50_ms"),
        "cancel_p99_ms": median_of(runs, "paced", "cancel", "p99_ms"),
        "from_schedule_p99_ms": median_of(runs, "paced", "from_schedule", "p99_ms"),
        "late_p99_ms": median_of(runs, "paced", "late_p99_ms"),
        "stalled": sum(run["paced"]["stalled"] for run in runs),
        **cpu_medians(runs, "paced"),
    }
    flat = {
        "clients": args.clients,
        "seconds": args.flat_seconds,
        "orders_per_s": median_of(runs, "flat", "orders_per_s"),
        "submit_p50_ms": median_of(runs, "flat", "submit", "p50_ms"),
        "submit_p99_ms": median_of(runs, "flat", "submit", "p99_ms"),
        "cancel_p50_ms": median_of(runs, "flat", "cancel", "p50_ms"),
        "cancel_p99_ms": median_of(runs, "flat", "cancel", "p99_ms"),
        **cpu_medians(runs, "flat"),
    }
    errors = sum(sum(run[phase]["errors"].values()) for run in runs for phase in ("paced", "flat"))
    if args.repeat > 1:
        print(
            f"medians of {args.repeat}: paced {args.rate:,}/s submit p50 "
            f"{paced['submit_p50_ms']} ms p99 {paced['submit_p99_ms']} ms; flat out "
            f"{flat['orders_per_s']:,} orders/s",
            flush=True,
        )
    return {
        "bench": "http",
        "orders_per_s": flat["orders_per_s"],
        "p50_ms": paced["submit_p50_ms"],
        "p99_ms": paced["submit_p99_ms"],
        "errors": errors,
        "lost": sum(run["lost"] for run in runs),
        "fsync": args.fsync,
        "metrics": args.metrics,
        "paced": paced,
        "flat": flat,
        "repeat": args.repeat,
        "runs": [
            {
                "paced_p50_ms": run["paced"]["submit"]["p50_ms"],
                "paced_p99_ms": run["paced"]["submit"]["p99_ms"],
                "flat_orders_per_s": run["flat"]["orders_per_s"],
            }
            for run in runs
        ],
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsync", choices=("everysec", "always"), default="everysec")
    parser.add_argument("--rate", type=int, default=1_000, help="paced orders/s")
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--flat-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=32, help="connections, an account each")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds flat out, unmeasured")
    parser.add_argument("--repeat", type=int, default=3, help="fresh venues; medians reported")
    parser.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="the venue without its Prometheus metrics (serve --no-metrics)",
    )
    parser.add_argument("--quick", action="store_true", help="one run of 5 s + 5 s: under 30 s")
    args = parser.parse_args()
    if args.quick:
        args.paced_seconds = min(args.paced_seconds, 5.0)
        args.flat_seconds = min(args.flat_seconds, 5.0)
        args.warmup = min(args.warmup, 0.5)
        args.repeat = 1
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    result = asyncio.run(run(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
