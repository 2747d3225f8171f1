"""The trading page in a real browser: Debian's chromium, headless, driven by Playwright, against
the real `tradepit serve` the end-to-end tests share. A person signs in, trades, sees another
account's order fill theirs, and finds both on the leaderboard; the page says nothing on its
console. Screenshots go to tests/artifacts/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium import needs_chromium
from live import Account, Venue
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)  # a shared 2-core machine: give the page time

pytestmark = needs_chromium


class Console:
    """What the page said on its console (errors) or threw."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._message)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def _message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected(self, *allowed_statuses: int) -> list[str]:
        """Errors other than chromium's note on a response with one of `allowed_statuses`
        (the API refusing an order on purpose, say)."""
        allowed = [f"the server responded with a status of {status}" for status in allowed_statuses]
        return [text for text in self.errors if not any(note in text for note in allowed)]


def open_page(browser: Browser, venue: Venue, viewport: dict[str, int]) -> tuple[Page, Console]:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    page.set_default_timeout(TIMEOUT_MS)
    console = Console(page)
    page.goto(venue.url + "/")
    return page, console


def screenshot(page: Page, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def sign_in(page: Page, account: Account) -> None:
    """By keyboard: type the key, Tab to the secret, Enter."""
    page.locator("#key-id").focus()
    page.keyboard.type(account.key_id)
    page.keyboard.press("Tab")
    page.keyboard.type(account.secret_key)
    page.keyboard.press("Enter")
    expect(page.locator("#balances")).to_be_visible()


def order(venue: Venue, account: Account, **body: Any) -> dict[str, Any]:
    response = httpx.post(
        venue.url + "/v2/orders",
        json={"type": "limit", "time_in_force": "gtc", **body},
        headers=account.headers,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def market_data_served(venue: Venue, account: Account) -> bool:
    answer = httpx.get(
        venue.url + "/v2/stocks/snapshots?symbols=ACME", headers=account.headers, timeout=10
    )
    return answer.status_code != 404


def test_sign_in_trade_cancel_and_get_filled(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    # Rich enough to rank within the page's top 100 however many accounts other tests made.
    other = venue.account("90000000.00", **{symbol: "50"})
    for account, name in ((me, "Page tester"), (other, "Crossing bot")):
        response = httpx.patch(
            venue.url + "/v1/profile",
            json={"display_name": name, "show_on_leaderboard": True},
            headers=account.headers,
        )
        assert response.status_code == 200, response.text
    # Until market data is served, the page's one probe of it answers 404.
    quiet_statuses = () if market_data_served(venue, me) else (404,)

    page, console = open_page(browser, venue, WIDE)
    expect(page.locator("#signin-view")).to_be_visible()
    sign_in(page, me)
    expect(page.locator("#cash")).to_have_text("$100,000.00")
    page.locator(f'#symbol-list [data-symbol="{symbol}"]').click()
    expect(page).to_have_url(re.compile(f"#/trade/{symbol}$"))
    expect(page.locator("#chart-symbol")).to_have_text(symbol)

    # A limit order that rests: it shows among the open orders, and cancels from there.
    page.locator("#side-buy").check(force=True)
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "10")
    page.fill("#order-limit", "99.00")
    page.select_option("#order-tif", "gtc")
    page.locator("#submit-order").click()
    expect(page.locator("#ticket-status")).to_contain_text("buy 10")
    page.locator("#tab-open").click()
    row = page.locator("#pane-open tbody tr", has_text=symbol)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("$99.00")
    expect(page.locator("#open-count")).to_have_text("(1)")
    screenshot(page, "page-open-order")
    row.get_by_role("button", name="Cancel").click()
    expect(page.locator("#pane-open")).to_contain_text("No open orders.")

    # Another buy rests, and another account's sell crosses it: the fill arrives on its own.
    page.fill("#order-limit", "100.00")
    page.locator("#submit-order").click()
    expect(page.locator("#pane-open tbody tr", has_text=symbol)).to_have_count(1)
    order(venue, other, symbol=symbol, qty="10", side="sell", limit_price="100.00")
    expect(page.locator("#pane-open")).to_contain_text("No open orders.")
    expect(page.locator("#cash")).to_have_text("$99,000.00")
    page.locator("#tab-positions").click()
    position = page.locator(f'#pane-positions tr[data-symbol="{symbol}"]')
    expect(position).to_contain_text("10")
    expect(position).to_contain_text("$100.00")
    page.locator("#tab-fills").click()
    expect(page.locator("#pane-fills tbody tr", has_text=symbol)).to_have_count(1)
    expect(page.locator("#pane-fills")).to_contain_text("$100.00")
    page.locator("#tab-history").click()
    expect(page.locator("#pane-history tbody tr", has_text=symbol).first).to_contain_text("filled")
    expect(page.locator("#pane-history tbody tr", has_text="canceled").first).to_be_visible()
    screenshot(page, "page-filled")

    # The leaderboard names both accounts, and marks this one.
    page.get_by_role("link", name="Leaderboard").click()
    board = page.locator("#board")
    expect(board).to_contain_text("Page tester")
    expect(board).to_contain_text("Crossing bot")
    expect(page.locator("#board tr.you")).to_contain_text("Page tester")
    expect(page.locator("#profile-form")).to_be_visible()
    screenshot(page, "page-leaderboard")
    assert console.unexpected(*quiet_statuses) == []
    page.close()


def test_the_api_refusals_show_next_to_their_field(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("1000.00", **{symbol: "5"})
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)

    page.fill("#order-qty", "1")
    page.fill("#order-limit", "99.001")  # off the tick grid
    page.locator("#submit-order").click()
    expect(page.locator("#error-limit_price")).to_contain_text("limit_price")
    expect(page.locator("#order-limit")).to_have_attribute("aria-invalid", "true")

    page.fill("#order-limit", "99.00")
    page.fill("#order-qty", "20")  # 1,980.00 of buying power, with 1,000.00
    page.locator("#submit-order").click()
    expect(page.locator("#error-qty")).to_contain_text("buying power")

    page.locator("#side-sell").check(force=True)
    page.fill("#order-qty", "6")  # holds 5
    page.locator("#submit-order").click()
    expect(page.locator("#error-qty")).to_contain_text("qty")
    expect(page.locator("#submit-order")).to_have_text(f"Sell {symbol}")

    page.fill("#order-qty", "")
    page.locator("#submit-order").click()
    expect(page.locator("#error-qty")).to_have_text("Enter a quantity.")
    screenshot(page, "page-ticket-errors")
    # 422 and 403 are the refusals asked for; nothing else may show.
    assert console.unexpected(403, 404, 422) == []
    page.close()


def test_a_demo_account_in_one_click_at_phone_width(browser: Browser, venue: Venue) -> None:
    page, console = open_page(browser, venue, PHONE)
    demo = page.get_by_role("button", name="Try a demo account")
    expect(demo).to_be_visible()
    screenshot(page, "phone-sign-in")
    demo.click()
    expect(page.locator("#balances")).to_be_visible()
    expect(page.locator("#cash")).to_have_text("$100,000.00")
    expect(page.locator("#notice")).to_contain_text("APCA-API-KEY-ID PK")
    expect(page.locator("#pane-positions")).to_contain_text("ACME")
    # Readable at phone width: nothing wider than the screen.
    time.sleep(0.5)
    screenshot(page, "phone-trade", full_page=True)
    wide = page.evaluate(
        """width => {
            // What sticks out of the screen, not counting what scrolls inside its own box.
            const scrolls = node => {
                for (let up = node.parentElement; up; up = up.parentElement) {
                    if (getComputedStyle(up).overflowX !== 'visible') return true;
                }
                return false;
            };
            return [...document.querySelectorAll('body *')]
                .filter(node => node.getBoundingClientRect().right > width + 0.5)
                .filter(node => !scrolls(node))
                .map(node => node.tagName + '#' + node.id + '.' + node.className);
        }""",
        PHONE["width"],
    )
    assert wide == [], f"wider than the screen: {wide[:5]}"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.get_by_role("link", name="Leaderboard").click()
    expect(page.locator("#board tr.you")).to_be_visible()
    screenshot(page, "phone-leaderboard", full_page=True)
    statuses = () if market_data_served(venue, page_account(page)) else (404,)
    assert console.unexpected(*statuses) == []
    page.close()


def page_account(page: Page) -> Account:
    keys = page.evaluate("JSON.parse(sessionStorage.getItem('tradepit.keys'))")
    return Account("", keys["key_id"], keys["secret_key"])


def test_the_book_tape_and_chart_move(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    maker = venue.account("100000.00", **{symbol: "100"})
    taker = venue.account("100000.00")
    if not market_data_served(venue, maker):
        pytest.skip("the venue does not serve market data yet")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, taker)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    ladder = page.locator("#ladder")
    expect(ladder).to_contain_text("Empty book")

    # Resting orders appear on the ladder as they arrive.
    order(venue, maker, symbol=symbol, qty="7", side="sell", limit_price="101.00")
    order(venue, maker, symbol=symbol, qty="3", side="sell", limit_price="102.00")
    order(venue, taker, symbol=symbol, qty="4", side="buy", limit_price="99.00")
    expect(ladder.locator(".level.ask", has_text="101.00")).to_contain_text("7")
    expect(ladder.locator(".level.ask", has_text="102.00")).to_be_visible()
    expect(ladder.locator(".level.bid", has_text="99.00")).to_contain_text("4")
    expect(ladder).to_contain_text("Spread 2.00")

    # Picking an ask puts a buy at its price in the ticket.
    ladder.locator(".level.ask", has_text="101.00").click()
    expect(page.locator("#order-limit")).to_have_value("101.00")
    expect(page.locator("#side-buy")).to_be_checked()
    expect(page.locator("#order-qty")).to_be_focused()

    # A trade: the tape, the last price, the ladder and the chart's newest candle follow.
    order(venue, taker, symbol=symbol, qty="2", side="buy", limit_price="101.00")
    expect(page.locator("#tape tr").first).to_contain_text("101.00")
    expect(page.locator("#chart-last")).to_have_text("101.00")
    expect(ladder.locator(".level.ask", has_text="101.00")).to_contain_text("5")
    expect(page.locator(f'#symbol-list [data-symbol="{symbol}"] .last')).to_have_text("101.00")
    expect(page.locator("#chart canvas").first).to_be_visible()
    for timeframe in ("5Min", "1Day", "1Min"):
        button = page.locator(f'#timeframes [data-tf="{timeframe}"]')
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#chart-last")).to_have_text("101.00")
    order(venue, taker, symbol=symbol, qty="5", side="buy", limit_price="101.00")
    expect(ladder.locator(".level.ask", has_text="101.00")).to_have_count(0)
    expect(page.locator("#tape tr")).to_have_count(2)
    screenshot(page, "page-market")
    assert console.unexpected() == []
    page.close()


def test_the_book_model_applies_deltas_and_asks_again_after_a_gap(
    browser: Browser, venue: Venue
) -> None:
    """The page's OrderBook (book.js) on its own, in the browser that runs it."""
    page, console = open_page(browser, venue, WIDE)
    result = page.evaluate(
        """async () => {
            const { OrderBook } = await import('/page/book.js');
            const book = new OrderBook('ACME');
            const seen = [];
            seen.push(book.apply({ T: 'o', S: 'ACME', seq: 4, b: [[99, 1]], a: [] }));
            seen.push(book.apply({ T: 'o', S: 'ACME', seq: 5, snapshot: true,
                                   b: [[99, 5], [98, 2]], a: [[101, 3], [102, 1]] }));
            seen.push(book.apply({ T: 'o', S: 'ACME', seq: 6, b: [[99, 0], [100, 4]],
                                   a: [[101, 1]] }));
            seen.push(book.apply({ T: 'o', S: 'ACME', seq: 6, b: [[97, 9]], a: [] }));
            seen.push(book.apply({ T: 'o', S: 'GLOBEX', seq: 7, b: [[1, 1]], a: [] }));
            const bids = book.levels('bid', 10), asks = book.levels('ask', 1);
            seen.push(book.apply({ T: 'o', S: 'ACME', seq: 8, b: [[96, 1]], a: [] }));
            return { seen, bids, asks, after: book.seq, empty: book.bids.size };
        }"""
    )
    # Deltas before a snapshot are ignored, as is a repeat; a gap drops the book.
    assert result["seen"] == ["ignored", "ok", "ok", "ignored", "ignored", "gap"]
    assert result["bids"] == [
        {"price": 100, "size": 4, "total": 4},
        {"price": 98, "size": 2, "total": 6},
    ]
    assert result["asks"] == [{"price": 101, "size": 1, "total": 1}]
    assert result["after"] is None
    assert result["empty"] == 0
    assert console.unexpected() == []
    page.close()
