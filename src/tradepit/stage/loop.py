"""The loop every stateful stage runs, written once.

1. read a batch from the shard's inbox streams, after its checkpoints;
2. apply it to the in-memory core, deterministically;
3. in ONE MULTI/EXEC: append the outputs to the outbox streams, write the state that changed,
   advance the checkpoints, and PUBLISH the live copies.

A busy stage does not wait for its commit to be applied before it reads and applies the next
batch: that read goes on a connection of its own as soon as a batch has arrived, so Valkey
applies one commit while the stage works on the batch after it. The next commit waits for the
last one's reply: a commit is only ever sent on top of committed state. An idle stage sends its
next (blocking) XREAD in the same write as its commit: one round trip per batch.

A crash anywhere loses nothing: until EXEC, nothing of the batch is in Redis, and a restarted
stage loads the state and checkpoints that were committed together. A lost connection, or a
commit the server refuses (a full disk, say), is handled the same way: the stage drops its
memory, loads again, and retries.

An entry that cannot be decoded is moved to the shard's dead-letter stream with the reason, in
the same transaction as the checkpoint that skips it, and the stage goes on.

On a Valkey Cluster (found by asking the URL's node) the same loop runs with three changes:
the inboxes are read one by one and an idle stage sleeps on their doorbells
(`tradepit.stage.inboxes`); the trims of other shards' streams go to their own nodes; and
after each EXEC the stage marks how far each of its streams is in (`{l0}:replicated`, which
its readers stop at), then sends its replies, live events and doorbells. With replica
acknowledgements (`replica_acks`: by default 1 once the stage has seen the cluster keep
replicas) the EXEC is followed by a WAIT, and all of that waits until a replica holds the
commit. A failover then takes nothing that anyone was told of, nor anything another shard
applied.

Each commit also counts itself (the COMMITS field of the checkpoints hash), so that what was
acknowledged can be told from what a server loaded: a `ProgressRecorder` (`serve` gives each
shard one, `tradepit.durability`) keeps the count outside Redis after each commit, and refuses
a load that holds fewer.

A `StageObserver` (`tradepit.metrics.stage`) is told of each batch, commit, dead letter, reload
and retried commit; the loop reads the clock twice a batch for it, and nothing per entry.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tradepit.errors import TradepitError
from tradepit.stage.inboxes import ClusterInboxes
from tradepit.stage.resp import (
    CommandBuffer,
    RespConnection,
    executed,
    pack,
    raise_errors,
    transaction,
    xread_batch,
    xread_command,
)
from tradepit.stage.routing import ClusterRoutes, slot_moved
from tradepit.store.connection import Client, connect, is_cluster
from tradepit.store.keys import COMMITS, ShardKeys, hash_tag

__all__ = [
    "BadEntryError",
    "StageCore",
    "StageLoop",
    "Fields",
    "ProgressRecorder",
    "StageObserver",
    "Reload",
]

log = logging.getLogger("tradepit.stage")

Fields = dict[bytes, bytes]
_START = b"0-0"
DEAD_LETTERS_KEPT = 10_000
# A busy stage's commit runs to megabytes. The event loop only hands the socket what its kernel
# buffer takes, and the rest waits until the stage's Python next lets go (it is applying the
# next batch by then): a buffer that takes the whole commit lets Valkey apply it meanwhile.
COMMIT_SEND_BUFFER = 4 * 1024 * 1024
# Entries per stream per batch, at most. An entry holds up to a few hundred commands (clients
# group what they send together), so batches stay small enough for one to be applied in Valkey
# while the stage works on the next, rather than alternating with it (bench/pipeline.py).
ENTRIES_PER_READ = 4
_FIRST_BACKOFF, _LAST_BACKOFF = 0.05, 1.0  # seconds between tries, after a failure
# How long one WAIT for replicas lasts before the stage says it is still waiting and waits on.
REPLICA_WAIT_MS = 1_000


class Reload:
    """Why a stage loads again: the three ways a batch fails to commit."""

    UNAVAILABLE = "unavailable"  # the connection was lost, or the server did not answer
    MOVED = "moved"  # a cluster's slot moved to another node
    REFUSED = "refused"  # the server refused a command (a full disk, a replica, memory)


class BadEntryError(TradepitError):
    """An inbox entry that cannot be applied as it is: it goes to the dead-letter stream."""


class _StoppedWaitingError(TradepitError):
    """Told to stop while a commit waits for its replicas."""


class StageCore(ABC):
    """The shard-specific half of a stage: a pure core plus how its state maps onto Redis."""

    keys: ShardKeys

    @abstractmethod
    def inboxes(self) -> list[str]:
        """The streams this shard reads, in the order each batch applies them."""

    def outboxes(self) -> list[str] | None:
        """This shard's streams that other shards read: on a cluster, what it marks after each
        commit and rings the doorbells of. None: every stream it appends to."""
        return None

    @abstractmethod
    async def load(self, redis: Client) -> None:
        """Replace all in-memory state with what Redis holds."""

    @abstractmethod
    def apply(self, stream: str, fields: Fields) -> None:
        """Apply one entry. Raise BadEntryError, having changed nothing, if it cannot be decoded."""

    @abstractmethod
    def write(self, tx: CommandBuffer) -> list[tuple[str, bytes]]:
        """Queue the batch's outputs and changed state on `tx`; return what to publish after."""

    def made(self) -> Any:
        """What the batch `write` just queued made, for a `StageObserver`, which is given it
        once that batch is committed (so that a batch applied again is not told twice): the
        matcher's trades, the ledger's fills. None: nothing to tell."""
        return None


