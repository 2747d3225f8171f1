"""What the venue has committed, kept outside Valkey's own files; and the check, at start, that
Valkey loaded at least that.

A damaged or missing append-only file does not stop Valkey: it loads what it can (a file cut
short: `aof-load-truncated`) or starts empty (no manifest, no appendonlydir), and a venue
started on that would trade on as if nothing had happened. So the data directory also holds:

- `venue-id`: the venue's identity, random, fixed at its first start and also kept in Valkey
  (`VENUE_ID`): data that carries another id, or none, is not this venue's;
- `progress/<shard>`: how many batches the stage shard has committed, and the inbox entries it
  had applied by then, overwritten in place after each commit (`ProgressRecorder`). The count
  is also in the shard's checkpoints hash, written in the same MULTI/EXEC as the batch.

Neither is fsynced. With `appendfsync everysec` a process killed loses neither these files nor
the AOF; a machine that crashes loses the AOF's last second and maybe these files' last writes.
The files can then be ahead of the AOF by what it lost, and the venue says so: acknowledged
orders were lost.

`serve` calls `check_aof_files` before its embedded server starts (with no manifest, Valkey
would write a new base over the old one), and `settle` once the server has loaded, before any
stage runs or anything is written. Data behind what the files say, missing, or another
venue's stops it with `DataLossError`, unless the operator accepts the loss: then it is logged
and the files start again from what Valkey holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import msgspec

from tradepit import aof
from tradepit.access import make_private_dir, write_private
from tradepit.errors import TradepitError
from tradepit.store import catalog, server
from tradepit.store.connection import Client, connect
from tradepit.store.progress import committed as committed_by

__all__ = [
    "IDENTITY_FILE",
    "PROGRESS_DIR",
    "DataLossError",
    "ShardProgress",
    "Recorded",
    "Loaded",
    "Identity",
    "Loss",
    "Comparison",
    "ProgressRecorder",
    "ProgressFiles",
    "encode_progress",
    "decode_progress",
    "read_recorded",
    "read_loaded",
    "compare",
    "describe",
    "check_aof_files",
    "settle",
    "write_progress",
    "new_venue_id",
    "utc_text",
]

log = logging.getLogger("tradepit.durability")

IDENTITY_FILE = "venue-id"
PROGRESS_DIR = "progress"
_MAX_PROGRESS_FILE = 1 << 20  # bytes: a shard with 64 inboxes writes ~3 kB
_ADVICE = (
    "Nothing was started. `tradepit doctor` checks the data directory (`--repair` cuts a "
    "damaged append-only file); `tradepit restore` brings back a backup; or start again with "
    "--accept-data-loss to go on from what Valkey holds, losing the rest."
)


class DataLossError(TradepitError, RuntimeError):
    """The data is behind what the venue acknowledged, missing, or another venue's."""


class ShardProgress(msgspec.Struct, frozen=True):
    """How far a shard had got: its commits, and the last entry of each inbox applied."""

    commits: int
    inputs: dict[str, str] = msgspec.field(default_factory=dict)

    def last_input_ms(self) -> int | None:
        """When its last input arrived (ms since the epoch): entry ids are `<ms>-<seq>`."""
        times = []
        for entry in self.inputs.values():
            with contextlib.suppress(ValueError):
                times.append(int(entry.partition("-")[0]))
        return max((t for t in times if t > 0), default=None)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ShardProgress).decode


def encode_progress(commits: int, checkpoints: Mapping[str, bytes]) -> bytes:
    """One line of JSON."""
    inputs = {stream: entry.decode() for stream, entry in checkpoints.items()}
    return _encode(ShardProgress(commits, inputs)) + b"\n"


def decode_progress(raw: bytes) -> ShardProgress | None:
    """A progress file's first line; None for an empty file. Raises ValueError if garbled."""
    line = raw.partition(b"\n")[0].strip()
    if not line:
        return None
    try:
        return _decode(line)
    except msgspec.DecodeError as error:
        raise ValueError(str(error)) from None


