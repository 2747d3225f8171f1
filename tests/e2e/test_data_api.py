"""Market data against a real `tradepit serve`: alpaca-py's StockHistoricalDataClient and
StockDataStream, and a raw `websockets` JSON client on the stream's protocol."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from live import Account, Venue, eventually

from tradepit.client import VenueClient
from tradepit.domain.ids import new_id
from tradepit.domain.orders import Order, OrderType, Side, TimeInForce
from tradepit.stage.messages import PlaceOrder
from tradepit.store.marketdata import FeedKeys


def order(venue: Venue, account: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("time_in_force", "gtc")
    body.setdefault("type", "limit")
    response = httpx.post(venue.url + "/v2/orders", json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def data(venue: Venue, account: Account, path: str, **params: Any) -> Any:
    response = httpx.get(venue.url + path, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def trade_sequence(venue: Venue, symbol: str) -> tuple[Account, Account]:
    """Three trades: 10 @ 100.00, 5 @ 100.50, 2 @ 99.50; the book left at 99.00 / 101.00."""
    seller = venue.account("0", **{symbol: "100"})
    buyer = venue.account("100000.00")
    order(venue, seller, symbol=symbol, qty="10", side="sell", limit_price="100.00")
    order(venue, seller, symbol=symbol, qty="5", side="sell", limit_price="100.50")
    order(venue, buyer, symbol=symbol, qty="15", side="buy", limit_price="100.50")
    order(venue, buyer, symbol=symbol, qty="2", side="buy", limit_price="99.50")
    order(venue, seller, symbol=symbol, qty="2", side="sell", limit_price="99.50")
    order(venue, buyer, symbol=symbol, qty="3", side="buy", limit_price="99.00")
    order(venue, seller, symbol=symbol, qty="4", side="sell", limit_price="101.00")
    return seller, buyer


def settled_trades(venue: Venue, account: Account, symbol: str, count: int) -> list[Any]:
    def trades() -> list[Any]:
        found = data(venue, account, "/v2/stocks/trades", symbols=symbol)["trades"]
        return found.get(symbol, []) if len(found.get(symbol, [])) >= count else []

    return eventually(trades)  # type: ignore[no-any-return]


def test_history_and_latest_with_alpaca_py(venue: Venue) -> None:
    symbol = venue.symbol()
    seller, _ = trade_sequence(venue, symbol)
    trades = settled_trades(venue, seller, symbol, 3)
    assert [(Decimal(str(t["p"])), Decimal(str(t["s"]))) for t in trades] == [
        (Decimal("100.00"), 10),
        (Decimal("100.50"), 5),
        (Decimal("99.50"), 2),
    ]
    assert eventually(
        lambda: (
            data(venue, seller, "/v2/stocks/quotes/latest", symbols=symbol)["quotes"]
            .get(symbol, {})
            .get("as")
            == 4
        )
    )
    client = StockHistoricalDataClient(seller.key_id, seller.secret_key, url_override=venue.url)
    latest = client.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=symbol))
    assert latest[symbol].price == 99.5
    assert latest[symbol].size == 2
    quote = client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=symbol))
    assert (quote[symbol].bid_price, quote[symbol].bid_size) == (99.0, 3)
    assert (quote[symbol].ask_price, quote[symbol].ask_size) == (101.0, 4)

    start = datetime.now(UTC) - timedelta(hours=1)
    bars = client.get_stock_bars(
        StockBarsRequest(symbol_or_symbols=symbol, timeframe=TimeFrame.Minute, start=start)
    )
    minute_bars = bars[symbol]
    # The trades happened within a second or two: one bar, unless a minute turned between.
    assert sum(bar.volume for bar in minute_bars) == 17
    assert sum(bar.trade_count for bar in minute_bars) == 3
    assert minute_bars[0].open == 100.0
    assert minute_bars[-1].close == 99.5
    assert max(bar.high for bar in minute_bars) == 100.5
    assert min(bar.low for bar in minute_bars) == 99.5
    if len(minute_bars) == 1:
        vwap = (Decimal("1000.00") + Decimal("502.50") + Decimal("199.00")) / 17
        assert Decimal(str(minute_bars[0].vwap)) == vwap.quantize(Decimal("0.0001"))
    # A bar counts if its period starts within the range, as at Alpaca: a day bar from midnight.
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for frame in (TimeFrame(5, TimeFrameUnit.Minute), TimeFrame.Hour, TimeFrame.Day):
        longer = client.get_stock_bars(
            StockBarsRequest(symbol_or_symbols=symbol, timeframe=frame, start=midnight)
        )[symbol]
        assert sum(bar.volume for bar in longer) == 17
        assert longer[-1].close == 99.5

    history = client.get_stock_trades(StockTradesRequest(symbol_or_symbols=symbol, start=start))
    assert [trade.price for trade in history[symbol]] == [100.0, 100.5, 99.5]

    snapshot = client.get_stock_snapshot(StockSnapshotRequest(symbol_or_symbols=symbol))[symbol]
    assert snapshot.latest_trade is not None and snapshot.latest_trade.price == 99.5
    assert snapshot.daily_bar is not None and snapshot.daily_bar.volume == 17


def test_pagination_and_single_symbol_forms(venue: Venue) -> None:
    symbol = venue.symbol()
    seller, _ = trade_sequence(venue, symbol)
    settled_trades(venue, seller, symbol, 3)
    seen = []
    token = None
    while True:
        params: dict[str, Any] = {"symbols": symbol, "limit": 1}
        if token:
            params["page_token"] = token
        page = data(venue, seller, "/v2/stocks/trades", **params)
        seen += [trade["p"] for trade in page["trades"].get(symbol, [])]
        token = page["next_page_token"]
        if token is None:
            break
    assert seen == [100, 100.5, 99.5]
    newest = data(venue, seller, f"/v2/stocks/{symbol}/trades", sort="desc", limit=2)
    assert [trade["p"] for trade in newest["trades"]] == [99.5, 100.5]
    assert newest["next_page_token"] is not None
    latest = data(venue, seller, f"/v2/stocks/{symbol}/trades/latest")
    assert latest["symbol"] == symbol and latest["trade"]["p"] == 99.5
    newest_bars = data(
        venue, seller, f"/v2/stocks/{symbol}/bars", timeframe="1Min", sort="desc", limit=1
    )
    assert [bar["c"] for bar in newest_bars["bars"]] == [99.5]  # the last trade's minute
    bar = data(venue, seller, f"/v2/stocks/{symbol}/bars/latest")["bar"]
    assert bar["c"] == 99.5 and {"n", "vw"} <= set(bar)


_TAPE_TOKEN = base64.urlsafe_b64encode(b"ACME|1-2").decode()  # a tape entry id, not a bar's


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/v2/stocks/bars", {"symbols": "ACME"}, 422),  # no timeframe
        ("/v2/stocks/bars", {"symbols": "ACME", "timeframe": "7Fortnight"}, 422),
        ("/v2/stocks/bars", {"symbols": "ACME", "timeframe": "60Min"}, 422),
        ("/v2/stocks/trades", {}, 422),
        ("/v2/stocks/trades", {"symbols": "ACME", "start": "yesterday"}, 422),
        ("/v2/stocks/trades", {"symbols": "ACME", "limit": "0"}, 422),
        ("/v2/stocks/trades", {"symbols": "ACME", "sort": "sideways"}, 422),
        ("/v2/stocks/trades", {"symbols": "ACME", "page_token": "not-a-token"}, 422),
        # A trade's position where a bar's goes: a token of another route.
        (
            "/v2/stocks/bars",
            {"symbols": "ACME", "timeframe": "1Min", "page_token": "QUNNRXwxLTI="},
            422,
        ),
        ("/v2/stocks/NOSUCH/trades/latest", {}, 404),
    ],
)
def test_bad_requests_get_json_errors(
    venue: Venue, path: str, params: dict[str, str], status: int
) -> None:
    account = venue.account()
    response = httpx.get(venue.url + path, params=params, headers=account.headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["code"], int) and isinstance(body["message"], str)
    assert httpx.get(venue.url + path, params=params).status_code == 401


def test_unknown_symbols_are_left_out(venue: Venue) -> None:
    account = venue.account()
    assert data(venue, account, "/v2/stocks/trades/latest", symbols="NOSUCH") == {"trades": {}}


def test_stock_data_stream_delivers_only_what_was_subscribed(venue: Venue) -> None:
    watched, other = venue.symbol(), venue.symbol()
    account = venue.account()
    stream = StockDataStream(
        account.key_id, account.secret_key, url_override=venue.url.replace("http", "ws") + "/v2/iex"
    )
    trades: list[Any] = []
    quotes: list[Any] = []

    async def on_trade(trade: Any) -> None:
        trades.append(trade)

    async def on_quote(quote: Any) -> None:
        quotes.append(quote)

    stream.subscribe_trades(on_trade, watched)
    stream.subscribe_quotes(on_quote, watched)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: getattr(stream, "_running", False))
        time.sleep(0.5)  # its subscribe message goes out once it is running
        trade_sequence(venue, other)
        trade_sequence(venue, watched)
        assert eventually(lambda: len(trades) >= 3), trades
        time.sleep(0.3)
        assert {trade.symbol for trade in trades} == {watched}
        assert [trade.price for trade in trades] == [100.0, 100.5, 99.5]
        assert quotes and {quote.symbol for quote in quotes} == {watched}
        assert isinstance(trades[0].timestamp, datetime)
        last = quotes[-1]
        assert (last.bid_price, last.ask_price) == (99.0, 101.0)
    finally:
        stream.stop()
        thread.join(2)


async def _connect(venue: Venue, account: Account) -> Any:
    socket = await websockets.connect(venue.url.replace("http", "ws") + "/v2/iex")
    assert json.loads(await socket.recv()) == [{"T": "success", "msg": "connected"}]
    await socket.send(
        json.dumps({"action": "auth", "key": account.key_id, "secret": account.secret_key})
    )
    assert json.loads(await socket.recv()) == [{"T": "success", "msg": "authenticated"}]
    return socket


async def _next(socket: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind!r} message"
        for message in json.loads(await asyncio.wait_for(socket.recv(), remaining)):
            if message["T"] == kind:
                return message  # type: ignore[no-any-return]


def test_raw_client_protocol_and_order_book(venue: Venue) -> None:
    symbol = venue.symbol()
    account = venue.account()

    async def run() -> None:
        socket = await _connect(venue, account)
        bystander = await _connect(venue, account)
        await bystander.send(json.dumps({"action": "subscribe", "trades": [symbol]}))
        await _next(bystander, "subscription")
        # Garbage, unknown actions and oversized frames get an error and hurt nobody.
        for bad in ("not json", json.dumps({"action": "dance"}), json.dumps([1, 2])):
            await socket.send(bad)
            error = (json.loads(await socket.recv()))[0]
            assert error["T"] == "error" and error["code"] == 400
        await socket.send("x" * 100_000)
        assert json.loads(await socket.recv())[0]["T"] == "error"
        await socket.send(json.dumps({"action": "subscribe", "trades": "ACME"}))
        assert json.loads(await socket.recv())[0]["code"] == 400

        await socket.send(
            json.dumps({"action": "subscribe", "orderbook": [symbol], "trades": [symbol]})
        )
        ack = await _next(socket, "subscription")
        assert ack["orderbook"] == [symbol] and ack["trades"] == [symbol]
        snapshot = await _next(socket, "o")
        assert snapshot["snapshot"] is True and snapshot["b"] == [] and snapshot["a"] == []
        book_seq = snapshot["seq"]
        await asyncio.to_thread(trade_sequence, venue, symbol)
        bids: dict[float, float] = {}
        asks: dict[float, float] = {}
        trades = []
        while len(trades) < 3 or bids != {99: 3} or asks != {101: 4}:
            for message in json.loads(await asyncio.wait_for(socket.recv(), 5)):
                if message["T"] == "t":
                    trades.append(message["p"])
                elif message["T"] == "o":
                    assert message["seq"] == book_seq + 1, "order book deltas have no gaps"
                    book_seq = message["seq"]
                    for side, levels in ((bids, message["b"]), (asks, message["a"])):
                        for price, size in levels:
                            if size:
                                side[price] = size
                            else:
                                side.pop(price, None)
        assert trades == [100, 100.5, 99.5]
        # The bystander got its trades in the meantime.
        assert (await _next(bystander, "t"))["S"] == symbol

        await socket.send(json.dumps({"action": "unsubscribe", "trades": [symbol]}))
        ack = await _next(socket, "subscription")
        assert ack["trades"] == [] and ack["orderbook"] == [symbol]
        await socket.close()
        await bystander.close()

    asyncio.run(run())


def test_stream_auth_is_required_and_checked(venue: Venue) -> None:
    async def run() -> None:
        socket = await websockets.connect(venue.url.replace("http", "ws") + "/v2/sip")
        await socket.recv()
        await socket.send(json.dumps({"action": "subscribe", "trades": ["ACME"]}))
        assert json.loads(await socket.recv())[0]["code"] == 401
        await socket.send(json.dumps({"action": "auth", "key": "PKNOPE", "secret": "nope"}))
        assert json.loads(await socket.recv())[0]["code"] == 402
        await socket.close()

    asyncio.run(run())


def test_trades_missed_on_pub_sub_are_filled_from_the_stream(venue: Venue) -> None:
    """Kill the gateway's Pub/Sub connections while trades happen: a stream client still gets
    every trade, once and in order, read from the feed's durable stream."""
    symbol = venue.symbol()
    account = venue.account()
    seller = venue.account("0", **{symbol: "100"})
    buyer = int(venue.account("100000.00").id.replace("-", ""), 16)
    for level in range(10):
        order(venue, seller, symbol=symbol, qty="1", side="sell", limit_price=f"10{level}.00")

    async def run() -> None:
        socket = await _connect(venue, account)
        await socket.send(json.dumps({"action": "subscribe", "trades": [symbol]}))
        await _next(socket, "subscription")
        redis = aioredis.Redis.from_url(venue.redis_url)
        missed = 0
        try:
            for attempt in range(10):
                # Drop every subscriber (the gateway's feed among them), then trade at once,
                # through a client of our own, while the gateway is still resubscribing.
                await redis.client_kill_filter(_type="pubsub")
                async with VenueClient(venue.redis_url) as client:
                    ts = time.time_ns()
                    buy = Order(new_id(), buyer, symbol, Side.BUY, OrderType.LIMIT,
                                TimeInForce.IOC, 1, 11_000, ts=ts)  # fmt: skip
                    reply = await client.request(buyer, PlaceOrder(0, buy, ""))
                    assert reply.ok, reply
                    listening: Any = await redis.pubsub_numsub(FeedKeys().channel)
                if listening[0][1] == 0:
                    missed += 1  # that trade was published to nobody from the gateway
                if missed >= 2 or attempt == 9:
                    break
        finally:
            await redis.aclose()
        prices = []
        while len(prices) < attempt + 1:
            for message in json.loads(await asyncio.wait_for(socket.recv(), 10)):
                if message["T"] == "t":
                    prices.append(message["p"])
        assert prices == [100 + n for n in range(attempt + 1)]
        assert missed >= 1, "the gateway never missed a trade: nothing was proved"
        await socket.close()

    asyncio.run(run())
