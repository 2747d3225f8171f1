"""Where an append-only file's bytes go: by command and key pattern, and by part of a command.

    python bench/aof_stats.py PATH [--orders N] [--limit-mb M] [--top K]

PATH is a data directory, its `appendonlydir`, or one `.aof` file. In a directory, the files
the manifest names are read in its order; a base in RDB form (`.rdb`, or an `.aof` starting
with the RDB preamble) is counted by its size only, the rest is parsed as RESP. Keys are
grouped by pattern: a shard's hash tag `{l3}` becomes `{lN}`, a link's `:to:m1` becomes
`:to:mN`, a symbol at the end of a key (`{d0}:trades:ACME`) becomes `*`.

Each command's bytes are split into parts: `frame` (the RESP lengths and line ends), `head`
(the command's name and key), `opts` (XADD's trim arguments and id, XTRIM's, ZADD's scores),
`fields` (hash fields, stream field names) and `values` (hash values, stream values, set
members, HDEL's fields). `dup` counts bytes of values of 32 bytes or more that the same
transaction already wrote once. For HSET, `rewrites` is how often each field was written over
the file (fields written / distinct fields), `unchanged` the share of the bytes that wrote a
field's value again unchanged (redundant writes).

With `--orders N` the figures are also given per order. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import mmap
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["analyze", "aof_files", "commands", "key_pattern"]

PARTS = ("frame", "head", "opts", "fields", "values")
_TAG = re.compile(rb"\{([a-z]+)\d+\}")
_LINK = re.compile(rb":to:([a-z]+)\d+$")
_SYMBOL = re.compile(rb"^(\{[a-zN]+\}:[a-z_]+):[A-Z0-9.]+$")
_RDB_MAGICS = (b"REDIS", b"VALKEY")  # Valkey 9 writes the second
_DUP_MIN = 32


def key_pattern(key: bytes) -> str:
    pattern = _TAG.sub(rb"{\1N}", key)
    pattern = _LINK.sub(rb":to:\1N", pattern)
    pattern = _SYMBOL.sub(rb"\1:*", pattern)
    return pattern.decode(errors="replace")


def aof_files(path: Path) -> list[tuple[Path, str]]:
    """The files of an AOF, in order, each with its type: "b" (base) or "i" (increment)."""
    if path.is_file():
        return [(path, "i")]
    directory = path / "appendonlydir" if (path / "appendonlydir").is_dir() else path
    manifests = sorted(directory.glob("*.manifest"))
    if not manifests:
        return [(file, "i") for file in sorted(directory.glob("*.aof"))]
    files = []
    for line in manifests[0].read_text().splitlines():
        words = line.split()
        entry = dict(zip(words[::2], words[1::2], strict=False))
        if "file" in entry and entry.get("type") in ("b", "i"):
            files.append((directory / entry["file"], entry["type"]))
    return files


def commands(
    data: bytes | mmap.mmap, limit: int | None = None
) -> Iterator[tuple[int, list[bytes]]]:
    """Each command in a RESP stream: its size in bytes and its arguments. Stops at `limit`
    bytes, or at a truncated tail (what a killed server may leave)."""
    find = data.find
    size = len(data) if limit is None else min(limit, len(data))
    pos = 0
    while pos < size:
        if data[pos] != 0x2A:  # "*"
            raise ValueError(f"not RESP at byte {pos}: {bytes(data[pos : pos + 16])!r}")
        end = find(b"\r\n", pos)
        if end < 0:
            return
        start = pos
        count = int(data[pos + 1 : end])
        pos = end + 2
        args = []
        for _ in range(count):
            end = find(b"\r\n", pos)
            if end < 0:
                return
            length = int(data[pos + 1 : end])
            pos = end + 2
            args.append(data[pos : pos + length])
            pos += length + 2
        if pos > len(data):
            return
        yield pos - start, args


@dataclass
class Group:
    commands: int = 0
    bytes: int = 0
    parts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    dup: int = 0
    writes: int = 0  # HSET fields written
    distinct: set[int] = field(default_factory=set)
    same: int = 0  # bytes of HSET values equal to what the field held already


def _split(name: bytes, args: list[bytes]) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """A command's options, fields and values (after its name and key)."""
    rest = args[2:]
    if name == b"HSET":
        return [], rest[::2], rest[1::2]
    if name == b"XADD":
        i = 0
        if rest[i].upper() == b"NOMKSTREAM":
            i += 1
        if rest[i].upper() in (b"MAXLEN", b"MINID"):
            i += 1
            if rest[i] in (b"=", b"~"):
                i += 1
            i += 1
            if rest[i].upper() == b"LIMIT":
                i += 2
        i += 1  # the id
        return rest[:i], rest[i::2], rest[i + 1 :: 2]
    if name == b"ZADD":
        i = 0
        while i < len(rest) and rest[i].upper() in (b"NX", b"XX", b"GT", b"LT", b"CH", b"INCR"):
            i += 1
        return rest[:i] + rest[i::2], [], rest[i + 1 :: 2]
    if name in (b"HDEL", b"ZREM", b"DEL", b"SADD", b"SREM"):
        return [], [], rest
    return rest, [], []


