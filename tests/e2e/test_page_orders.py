"""The page's order ticket and open orders for trailing stops, in a real browser (as test_page.py:
Debian's chromium, headless, driven by Playwright, against the shared `tradepit serve`). The
trades that move the stop are other accounts', placed through the API, on a symbol of the test's
own, so that only the page's refresh can show the stop moving."""

from __future__ import annotations

import httpx
from chromium import needs_chromium
from live import Account, Venue
from playwright.sync_api import Browser, Page, expect
from test_page import WIDE, open_page, order, screenshot, sign_in

pytestmark = needs_chromium


def trade(venue: Venue, seller: Account, buyer: Account, symbol: str, price: str) -> None:
    """One lot changes hands at `price` between two other accounts."""
    order(venue, seller, symbol=symbol, qty="1", side="sell", limit_price=price)
    order(venue, buyer, symbol=symbol, qty="1", side="buy", limit_price=price)


def trailing_ticket(page: Page, qty: str, trail: str, unit: str, tif: str = "gtc") -> None:
    page.select_option("#order-type", "trailing_stop")
    page.fill("#order-qty", qty)
    page.fill("#order-trail", trail)
    page.select_option("#order-trail-unit", unit)
    page.select_option("#order-tif", tif)
    page.locator("#submit-order").click()


def test_a_trailing_stop_from_the_ticket_follows_the_high(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00", **{symbol: "10"})
    maker = venue.account("100000.00", **{symbol: "100"})
    taker = venue.account("100000.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)

    # The ticket asks for a trail, and for no price, once the type is a trailing stop.
    page.locator("#side-sell").check(force=True)
    page.select_option("#order-type", "trailing_stop")
    expect(page.locator("#order-trail")).to_be_visible()
    expect(page.locator("#order-limit")).to_be_hidden()
    expect(page.locator("#order-stop")).to_be_hidden()

    # What the page can tell before asking, then what only the API can.
    trailing_ticket(page, "5", "", "trail_price")
    expect(page.locator("#error-trail")).to_have_text("Enter a trail.")
    expect(page.locator("#order-trail")).to_be_focused()
    trailing_ticket(page, "5", "1.00", "trail_price", tif="ioc")
    expect(page.locator("#error-time_in_force")).to_contain_text("day or GTC")
    trailing_ticket(page, "5", "100", "trail_percent")
    expect(page.locator("#error-trail")).to_contain_text("trail_percent")
    expect(page.locator("#order-trail")).to_have_attribute("aria-invalid", "true")
    trailing_ticket(page, "5", "1.001", "trail_price")
    expect(page.locator("#error-trail")).to_contain_text("trail_price")
    expect(page.locator("#ticket-status")).to_have_text("")

    # A sell trailing 1.00 below the high, placed from the keyboard's side of the form.
    page.fill("#order-trail", "1.00")
    expect(page.locator("#error-trail")).to_have_text("")
    page.locator("#order-trail").press("Enter")
    expect(page.locator("#ticket-status")).to_contain_text(f"sell 5 {symbol} trailing stop")
    page.locator("#tab-open").click()
    row = page.locator("#pane-open tbody tr", has_text=symbol)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("trailing stop")
    expect(row.locator("td.trail")).to_have_text("$1.00")
    expect(row.locator("td.stop")).to_have_text("$99.00")  # from the reference price
    expect(row.locator("td.hwm")).to_have_text("$100.00")

    # Other accounts trade higher: the stop follows each new high, on the page by itself.
    trade(venue, maker, taker, symbol, "101.50")
    expect(row.locator("td.hwm")).to_have_text("$101.50")
    expect(row.locator("td.stop")).to_have_text("$100.50")
    trade(venue, maker, taker, symbol, "103.00")
    expect(row.locator("td.stop")).to_have_text("$102.00")
    # A lower trade above the stop is no new high: the stop stays.
    trade(venue, maker, taker, symbol, "102.50")
    expect(page.locator("#tape tr").first).to_contain_text("102.50")
    expect(row.locator("td.stop")).to_have_text("$102.00")
    screenshot(page, "page-trailing-stop")

    # Replace changes the trail and keeps the mark.
    row.get_by_role("button", name="Replace").click()
    trail = page.get_by_label("New trail ($)")
    expect(trail).to_have_value("1.00")
    expect(page.get_by_label("New stop price")).to_have_count(0)
    trail.fill("2.50")
    trail.press("Enter")
    row = page.locator("#pane-open tbody tr", has_text=symbol)
    expect(row.locator("td.trail")).to_have_text("$2.50")
    expect(row.locator("td.stop")).to_have_text("$100.50")
    expect(row.locator("td.hwm")).to_have_text("$103.00")

    # Canceled, it shows in the history with its trail, its last stop and its mark.
    row.get_by_role("button", name="Cancel").click()
    expect(page.locator("#pane-open")).to_contain_text("No open orders.")
    page.locator("#tab-history").click()
    done = page.locator("#pane-history tbody tr", has_text=symbol).first
    expect(done).to_contain_text("canceled")
    expect(done.locator("td.trail")).to_have_text("$2.50")
    expect(done.locator("td.stop")).to_have_text("$100.50")
    expect(done.locator("td.hwm")).to_have_text("$103.00")

    # A buy trailing by a percent of the low.
    page.locator('label[for="side-buy"]').click()
    expect(page.locator("#side-buy")).to_be_checked()
    trailing_ticket(page, "2", "1.5", "trail_percent", tif="day")
    expect(page.locator("#ticket-status")).to_contain_text("trailing 1.5%")
    page.locator("#tab-open").click()
    row = page.locator("#pane-open tbody tr", has_text=symbol)
    expect(row.locator("td.trail")).to_have_text("1.5%")
    expect(row.locator("td.hwm")).to_have_text("$102.50")
    expect(row.locator("td.stop")).to_have_text("$104.04")  # 102.50 * 1.015, rounded up
    trade(venue, maker, taker, symbol, "101.00")
    expect(row.locator("td.hwm")).to_have_text("$101.00")
    expect(row.locator("td.stop")).to_have_text("$102.52")  # 102.515, rounded up
    listed = httpx.get(venue.url + "/v2/orders?status=open", headers=me.headers, timeout=10).json()
    assert [entry["stop_price"] for entry in listed] == ["102.52"]

    # A limit far from the market rests (passive, at any price on the grid); one that would
    # trade through the band is accepted by the API, then rejected by the book: the ticket
    # says so, of the order as a whole.
    order(venue, maker, symbol=symbol, qty="1", side="sell", limit_price="150.00")
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "1")
    page.fill("#order-limit", "200.00")
    page.locator("#submit-order").click()
    expect(page.locator("#error-order")).to_contain_text(f"Order rejected: buy 1 {symbol} limit")
    expect(page.locator("#error-order")).to_contain_text("outside the price band")
    expect(page.locator("#order-limit")).not_to_have_attribute("aria-invalid", "true")
    page.locator("#tab-history").click()
    expect(page.locator("#pane-history tbody tr", has_text="rejected").first).to_contain_text(
        "$200.00"
    )
    # 422 is the refusals asked for; 404 the market data probe on a venue without it.
    assert console.unexpected(404, 422) == []
    page.close()
