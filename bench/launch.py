"""Starting `tradepit` as a subprocess for a benchmark: its command line, and waiting until it
is up and has printed an API key."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

__all__ = ["tradepit_command", "wait_until_up"]

_READY = "tradepit: Ctrl-C stops it"


def tradepit_command(data_dir: Path, *args: str) -> list[str]:
    """`tradepit --data-dir DATA_DIR ARGS...`, from this interpreter's environment."""
    tradepit = Path(sys.executable).parent / "tradepit"
    command = [str(tradepit)] if tradepit.exists() else [sys.executable, "-m", "tradepit.cli"]
    return [*command, "--data-dir", str(data_dir), *args]


def wait_until_up(
    process: subprocess.Popen[bytes], log: Path, key_line: str, what: str, timeout: float
) -> tuple[str, str]:
    """Wait until `process` (writing to `log`) says it is up; the key id and secret printed on
    the line containing `key_line`. RuntimeError, with the log, if it exits or is late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if _READY in text:
            for line in text.splitlines():
                if key_line in line:
                    fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
                    return fields["APCA-API-KEY-ID"], fields["APCA-API-SECRET-KEY"]
            raise RuntimeError(f"{what} printed no key:\n{text}")
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{text}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} was not ready in {timeout} s:\n{log.read_text()}")