class ProgressRecorder:
    """One shard's progress file, kept by its stage loop (`StageLoop(progress=...)`): written
    after each commit, and checked against what each load finds.

    Overwritten in place with one pwrite(2), no fsync: a few microseconds a commit. A line
    shorter than the last is padded with spaces, so that the file stays one line."""

    def __init__(self, shard: str, path: Path) -> None:
        self.shard = shard
        self.path = path
        make_private_dir(path.parent)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._line = os.pread(self._fd, _MAX_PROGRESS_FILE, 0)
            acknowledged = decode_progress(self._line)
        except (OSError, ValueError):
            os.close(self._fd)
            raise
        self._commits = acknowledged.commits if acknowledged is not None else 0

    @property
    def commits(self) -> int:
        """The commits acknowledged, as far as this knows."""
        return self._commits

    def loaded(self, commits: int, checkpoints: Mapping[str, bytes]) -> None:
        """Raise `DataLossError` if Valkey holds fewer commits than were acknowledged: its
        server restarted with less than it had (more is fine: a stage killed between its
        EXEC and this file's write)."""
        if commits >= self._commits:
            return
        # Decoded only now: a line a commit would cost more than the write.
        acknowledged = decode_progress(self._line) or ShardProgress(self._commits)
        loss = Loss(self.shard, acknowledged, ShardProgress(commits, _text(checkpoints)))
        raise DataLossError(
            f"Valkey, restarted under the running venue, holds less than it acknowledged: "
            f"{_describe_loss(loss)}. The venue stopped. {_ADVICE}"
        )

    def committed(self, commits: int, checkpoints: Mapping[str, bytes]) -> None:
        line = encode_progress(commits, checkpoints)
        if len(line) < len(self._line):
            line = line[:-1] + b" " * (len(self._line) - len(line)) + b"\n"
        os.pwrite(self._fd, line, 0)
        self._line = line
        self._commits = commits

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _text(checkpoints: Mapping[str, bytes]) -> dict[str, str]:
    return {stream: entry.decode() for stream, entry in checkpoints.items()}


