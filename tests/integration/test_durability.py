"""A venue never starts over damaged or missing data without saying so (issue 18).

Each test runs `tradepit serve` as a person does, on a data directory of its own, places
orders, stops it, damages what Valkey will load (the AOF cut short, its manifest gone, the
whole appendonlydir gone, garbled), and checks that the next `serve` refuses with a message
naming the shards and what they lost, that `--accept-data-loss` starts it and logs the loss,
and that `doctor --repair` mends a garbled AOF. Then a backup taken while orders trade,
restored into a new directory, is a venue that verifies, with its accounts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tradepit import operations
from tradepit.aof import AOF_DIR, INCREMENTAL, read_manifest
from tradepit.client import VenueClient
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.durability import IDENTITY_FILE, PROGRESS_DIR, decode_progress
from tradepit.stage.messages import PlaceOrder

TRADEPIT = [sys.executable, "-m", "tradepit.cli"]
ENV = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
PRICE = 10_000  # ACME's reference price on a new venue, 100.00, in ticks


class Venue:
    """A running `tradepit serve`, once it says it is up, and what it printed till then."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        # --data-dir after the command: it goes either side.
        command = [*TRADEPIT, "serve", "--no-gateway", "--data-dir", str(data_dir), *options]
        self.data_dir = data_dir
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
        )
        assert self.process.stdout is not None
        self.printed = ""
        while "venue up" not in self.printed:
            line = self.process.stdout.readline()
            if not line:
                self.process.wait(timeout=30)
                raise AssertionError(f"serve exited ({self.process.returncode}): {self.printed}")
            self.printed += line

    @property
    def url(self) -> str:
        return str(json.loads((self.data_dir / "venue.json").read_text())["redis_url"])

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        rest, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, self.printed + rest
        return self.printed + rest


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*TRADEPIT, "--data-dir", str(data_dir), *args]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=120, env=ENV
    )


def _refused(data_dir: Path, *options: str) -> str:
    """What `serve` said as it refused to start."""
    done = _cli(data_dir, "serve", "--no-gateway", *options)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "venue up" not in done.stdout
    return done.stderr


async def _open_accounts(url: str, count: int) -> list[int]:
    async with VenueClient(url, reply_timeout=30) as client:
        accounts = []
        for _ in range(count):
            created = await operations.create_account(client, "1000000.00", {"ACME": "100000"})
            accounts.append(int(created["id"].replace("-", ""), 16))
        return accounts


async def _trade(
    url: str,
    accounts: list[int],
    orders: int,
    until: asyncio.Event | None = None,
    acked: set[int] | None = None,
) -> set[int]:
    """Place `orders` limit orders around the price, half of them crossing (or go on until
    `until` is set); the ids whose acceptance was acknowledged, added to `acked` as they come."""
    acked = set() if acked is None else acked
    async with VenueClient(url, reply_timeout=30) as client:
        start = 0
        while start < orders if until is None else not until.is_set():
            burst = []
            for number in range(start, start + 50 if until else min(orders, start + 50)):
                side = Side.BUY if number % 2 else Side.SELL
                order = Order(
                    new_id(),
                    accounts[number % len(accounts)],
                    "ACME",
                    side,
                    OrderType.LIMIT,
                    TimeInForce.GTC,
                    1 + number % 5,
                    PRICE + (number % 7) - 3,
                    ts=time.time_ns(),
                )
                burst.append(
                    (order.order_id, client.send(order.account_id, PlaceOrder(0, order, "")))
                )
            for order_id, future in burst:
                if (await future).ok:
                    acked.add(order_id)
            start += len(burst)
    return acked


def _venue_with_orders(data_dir: Path, orders: int = 200) -> list[int]:
    """A venue that acknowledged `orders` orders, stopped; its accounts."""
    venue = Venue(data_dir)
    try:
        accounts = asyncio.run(_open_accounts(venue.url, 4))
        assert len(asyncio.run(_trade(venue.url, accounts, orders))) == orders
    finally:
        venue.stop()
    return accounts


def _last_incremental_file(data_dir: Path) -> Path:
    last = [file for file in read_manifest(data_dir) if file.type == INCREMENTAL][-1]
    return data_dir / AOF_DIR / last.name


def _listed(data_dir: Path) -> list[str]:
    """The traders' accounts (not the venue's own, which collects fees)."""
    done = _cli(data_dir, "admin", "list-accounts")
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(entry["id"] for entry in json.loads(done.stdout) if entry["id"] != _uuid(0))


