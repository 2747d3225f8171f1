"""`tradepit serve` as a person runs it: the embedded Valkey, supervised; the admin commands
answering one JSON line each; `tradepit verify`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
        banner = serve.stdout.readline()
        assert "venue up" in banner, banner
        created = _admin(data_dir, "create-account", "--cash", "1000.50", "--position", "ACME=7")
        assert set(created) == {"id", "key_id", "secret_key"}
        account = str(created["id"])
        _admin(data_dir, "deposit", account, "--cash", "0.50", "--transfer-id", "t1")
        _admin(data_dir, "deposit", account, "--cash", "0.50", "--transfer-id", "t1")  # again
        _admin(data_dir, "withdraw", account, "--symbol", "ACME", "--qty", "2")
        listed = _admin(data_dir, "list-accounts")
        assert listed == [  # type: ignore[comparison-overlap]
            {
                "id": account,
                "name": "",
                "cash": "1001.00",
                "cash_reserved": "0.00",
                "positions": {"ACME": "5"},
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
