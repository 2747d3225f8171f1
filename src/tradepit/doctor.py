"""`tradepit doctor [--repair]`: what shape a data directory is in, one finding a line.

In order: the directory and its files are this user's alone (0700, 0600); no venue runs on it
(its lock, and no Valkey server that a killed tradepit left behind); the append-only file, file
by file, with Valkey's own checks (`tradepit.aof`); the venue's id and each shard's progress
file (`tradepit.durability`). `--repair` takes the directory as `serve` would (which makes its
files private again and stops a left-over server, cleanly), and cuts the AOF's last file where
its damage starts, losing what followed. Whether Valkey holds what the progress files say is
`serve`'s check at start: it needs the data loaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tradepit import aof
from tradepit.durability import IDENTITY_FILE, read_recorded, utc_text
from tradepit.embedded import DataDirInUseError, EmbeddedValkey, ValkeyExitedError

__all__ = ["Finding", "examine", "exited_message"]

_LOCK_FILE = "tradepit.lock"  # EmbeddedValkey's: held while a tradepit runs a server here
_PID_FILE = "valkey.pid"  # written by the server while it runs
_MAX_LISTED = 10  # paths listed in a finding about permissions


@dataclass(frozen=True, slots=True)
class Finding:
    ok: bool
    text: str
    repaired: bool = False  # it was a problem, and is no longer

    def line(self) -> str:
        return f"{'repaired' if self.repaired else 'ok' if self.ok else 'PROBLEM'}: {self.text}"


def examine(data_dir: Path, repair: bool = False) -> list[Finding]:
    """The findings about `data_dir`; with `repair`, after repairing what can be."""
    if not data_dir.is_dir():
        return [Finding(False, f"{data_dir} is not a directory (no venue has run here)")]
    findings = list(_permissions(data_dir))
    if repair:
        server = EmbeddedValkey(data_dir)
        try:
            server.claim_data_dir()  # makes the files private; stops a left-over server
        except DataDirInUseError as error:
            return [*findings, Finding(False, f"{error}; nothing was repaired")]
        try:
            if not all(finding.ok for finding in findings):  # the claim made them private
                findings = [Finding(True, finding.text, repaired=True) for finding in findings]
                findings += [finding for finding in _permissions(data_dir) if not finding.ok]
            findings += _append_only_file(data_dir, repair=True)
        finally:
            server.stop()
    else:
        with _held(data_dir) as in_use:
            if in_use is not None:
                findings.append(Finding(False, f"{in_use}: the AOF is checked once it stops"))
            else:
                findings += _append_only_file(data_dir, repair=False)
    return findings + _venue_files(data_dir)


def _permissions(data_dir: Path) -> Iterator[Finding]:
    paths = [data_dir]
    for directory, subdirectories, files in os.walk(data_dir):
        paths += [Path(directory) / name for name in (*subdirectories, *files)]
    loose = []
    for path in paths:
        status = path.lstat()
        if not (stat.S_ISDIR(status.st_mode) or stat.S_ISREG(status.st_mode)):
            continue  # a socket, a link
        wanted = 0o700 if stat.S_ISDIR(status.st_mode) else 0o600
        if status.st_mode & 0o077 or status.st_uid != os.getuid():
            loose.append(f"{path} ({stat.S_IMODE(status.st_mode):04o}, wants {wanted:04o})")
    if loose:
        shown = ", ".join(loose[:_MAX_LISTED])
        more = f" and {len(loose) - _MAX_LISTED} more" if len(loose) > _MAX_LISTED else ""
        yield Finding(
            False,
            f"others may read or write {shown}{more} (`tradepit serve` or `doctor --repair` "
            "makes them this user's alone)",
        )
    else:
        yield Finding(True, f"{data_dir} and its files are this user's alone")


@contextlib.contextmanager
def _held(data_dir: Path) -> Iterator[str | None]:
    """The directory's lock, held for the check, without touching anything; or what holds it."""
    try:
        lock = os.open(data_dir / _LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        lock = None
    try:
        if lock is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(lock, 32, 0).decode(errors="replace").strip() or "unknown"
                yield f"a tradepit (pid {holder}) runs a venue on it"
                return
        left_over = _left_over_server(data_dir)
        if left_over is not None:
            yield (
                f"a valkey-server (pid {left_over}) that a killed tradepit left runs on it "
                "(the next `tradepit serve`, or `doctor --repair`, stops it cleanly)"
            )
            return
        yield None
    finally:
        if lock is not None:
            os.close(lock)


def _left_over_server(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / _PID_FILE).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"valkey-server" in command else None


def _append_only_file(data_dir: Path, repair: bool) -> list[Finding]:
    missing = aof.missing_part(data_dir)
    if missing is not None:
        new = not (data_dir / aof.AOF_DIR).exists() and not read_recorded(data_dir).anything
        if new:
            return [Finding(True, "no append-only file yet: a new data directory")]
        return [
            Finding(
                False,
                f"{missing}: Valkey would not load this venue's data (`tradepit serve` says "
                "what is lost, and --accept-data-loss starts without it)",
            )
        ]
    findings = []
    checks = aof.check_files(data_dir)
    for index, check in enumerate(checks):
        name = check.file.name
        if check.ok:
            findings.append(Finding(True, f"{name} ({check.size} bytes) is sound"))
            continue
        last = index == len(checks) - 1 and check.loads_up_to is not None
        damage = f"{name} is damaged ({check.detail})"
        if check.loads_up_to is not None:
            # Where the last whole command (or MULTI/EXEC) before the damage ends.
            damage += f": only its first {check.loads_up_to} of {check.size} bytes load"
        if not last:
            findings.append(
                Finding(
                    False,
                    f"{damage}: not the last file, so cutting it would leave the files after "
                    "it applying to a state that never was; restore a backup (`tradepit "
                    "restore`)",
                )
            )
        elif repair:
            aof.cut_damaged_tail(data_dir, check)
            findings.append(
                Finding(
                    True,
                    f"{damage}: cut there, losing the last {check.damaged_bytes} bytes "
                    "(`tradepit serve` says which commits; --accept-data-loss starts without "
                    "them)",
                    repaired=True,
                )
            )
        else:
            findings.append(
                Finding(
                    False,
                    f"{damage}: `tradepit doctor --repair` cuts it there, losing the last "
                    f"{check.damaged_bytes} bytes",
                )
            )
    return findings


def _venue_files(data_dir: Path) -> list[Finding]:
    recorded = read_recorded(data_dir)
    findings = [Finding(False, f"{path} cannot be read") for path in recorded.unreadable]
    if recorded.venue_id is not None:
        findings.append(Finding(True, f"venue {recorded.venue_id} ({IDENTITY_FILE})"))
    elif not any(IDENTITY_FILE in path for path in recorded.unreadable):
        findings.append(
            Finding(True, f"no {IDENTITY_FILE} file yet: `tradepit serve` gives the venue one")
        )
    for shard, progress in sorted(recorded.shards.items()):
        last = progress.last_input_ms()
        when = f", last input at {utc_text(last)}" if last is not None else ""
        findings.append(Finding(True, f"{shard} acknowledged {progress.commits} commits{when}"))
    return findings


def _valkey_reason(log_tail: str) -> str:
    """What a Valkey log's last warning says, without its advice."""
    lines = [line for line in log_tail.splitlines() if line.strip()]
    warnings = [line.split(" # ", 1)[1] for line in lines if " # " in line]
    reason = (warnings or lines or ["no log"])[-1].strip()
    for advice in (": make a backup", ". You can:"):
        reason = reason.split(advice, 1)[0]
    return reason


def exited_message(data_dir: str, error: ValkeyExitedError) -> str:
    """The one line to say why the server would not start."""
    reason = _valkey_reason(error.log_tail)
    if "append only file" in reason or "AOF" in reason:
        return (
            f"the append-only file in {data_dir} is damaged (Valkey: {reason}): "
            f"`tradepit doctor --data-dir {data_dir} --repair` fixes it by cutting the damaged "
            "tail, which loses what was after it"
        )
    return (
        f"valkey-server exited while starting (exit {error.returncode}; Valkey: {reason}); "
        f"its log is {Path(data_dir) / 'valkey.log'}"
    )
