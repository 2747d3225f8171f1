"""lumibot trades through an open on an NYSE venue with a fast clock, unmodified (issue 21).

A venue of its own runs `tradepit serve --calendar nyse` with its clock started in the
pre-market, four minutes before an open, at four times real speed. A plain lumibot strategy
(lumibot/strategy.py: buy one share at market on its first iteration) runs live on lumibot's own
Alpaca broker, configured as lumibot documents it, from the environment (ALPACA_API_KEY,
ALPACA_API_SECRET, ALPACA_IS_PAPER), and pointed at the venue from outside by tradepit's shim
(PYTHONPATH=$(tradepit shim), TRADEPIT_URL), which sets alpaca-py's `url_override`: lumibot
builds its TradingClient and TradingStream with no URL of its own. The bot's order reaches the
venue before the open, waits there as `accepted`, and fills at the open in the opening auction
against a dealer's resting sell; lumibot hears of the fill on its trade updates stream.

lumibot decides whether the market is open from the machine's own clock and
pandas_market_calendars (its broker's `market`, "NASDAQ" unless MARKET says otherwise), not from
/v2/clock: with a venue clock that is not the wall clock it would trade, or sleep until the
real open, by the wall clock. So the bot runs with MARKET=24/7, lumibot's documented setting
for a strategy that runs whatever its calendar says, and the venue's sessions alone decide when
the order trades.

lumibot's dependencies are large, so it runs in .venv-lumibot, which `make test-all` builds
(tests/e2e/lumibot/requirements.txt), as a subprocess with a deadline; without that
environment the test is skipped, saying so.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import serving
from live import Account, Venue, eventually

ROOT = Path(__file__).resolve().parents[2]
LUMIBOT_PYTHON = ROOT / ".venv-lumibot" / "bin" / "python"
STRATEGY = Path(__file__).parent / "lumibot" / "strategy.py"

# A Monday. The venue clock starts four venue minutes before the open and runs four times as
# fast: the open comes a minute of real time after the venue starts.
OPENS_AT = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)  # 09:30 US/Eastern
CLOCK_START = "2026-12-07T14:26:00Z"
CLOCK_SPEED = "4"
BOT_DEADLINE = 180.0  # seconds of real time for the whole bot run: it never outlives it
STOP_GRACE = 15.0  # seconds the bot has to stop on SIGTERM before it is killed


@pytest.fixture(scope="module")
def nyse_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    if not LUMIBOT_PYTHON.exists():
        pytest.skip(f"no {LUMIBOT_PYTHON.relative_to(ROOT)}: `make test-all` builds it")
    flags = ("--calendar", "nyse", "--clock-start", CLOCK_START, "--clock-speed", CLOCK_SPEED)
    with serving(tmp_path_factory.mktemp("lumibot-venue"), None, *flags) as venue:
        yield venue


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def bot_environment(venue: Venue, trader: Account) -> dict[str, str]:
    shim = subprocess.run(
        [sys.executable, "-m", "tradepit.cli", "shim"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ALPACA_", "APCA_", "LUMIBOT_", "LUMIWEALTH_", "TRADEPIT_"))
        and key not in ("PYTHONPATH", "MARKET", "IS_BACKTESTING", "TRADING_BROKER", "DATA_SOURCE")
    }
    return {
        **inherited,
        # lumibot's own configuration of a live Alpaca run.
        "ALPACA_API_KEY": trader.key_id,
        "ALPACA_API_SECRET": trader.secret_key,
        "ALPACA_IS_PAPER": "true",
        "IS_BACKTESTING": "false",
        "MARKET": "24/7",
        "LUMIBOT_HIDE_BOTSPOT_TIP": "1",
        # tradepit's shim: alpaca-py's clients get the venue's URL as their url_override.
        "PYTHONPATH": shim,
        "TRADEPIT_URL": venue.url,
        "PYTHONUNBUFFERED": "1",
    }


def stop(bot: subprocess.Popen[bytes]) -> None:
    if bot.poll() is not None:
        return
    os.killpg(bot.pid, signal.SIGTERM)
    try:
        bot.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        os.killpg(bot.pid, signal.SIGKILL)
        bot.wait()


@pytest.mark.slow
def test_an_unmodified_lumibot_strategy_buys_at_the_open_of_an_nyse_venue(
    nyse_venue: Venue, tmp_path: Path
) -> None:
    venue = nyse_venue
    symbol = venue.symbol("100.00")
    trader = venue.account("100000.00")
    dealer = venue.account("0", **{symbol: "1000"})
    http = httpx.Client(base_url=venue.url, timeout=30)

    def clock() -> dict[str, Any]:
        answer = http.get("/v2/clock", headers=trader.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def orders(account: Account) -> list[dict[str, Any]]:
        answer = http.get("/v2/orders", params={"status": "all"}, headers=account.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    before = clock()
    assert before["is_open"] is False and at(before["next_open"]) == OPENS_AT, (
        f"the venue took too long to start: the open went by ({before})"
    )
    # The dealer's resting sell, placed in the pre-market: it waits, and joins the opening
    # auction, where the bot's market buy meets it.
    ask = http.post(
        "/v2/orders",
        headers=dealer.headers,
        json={
            "symbol": symbol,
            "qty": "10",
            "side": "sell",
            "type": "limit",
            "time_in_force": "day",
            "limit_price": "100.00",
        },
    )
    assert ask.status_code == 200, ask.text
    assert ask.json()["status"] == "accepted"

    log_path = tmp_path / "bot.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        bot = subprocess.Popen(
            [str(LUMIBOT_PYTHON), str(STRATEGY), symbol],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,  # so that lumibot finds no .env of anyone's
            env=bot_environment(venue, trader),
            start_new_session=True,
        )

    def output() -> str:
        return "the bot's output:\n" + log_path.read_text(errors="replace")

    def left() -> float:
        return max(0.0, BOT_DEADLINE - (time.monotonic() - started))

    try:
        # The bot's order reaches the venue in the pre-market, and waits.
        placed = eventually(lambda: orders(trader) or (bot.poll() is not None), left())
        assert isinstance(placed, list) and placed, output()
        waiting = clock()
        assert len(placed) == 1, output()
        order = placed[0]
        assert order["status"] == "accepted", f"{order}\n{output()}"
        assert waiting["is_open"] is False, (
            f"the bot placed its order only after the open ({waiting}): it started too slowly\n"
            + output()
        )
        assert (order["symbol"], order["side"], order["type"], order["qty"]) == (
            symbol,
            "buy",
            "market",
            "1",
        ), output()
        assert at(order["submitted_at"]) < OPENS_AT, output()

        # At the open it fills in the opening auction, and lumibot hears of the fill.
        def filled() -> dict[str, Any] | None:
            found = http.get(f"/v2/orders/{order['id']}", headers=trader.headers).json()
            return found if found["status"] == "filled" or bot.poll() is not None else None

        done = eventually(filled, left())
        assert done and done["status"] == "filled", f"{done}\n{output()}"
        assert at(done["filled_at"]) >= OPENS_AT, output()
        assert (done["filled_qty"], done["filled_avg_price"]) == ("1", "100.00"), output()
        heard = f"BOT filled {order['id']}"
        assert eventually(lambda: heard in log_path.read_text() or bot.poll() is not None, left())
        assert heard in log_path.read_text(), output()
        assert bot.poll() is None, f"the bot stopped by itself ({bot.returncode})\n{output()}"
    finally:
        stop(bot)

    positions = http.get("/v2/positions", headers=trader.headers)
    assert positions.status_code == 200, positions.text
    assert [(p["symbol"], p["qty"]) for p in positions.json()] == [(symbol, "1")]
    assert [(o["status"], o["filled_qty"]) for o in orders(dealer)] == [("partially_filled", "1")]
    assert "Traceback" not in log_path.read_text(), output()