def analyze(path: Path, limit: int | None = None) -> dict[str, Any]:
    groups: dict[tuple[str, str], Group] = defaultdict(Group)
    held: dict[int, int] = {}  # hash of (key, field) -> hash of its value, for HSET
    total = parsed = base_bytes = transactions = 0
    files = []
    for file, kind in aof_files(path):
        size = file.stat().st_size
        total += size
        files.append({"file": file.name, "type": kind, "bytes": size})
        if size == 0:
            continue
        with (
            file.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data,
        ):
            if data[:6].startswith(_RDB_MAGICS):
                base_bytes += size
                continue
            seen: set[int] = set()
            room = None if limit is None else max(0, limit - parsed)
            for size_of, args in commands(data, room):
                parsed += size_of
                name = args[0].upper()
                if name == b"MULTI":
                    transactions += 1
                    seen = set()
                key = key_pattern(args[1]) if len(args) > 1 and name != b"SELECT" else ""
                group = groups[(name.decode(), key)]
                group.commands += 1
                group.bytes += size_of
                head = len(args[0]) + (len(args[1]) if key else 0)
                options, fields, values = _split(name, args) if key else (args[1:], [], [])
                parts = group.parts
                parts["head"] += head
                parts["opts"] += sum(map(len, options))
                parts["fields"] += sum(map(len, fields))
                value_bytes = 0
                for value in values:
                    value_bytes += len(value)
                    if len(value) >= _DUP_MIN:
                        digest = hash(value)
                        if digest in seen:
                            group.dup += len(value)
                        else:
                            seen.add(digest)
                parts["values"] += value_bytes
                parts["frame"] += size_of - sum(map(len, args))
                if name == b"HSET":
                    group.writes += len(fields)
                    group.distinct.update(map(hash, fields))
                    for name_of, value in zip(fields, values, strict=True):
                        slot, digest = hash((args[1], name_of)), hash(value)
                        if held.get(slot) == digest:
                            group.same += len(value)
                        held[slot] = digest
                elif name == b"HDEL":
                    for name_of in values:
                        held.pop(hash((args[1], name_of)), None)
                elif name == b"DEL":
                    held.clear()  # rare: forget it all rather than track keys
    return {
        "path": str(path),
        "files": files,
        "aof_bytes": total,
        "base_rdb_bytes": base_bytes,
        "parsed_bytes": parsed,
        "transactions": transactions,
        "groups": [
            {
                "command": name,
                "key": key,
                "commands": group.commands,
                "bytes": group.bytes,
                **group.parts,
                "dup": group.dup,
                **(
                    {
                        "fields_written": group.writes,
                        "fields_distinct": len(group.distinct),
                        "same": group.same,
                    }
                    if group.writes
                    else {}
                ),
            }
            for (name, key), group in sorted(groups.items(), key=lambda item: -item[1].bytes)
        ],
    }


def report(stats: dict[str, Any], orders: int | None, top: int) -> str:
    parsed = max(1, stats["parsed_bytes"])
    per = f" ({stats['parsed_bytes'] / orders:,.0f} B/order)" if orders else ""
    lines = [
        f"{stats['path']}: {stats['aof_bytes']:,} bytes in {len(stats['files'])} file(s), "
        f"base RDB {stats['base_rdb_bytes']:,}, RESP parsed {stats['parsed_bytes']:,}{per}, "
        f"{stats['transactions']:,} transactions",
        f"{'command':<8} {'key':<28} {'count':>9} {'share':>6} {'B/order':>8}  "
        + " ".join(f"{part:>7}" for part in (*PARTS, "dup"))
        + "  rewrites unchanged",
    ]
    for group in stats["groups"][:top]:
        share = group["bytes"] / parsed
        per_order = f"{group['bytes'] / orders:8.0f}" if orders else f"{'-':>8}"
        parts = " ".join(f"{group[part] / group['bytes']:7.1%}" for part in (*PARTS, "dup"))
        rewrites = ""
        if "fields_written" in group:
            rewrites = f"  {group['fields_written'] / group['fields_distinct']:7.2f}x"
            rewrites += f" {group['same'] / group['bytes']:9.1%}"
        lines.append(
            f"{group['command']:<8} {group['key'][:28]:<28} {group['commands']:>9,} "
            f"{share:6.1%} {per_order}  {parts}{rewrites}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--orders", type=int, help="orders the AOF holds: figures per order")
    parser.add_argument("--limit-mb", type=float, help="parse only this much RESP")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    limit = None if args.limit_mb is None else int(args.limit_mb * 1e6)
    stats = analyze(args.path, limit)
    print(report(stats, args.orders, args.top))
    if args.orders:
        stats["orders"] = args.orders
        stats["bytes_per_order"] = round(stats["parsed_bytes"] / args.orders, 1)
    json.dump(stats, sys.stdout)
    print()


if __name__ == "__main__":
    main()
