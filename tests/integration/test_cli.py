"""`tradepit serve` as a person runs it: the embedded Valkey, supervised; the admin commands
answering one JSON line each; `tradepit verify`; one venue per data directory, and a venue
killed outright leaving nothing in the next one's way."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import pytest
from redis import Redis

from tradepit.embedded import EmbeddedValkey, free_port
from tradepit.store.keys import CONFIG, VenueConfig

TRADEPIT = [sys.executable, "-m", "tradepit.cli"]


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [*TRADEPIT, "--data-dir", str(data_dir), *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=60, env=env)


def _admin(data_dir: Path, *args: str) -> dict[str, object]:
    done = _cli(data_dir, "admin", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result: dict[str, object] = json.loads(lines[0])
    return result


def _valkey_pid(data_dir: Path) -> int:
    """The server `serve` started: its child valkey-server."""
    serve_pid = json.loads((data_dir / "venue.json").read_text())["pid"]
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        is_valkey = cmdline.startswith(b"valkey-server") or b"/valkey-server" in cmdline
        if is_valkey and parent == serve_pid:
            return int(pid)
    raise AssertionError(f"no valkey-server started by serve (pid {serve_pid})")


def test_serve_admin_and_verify(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    serve = subprocess.Popen(
        [*TRADEPIT, "--data-dir", str(data_dir), "serve", "--no-gateway"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert serve.stdout is not None
        # Its stderr is here too: the stages' lines saying where they start from may come first.
        seen: list[str] = []
        for line in serve.stdout:
            seen.append(line)
            if "venue up" in line or len(seen) > 50:
                break
        assert "venue up" in seen[-1], seen
        created = _admin(data_dir, "create-account", "--cash", "1000.50", "--position", "ACME=7")
        assert set(created) == {"id", "key_id", "secret_key"}
        account = str(created["id"])
        _admin(data_dir, "deposit", account, "--cash", "0.50", "--transfer-id", "t1")
        _admin(data_dir, "deposit", account, "--cash", "0.50", "--transfer-id", "t1")  # again
        _admin(data_dir, "withdraw", account, "--symbol", "ACME", "--qty", "2")
        margin = _admin(data_dir, "set-margin", account, "--multiplier", "2")
        assert margin == {"account_id": account, "multiplier": 2}
        listed = _admin(data_dir, "list-accounts")
        assert listed == [  # type: ignore[comparison-overlap]
            {
                "id": account,
                "name": "",
                "cash": "1001.00",
                "cash_reserved": "0.00",
                "positions": {"ACME": "5"},
                "multiplier": 2,
                "equity": "1501.00",  # ACME at its listed 100.00
                "maintenance_margin": "150.00",
                "margin_call": False,
            }
        ]
        refused = _cli(data_dir, "admin", "withdraw", account, "--cash", "5000")
        assert refused.returncode == 1
        assert json.loads(refused.stdout)["error"] == "insufficient_funds"
        off_grid = _cli(data_dir, "admin", "deposit", account, "--cash", "0.001")
        assert json.loads(off_grid.stdout)["error"] == "invalid_request"
        assert _admin(data_dir, "add-symbol", "WAYNE")["symbol"] == "WAYNE"
        assert _admin(data_dir, "halt", "WAYNE") == {"symbol": "WAYNE", "halted": True}

        # The supervisor brings a killed server back, with its data.
        os.kill(_valkey_pid(data_dir), signal.SIGKILL)
        time.sleep(1.0)
        verified = _cli(data_dir, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "OK" in verified.stdout
        assert _admin(data_dir, "list-accounts") == listed
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    assert serve.returncode == 0
    assert not (data_dir / "venue.json").exists()


def _running(pid: int) -> bool:
    """Whether `pid` is alive: not gone, and not a zombie (an exited process whose parent
    died before reaping it stays one where the init process does not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _serve_with_gateway(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """`serve` with its gateway on `port`, once both are up; and what it printed till then."""
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    serve = subprocess.Popen(
        [*TRADEPIT, "--data-dir", str(data_dir), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert serve.stdout is not None
    printed = ""
    try:
        while "trading page" not in printed:
            line = serve.stdout.readline()
            assert line, printed  # it exited
            printed += line
    except BaseException:
        serve.kill()
        serve.wait()
        raise
    return serve, printed


def _gateway_pid(serve_pid: int) -> int:
    for pid in os.listdir("/proc"):
        with contextlib.suppress(OSError, ValueError):  # gone, or no --parent-pid
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            parent = command[command.index(b"--parent-pid") + 1]
            if b"gateway" in command and parent == b"%d" % serve_pid and _running(int(pid)):
                return int(pid)
    raise AssertionError(f"no gateway started by serve (pid {serve_pid})")


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_one_venue_per_data_dir_and_a_killed_one_leaves_nothing_in_the_way(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    serve, _ = _serve_with_gateway(data_dir, port)
    restarted: subprocess.Popen[str] | None = None
    server = _valkey_pid(data_dir)
    try:
        account = str(_admin(data_dir, "create-account", "--cash", "250.00")["id"])

        # serve holds the port and hands it to its gateway: a request made while a killed
        # gateway is restarted waits for the new one rather than being refused.
        os.kill(_gateway_pid(serve.pid), signal.SIGKILL)
        answer = httpx.get(f"http://127.0.0.1:{port}/v2/clock", timeout=20)
        assert answer.status_code == 401  # an answer, from the new gateway (no key given)

        # A second venue on the same directory would run a second server on its AOF.
        second = _cli(data_dir, "serve", "--no-gateway")
        assert second.returncode == 1
        assert f"in use by another tradepit (pid {serve.pid})" in second.stderr
        assert (data_dir / "venue.json").exists()  # the running venue's, left alone

        serve.kill()  # SIGKILL: no clean-up runs
        serve.wait(timeout=10)
        # Its gateway notices and stops, freeing the port; its server, in a session of its
        # own, runs on with the data.
        _until(lambda: not _port_open(port))
        assert _running(server)

        restarted, printed = _serve_with_gateway(data_dir, port)
        # The new venue stopped the old server (which wrote out its AOF) before starting its own.
        assert f"a valkey-server (pid {server}) outlived" in printed
        assert not _running(server)
        listed = _admin(data_dir, "list-accounts")
        assert [entry["id"] for entry in listed] == [account]  # type: ignore[index]
        verified = _cli(data_dir, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        for process in (serve, restarted):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        with contextlib.suppress(OSError):  # this test failed with the old server running
            if (
                _running(server)
                and b"valkey-server" in Path(f"/proc/{server}/cmdline").read_bytes()
            ):
                os.kill(server, signal.SIGTERM)
    assert restarted is not None and restarted.returncode == 0


def test_serve_on_a_taken_port_says_so_before_it_starts_a_server(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _cli(tmp_path / "data", "serve", "--port", str(port))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in done.stderr
    assert not (tmp_path / "data" / "appendonlydir").exists()  # no server was started


def test_an_admin_command_to_a_venue_whose_stages_are_down_says_so(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    serve = subprocess.Popen(
        [*TRADEPIT, "--data-dir", str(data_dir), "serve", "--no-gateway"],
        stdout=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    assert serve.stdout is not None
    assert "venue up" in serve.stdout.readline()
    server = _valkey_pid(data_dir)
    serve.kill()  # the stages are gone; the server (and venue.json) stay
    serve.wait(timeout=10)
    try:
        done = _cli(data_dir, "admin", "--timeout", "1", "create-account", "--cash", "5")
        assert done.returncode == 1
        answer = json.loads(done.stdout)
        assert answer["error"] == "no_reply"
        assert "is the venue running?" in answer["message"]
        assert {"id", "key_id", "secret_key"} <= set(answer)
    finally:
        os.kill(server, signal.SIGTERM)
    # The account was queued with its key: it opens, usable, once the venue runs again.
    serve = subprocess.Popen(
        [*TRADEPIT, "--data-dir", str(data_dir), "serve", "--no-gateway"],
        stdout=subprocess.PIPE,
        text=True,
        env={key: value for key, value in os.environ.items() if key != "REDIS_URL"},
    )
    try:
        assert serve.stdout is not None
        assert "venue up" in serve.stdout.readline()
        listed = _admin(data_dir, "list-accounts")
        assert [(entry["id"], entry["cash"]) for entry in listed] == [  # type: ignore[index]
            (answer["id"], "5.00")
        ]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)


def test_no_server_to_reach_is_said_in_a_line_not_a_traceback(tmp_path: Path) -> None:
    # What a venue killed with its server leaves: venue.json naming a socket nobody serves.
    (tmp_path / "venue.json").write_text(
        json.dumps({"redis_url": f"unix://{tmp_path}/valkey.sock?db=0", "pid": 1})
    )
    listed = _cli(tmp_path, "admin", "list-accounts")
    assert listed.returncode == 1
    assert json.loads(listed.stdout)["error"] == "unreachable"
    verified = _cli(tmp_path, "verify")
    assert verified.returncode == 1
    assert verified.stderr.startswith("tradepit: cannot reach Redis (")
    assert "Traceback" not in verified.stderr

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        served = _cli(tmp_path, "--redis-url", url, "serve", "--no-gateway")
    assert served.returncode == 1
    assert "cannot reach Redis (" in served.stderr and "Traceback" not in served.stderr


def test_a_gateway_started_before_its_server_waits_for_it(tmp_path: Path) -> None:
    server = EmbeddedValkey(tmp_path / "valkey", port=free_port())
    # The venue's configuration is in the server's data before the gateway starts: the moment
    # the gateway finds the server up, it holds a venue (a server found without one is an
    # error the gateway stops on, and setting it after the start raced with the gateway).
    with server:
        redis = Redis.from_url(server.url)
        try:
            redis.set(CONFIG, msgspec.json.encode(VenueConfig()))
        finally:
            redis.close()
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    command = [*TRADEPIT, "--redis-url", server.url, "run", "gateway", "--port", str(port)]
    gateway = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert gateway.stderr is not None
    errors: list[str] = []
    # Read as it goes, so that the server starts only once the gateway has found it missing
    # (however long its start takes on a busy machine).
    threading.Thread(target=errors.extend, args=(gateway.stderr,), daemon=True).start()
    try:
        _until(lambda: "gateway: redis unavailable" in "".join(errors), timeout=60)
        assert gateway.poll() is None  # waiting, not exited
        with server:

            def answers() -> bool:
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/v2/clock").status_code == 401
                except httpx.TransportError:
                    return False

            _until(answers)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
    assert "gateway: redis unavailable" in "".join(errors)
