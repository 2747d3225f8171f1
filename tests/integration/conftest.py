"""A real Valkey for the integration tests: the embedded one, started once per test session on a
free port, or the server `REDIS_URL` names. Each test starts from an empty database, so with
`REDIS_URL` set the tests FLUSHDB the database it names: point it at a scratch server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tradepit.embedded import EmbeddedValkey


@pytest.fixture(scope="session")
def session_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    with EmbeddedValkey(tmp_path_factory.mktemp("valkey")) as server:
        yield server.url


@pytest.fixture
def redis_url(session_redis_url: str) -> str:
    client = redis.Redis.from_url(session_redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return session_redis_url
