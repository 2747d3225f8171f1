"""A market data client that stops reading is cut off, while one that reads keeps receiving
everything: against a second gateway process on the venue (gateways are stateless), started
with a small stream queue limit or a short send timeout and a small send buffer, and raw
`websockets` clients."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
import pytest
import websockets
from live import Account, Venue, another_gateway

LEVELS = 1000  # ask levels, a tick apart, each of ORDERS sell orders of 1 share
ORDERS = 2
TRADES = LEVELS * ORDERS  # all swept: ~4,000 messages, ~250 kB of JSON per client
SWEEP = 100  # levels each buy sweeps
QUEUE_LIMIT = 300  # messages; each batch below brings ~SWEEP * ORDERS + 2 to a client


async def _stream(url: str, account: Account, symbol: str, receive_buffer: int = 0) -> Any:
    sock = None
    if receive_buffer:
        # A small receive window, set before connecting, so that the kernel holds little for
        # a client that does not read.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        host, port = url.removeprefix("http://").split(":")
        sock.connect((host, int(port)))
        sock.setblocking(False)
    client = await websockets.connect(url.replace("http", "ws") + "/v2/iex", sock=sock)
    assert json.loads(await client.recv()) == [{"T": "success", "msg": "connected"}]
    auth = {"action": "auth", "key": account.key_id, "secret": account.secret_key}
    await client.send(json.dumps(auth))
    assert json.loads(await client.recv()) == [{"T": "success", "msg": "authenticated"}]
    request = {"action": "subscribe", "trades": [symbol], "quotes": [symbol]}
    await client.send(json.dumps({**request, "orderbook": [symbol]}))
    while not any(m["T"] == "subscription" for m in json.loads(await client.recv())):
        pass
    return client


async def _flood(venue: Venue, symbol: str) -> None:
    """Sell orders on LEVELS levels a tick apart, then buys that sweep them SWEEP levels at a
    time.

    The flood is much more than the kernel takes for a client that reads nothing (tens of kB
    even with the small send buffer and receive window here) and the gateway's write buffer."""
    seller = venue.account("0", **{symbol: str(TRADES)})
    buyer = venue.account("1000000.00")
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=venue.url, timeout=30) as http:

        async def order(account: Account, **body: Any) -> None:
            body.update(symbol=symbol, type="limit", time_in_force="gtc")
            async with gate:
                response = await http.post("/v2/orders", json=body, headers=account.headers)
            assert response.status_code == 200, response.text

        await asyncio.gather(
            *(
                order(seller, qty="1", side="sell", limit_price=f"{99.01 + level / 100:.2f}")
                for level in range(LEVELS)
                for _ in range(ORDERS)
            )
        )
        for _ in range(LEVELS // SWEEP):
            await order(buyer, qty=str(SWEEP * ORDERS), side="buy", limit_price="110.00")


@pytest.mark.parametrize(
    "options",
    [
        # Cut off by its queue: more than QUEUE_LIMIT messages wait for it.
        ["--stream-queue-limit", str(QUEUE_LIMIT), "--stream-send-timeout", "60"],
        # Cut off by its stalled socket: a frame to it has waited 1 s to be written.
        ["--stream-queue-limit", "100000", "--stream-send-timeout", "1"],
    ],
    ids=["queue-limit", "send-timeout"],
)
def test_a_slow_client_is_cut_off_while_a_fast_one_keeps_receiving(
    venue: Venue, options: list[str]
) -> None:
    symbol = venue.symbol()
    account = venue.account()
    with another_gateway(venue, "--rate-limit", "0", "--send-buffer", "4096", *options) as url:
        asyncio.run(_slow_and_fast(venue, url, account, symbol))


async def _slow_and_fast(venue: Venue, url: str, account: Account, symbol: str) -> None:
    fast = await _stream(url, account, symbol)
    slow = await _stream(url, account, symbol, receive_buffer=4096)
    slow.transport.pause_reading()  # it reads nothing more from its socket

    trades = 0
    asks: dict[float, float] = {}
    book_seqs: list[int] = []
    errors: list[Any] = []

    async def read_fast() -> None:
        nonlocal trades
        while trades < TRADES or asks:
            for message in json.loads(await asyncio.wait_for(fast.recv(), 30)):
                if message["T"] == "t":
                    trades += 1
                elif message["T"] == "o":
                    book_seqs.append(message["seq"])
                    for price, size in message["a"]:
                        if size:
                            asks[price] = size
                        else:
                            asks.pop(price, None)
                elif message["T"] == "error":
                    errors.append(message)

    reader = asyncio.create_task(read_fast())
    await _flood(venue, symbol)
    await reader
    # The fast client got every trade, and every change of the book (its top levels):
    # their sequence numbers have no gap, and the book it rebuilt from them is empty.
    assert errors == []
    assert trades == TRADES and not asks
    assert book_seqs == list(range(book_seqs[0], book_seqs[0] + len(book_seqs)))

    # The slow one, after two more seconds asleep (longer than the send timeout), reads what
    # was left for it: part of the flood, then the end.
    await asyncio.sleep(2)
    slow.transport.resume_reading()
    slow_trades = 0
    slow_errors: list[Any] = []
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            for message in json.loads(await asyncio.wait_for(slow.recv(), 30)):
                if message["T"] == "t":
                    slow_trades += 1
                elif message["T"] == "error":
                    slow_errors.append(message)
    assert slow_trades < TRADES, "the slow client was not cut off"
    # Told why, if it was reading again within the grace the gateway gives it; dropped
    # otherwise.
    assert all(error["code"] == 407 for error in slow_errors), slow_errors
    if closed.value.rcvd is not None:
        assert closed.value.rcvd.code == 1008
    await fast.close()
