"""The legacy SDK, alpaca-trade-api 3.2, end to end against the venue `tradepit serve` runs: a
bot's REST calls and its Stream, whose trade updates connect to /stream/ (with the slash) and
must see its orders' new and fill events (issue 20).

The SDK cannot share the venue's virtual environment (it pins websockets<11 and msgpack==1.0.3),
so the bot (legacy/client.py) runs in .venv-legacy, which `make test` builds, as a subprocess
with a deadline; without that environment these tests are skipped, saying so.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from live import Venue, another_gateway

ROOT = Path(__file__).resolve().parents[2]
LEGACY_PYTHON = ROOT / ".venv-legacy" / "bin" / "python"
CLIENT = Path(__file__).parent / "legacy" / "client.py"
TIMEOUT = 20  # seconds, for each of the bot's waits


def run_bot(venue: Venue, symbol: str, key_id: str, secret_key: str) -> dict[str, Any]:
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"no {LEGACY_PYTHON.relative_to(ROOT)}: `make test` builds it")
    request = {
        "url": venue.url,
        "key_id": key_id,
        "secret_key": secret_key,
        "symbol": symbol,
        "timeout": TIMEOUT,
    }
    done = subprocess.run(
        [str(LEGACY_PYTHON), str(CLIENT), json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 12,  # the bot's every wait is bounded: this is for a hung interpreter
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    seen: dict[str, Any] = json.loads(lines[-1])
    errors = {
        name: value["trace"]
        for name, value in seen.items()
        if isinstance(value, dict) and "error" in value
    }
    assert not errors, "\n".join(f"{name}:\n{trace}" for name, trace in errors.items())
    return seen


@pytest.fixture(scope="module")
def bot(venue: Venue) -> dict[str, Any]:
    """What the legacy bot saw, on a symbol of its own where another account rests a sell."""
    symbol = venue.symbol("100.00")
    trader = venue.account("10000.00")
    seller = venue.account("0", **{symbol: "20"})
    ask = httpx.post(
        venue.url + "/v2/orders",
        headers=seller.headers,
        json={
            "symbol": symbol,
            "qty": "20",
            "side": "sell",
            "type": "limit",
            "time_in_force": "gtc",
            "limit_price": "100.00",
        },
    )
    assert ask.status_code == 200, ask.text
    return {"symbol": symbol, **run_bot(venue, symbol, trader.key_id, trader.secret_key)}


def test_the_trade_updates_stream_sees_new_and_fill_for_its_orders(bot: dict[str, Any]) -> None:
    assert bot["stream_connected"]
    market = bot["market"]
    assert market["filled"]
    assert market["events"] == ["new", "fill"]
    own = {update["order_id"] for update in bot["updates"]}
    assert market["order"]["id"] in own
    # The limit order's life went by before the stream started: only orders since.
    assert bot["limit"]["placed"]["id"] not in own


def test_the_market_data_stream_sees_the_fill_as_a_trade(bot: dict[str, Any]) -> None:
    assert {"symbol": bot["symbol"], "price": 100.0, "size": 5} in bot["trades"]


def test_a_limit_order_is_placed_found_listed_replaced_and_canceled(
    bot: dict[str, Any],
) -> None:
    limit = bot["limit"]
    placed, found, replaced = limit["placed"], limit["found"], limit["replaced"]
    assert (placed["type"], placed["qty"], placed["limit_price"]) == ("limit", "2", "90.50")
    assert placed["time_in_force"] == "day" and found["id"] == placed["id"]
    assert limit["listed"]
    assert replaced["replaces"] == placed["id"]
    assert (replaced["qty"], replaced["limit_price"], replaced["time_in_force"]) == (
        "3",
        "91.25",
        "gtc",
    )
    assert limit["old_replaced"] and limit["replacement_live"] and limit["canceled"]
    assert bot["replace_unknown"]["status_code"] == 404


def test_positions_account_and_watchlist_by_name(bot: dict[str, Any]) -> None:
    assert bot["account"] == {"cash": "10000.00", "status": "ACTIVE"}
    assert bot["positions_before"] == []
    assert {"symbol": bot["symbol"], "qty": "5"} in bot["positions_after"]
    watchlist = bot["watchlist"]
    assert watchlist == {"same_id": True, "symbols": [bot["symbol"]], "missing": 404}


def test_notional_and_extended_hours_are_echoed_as_sent(bot: dict[str, Any]) -> None:
    echo = bot["echo"]
    for order in (echo["notional"], echo["notional_found"]):
        assert order["notional"] == "101.00" and order["qty"] == "1"
        assert order["extended_hours"] is False
    assert echo["extended"]["extended_hours"] is True
    assert echo["extended"]["notional"] is None


def test_brackets_ocos_and_trailing_stops_from_submit_order(bot: dict[str, Any]) -> None:
    classes = bot["order_classes"]
    bracket = classes["bracket"]
    assert bracket["order_class"] == "bracket"
    assert [(leg["type"], leg["side"], leg["status"]) for leg in bracket["legs"]] == [
        ("limit", "sell", "held"),
        ("stop_limit", "sell", "held"),
    ]
    assert classes["filled"] and classes["legs_live"] and classes["legs_canceled"]
    assert [leg["qty"] for leg in classes["legs"]] == ["2", "2"]
    assert {"new", "canceled"} <= set(classes["bracket_events"])
    oco = classes["oco"]
    assert (oco["order_class"], oco["limit_price"]) == ("oco", "120.00")
    assert [leg["type"] for leg in oco["legs"]] == ["stop"]
    assert classes["trailing"] == {"type": "trailing_stop", "trail_percent": "5"}


def test_the_clock_and_calendar_of_an_nyse_venue(venue: Venue) -> None:
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"no {LEGACY_PYTHON.relative_to(ROOT)}: `make test` builds it")
    account = venue.account("1000.00")
    # The Friday after Thanksgiving, 12:59 US/Eastern: open, and closing early, at 13:00.
    flags = ("--calendar", "nyse", "--clock-start", "2026-11-27T17:59:00Z")
    with another_gateway(venue, *flags) as url:
        request = {
            "url": url,
            "key_id": account.key_id,
            "secret_key": account.secret_key,
            "start": "2026-11-25",
            "end": "2026-11-30",
        }
        done = subprocess.run(
            [str(LEGACY_PYTHON), str(CLIENT.parent / "clock.py"), json.dumps(request)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["is_open"] is True
    assert seen["next_close"] == "2026-11-27T13:00:00-05:00"
    assert seen["next_open"] == "2026-11-30T09:30:00-05:00"
    assert seen["timestamp"].startswith("2026-11-27T12:59")
    assert [day["date"] for day in seen["days"]] == ["2026-11-25", "2026-11-27", "2026-11-30"]
    assert [(day["open"], day["close"]) for day in seen["days"]][1] == ("09:30:00", "13:00:00")


def test_a_short_sale_and_its_cover_on_a_margin_account(venue: Venue) -> None:
    if not LEGACY_PYTHON.exists():
        pytest.skip(f"no {LEGACY_PYTHON.relative_to(ROOT)}: `make test` builds it")
    symbol = venue.symbol("100.00")
    dealer = venue.account("100000.00", **{symbol: "100"})
    for side, price in (("buy", "99.00"), ("sell", "100.00")):
        quote = httpx.post(
            venue.url + "/v2/orders",
            headers=dealer.headers,
            json={
                "symbol": symbol,
                "qty": "50",
                "side": side,
                "type": "limit",
                "time_in_force": "gtc",
                "limit_price": price,
            },
        )
        assert quote.status_code == 200, quote.text
    trader = venue.account("10000.00")
    made = httpx.post(
        f"{venue.url}/admin/accounts/{trader.id}/margin",
        json={"multiplier": 2},
        headers=venue.admin_headers,
    )
    assert made.status_code == 200, made.text
    request = {
        "url": venue.url,
        "key_id": trader.key_id,
        "secret_key": trader.secret_key,
        "symbol": symbol,
        "timeout": TIMEOUT,
    }
    done = subprocess.run(
        [str(LEGACY_PYTHON), str(CLIENT.parent / "short.py"), json.dumps(request)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    before, short, after = seen["before"], seen["short"], seen["after"]
    assert (before["multiplier"], before["shorting_enabled"]) == ("2", True)
    assert (before["buying_power"], before["regt_buying_power"]) == ("20000.00", "20000.00")
    assert seen["sold"] and seen["covered"] and seen["cover_side"] == "buy"
    assert seen["position"] == {
        "side": "short",
        "qty": "-10",
        "market_value": "-990.00",
        "cost_basis": "-990.00",
    }
    assert (short["cash"], short["equity"], short["short_market_value"]) == (
        "10990.00",
        "10000.00",
        "-990.00",
    )
    assert (short["initial_margin"], short["maintenance_margin"]) == ("495.00", "297.00")
    assert short["regt_buying_power"] == "19010.00"
    assert seen["positions_after"] == []
    assert (after["cash"], after["short_market_value"]) == ("9990.00", "0.00")


def test_a_watchlist_is_found_by_its_name(venue: Venue) -> None:
    symbol = venue.symbol()
    trader = venue.account()
    with httpx.Client(base_url=venue.url, headers=trader.headers, timeout=30) as http:
        made = http.post("/v2/watchlists", json={"name": "by name", "symbols": [symbol]})
        assert made.status_code == 200, made.text
        other = http.post("/v2/watchlists", json={"name": "by_name"})  # an id-like name
        assert other.status_code == 200, other.text
        found = http.get("/v2/watchlists:by_name", params={"name": "by name"})
        assert found.status_code == 200, found.text
        assert found.json()["id"] == made.json()["id"]
        assert [asset["symbol"] for asset in found.json()["assets"]] == [symbol]
        assert (
            http.get("/v2/watchlists:by_name", params={"name": "by_name"}).json()["id"]
            == (other.json()["id"])
        )
        # The route by id is not taken for it, nor it for the route by id.
        by_id = http.get(f"/v2/watchlists/{made.json()['id']}")
        assert by_id.status_code == 200 and by_id.json()["name"] == "by name"
        assert http.get("/v2/watchlists/by_name").status_code == 404
        missing = http.get("/v2/watchlists:by_name", params={"name": "nothing"})
        assert missing.status_code == 404 and missing.json()["message"] == "watchlist not found"
        assert http.get("/v2/watchlists:by_name").status_code == 422
        others = venue.account()
        assert (
            http.get(
                "/v2/watchlists:by_name", params={"name": "by name"}, headers=others.headers
            ).status_code
            == 404
        )
