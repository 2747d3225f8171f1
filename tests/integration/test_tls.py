"""A Redis the operator runs behind TLS (`rediss://`, with a user and password): the venue's
stages and clients trade through it, on redis-py's connections and the thin ones alike.

The embedded server is built without TLS, so a TLS terminator in front of its Unix socket
stands in for a TLS-enabled server: the venue's side of the TLS is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis
import trustme
from harness import running_venue
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError

from tradepit.domain.orders import Side
from tradepit.stage.resp import RespConnection


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_in_front_of(socket_path: str, context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS listener on a free loopback port, each connection piped to `socket_path`."""

    async def relay(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        server_reader, server = await asyncio.open_unix_connection(socket_path)
        await asyncio.gather(_pipe(client_reader, server), _pipe(server_reader, client))

    listener = await asyncio.start_server(relay, "127.0.0.1", 0, ssl=context)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


def _rediss_url(redis_url: str, port: int, ca_file: Path) -> str:
    options = parse_url(redis_url)
    user = quote(options.get("username") or "default", safe="")
    password = quote(options.get("password") or "", safe="")
    return f"rediss://{user}:{password}@localhost:{port}/0?ssl_ca_certs={ca_file}"


def test_the_venue_trades_through_a_tls_server_it_signs_in_to(
    redis_url: str, tmp_path: Path
) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    socket_path = parse_url(redis_url)["path"]

    async def scenario() -> None:
        async with tls_in_front_of(socket_path, server_context) as port:
            url = _rediss_url(redis_url, port, ca_file)
            async with running_venue(url) as venue:
                seller = await venue.account("0", ACME="10")
                buyer = await venue.account("1000.00")
                _, sold = await venue.place(seller, "ACME", Side.SELL, 4, 10_000)
                _, bought = await venue.place(buyer, "ACME", Side.BUY, 4, 10_000)
                assert sold.ok and bought.ok, (sold, bought)
                await venue.settle()
                ledger = await venue.ledger(buyer)
                assert ledger.accounts[buyer].holdings["ACME"].free == 4
                assert ledger.accounts[buyer].cash_free == 1000_00 - 4 * 100_00

            # A certificate the client does not trust is refused, by both kinds of connection.
            untrusted = tmp_path / "other-ca.pem"
            trustme.CA().cert_pem.write_to_path(str(untrusted))
            wrong = _rediss_url(redis_url, port, untrusted)
            with pytest.raises(RedisConnectionError):
                await RespConnection.open(wrong)
            client = aioredis.Redis.from_url(wrong)
            with pytest.raises(RedisConnectionError):
                await client.ping()
            await client.aclose()

    asyncio.run(scenario())
