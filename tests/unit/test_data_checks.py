"""The pure halves of the damaged-data checks: what the progress files say against what Valkey
loaded, the AOF manifest, the line a server that would not start gets, and where the CLI's
--data-dir may go."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradepit.aof import AofFile, ManifestError, parse_manifest
from tradepit.cli import _parser
from tradepit.doctor import exited_message
from tradepit.durability import (
    Identity,
    Loaded,
    Recorded,
    ShardProgress,
    compare,
    decode_progress,
    describe,
    encode_progress,
)
from tradepit.embedded import ValkeyExitedError

# 2026-12-03 13:58:30.123 UTC and 10 s before it, in ms: entry ids are <ms>-<seq>.
LATER, EARLIER = 1796306310123, 1796306300123
VENUE, OTHER = "a" * 32, "b" * 32


def progress(commits: int, ms: int) -> ShardProgress:
    return ShardProgress(commits, {"{l0}:in": f"{ms}-3", "{m0}:to:l0": "0-0"})


def test_a_progress_line_round_trips_and_ignores_what_a_longer_one_left() -> None:
    line = encode_progress(12, {"{l0}:in": b"%d-3" % LATER, "{m0}:to:l0": b"0-0"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_progress(line + b'  "commits": 999}\n') == progress(12, LATER)
    assert decode_progress(b"") is None
    with pytest.raises(ValueError):
        decode_progress(b"{not json\n")
    assert progress(1, LATER).last_input_ms() == LATER
    assert ShardProgress(0, {"{l0}:in": "0-0"}).last_input_ms() is None


def test_data_as_far_as_was_acknowledged_is_fine_and_more_too() -> None:
    recorded = Recorded(VENUE, {"l0": progress(5, LATER)})
    for held in (5, 6):
        loaded = Loaded(VENUE, 40, {"l0": progress(held, LATER)})
        comparison = compare(recorded, loaded)
        assert comparison.ok and comparison.identity is Identity.SAME


def test_a_shard_behind_is_named_with_its_commits_and_times() -> None:
    recorded = Recorded(VENUE, {"l0": progress(57, LATER), "m0": progress(3, LATER)})
    loaded = Loaded(VENUE, 40, {"l0": progress(50, EARLIER), "m0": progress(3, LATER)})
    comparison = compare(recorded, loaded)
    assert not comparison.ok
    assert [(loss.shard, loss.commits) for loss in comparison.losses] == [("l0", 7)]
    text = describe(comparison, Path("/data"))
    assert text == (
        "the data Valkey loaded from /data is behind what this venue acknowledged: l0 lost its "
        "last 7 of 57 commits (the inputs it acknowledged after 2026-12-03 13:58:20.123 UTC, "
        "up to 2026-12-03 13:58:30.123 UTC)"
    )


def test_an_empty_valkey_under_a_venue_is_missing_data() -> None:
    recorded = Recorded(VENUE, {"l0": progress(4, LATER)})
    comparison = compare(recorded, Loaded(None, 0, {}))
    assert comparison.identity is Identity.MISSING and not comparison.ok
    text = describe(comparison, Path("/data"))
    assert text.startswith(f"Valkey loaded nothing from /data, which holds venue {VENUE}'s data")
    assert "l0 lost all 4 commits it acknowledged" in text


def test_another_venues_data_or_unmarked_data_is_not_this_venues() -> None:
    recorded = Recorded(VENUE, {})
    other = compare(recorded, Loaded(OTHER, 10, {}))
    assert other.identity is Identity.OTHER and not other.ok
    assert f"is venue {OTHER}'s, not this directory's venue {VENUE}" in describe(
        other, Path("/data")
    )
    unmarked = compare(recorded, Loaded(None, 10, {}))
    assert unmarked.identity is Identity.UNMARKED and not unmarked.ok


def test_no_files_is_a_new_venue_or_one_to_adopt() -> None:
    assert compare(Recorded(None, {}), Loaded(None, 0, {})).identity is Identity.NEW
    adopted = compare(Recorded(None, {}), Loaded(None, 12, {}))
    assert adopted.identity is Identity.ADOPTED and adopted.ok


def test_an_unreadable_progress_file_is_not_passed_over() -> None:
    recorded = Recorded(VENUE, {}, ["/data/progress/l0 (garbled)"])
    comparison = compare(recorded, Loaded(VENUE, 10, {}))
    assert not comparison.ok
    assert "/data/progress/l0 (garbled) cannot be read" in describe(comparison, Path("/data"))


def test_the_manifest_is_read_in_order() -> None:
    text = (
        "file appendonly.aof.3.base.rdb seq 3 type b\n"
        'file "appendonly.aof.4.incr.aof" seq 4 type i\n'
        "file appendonly.aof.5.incr.aof seq 5 type i\n"
    )
    assert parse_manifest(text) == [
        AofFile("appendonly.aof.3.base.rdb", 3, "b"),
        AofFile("appendonly.aof.4.incr.aof", 4, "i"),
        AofFile("appendonly.aof.5.incr.aof", 5, "i"),
    ]
    with pytest.raises(ManifestError):
        parse_manifest("file appendonly.aof.3.base.rdb seq three type b\n")


def test_a_server_that_would_not_start_over_a_damaged_aof_gets_one_line() -> None:
    tail = (
        "8422:M 03 Dec 2026 13:58:30.996 * DB loaded from base file appendonly.aof.1.base.rdb\n"
        "8422:M 03 Dec 2026 13:58:30.996 # Bad file format reading the append only file "
        "appendonly.aof.1.incr.aof: make a backup of your AOF file, then use "
        "./valkey-check-aof --fix <filename.manifest>\n"
    )
    line = exited_message("./data", ValkeyExitedError(1, tail))
    assert line == (
        "the append-only file in ./data is damaged (Valkey: Bad file format reading the append "
        "only file appendonly.aof.1.incr.aof): `tradepit doctor --data-dir ./data --repair` "
        "fixes it by cutting the damaged tail, which loses what was after it"
    )
    other = exited_message("./data", ValkeyExitedError(1, "1:M 03 Dec # Can't open the log\n"))
    assert other.startswith("valkey-server exited while starting (exit 1; Valkey: Can't open")


@pytest.mark.parametrize(
    "argv",
    [
        ["--data-dir", "/d", "serve"],
        ["serve", "--data-dir", "/d"],
        ["--data-dir", "/elsewhere", "serve", "--data-dir", "/d"],
        ["admin", "list-accounts", "--data-dir", "/d"],
        ["doctor", "--repair", "--data-dir", "/d"],
    ],
)
def test_data_dir_goes_before_the_command_or_after_it(argv: list[str]) -> None:
    assert _parser().parse_args(argv).data_dir == "/d"


def test_options_after_the_command_leave_those_before_it_alone() -> None:
    args = _parser().parse_args(["--redis-url", "redis://h/0", "-v", "verify"])
    assert (args.redis_url, args.verbose, args.data_dir) == ("redis://h/0", True, "./data")
    args = _parser().parse_args(["run", "ledger", "--redis-url", "redis://h/0"])
    assert (args.redis_url, args.verbose) == ("redis://h/0", False)
