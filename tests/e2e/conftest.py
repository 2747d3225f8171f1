"""A real venue for the end-to-end tests: `tradepit serve` as a person runs it, started once per
test session on free ports, with its gateway process and its embedded Valkey (or, with
`REDIS_URL` set, database 15 of that server, flushed first).

Tests share the venue, so each makes its own accounts and, where orders could meet, its own
symbol: `venue.account()` and `venue.symbol()`.

`browser` is a headless Chromium for the page tests (chromium.py), one a test module.

`cluster_venue` is another venue: `tradepit serve --redis-url` on a local Valkey Cluster of 3
primaries with a replica each (`tradepit.cluster.LocalCluster`), started once per session on
first use; a test module parametrizes its tests over both by a `venue` fixture of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from chromium import CHROMIUM, CHROMIUM_ARGS
from live import Venue
from playwright.sync_api import Browser, sync_playwright

from tradepit.cluster import LocalCluster
from tradepit.embedded import free_port

# As the integration tests' cluster: failovers within seconds, yet well above what a busy
# 2-core machine stalls a node for.
CLUSTER_NODE_TIMEOUT = 2.0


def _start_serve(
    data_dir: Path, port: int, redis_url: str | None, *flags: str
) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tradepit.cli", "--data-dir", str(data_dir)]
    if redis_url:
        command += ["--redis-url", redis_url]
    # In demo mode, as `tradepit demo` runs it, so that the page's demo button can be tested.
    command += ["serve", "--port", str(port), "--rate-limit", "0", "--demo"]
    command += ["--metrics-port", str(free_port())]  # not the API's + 1: it may be taken
    command += flags
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def venue(server_venue: Venue) -> Venue:
    return server_venue


@pytest.fixture(scope="session")
def server_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    """The venue on its embedded Valkey, or on `REDIS_URL`'s server."""
    data_dir = tmp_path_factory.mktemp("venue")
    external = os.environ.get("REDIS_URL")
    redis_url = None
    if external:
        redis_url = (
            external.rsplit("/", 1)[0] + "/15" if external.count("/") > 2 else external + "/15"
        )
        scratch = redis.Redis.from_url(redis_url)
        scratch.flushdb()
        scratch.close()
    with serving(data_dir, redis_url) as venue:
        yield venue


@pytest.fixture(scope="session")
def cluster_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    """The venue on a Valkey Cluster of its own (3 primaries, a replica each)."""
    directory = tmp_path_factory.mktemp("cluster")
    with LocalCluster(
        directory, primaries=3, replicas=1, node_timeout=CLUSTER_NODE_TIMEOUT
    ) as cluster:
        data_dir = tmp_path_factory.mktemp("cluster-venue")
        with serving(data_dir, cluster.url) as venue:
            yield venue


@contextlib.contextmanager
def serving(data_dir: Path, redis_url: str | None, *flags: str) -> Iterator[Venue]:
    """`tradepit serve` on `redis_url` (by default, its embedded Valkey), with `flags`, until
    the end."""
    port = free_port()
    process = _start_serve(data_dir, port, redis_url, *flags)
    assert process.stdout is not None
    output = []
    admin_key: dict[str, str] = {}
    stage_metrics: str | None = None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        output.append(line)
        found = re.search(r"APCA-API-KEY-ID=(\S+) APCA-API-SECRET-KEY=(\S+)", line)
        if found:
            admin_key = {"APCA-API-KEY-ID": found[1], "APCA-API-SECRET-KEY": found[2]}
        metrics = re.search(r"the stages' metrics on (\S+)", line)
        if metrics:
            stage_metrics = metrics[1]
        if "Ctrl-C stops it" in line or time.monotonic() > deadline:
            break
    assert admin_key, "".join(output)
    # Keep reading what it prints, so that a full pipe never blocks it.
    threading.Thread(target=output.extend, args=(process.stdout,), daemon=True).start()
    if redis_url is None:
        redis_url = json.loads((data_dir / "venue.json").read_text())["redis_url"]
    try:
        yield Venue(f"http://127.0.0.1:{port}", redis_url, data_dir, admin_key, stage_metrics)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()
