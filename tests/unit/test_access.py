"""The venue's Valkey users: their rules, their URLs, and the file the server reads."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from redis.connection import parse_url

from tradepit.access import (
    RULES,
    Role,
    acl_file_text,
    load_or_create_credentials,
    with_credentials,
)


def test_a_url_signs_in_as_the_user_given_whatever_it_had() -> None:
    unix = parse_url(with_credentials("unix:///tmp/d/valkey.sock?db=0", "ledger", "p@ss:/"))
    assert (unix["username"], unix["password"], unix["path"]) == (
        "ledger",
        "p@ss:/",
        "/tmp/d/valkey.sock",
    )
    tcp = parse_url(with_credentials("rediss://old:secret@host:6380/2", "gateway", "new"))
    assert (tcp["username"], tcp["password"], tcp["host"], tcp["port"], tcp["db"]) == (
        "gateway",
        "new",
        "host",
        6380,
        2,
    )


def test_passwords_are_made_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create_credentials(tmp_path)
    assert set(first) == set(Role) and len(set(first.values())) == len(Role)
    assert all(len(password) == 64 for password in first.values())
    assert load_or_create_credentials(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600


def test_the_acl_file_holds_hashes_and_turns_the_default_user_off() -> None:
    passwords = {role: f"pw-{role}" for role in Role}
    text = acl_file_text(passwords)
    assert text.splitlines()[0].startswith("user default off")
    for role in Role:
        digest = hashlib.sha256(passwords[role].encode()).hexdigest()
        assert f"user {role} on #{digest} resetkeys resetchannels {RULES[role]}" in text
        assert passwords[role] not in text


def test_the_readme_gives_the_rules_the_embedded_server_uses() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for role, rules in RULES.items():
        assert f"user {role} on >PASSWORD resetkeys resetchannels {rules}\n" in readme, role
