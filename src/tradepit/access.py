"""Who may do what on the venue's Redis: one Valkey ACL user per role, and their passwords.

The embedded server answers no one without credentials (its `default` user is off), and each
process of the venue signs in as its role: a stage writes only its own kind of shard (and trims
the streams it reads), a gateway reads everything but writes only the catalogue it manages and
the stages' inboxes, and the operator (`serve` itself, `tradepit admin`, `verify`, `backup`)
may do anything. So a gateway's credentials cannot rewrite a balance, and a process without
credentials can do nothing at all.

Passwords are 256 random bits, kept in `credentials.json` in the data directory (mode 0600);
the server's ACL file holds only their SHA-256. The rules are written anew from `RULES` at each
start, so a new version of tradepit brings its users' rules with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

from tradepit.errors import TradepitError

__all__ = [
    "NotPrivateError",
    "make_private_dir",
    "Role",
    "RULES",
    "CREDENTIALS_FILE",
    "ACL_FILE",
    "load_or_create_credentials",
    "acl_file_text",
    "with_credentials",
    "write_private",
]

CREDENTIALS_FILE = "credentials.json"
ACL_FILE = "users.acl"


class Role(StrEnum):
    OPERATOR = "operator"
    LEDGER = "ledger"
    MATCHER = "matcher"
    MARKETDATA = "marketdata"
    GATEWAY = "gateway"


# Every role but the operator's: the commands a program uses, none of those that can reconfigure,
# flush, stop or watch the server (Valkey's @dangerous: CONFIG, FLUSHALL, SHUTDOWN, DEBUG, KEYS,
# MONITOR, CLIENT KILL, ...). Key patterns are globs over the layout in `store/keys.py`:
# `{l0}:...` is ledger 0's, `{m1}:to:l0` matcher 1's outbox to ledger 0, `{d0}` market data's.
_PROGRAM = "+@all -@dangerous &*"
_CATALOGUE_READ = "%R~tradepit:*"

RULES: dict[Role, str] = {
    Role.OPERATOR: "+@all ~* &*",
    # Its shards' keys; its inboxes from the matchers, which it trims once applied, and (on a
    # cluster) how far the matchers have marked them readable.
    Role.LEDGER: f"{_PROGRAM} ~{{l*}}:* ~{{m*}}:to:l* %R~{{m*}}:replicated {_CATALOGUE_READ}",
    Role.MATCHER: f"{_PROGRAM} ~{{m*}}:* ~{{l*}}:to:m* %R~{{l*}}:replicated {_CATALOGUE_READ}",
    # Its own shard; the matchers' event streams it reads and trims, and their marks.
    Role.MARKETDATA: (
        f"{_PROGRAM} ~{{d*}}:* ~{{m*}}:events %R~{{m*}}:replicated {_CATALOGUE_READ}"
    ),
    # Reads anything; writes the catalogue it manages (API keys, profiles, watchlists, account
    # settings) and appends commands to the stages' inboxes, never their state.
    Role.GATEWAY: f"{_PROGRAM} %R~* ~tradepit:* %W~{{l*}}:in %W~{{m*}}:in",
}


class NotPrivateError(TradepitError, RuntimeError):
    """A directory the venue would keep its secrets in belongs to another user."""


def make_private_dir(path: Path) -> None:
    """Make `path` a directory of this user's alone (0700), or refuse one another user owns
    (a socket directory in /tmp that someone else made first, say)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid != os.getuid():
        raise NotPrivateError(f"{path} belongs to another user: tradepit will not use it")
    if status.st_mode & 0o077:
        path.chmod(0o700)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by this user alone (0600), replacing it atomically."""
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def load_or_create_credentials(data_dir: Path) -> dict[Role, str]:
    """Each role's password: those kept in the data directory, plus new ones for roles that
    have none yet (the file is rewritten then)."""
    path = data_dir / CREDENTIALS_FILE
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        stored = {}
    except (OSError, ValueError) as error:
        raise RuntimeError(f"cannot read {path} ({error}): restore it, or delete it") from None
    passwords = {role: str(stored[role]) for role in Role if isinstance(stored.get(role), str)}
    if len(passwords) < len(Role):
        for role in Role:
            passwords.setdefault(role, secrets.token_hex(32))
        write_private(path, json.dumps({str(role): pw for role, pw in passwords.items()}))
    return passwords


def acl_file_text(passwords: dict[Role, str]) -> str:
    """The server's ACL file: the default user off, and each role with its password's hash."""
    lines = ["user default off resetkeys resetchannels -@all"]
    for role in Role:
        digest = hashlib.sha256(passwords[role].encode()).hexdigest()
        lines.append(f"user {role} on #{digest} resetkeys resetchannels {RULES[role]}")
    return "\n".join(lines) + "\n"


def with_credentials(url: str, username: str, password: str) -> str:
    """`url` (redis://, rediss:// or unix://) signed in as `username`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a Redis URL: {url!r}")
    authority, slash, path = rest.partition("/")
    authority = authority.rpartition("@")[2]  # credentials it had are replaced
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    return f"{scheme}://{userinfo}{authority}{slash}{path}"