class ProgressRecorder(Protocol):
    """Where a shard's progress is kept outside Redis, told of each load and commit."""

    def loaded(self, commits: int, checkpoints: Mapping[str, bytes]) -> None:
        """What a load found; raise to stop the stage if it holds less than was committed."""

    def committed(self, commits: int, checkpoints: Mapping[str, bytes]) -> None:
        """A commit succeeded: the shard's `commits`-th, with these checkpoints."""


class StageObserver(Protocol):
    """Told what a shard's loop does, for its metrics: each call runs in the loop, once a batch
    at most, and must be cheap."""

    def applied(self, entries: int, seconds: float) -> None:
        """A batch of `entries` inbox entries was applied and written in `seconds`."""

    def committed(self, seconds: float, made: Any) -> None:
        """A batch's commit is in: `seconds` from its EXEC sent to its reply (on a cluster, to
        its WAIT's); `made` is what the core's `made()` said of it."""

    def dead_lettered(self, entries: int) -> None:
        """A commit moved `entries` undecodable entries to the dead-letter stream."""

    def reloading(self, reason: str) -> None:
        """The stage is about to load again, for a `Reload` reason."""

    def retried(self, batches: int) -> None:
        """A load found `batches` sent commits missing: their entries are applied again."""


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Take a dropped future's outcome, so that asyncio does not log it as never retrieved."""
    if not future.cancelled():
        future.exception()


class _Commit(NamedTuple):
    """A batch's transaction, written and not yet known to be applied."""

    replies: asyncio.Future[list[Any]]
    commands: int
    number: int  # the shard's count of commits, this one included
    checkpoints: dict[str, bytes]
    dead: list[tuple[str, bytes, Fields, str]]
    sent: float  # perf_counter() when its EXEC went (0 without an observer)
    made: Any  # the core's `made()` (None without an observer)
    # On a cluster: what sends its marks, replies, live events and doorbells once it is in (and
    # with replica acks, once a replica holds it), as soon as it is (not when the stage next
    # looks: an idle stage sleeps).
    replicated: asyncio.Future[None] | None