def _uuid(account: int) -> str:
    text = f"{account:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def test_an_aof_cut_short_stops_serve_until_the_loss_is_accepted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _venue_with_orders(data_dir)
    incremental = _last_incremental_file(data_dir)
    os.truncate(incremental, incremental.stat().st_size // 2)

    refused = _refused(data_dir)
    assert refused.startswith(f"tradepit: the data Valkey loaded from {data_dir} is behind")
    assert "l0 lost its last" in refused and "--accept-data-loss" in refused
    assert len(refused.strip().splitlines()) == 1  # one paragraph
    # Valkey cut the file where it could read no further as it loaded: still refused.
    assert "l0 lost its last" in _refused(data_dir)

    venue = Venue(data_dir, "--accept-data-loss")
    assert "starting anyway, as --accept-data-loss asks" in venue.printed
    assert "l0 lost its last" in venue.printed
    venue.stop()
    # What Valkey holds is the baseline now: an ordinary start.
    assert "starting anyway" not in Venue(data_dir).stop()


def test_a_missing_manifest_stops_serve_and_the_old_files_are_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    accounts = _venue_with_orders(data_dir)
    assert _uuid(accounts[0]) in _listed_after_start(data_dir)
    (data_dir / AOF_DIR / "appendonly.aof.manifest").unlink()

    refused = _refused(data_dir)
    assert "appendonly.aof.manifest, is missing" in refused
    assert " l0 " in refused and "commits (inputs up to " in refused

    venue = Venue(data_dir, "--accept-data-loss")
    assert "lost all" in venue.printed and f"{AOF_DIR}.lost-" in venue.printed
    assert _listed(data_dir) == []
    venue.stop()
    assert [path.name for path in data_dir.glob(f"{AOF_DIR}.lost-*")]
    # The old files were moved aside, not appended to: nothing of them comes back.
    venue = Venue(data_dir)
    try:
        assert _listed(data_dir) == []
    finally:
        venue.stop()


def _listed_after_start(data_dir: Path) -> list[str]:
    venue = Venue(data_dir)
    try:
        return _listed(data_dir)
    finally:
        venue.stop()


def test_a_deleted_appendonlydir_stops_serve(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _venue_with_orders(data_dir, orders=50)
    for path in (data_dir / AOF_DIR).iterdir():
        path.unlink()
    (data_dir / AOF_DIR).rmdir()

    refused = _refused(data_dir)
    assert f"{data_dir / AOF_DIR} is missing" in refused and " l0 " in refused
    venue = Venue(data_dir, "--accept-data-loss")
    assert "lost all" in venue.printed and "l0" in venue.printed
    venue.stop()


def test_an_emptied_aof_is_missing_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _venue_with_orders(data_dir, orders=50)
    os.truncate(_last_incremental_file(data_dir), 0)
    refused = _refused(data_dir)
    assert f"Valkey loaded nothing from {data_dir}, which holds venue " in refused
    assert "l0 lost all" in refused


def test_a_garbled_aof_is_one_line_and_doctor_repairs_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _venue_with_orders(data_dir)
    incremental = _last_incremental_file(data_dir)
    data = bytearray(incremental.read_bytes())
    # A command's start, past the middle: a byte there that is not "*" cannot be parsed.
    at = data.index(b"\r\n*", len(data) // 2) + 2
    data[at : at + 1] = b"?"
    incremental.write_bytes(bytes(data))

    refused = _refused(data_dir)
    assert refused.strip().splitlines() == [
        f"tradepit: the append-only file in {data_dir} is damaged (Valkey: Bad file format "
        f"reading the append only file {incremental.name}): `tradepit doctor --data-dir "
        f"{data_dir} --repair` fixes it by cutting the damaged tail, which loses what was "
        "after it"
    ]
    checked = _cli(data_dir, "doctor")
    assert checked.returncode == 1
    found = re.search(
        rf"PROBLEM: {incremental.name} is damaged \(format error\): only its first (\d+) of "
        rf"{len(data)} bytes load: `tradepit doctor --repair` cuts it there",
        checked.stdout,
    )
    assert found, checked.stdout
    loads_up_to = int(found.group(1))
    assert loads_up_to <= at  # the transaction the damage is in goes too
    repaired = _cli(data_dir, "doctor", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert f"repaired: {incremental.name} is damaged" in repaired.stdout
    assert incremental.stat().st_size == loads_up_to
    assert _cli(data_dir, "doctor").returncode == 0

    # What was after the damage is gone: serve says so, and starts once told to go on.
    assert "l0 lost its last" in _refused(data_dir)
    Venue(data_dir, "--accept-data-loss").stop()


def test_a_directory_from_before_the_venue_id_is_adopted(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    accounts = _venue_with_orders(data_dir, orders=20)
    (data_dir / IDENTITY_FILE).unlink()
    for path in (data_dir / PROGRESS_DIR).iterdir():
        path.unlink()

    venue = Venue(data_dir)
    try:
        assert "(from before tradepit kept one): adopted as venue " in venue.printed
        assert sorted(_uuid(account) for account in accounts) == _listed(data_dir)
    finally:
        venue.stop()
    assert (data_dir / IDENTITY_FILE).stat().st_mode & 0o777 == 0o600
    assert "adopted" not in Venue(data_dir).stop()


def test_another_venues_data_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _venue_with_orders(data_dir, orders=10)
    (data_dir / IDENTITY_FILE).write_text("f" * 32 + "\n")
    refused = _refused(data_dir)
    assert f"not this directory's venue {'f' * 32}" in refused


def test_the_progress_files_follow_the_commits(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    venue = Venue(data_dir)
    try:
        accounts = asyncio.run(_open_accounts(venue.url, 2))
        asyncio.run(_trade(venue.url, accounts, 30))
    finally:
        venue.stop()
    for shard in ("l0", "m0", "d0"):
        path = data_dir / PROGRESS_DIR / shard
        assert path.stat().st_mode & 0o777 == 0o600
        progress = decode_progress(path.read_bytes())
        assert progress is not None and progress.commits > 0
    doctor = _cli(data_dir, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "ok: l0 acknowledged " in doctor.stdout


def test_a_backup_taken_while_orders_trade_restores_into_a_venue_that_verifies(
    tmp_path: Path,
) -> None:
    data_dir, backup_dir, restored = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    venue = Venue(data_dir)
    try:
        accounts = asyncio.run(_open_accounts(venue.url, 4))

        async def trade_while_backing_up() -> subprocess.CompletedProcess[str]:
            backed_up = asyncio.Event()
            acked: set[int] = set()
            trading = asyncio.create_task(_trade(venue.url, accounts, 0, backed_up, acked))
            while len(acked) < 200:
                await asyncio.sleep(0.01)
            before = len(acked)
            taken = await asyncio.to_thread(_cli, data_dir, "backup", str(backup_dir))
            during = len(acked) - before
            backed_up.set()
            await trading
            assert during > 0  # orders were acknowledged while the backup ran
            return taken

        taken = asyncio.run(trade_while_backing_up())
        assert taken.returncode == 0, taken.stdout + taken.stderr
        # A running venue's directory is no place to restore into.
        over = _cli(data_dir, "restore", str(backup_dir))
        assert over.returncode == 1 and "is not empty" in over.stderr
    finally:
        venue.stop()
    summary = json.loads(taken.stdout)
    assert summary["venue_id"] == (data_dir / IDENTITY_FILE).read_text().strip()
    assert summary["commits"]["l0"] > 0

    done = _cli(restored, "restore", str(backup_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (restored / "dump.rdb").exists()
    assert (restored / IDENTITY_FILE).read_text() == (data_dir / IDENTITY_FILE).read_text()
    venue = Venue(restored)  # an ordinary venue directory: nothing refused, nothing adopted
    try:
        assert "adopted" not in venue.printed and "starting anyway" not in venue.printed
        verified = _cli(restored, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "OK" in verified.stdout
        assert _listed(restored) == sorted(_uuid(account) for account in accounts)
        # A restore refuses a directory a venue runs on.
        again = _cli(restored, "restore", str(backup_dir))
        assert again.returncode == 1
    finally:
        venue.stop()


def test_a_server_that_cannot_be_started_again_stops_the_venue(tmp_path: Path) -> None:
    """The supervisor restarts a server that died; if its AOF was garbled meanwhile, the venue
    stops with the same one line as at start, rather than its stages retrying forever."""
    data_dir = tmp_path / "data"
    venue = Venue(data_dir)
    accounts = asyncio.run(_open_accounts(venue.url, 2))
    assert len(asyncio.run(_trade(venue.url, accounts, 20))) == 20
    incremental = _last_incremental_file(data_dir)
    data = bytearray(incremental.read_bytes())
    at = data.index(b"\r\n*", len(data) // 2) + 2
    data[at : at + 1] = b"?"
    incremental.write_bytes(bytes(data))
    server_pid = int((data_dir / "valkey.pid").read_text())
    os.kill(server_pid, signal.SIGKILL)
    rest, _ = venue.process.communicate(timeout=120)
    assert venue.process.returncode not in (0, None), venue.printed + rest
    assert "Traceback" not in rest, rest
    assert f"tradepit: the append-only file in {data_dir} is damaged" in rest, rest
