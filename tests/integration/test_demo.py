"""`tradepit demo` (what `make run` starts) as a person runs it: within a minute every symbol
trades again and again, the books have both sides, and a restart offers the same account."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tradepit.embedded import free_port

SYMBOLS = "ACME,GLOBEX,INITECH"


def _start(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str], str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [sys.executable, "-m", "tradepit.cli", "--data-dir", str(data_dir), "demo"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "Ctrl-C stops it" in line:
            break
    text = "".join(output)
    found = re.search(r"sign in with APCA-API-KEY-ID=(\S+) APCA-API-SECRET-KEY=(\S+)", text)
    assert found, text
    headers = {"APCA-API-KEY-ID": found[1], "APCA-API-SECRET-KEY": found[2]}
    return process, headers, text


def _stop(process: subprocess.Popen[str]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_demo_market_moves_within_a_minute(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process, headers, _ = _start(data_dir, port)
    try:
        deadline = time.monotonic() + 60
        first: dict[str, Any] = {}
        while True:
            assert time.monotonic() < deadline, f"no moving market after a minute: {first}"
            snapshots = httpx.get(
                f"{url}/v2/stocks/snapshots", params={"symbols": SYMBOLS}, headers=headers
            ).json()
            traded = {
                name: shot["latestTrade"]["i"]
                for name, shot in snapshots.items()
                if shot["latestTrade"] and shot["latestQuote"]["bp"] and shot["latestQuote"]["ap"]
            }
            for name, trade_id in traded.items():
                first.setdefault(name, trade_id)
            # Every symbol traded, and traded again since it was first seen.
            if len(traded) == 3 and all(traded[name] > first[name] for name in first):
                break
            time.sleep(0.5)
        for shot in snapshots.values():
            quote = shot["latestQuote"]
            assert quote["bp"] < quote["ap"]  # the book is not crossed
            assert shot["dailyBar"]["v"] > 0 and shot["minuteBar"]["n"] >= 1
        account = httpx.get(f"{url}/v2/account", headers=headers).json()
        assert account["cash"] == "100000.00"
    finally:
        _stop(process)

    # A restarted demo offers the same account, and its bots trade on.
    process, again, _ = _start(data_dir, port)
    try:
        assert again == headers
    finally:
        _stop(process)