class StageLoop:
    """Runs a `StageCore` against Redis until `stop()`; survives Redis restarts, and commands
    Redis refuses.

    Commits go on one connection, and a busy stage's read-ahead on another (see the module's
    docstring); a failed commit is never followed by another built on it: the stage reloads,
    drops whatever it applied since, and tries again, more slowly each time (up to once a
    second) until a commit goes through."""

    def __init__(
        self,
        core: StageCore,
        redis_url: str,
        *,
        max_entries: int = ENTRIES_PER_READ,
        block_ms: int = 100,
        trim_inputs: bool = True,
        progress: ProgressRecorder | None = None,
        replica_acks: int | None = None,
        metrics: StageObserver | None = None,
    ) -> None:
        self.core = core
        self.redis_url = redis_url
        self.max_entries = max_entries
        self.block_ms = block_ms
        self.trim_inputs = trim_inputs
        self.progress = progress
        self.metrics = metrics
        self._replied = 0.0  # perf_counter() when the commit in flight was answered
        # The number of the last commit sent when a failure stopped the loop, if it had not
        # been answered: the next load tells how many of those are to be applied again.
        self._unanswered: int | None = None
        self._loads = 0
        # Replicas each commit waits for (cluster only); None: 1 once the cluster is seen to
        # keep replicas (and from then on: a primary just promoted has none until its old one
        # is back, and its commits wait for that rather than be acknowledged on one copy).
        self.replica_acks = replica_acks
        self._cluster: bool | None = None  # found out at the first connection
        self._routes: ClusterRoutes | None = None
        self._inboxes: ClusterInboxes | None = None
        self._wire: RespConnection | None = None
        self._acks = 0  # replicas each commit waits for, as decided for this connection
        self._outboxes: set[str] | None = None  # what other shards read (None: everything)
        self.checkpoints: dict[str, bytes] = {}  # as committed
        self.commits = 0  # as committed
        self._last_sent = 0  # the number of the last commit sent (== commits when none is out)
        self._read_to: dict[str, bytes] = {}  # as read and applied, maybe not yet committed
        # The next batch's XREAD, on either connection (None: not sent yet).
        self._next_read: asyncio.Future[list[Any]] | None = None
        self._commit: _Commit | None = None
        self.batches = 0
        self.dead_letters = 0
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self._backoff = _FIRST_BACKOFF  # seconds to wait after the next failure

    def stop(self) -> None:
        self._stopping.set()
        if self._inboxes is not None:
            self._inboxes.wake()

    async def _connect(self) -> tuple[Client, RespConnection, RespConnection | None]:
        """The client loads go on, the commits' connection, and (on one server) the reads'."""
        if self._cluster is None:
            self._cluster = await is_cluster(self.redis_url)
        if not self._cluster:
            wire = await RespConnection.open(self.redis_url, send_buffer=COMMIT_SEND_BUFFER)
            try:
                reader = await RespConnection.open(self.redis_url)
            except BaseException:
                wire.close()
                raise
            return connect(self.redis_url, cluster=False, socket_connect_timeout=2), wire, reader
        if self._routes is None:
            self._routes = ClusterRoutes(self.redis_url)
        routes = self._routes
        await routes.refresh()
        keys = self.core.keys
        own = routes.node_of(keys.checkpoints)
        if self.replica_acks is not None:
            self._acks = self.replica_acks
        elif routes.has_replicas():
            # Once a stage has seen replicas it keeps waiting for one, even while a promoted
            # primary has none yet: its commits then wait (and say so) until one is back,
            # rather than be acknowledged on a single copy.
            self._acks = 1
        wire = await RespConnection.open(routes.url_of(own), send_buffer=COMMIT_SEND_BUFFER)
        inboxes = ClusterInboxes(routes, self.core.inboxes(), hash_tag(keys.checkpoints))
        self._inboxes = inboxes
        outboxes = self.core.outboxes()
        self._outboxes = None if outboxes is None else set(outboxes)
        try:
            await inboxes.open()
        except BaseException:
            wire.close()  # (`run` closes the inboxes)
            raise
        redis = connect(
            self.redis_url, cluster=True, startup_nodes=routes.known, socket_connect_timeout=2
        )
        return redis, wire, None

    async def run(self) -> None:
        shard = self.core.keys.shard
        while not self._stopping.is_set():
            redis: Client | None = None
            wire: RespConnection | None = None
            reader: RespConnection | None = None
            try:
                redis, wire, reader = await self._connect()
                self._wire = wire
                await self._load(redis)
                if self._inboxes is not None:
                    await self._mark_replicated(wire)
                self.ready.set()
                while not self._stopping.is_set():
                    await self.step(wire, reader)
                await self._committed()
            except _StoppedWaitingError:
                pass
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                # Whatever this batch did in memory was not committed: load it all again.
                self._failed(Reload.UNAVAILABLE)
                log.warning(
                    "%s: redis unavailable (%s); reloading (committed: %d)",
                    shard,
                    error,
                    self.commits,
                )
                await self._pause()
            except ResponseError as error:
                if slot_moved(error):
                    # A cluster's slot moved (a failover, a migration): routine.
                    self._failed(Reload.MOVED)
                    log.warning(
                        "%s: %s; reloading from its new node (committed: %d)",
                        shard,
                        error,
                        self.commits,
                    )
                    await self._pause()
                    continue
                # Refused rather than lost: a full disk (MISCONF), a replica (READONLY), memory
                # (OOM), a missing permission, or a command of ours. The same way back: none
                # of the batch is in, so load again and retry it. A cause that passes heals
                # itself; one that lasts is in the log once a second, and the venue stays up.
                self._failed(Reload.REFUSED)
                log.error(
                    "%s: redis refused the stage's commands (%s); reloading (committed: %d)",
                    shard,
                    error,
                    self.commits,
                )
                await self._pause()
            finally:
                # What was in flight on the lost connections fails with them: nobody waits.
                commit = self._commit
                for pending in (commit.replies, commit.replicated) if commit else ():
                    if pending is not None:
                        pending.add_done_callback(_retrieve)
                if self._next_read is not None:
                    # A read changes nothing: one in flight is dropped (a cluster's would
                    # otherwise go on waiting, on connections closed here).
                    self._next_read.add_done_callback(_retrieve)
                    self._next_read.cancel()
                self._next_read, self._commit = None, None
                for connection in (wire, reader):
                    if connection is not None:
                        connection.close()
                if self._inboxes is not None:
                    self._inboxes.close()
                    self._inboxes = None
                if self._routes is not None:
                    self._routes.close()
                self._wire = None
                if redis is not None:
                    await redis.aclose()

    def _failed(self, reason: str) -> None:
        if self._last_sent > self.commits:  # sent, and never answered
            self._unanswered = self._last_sent
        if self.metrics is not None:
            self.metrics.reloading(reason)

    async def _pause(self) -> None:
        self.ready.clear()
        await asyncio.sleep(self._backoff)
        self._backoff = min(self._backoff * 2, _LAST_BACKOFF)

    async def _load(self, redis: Client) -> None:
        stored: Any = await redis.hgetall(self.core.keys.checkpoints)
        self.checkpoints = {
            stream: stored.get(stream.encode(), _START) for stream in self.core.inboxes()
        }
        self._read_to = dict(self.checkpoints)
        self.commits = self._last_sent = int(stored.get(COMMITS.encode(), 0))
        if self.progress is not None:
            self.progress.loaded(self.commits, self.checkpoints)
        await self.core.load(redis)
        # Commits sent before a failure and not found now: their batches are applied again.
        # (Found: the commit went in, and only its reply was lost.)
        lost, self._unanswered = (self._unanswered or 0) - self.commits, None
        if lost > 0 and self.metrics is not None:
            self.metrics.retried(lost)
        self._loads += 1
        resumes = ", ".join(
            f"{stream} after {entry_id.decode()}" for stream, entry_id in self.checkpoints.items()
        )
        log.info(
            "%s: %s at commit %d%s; reading %s",
            self.core.keys.shard,
            "started" if self._loads == 1 else "loaded again",
            self.commits,
            f" ({lost} sent commit(s) not in: applying them again)" if lost > 0 else "",
            resumes,
        )

    def _request_read(
        self, reader: RespConnection | None, read_to: dict[str, bytes], block: bool
    ) -> asyncio.Future[list[Any]]:
        if self._inboxes is not None:
            return self._inboxes.read(read_to, self.max_entries, block)
        assert reader is not None
        command = xread_command(read_to, self.max_entries, self.block_ms if block else None)
        return reader.request(command, 1)

    async def step(self, wire: RespConnection, reader: RespConnection | None) -> int:
        """Read and apply one batch, and commit it once the last commit succeeded; return how
        many entries it held.

        The core queues its writes on a `CommandBuffer`, which packs them: they are sent on
        `wire`, the thin connection; `reader` carries the XREADs (on one server; on a cluster,
        the inboxes' own connections do)."""
        if self._next_read is None:
            self._next_read = self._request_read(reader, self._read_to, not self._stopping.is_set())
        reading, self._next_read = self._next_read, None
        response = xread_batch((await reading)[0])
        if not response:
            await self._committed()  # idle: a good moment to learn how the last one went
            return 0
        advanced = {stream.decode(): entries[-1][0] for stream, entries in response}
        read_to = {**self._read_to, **advanced}
        # A stream that filled the batch has more waiting: read it now, to apply while this
        # batch's commit is in Valkey. Otherwise the read rides the commit's write, as one
        # round trip (an idle stage's latency is its number of system calls and wake-ups).
        busy = any(len(entries) == self.max_entries for _stream, entries in response)
        if busy:
            self._next_read = self._request_read(reader, read_to, True)
        metrics = self.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        dead: list[tuple[str, bytes, Fields, str]] = []
        count = 0
        # XREAD answers the streams in the order asked, which is the core's order.
        for raw_stream, entries in response:
            stream = raw_stream.decode()
            for entry_id, fields in entries:
                try:
                    self.core.apply(stream, fields)
                except BadEntryError as error:
                    dead.append((stream, entry_id, fields, str(error)))
            count += len(entries)
        keys = self.core.keys
        tx = CommandBuffer()
        publishes = self.core.write(tx)
        for stream, entry_id, fields, reason in dead:
            record: dict[Any, Any] = {
                b"stream": stream,
                b"id": entry_id,
                b"reason": reason,
            }
            record.update({b"field:" + name: value for name, value in fields.items()})
            tx.xadd(keys.dead_letters, record, maxlen=DEAD_LETTERS_KEPT, approximate=True)
        number = self._last_sent + 1
        tx.hset(keys.checkpoints, COMMITS, number, mapping=advanced)
        after: list[bytes] = []
        if self._inboxes is None:
            # Published inside the transaction: subscribers get them once it is applied, and
            # not before it is in the append-only file (Valkey writes the AOF before replies).
            for channel, message in publishes:
                tx.publish(channel, message)
            publishes = []
        elif self._acks:
            # On a cluster they go once the commit is in (and, with replica acks, once a
            # replica holds it: the WAIT rides the EXEC), after the marks its readers stop at.
            after.append(pack(("WAIT", self._acks, REPLICA_WAIT_MS)))
        commands = tx.packed
        made = None
        if metrics is not None:
            made = self.core.made()
            metrics.applied(count, time.perf_counter() - started)
        # This batch was built on the last one: it may go only once that one is in.
        await self._committed()
        if self.trim_inputs and (self.batches + 1) % 8 == 0:
            # What is committed is no longer needed in the inboxes. (Not this batch's entries:
            # the trims run after EXEC even if it fails.)
            if self._inboxes is not None:
                self._inboxes.trim(self.checkpoints)
            else:
                after += [
                    pack(("XTRIM", stream, "MINID", "~", entry_id))
                    for stream, entry_id in self.checkpoints.items()
                    if entry_id != _START
                ]
        sent = time.perf_counter() if metrics is not None else 0.0
        if busy or self._inboxes is not None:
            replies = wire.request(*transaction(commands, after))
            if self._next_read is None:
                self._next_read = self._request_read(reader, read_to, True)
        else:
            read = (xread_command(read_to, self.max_entries, self.block_ms), 1)
            replies, self._next_read = wire.send(transaction(commands, after), read)
        replicated = None
        if self._inboxes is not None:
            replicated = asyncio.ensure_future(
                self._publish_once_replicated(replies, len(commands), tx.appended, publishes)
            )
        if replicated is not None:
            # An idle stage sleeps on its doorbells, not on a read that returns by itself: a
            # commit that fails wakes it, to load again and retry.
            replicated.add_done_callback(self._wake_if_failed)
        commit = _Commit(replies, len(commands), number, read_to, dead, sent, made, replicated)
        if metrics is not None:
            # Timed when the reply came, not when the stage looks (after its next read).
            if replicated is None:
                self._replied = 0.0  # (only one commit is in flight at a time)
                replies.add_done_callback(self._answered)
            else:
                # Told from here: an idle stage on a cluster sleeps until its next input.
                replicated.add_done_callback(functools.partial(self._replicated_in, commit))
        self._commit = commit
        self._last_sent = number
        self._read_to = read_to
        self.batches += 1
        return count

    async def _committed(self) -> None:
        """Wait for the commit in flight, if any; raise if it failed."""
        commit, self._commit = self._commit, None
        if commit is None:
            return
        if commit.replicated is not None:
            await commit.replicated
        else:
            executed(await commit.replies, commit.commands)
        self._backoff = _FIRST_BACKOFF
        self.checkpoints = commit.checkpoints
        self.commits = commit.number
        if self.progress is not None:
            self.progress.committed(commit.number, commit.checkpoints)
        self.dead_letters += len(commit.dead)
        if self.metrics is not None and commit.replicated is None:
            # (Answered before its callback ran: now is as good.)
            replied = self._replied or time.perf_counter()
            self._tell(commit, replied - commit.sent)
        for stream, entry_id, _fields, reason in commit.dead:
            log.warning(
                "%s: dead-lettered %s %s: %s", self.core.keys.shard, stream, entry_id, reason
            )

    def _answered(self, _done: asyncio.Future[Any]) -> None:
        self._replied = time.perf_counter()

    def _replicated_in(self, commit: _Commit, done: asyncio.Future[None]) -> None:
        if not done.cancelled() and done.exception() is None:
            self._tell(commit, time.perf_counter() - commit.sent)

    def _tell(self, commit: _Commit, seconds: float) -> None:
        metrics = self.metrics
        assert metrics is not None
        metrics.committed(seconds, commit.made)
        if commit.dead:
            metrics.dead_lettered(len(commit.dead))

    def _wake_if_failed(self, done: asyncio.Future[None]) -> None:
        if (done.cancelled() or done.exception() is not None) and self._inboxes is not None:
            self._inboxes.wake()

    async def _publish_once_replicated(
        self,
        replies: asyncio.Future[list[Any]],
        commands: int,
        appended: list[tuple[str, int]],
        publishes: list[tuple[str, bytes]],
    ) -> None:
        results = executed(await replies, commands)
        if self._acks:
            raise_errors(results[commands : commands + 1])  # a demoted node refuses WAIT
            await self._replicated(results[commands])  # WAIT's reply, right after EXEC's
        read = self._outboxes
        marks = {stream: results[at] for stream, at in appended if read is None or stream in read}
        self._after_replicated(marks, publishes)

    async def _replicated(self, acknowledged: int) -> None:
        """Return once `replica_acks` replicas hold what this connection wrote: until then,
        nobody may be told of it (a failover could take it away)."""
        wire = self._wire
        assert wire is not None
        while acknowledged < self._acks:
            if self._stopping.is_set():
                # Stopping with a commit no replica holds yet: it stays committed, and nobody
                # is told of it (its callers time out and look it up).
                raise _StoppedWaitingError
            log.warning(
                "%s: %d of %d replicas hold the last commit; its replies wait",
                self.core.keys.shard,
                acknowledged,
                self._acks,
            )
            replies = await wire.call(pack(("WAIT", self._acks, REPLICA_WAIT_MS)), 1)
            raise_errors(replies)
            (acknowledged,) = replies

    def _after_replicated(
        self, appended: dict[str, bytes], publishes: list[tuple[str, bytes]]
    ) -> None:
        """Mark how far each stream is replicated, then send the replies, live events and
        doorbells (readers wake once they may read)."""
        wire = self._wire
        assert wire is not None
        commands = []
        if appended:
            commands.append(pack(("HSET", self.core.keys.replicated, *_flat(appended))))
        commands += [pack(("PUBLISH", channel, message)) for channel, message in publishes]
        commands += [pack(("SPUBLISH", stream, b"")) for stream in appended]
        if commands:
            # Nothing waits for these: a lost connection fails the next commit, and the stage
            # loads again and marks what it holds (`_mark_replicated`).
            wire.request(b"".join(commands), len(commands)).add_done_callback(_retrieve)

    async def _mark_replicated(self, wire: RespConnection) -> None:
        """After a load: mark each of this shard's outboxes as far as it is, once a replica
        holds it, and ring its doorbells. A stage stopped between a commit's WAIT and its
        marks would otherwise leave its readers short of what it committed."""
        keys = self.core.keys
        streams = self.core.outboxes()
        if streams is None:  # every stream of the shard's
            streams = await self._streams_of_shard(wire)
        last = (
            await wire.call(
                b"".join(pack(("XREVRANGE", name, "+", "-", "COUNT", 1)) for name in streams),
                len(streams),
            )
            if streams
            else []
        )
        raise_errors(last)
        appended = {
            name: entries[0][0] for name, entries in zip(streams, last, strict=True) if entries
        }
        if self._acks:
            # A write of this connection's own, for WAIT to wait on: the replicas' stream is in
            # order, so once a replica has it, it has everything this shard committed before.
            (marked, acknowledged) = await wire.call(
                pack(("HSET", keys.replicated, "loaded", self.commits))
                + pack(("WAIT", self._acks, REPLICA_WAIT_MS)),
                2,
            )
            raise_errors((marked, acknowledged))
            await self._replicated(acknowledged)
        self._after_replicated(appended, [])

    async def _streams_of_shard(self, wire: RespConnection) -> list[str]:
        streams: list[str] = []
        cursor = b"0"
        pattern = "{" + self.core.keys.shard + "}:*"
        while True:
            scan = ("SCAN", cursor, "MATCH", pattern, "COUNT", 1000, "TYPE", "stream")
            (reply,) = await wire.call(pack(scan), 1)
            raise_errors((reply,))
            cursor, found = reply
            streams += [name.decode() for name in found]
            if cursor == b"0":
                return streams


def _flat(mapping: dict[str, bytes]) -> list[str | bytes]:
    pairs: list[str | bytes] = []
    for name, value in mapping.items():
        pairs += (name, value)
    return pairs