class ProgressFiles:
    """A data directory's progress files: a `ProgressRecorder` for each shard `serve` runs."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / PROGRESS_DIR
        self._recorders: list[ProgressRecorder] = []

    def recorder(self, shard: str) -> ProgressRecorder:
        recorder = ProgressRecorder(shard, self.directory / shard)
        self._recorders.append(recorder)
        return recorder

    def close(self) -> None:
        for recorder in self._recorders:
            recorder.close()


def write_progress(data_dir: Path, shards: Mapping[str, ShardProgress]) -> None:
    """Write the progress files anew (a restore does: from the data it restored)."""
    directory = data_dir / PROGRESS_DIR
    make_private_dir(directory)
    for shard, progress in shards.items():
        write_private(directory / shard, _encode(progress).decode() + "\n")


def new_venue_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the data directory's files say the venue acknowledged."""

    venue_id: str | None
    shards: dict[str, ShardProgress]
    unreadable: list[str] = field(default_factory=list)  # "<path> (<why>)"

    @property
    def anything(self) -> bool:
        """Whether a venue that kept these files ever ran here."""
        return self.venue_id is not None or bool(self.shards) or bool(self.unreadable)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What Valkey holds: its venue id, its number of keys, and the recorded shards' progress
    (a shard without a count in Valkey is absent)."""

    venue_id: str | None
    keys: int
    shards: dict[str, ShardProgress]


class Identity(Enum):
    NEW = "new"  # no id on either side, and Valkey empty: a new venue
    ADOPTED = "adopted"  # data but no id file: a directory from before the venue kept one
    SAME = "same"
    MISSING = "missing"  # an id file, and Valkey holds nothing
    UNMARKED = "unmarked"  # an id file, and Valkey's data carries no id
    OTHER = "other"  # an id file, and Valkey's data carries another


@dataclass(frozen=True, slots=True)
class Loss:
    shard: str
    acknowledged: ShardProgress
    loaded: ShardProgress | None

    @property
    def commits(self) -> int:
        return self.acknowledged.commits - (self.loaded.commits if self.loaded else 0)


@dataclass(frozen=True, slots=True)
class Comparison:
    identity: Identity
    recorded_id: str | None
    loaded_id: str | None
    losses: list[Loss]
    unreadable: list[str]

    @property
    def ok(self) -> bool:
        fine = (Identity.NEW, Identity.ADOPTED, Identity.SAME)
        return self.identity in fine and not self.losses and not self.unreadable


def compare(recorded: Recorded, loaded: Loaded) -> Comparison:
    """Whether Valkey holds what the files say was acknowledged; pure."""
    if recorded.venue_id is None:
        identity = Identity.NEW if loaded.keys == 0 else Identity.ADOPTED
    elif loaded.keys == 0:
        identity = Identity.MISSING
    elif loaded.venue_id is None:
        identity = Identity.UNMARKED
    elif loaded.venue_id != recorded.venue_id:
        identity = Identity.OTHER
    else:
        identity = Identity.SAME
    losses = []
    for shard, acknowledged in sorted(recorded.shards.items()):
        held = loaded.shards.get(shard)
        if (held.commits if held is not None else 0) < acknowledged.commits:
            losses.append(Loss(shard, acknowledged, held))
    return Comparison(identity, recorded.venue_id, loaded.venue_id, losses, recorded.unreadable)


def utc_text(ms: int | None) -> str:
    """A time in ms since the epoch, as a person reads it."""
    if ms is None:
        return "an unknown time"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d} UTC"


def _describe_loss(loss: Loss) -> str:
    acknowledged = loss.acknowledged
    last = utc_text(acknowledged.last_input_ms())
    if loss.loaded is None or loss.loaded.commits == 0:
        return (
            f"{loss.shard} lost all {acknowledged.commits} commits it acknowledged "
            f"(its inputs up to {last})"
        )
    since = utc_text(loss.loaded.last_input_ms())
    return (
        f"{loss.shard} lost its last {loss.commits} of {acknowledged.commits} commits "
        f"(the inputs it acknowledged after {since}, up to {last})"
    )


def describe(comparison: Comparison, data_dir: Path) -> str:
    """What is wrong, in one sentence (without the advice)."""
    where = f"the data Valkey loaded from {data_dir}"
    recorded = comparison.recorded_id
    if comparison.identity is Identity.MISSING:
        head = f"Valkey loaded nothing from {data_dir}, which holds venue {recorded}'s data"
    elif comparison.identity is Identity.UNMARKED:
        head = f"{where} carries no venue id, and the directory is venue {recorded}'s"
    elif comparison.identity is Identity.OTHER:
        head = (
            f"{where} is venue {comparison.loaded_id}'s, not this directory's venue {recorded} "
            f"(its {IDENTITY_FILE} file)"
        )
    else:
        head = f"{where} is behind what this venue acknowledged"
    details = [_describe_loss(loss) for loss in comparison.losses]
    details += [f"{path} cannot be read" for path in comparison.unreadable]
    return f"{head}: {'; '.join(details)}" if details else head


def read_recorded(data_dir: Path) -> Recorded:
    venue_id = None
    unreadable = []
    identity = data_dir / IDENTITY_FILE
    try:
        venue_id = identity.read_text().strip() or None
        if venue_id is None:
            unreadable.append(f"{identity} (empty)")
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as error:
        unreadable.append(f"{identity} ({error})")
    shards = {}
    directory = data_dir / PROGRESS_DIR
    paths = sorted(directory.iterdir()) if directory.is_dir() else []
    for path in paths:
        if path.name.endswith(".tmp"):  # an atomic write that did not finish
            continue
        try:
            progress = decode_progress(path.read_bytes()[:_MAX_PROGRESS_FILE])
        except (OSError, ValueError) as error:
            unreadable.append(f"{path} ({error})")
            continue
        if progress is not None:
            shards[path.name] = progress
    return Recorded(venue_id, shards, unreadable)


async def read_loaded(client: Client, shards: Iterable[str]) -> Loaded:
    found = {}
    for shard in shards:
        committed = await committed_by(client, shard)
        if committed is not None:
            found[shard] = ShardProgress(*committed)
    return Loaded(await catalog.venue_id(client), await server.key_count(client), found)


def check_aof_files(data_dir: Path, accept_data_loss: bool) -> None:
    """Before the server starts: refuse an append-only file that cannot be loaded whole as
    far as its files' presence shows (no directory where a venue ran, no manifest, a file the
    manifest names missing). Accepting the loss moves what is left aside, so that Valkey
    starts empty rather than write a new base over the old files and append to them."""
    aof_dir = data_dir / aof.AOF_DIR
    problem = aof.missing_part(data_dir)
    recorded = read_recorded(data_dir)
    files_left = aof_dir.is_dir() and any(aof_dir.iterdir())
    if problem is None or not (files_left or recorded.anything):
        return  # whole, or nothing to lose
    acknowledged = [
        f"{shard} {progress.commits} commits (inputs up to {utc_text(progress.last_input_ms())})"
        for shard, progress in sorted(recorded.shards.items())
    ]
    message = f"Valkey cannot load the append-only file in {data_dir}: {problem}"
    if acknowledged:
        message += f"; this venue had acknowledged {', '.join(acknowledged)}"
    if not accept_data_loss:
        raise DataLossError(f"{message}. {_ADVICE}")
    if aof_dir.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = aof_dir.with_name(f"{aof.AOF_DIR}.lost-{stamp}")
        aof_dir.rename(aside)
        message += f"; what was left of it is in {aside}"
    log.warning("starting anyway, as --accept-data-loss asks: %s", message)


async def settle(redis_url: str, data_dir: Path, accept_data_loss: bool) -> None:
    """Once Valkey has loaded, before anything else runs: compare what it holds with the
    files, raise `DataLossError` if it holds less (unless the loss is accepted: then log
    it, and start the files again from what Valkey holds), and fix the venue's id (a new
    venue's, or one adopted)."""
    recorded = read_recorded(data_dir)
    # The embedded server: one server, never a cluster.
    redis = connect(redis_url, cluster=False)
    try:
        loaded = await read_loaded(redis, recorded.shards)
        comparison = compare(recorded, loaded)
        if not comparison.ok:
            message = describe(comparison, data_dir)
            if not accept_data_loss:
                raise DataLossError(f"{message}. {_ADVICE}")
            log.warning("starting anyway, as --accept-data-loss asks: %s", message)
            _forget(data_dir)
        elif comparison.identity is Identity.SAME:
            return
        venue_id = loaded.venue_id or new_venue_id()
        if loaded.venue_id is None:
            await catalog.set_venue_id(redis, venue_id)
        # Valkey first: a crash between the two leaves data with an id and no file, which the
        # next start adopts, not a file that says data is missing.
        write_private(data_dir / IDENTITY_FILE, venue_id + "\n")
    finally:
        await redis.aclose()
    if not comparison.ok:
        log.warning(
            "%s goes on as venue %s, from what Valkey holds: the progress files start again",
            data_dir,
            venue_id,
        )
    elif comparison.identity is Identity.NEW:
        log.info("a new venue, %s, in %s", venue_id, data_dir)
    elif comparison.identity is Identity.ADOPTED:
        log.warning(
            "%s holds a venue's data but no %s file (from before tradepit kept one): "
            "adopted as venue %s",
            data_dir,
            IDENTITY_FILE,
            venue_id,
        )


def _forget(data_dir: Path) -> None:
    """Drop what the files say was acknowledged, so that they start again from Valkey."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / IDENTITY_FILE).unlink()
    directory = data_dir / PROGRESS_DIR
    if directory.is_dir():
        for path in directory.iterdir():
            path.unlink()
