"""Running the venue: every stage in one process (`serve`), or one shard per process (`run`).

`serve` starts the embedded Valkey server unless it is given a Redis URL, fixes the venue's
configuration on first start, runs every ledger and matcher shard as a task of one event loop,
and the gateway as a child process it supervises (so that HTTP and the stages each get a core
on a small machine), and closes the session at each UTC midnight. `run_shard` runs one shard,
against a Redis that `serve` (or an operator) set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, ProcessCollector

from tradepit import durability
from tradepit.access import Role, write_private
from tradepit.calendars import load_calendar
from tradepit.client import VenueClient
from tradepit.demo import person_account, run_demo
from tradepit.domain.clock import REAL_TIME, VenueClock
from tradepit.domain.session import AlwaysOpen, Calendar, Phase, TradingCalendar, to_datetime
from tradepit.embedded import EmbeddedValkey
from tradepit.errors import TradepitError
from tradepit.gateway.server import listening_socket
from tradepit.metrics.exporter import Exporter
from tradepit.metrics.stage import StageMetrics, sample_lag
from tradepit.metrics.valkey import ValkeyMetrics
from tradepit.operations import (
    add_symbol,
    close_session,
    ensure_admin_key,
    last_session_change,
    set_session,
)
from tradepit.portfolio import sample_forever
from tradepit.settings import DemoSettings, GatewaySettings, VenueSettings
from tradepit.stage.ledger import LedgerShard
from tradepit.stage.loop import StageCore, StageLoop
from tradepit.stage.marketdata import MarketDataShard, keep_feed_clock
from tradepit.stage.matcher import MatcherShard
from tradepit.store.catalog import init_config, is_listed, load_config, wait_for_server
from tradepit.store.connection import connect, open_client
from tradepit.store.errors import StoreError
from tradepit.store.keys import VenueConfig

__all__ = [
    "VENUE_FILE",
    "GatewayProcess",
    "GatewayPortError",
    "shard_core",
    "run_loops",
    "serve",
    "run_shard",
    "find_redis_url",
    "StageExporter",
]

log = logging.getLogger("tradepit.venue")
# A venue down for longer catches up the last few days' sessions only (four changes a day).
_MISSED_CHANGES = 40

VENUE_FILE = "venue.json"  # in the data directory: where a running embedded venue listens
# The symbols a new venue lists, and the prices their bands start from.
DEFAULT_SYMBOLS = {"ACME": "100.00", "GLOBEX": "50.00", "INITECH": "20.00"}


class GatewayProcess:
    """`tradepit run gateway` as a supervised child: started, restarted if it dies, stopped.

    This process binds the gateway's port and hands the listening socket to each child it
    starts: a port already taken is a clear error here rather than a child dying over and
    over, and while a dead gateway is restarted, new connections wait in the socket's backlog
    instead of being refused."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.redis_url = ""
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.socket: socket.socket | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def command(self, fd: int) -> list[str]:
        """`tradepit run gateway`, given this venue's gateway settings whole, as JSON."""
        return [
            sys.executable,
            "-m",
            "tradepit.cli",
            "run",
            "gateway",
            "--settings",
            msgspec.json.encode(self.settings).decode(),
            "--fd",
            str(fd),
            # It stops when this process does, however this one ends: a gateway left behind
            # would hold the port and serve a venue that is gone.
            "--parent-pid",
            str(os.getpid()),
        ]

    def listen(self, patience: float = 3.0) -> None:
        """Bind the port, or raise `GatewayPortError`. A port in use is tried again for
        `patience` seconds: the gateway of a venue killed a moment ago takes up to a second
        to notice and let go of it."""
        settings = self.settings
        deadline = time.monotonic() + patience
        while True:
            try:
                self.socket = listening_socket(settings.host, settings.port, settings.send_buffer)
                return
            except OSError as error:
                if error.errno == errno.EADDRINUSE and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise GatewayPortError(
                    f"cannot listen on {settings.host}:{settings.port} ({error.strerror}): "
                    "another program has the port? Choose another with --port"
                ) from None

    async def start(self, redis_url: str, timeout: float = 30.0) -> None:
        """Start the gateway on `redis_url`'s venue, and return once it answers."""
        self.redis_url = redis_url
        if self.socket is None:
            self.listen()
        assert self.socket is not None
        fd = self.socket.fileno()
        # The URL carries the gateway's password: in its environment, which only this user can
        # read, never in its arguments, which every user on the host can.
        environment = {**os.environ, "REDIS_URL": redis_url}
        self.process = subprocess.Popen(
            self.command(fd), pass_fds=(fd,), start_new_session=True, env=environment
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway exited with {self.process.returncode}")
            if await asyncio.to_thread(self._answers):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the gateway did not answer on {self.url} in {timeout} s")

    def _answers(self) -> bool:
        """Whether the gateway answers HTTP. (A connection alone proves nothing: the socket
        is listening before the gateway accepts from it.)"""
        try:
            with socket.create_connection((self.settings.host, self.settings.port), 0.5) as conn:
                conn.sendall(b"GET /v2/clock HTTP/1.1\r\nHost: tradepit\r\n\r\n")
                return conn.recv(16).startswith(b"HTTP/1.1 ")
        except OSError:
            return False

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            if self.process is not None and self.process.poll() is not None:
                log.warning("gateway exited with %s; restarting", self.process.returncode)
                self.restarts += 1
                with contextlib.suppress(RuntimeError):
                    await self.start(self.redis_url)

    def stop(self) -> None:
        process, self.process = self.process, None
        try:
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            if self.socket is not None:
                self.socket.close()
                self.socket = None


class GatewayPortError(TradepitError, RuntimeError):
    """The gateway's port cannot be listened on."""


def find_redis_url(data_dir: str | os.PathLike[str], explicit: str | None = None) -> str:
    """The venue's Redis: the one named, else $REDIS_URL, else the embedded one `serve` runs."""
    url = explicit or os.environ.get("REDIS_URL")
    if url:
        return url
    venue_file = Path(data_dir) / VENUE_FILE
    try:
        return str(json.loads(venue_file.read_text())["redis_url"])
    except (OSError, ValueError, KeyError):
        raise SystemExit(
            f"no running venue found ({venue_file} is missing): start one with "
            "`tradepit serve`, or set REDIS_URL"
        ) from None


def shard_core(kind: str, index: int, config: VenueConfig) -> StageCore:
    if kind == "ledger":
        if not 0 <= index < config.ledgers:
            raise ValueError(f"this venue has ledger shards 0..{config.ledgers - 1}")
        return LedgerShard(index, config)
    if kind == "matcher":
        if not 0 <= index < config.matchers:
            raise ValueError(f"this venue has matcher shards 0..{config.matchers - 1}")
        return MatcherShard(index, config)
    if kind == "marketdata":
        if index != 0:
            raise ValueError("this venue runs one market data shard, 0")
        return MarketDataShard(config)
    raise ValueError(f"unknown stage {kind!r}: ledger, matcher or marketdata")


async def run_loops(loops: list[StageLoop], stop: asyncio.Event) -> None:
    """Run stage loops until `stop` is set, then let each finish its batch and return."""
    tasks = [asyncio.create_task(loop.run(), name=loop.core.keys.shard) for loop in loops]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    for loop in loops:
        loop.stop()
    for task in tasks:
        if task in done and task.exception() is not None:
            stopper.cancel()
            raise task.exception()  # type: ignore[misc]
    await asyncio.gather(*tasks)
    stopper.cancel()


class StageExporter:
    """The stages' metrics of one process, served on a port of their own (`tradepit.metrics`):
    an observer per loop, and the samplers of their inbox lag (and of Valkey, in `serve`)."""

    def __init__(self, port: int, host: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # The process's CPU, memory and descriptors: what the stages cost, beside what they do.
        ProcessCollector(registry=self.registry)
        self.stages = StageMetrics(self.registry)
        self.valkey: ValkeyMetrics | None = None
        self.exporter = Exporter(self.registry, port, host)
        self.samplers: list[asyncio.Task[None]] = []

    @classmethod
    def start(cls, port: int, host: str, *, implicit: bool = False) -> StageExporter | None:
        """Serve on `port`, or raise `MetricsPortError`; an `implicit` port (the API's + 1,
        not asked for) that is taken only logs so, and the venue runs without."""
        try:
            return cls(port, host)
        except OSError as error:
            if implicit:
                log.warning(
                    "no stage metrics: cannot listen on %s:%d (%s); choose a port with "
                    "--metrics-port",
                    host,
                    port,
                    error.strerror,
                )
                return None
            raise MetricsPortError(
                f"cannot serve the stages' metrics on {host}:{port} ({error.strerror}): "
                "choose another with --metrics-port (0: none)"
            ) from None

    def observe(self, loop: StageLoop) -> StageLoop:
        loop.metrics = self.stages.observer(loop.core)
        return loop

    def sample(self, redis_url: str, loops: list[StageLoop], valkey: bool = False) -> None:
        """Sample the lag of `loops`' shards (and with `valkey`, Valkey's INFO) on `redis_url`."""
        shards = {loop.core.keys.shard: loop.core.inboxes() for loop in loops}
        self.samplers.append(asyncio.create_task(sample_lag(self.stages, redis_url, shards)))
        if valkey:
            self.valkey = ValkeyMetrics(self.registry)
            self.samplers.append(asyncio.create_task(self.valkey.sample(redis_url)))

    def stop(self) -> None:
        for sampler in self.samplers:
            sampler.cancel()
        self.exporter.stop()


class MetricsPortError(TradepitError, RuntimeError):
    """The stages' metrics port cannot be listened on."""


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)


async def serve(
    data_dir: str,
    settings: VenueSettings,
    redis_url: str | None = None,
    ready: asyncio.Event | None = None,
    gateway: GatewaySettings | None = None,
    demo: DemoSettings | None = None,
    clock: VenueClock = REAL_TIME,
    calendar: str = "24x7",
) -> None:
    """Run the venue until SIGINT or SIGTERM; `gateway` None runs no gateway; `demo` runs the
    demo market's reference feed and bots on it (which needs the gateway). The sessions of
    `calendar` open and close by `clock`.

    On the embedded server, it first checks that Valkey loaded all this venue acknowledged
    (`tradepit.durability`), and stops with `DataLossError` if not, unless the settings accept
    the loss of data."""
    config = VenueConfig(
        settings.ledgers, settings.matchers, settings.maker_fee_bps, settings.taker_fee_bps
    )
    accept_data_loss = settings.accept_data_loss
    embedded = EmbeddedValkey(data_dir, settings.fsync) if redis_url is None else None
    stop = asyncio.Event()
    _stop_on_signals(stop)
    gateway_process: GatewayProcess | None = None
    helpers: list[asyncio.Task[None]] = []
    venue_file: Path | None = None  # written once this venue's server is up
    runner: asyncio.Task[None] | None = None
    progress: durability.ProgressFiles | None = None
    metrics: StageExporter | None = None
    try:
        # What could be in the way first: the data directory, then the port.
        if embedded is not None:
            await asyncio.to_thread(embedded.claim_data_dir)
        if gateway is not None:
            gateway_process = GatewayProcess(gateway)
            await asyncio.to_thread(gateway_process.listen)
        metrics = _serve_metrics(settings.metrics_port, gateway)
        if embedded is not None:
            await asyncio.to_thread(durability.check_aof_files, embedded.data_dir, accept_data_loss)
            await asyncio.to_thread(embedded.start)
            redis_url = embedded.url
            # Before anything runs or is written: does Valkey hold what was acknowledged?
            await durability.settle(redis_url, embedded.data_dir, accept_data_loss)
            progress = durability.ProgressFiles(embedded.data_dir)
            venue_file = Path(data_dir) / VENUE_FILE
            # The operator's URL, password included, for `tradepit admin` and `verify`.
            write_private(venue_file, json.dumps({"redis_url": redis_url, "pid": os.getpid()}))
        assert redis_url is not None
        operator_url = redis_url

        def url_of(role: Role) -> str:
            """Each part of the venue signs in as its role on the embedded server; on a server
            the operator runs, with the credentials the operator gave."""
            return operator_url if embedded is None else embedded.url_for(role)

        redis = await open_client(redis_url)
        try:
            config = await init_config(redis, config)
            first_start = not await is_listed(redis)
        finally:
            await redis.aclose()

        def stage(core: StageCore, role: Role) -> StageLoop:
            # On the embedded server, each shard keeps its progress in the data directory.
            recorder = progress.recorder(core.keys.shard) if progress is not None else None
            loop = StageLoop(core, url_of(role), progress=recorder)
            return loop if metrics is None else metrics.observe(loop)

        loops = [stage(LedgerShard(i, config), Role.LEDGER) for i in range(config.ledgers)]
        loops += [stage(MatcherShard(i, config), Role.MATCHER) for i in range(config.matchers)]
        loops.append(stage(MarketDataShard(config), Role.MARKETDATA))
        supervisor: asyncio.Task[None] | None = None
        if embedded is not None:
            supervisor = asyncio.create_task(embedded.supervise())
            helpers.append(supervisor)
            # A server that cannot be started again (its AOF damaged meanwhile, say) stops the
            # venue, with the reason, rather than leave its stages retrying forever.
            supervisor.add_done_callback(lambda _task: stop.set())
        runner = asyncio.create_task(run_loops(loops, stop))
        # Until every stage has loaded, or one failed to (its error is the runner's).
        loaded = asyncio.gather(*(loop.ready.wait() for loop in loops))
        waiting: list[asyncio.Future[Any]] = [loaded, runner]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            loaded.cancel()
            await runner  # raises a stage's error
            _raise_if_failed(supervisor)
            return  # stopped while the stages loaded
        admin_key = await _first_start(redis_url, first_start)
        hours = load_calendar(calendar, to_datetime(clock.now()).date())
        helpers.append(asyncio.create_task(_drive_sessions(redis_url, hours, clock)))
        helpers.append(asyncio.create_task(sample_forever(redis_url, config)))
        helpers.append(asyncio.create_task(keep_feed_clock(url_of(Role.MARKETDATA))))
        if metrics is not None:
            metrics.sample(operator_url, loops, valkey=True)
        where = f"unix://{embedded.socket_path}" if embedded is not None else _public(redis_url)
        print(
            f"tradepit: venue up on {where} ({config.ledgers} ledger and "
            f"{config.matchers} matcher shard(s), market data)",
            flush=True,
        )
        if metrics is not None:
            print(f"tradepit: the stages' metrics on {metrics.exporter.url}", flush=True)
        if gateway_process is not None:
            await gateway_process.start(url_of(Role.GATEWAY))
            helpers.append(asyncio.create_task(gateway_process.supervise()))
            print(
                f"tradepit: trading page on {gateway_process.url}/, API on "
                f"{gateway_process.url}/v2, docs on {gateway_process.url}/docs",
                flush=True,
            )
        if admin_key is not None:
            print(
                "tradepit: the admin key, shown this once: "
                f"APCA-API-KEY-ID={admin_key['key_id']} "
                f"APCA-API-SECRET-KEY={admin_key['secret_key']}",
                flush=True,
            )
        if demo is not None and gateway_process is not None:
            person = await person_account(redis_url)
            helpers.append(
                asyncio.create_task(run_demo(redis_url, gateway_process.url, demo), name="demo")
            )
            print(
                f"tradepit: a demo market is trading; open {gateway_process.url}/ and sign in "
                f"with APCA-API-KEY-ID={person['key_id']} "
                f"APCA-API-SECRET-KEY={person['secret_key']}",
                flush=True,
            )
        print("tradepit: Ctrl-C stops it", flush=True)
        if ready is not None:
            ready.set()
        await runner
        _raise_if_failed(supervisor)
    finally:
        for helper in helpers:
            helper.cancel()
        if runner is not None and not runner.done():  # the start failed: stop the stages first
            stop.set()
            with contextlib.suppress(Exception):
                await runner
        if gateway_process is not None:
            await asyncio.to_thread(gateway_process.stop)
        if metrics is not None:
            await asyncio.to_thread(metrics.stop)
        if venue_file is not None:  # not another venue's, if this one could not start
            with contextlib.suppress(OSError):
                venue_file.unlink()
        if progress is not None:
            progress.close()
        if embedded is not None:  # last: it releases the directory
            await asyncio.to_thread(embedded.stop)


def _serve_metrics(port: int, gateway: GatewaySettings | None) -> StageExporter | None:
    """`serve`'s stage metrics: on `port`; -1: beside the API, on its port + 1 (or the default
    API port's, with no gateway), if that is free; 0: none."""
    api = gateway if gateway is not None else GatewaySettings()
    if port > 0:
        return StageExporter.start(port, api.host)
    if port == 0 or api.port == 0:  # (an API on any free port has no port + 1)
        return None
    return StageExporter.start(api.port + 1, api.host, implicit=True)


def _raise_if_failed(supervisor: asyncio.Task[None] | None) -> None:
    """Raise what ended the server's supervision, if it ended."""
    if supervisor is not None and supervisor.done() and not supervisor.cancelled():
        supervisor.result()


def _public(url: str) -> str:
    """`url` with its password hidden, to be printed or logged."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    user, at, host = authority.rpartition("@")
    if not at:
        return url
    return f"{scheme}{sep}{user.partition(':')[0]}:***@{host}{slash}{path}"


async def _first_start(redis_url: str, first_start: bool) -> dict[str, str] | None:
    """List the default symbols on a new venue; create its admin key if it has none."""
    async with VenueClient(redis_url) as client:
        if first_start:
            for name, reference in DEFAULT_SYMBOLS.items():
                await add_symbol(client, name, reference_price=reference)
        return await ensure_admin_key(client)


async def _drive_sessions(redis_url: str, calendar: Calendar, clock: VenueClock) -> None:
    """Move the books through the calendar's sessions by the venue's clock. On a 24x7 venue,
    DAY orders expire at each UTC midnight; on an exchange's calendar, each change of phase
    goes to every book (`SetSession`), starting with the one in force now (which catches up a
    venue that was down across a change)."""
    always_open = isinstance(calendar, AlwaysOpen)
    if isinstance(calendar, TradingCalendar):
        for moment, phase in await _changes_to_catch_up(redis_url, calendar, clock.now()):
            await _change_session(redis_url, phase, moment, always_open)
    while True:
        try:
            moment, phase = calendar.next_change(clock.now())
        except ValueError as error:  # past the calendar's last day: a restart loads more
            log.error("the market's sessions stop here: %s; restart the venue", error)
            return
        await asyncio.sleep(clock.real_seconds_until(moment))
        await _change_session(redis_url, phase, moment, always_open)


async def _changes_to_catch_up(
    redis_url: str, calendar: TradingCalendar, now: int
) -> list[tuple[int, Phase]]:
    """The changes of phase the books missed while the venue was down, at the moments they
    were due (so that a DAY order that waited through a whole session it missed goes live and
    expires as it would have), the last `_MISSED_CHANGES` of them; else the phase now."""
    try:
        async with VenueClient(redis_url) as client:
            last = await last_session_change(client)
    except Exception:
        log.exception("reading the last session change failed")
        last = None
    missed = calendar.changes_between(last[0], now) if last is not None and last[0] < now else []
    return missed[-_MISSED_CHANGES:] or [(now, calendar.phase_at(now))]


async def _change_session(redis_url: str, phase: Phase, ts: int, always_open: bool) -> None:
    try:
        async with VenueClient(redis_url) as client:
            if always_open:
                await close_session(client, ts)  # and it opens again at once
            else:
                await set_session(client, phase, ts)
    except Exception:  # the next change tries again; the venue must not stop for this
        log.exception("changing the session to %s failed", phase)


async def _load_config_once_up(redis_url: str, who: str) -> VenueConfig:
    """The venue's configuration, once Redis answers. On a cluster the node the URL names can
    answer while the one that holds the configuration is down (a failover under way): that is
    waited out too, as a server still starting is."""
    backoff = 0.05
    while True:
        # Any node answers a PING: whether it is a cluster's is asked once it is up.
        probe = connect(redis_url, cluster=False, socket_connect_timeout=2)
        try:
            await wait_for_server(probe, who)
        finally:
            await probe.aclose()
        try:
            redis = await open_client(redis_url, socket_connect_timeout=2)
            try:
                return await load_config(redis)
            finally:
                await redis.aclose()
        except (StoreError, OSError) as error:  # CLUSTERDOWN and MOVED too, for a moment
            log.warning("%s: redis unavailable (%s); trying again", who, error)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


async def run_shard(
    kind: str,
    index: int,
    count: int,
    redis_url: str,
    *,
    keep_inputs: bool = False,
    replica_acks: int | None = None,
    metrics_port: int = 0,
) -> None:
    """Run one shard until SIGINT or SIGTERM; with a `metrics_port`, serve its metrics there
    (on every interface: a shard of its own is scraped from elsewhere)."""
    metrics = StageExporter.start(metrics_port, "0.0.0.0") if metrics_port else None
    config = await _load_config_once_up(redis_url, f"{kind} {index}/{count}")
    expected = {"ledger": config.ledgers, "matcher": config.matchers}.get(kind, 1)
    if count != expected:
        raise SystemExit(f"this venue runs {expected} {kind} shard(s), not {count}")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    loop = StageLoop(
        shard_core(kind, index, config),
        redis_url,
        trim_inputs=not keep_inputs,
        replica_acks=replica_acks,
    )
    clock = asyncio.create_task(keep_feed_clock(redis_url)) if kind == "marketdata" else None
    try:
        if metrics is not None:
            metrics.observe(loop)
            metrics.sample(redis_url, [loop])
        await run_loops([loop], stop)
    finally:
        if clock is not None:
            clock.cancel()
        if metrics is not None:
            await asyncio.to_thread(metrics.stop)
