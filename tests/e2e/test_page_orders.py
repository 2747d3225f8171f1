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


def bracket_ticket(
    page: Page, qty: str, limit: str, take_profit: str, stop_loss: str, **more: str
) -> None:
    """A limit buy with its exits; `stop_limit` gives the stop loss a limit, `tif` is gtc
    unless given."""
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", qty)
    page.fill("#order-limit", limit)
    page.locator("#order-exits").check()
    page.fill("#order-take-profit", take_profit)
    page.fill("#order-stop-loss", stop_loss)
    page.fill("#order-stop-loss-limit", more.get("stop_limit", ""))
    page.select_option("#order-tif", more.get("tif", "gtc"))
    page.locator("#submit-order").click()


def test_a_bracket_from_the_ticket_lists_its_legs_under_it(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    dealer = venue.account("100000.00", **{symbol: "100"})
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)

    # Exits are offered with market and limit entries, their prices once asked for.
    page.select_option("#order-type", "stop")
    expect(page.locator("#order-exits")).to_be_hidden()
    page.select_option("#order-type", "market")
    expect(page.locator("#order-exits")).to_be_visible()
    expect(page.locator("#order-take-profit")).to_be_hidden()
    page.locator("#order-exits").check()
    expect(page.locator("#order-take-profit")).to_be_visible()
    expect(page.locator("#order-stop-loss-limit")).to_be_visible()

    # What the page can tell before asking, then what only the API can.
    bracket_ticket(page, "10", "100.00", "", "")
    expect(page.locator("#error-take_profit")).to_have_text(
        "Enter a take profit, a stop loss or both."
    )
    expect(page.locator("#order-take-profit")).to_be_focused()
    bracket_ticket(page, "10", "100.00", "110.00", "", stop_limit="89.50")
    expect(page.locator("#error-stop_loss")).to_have_text("Enter the stop loss's stop price.")
    bracket_ticket(page, "10", "100.00", "110.00", "90.00", tif="ioc")
    expect(page.locator("#error-time_in_force")).to_contain_text("day or gtc")
    bracket_ticket(page, "10", "100.00", "99.00", "90.00")
    expect(page.locator("#error-take_profit")).to_contain_text("take_profit.limit_price")
    expect(page.locator("#order-take-profit")).to_have_attribute("aria-invalid", "true")
    bracket_ticket(page, "10", "100.00", "110.00", "101.00")
    expect(page.locator("#error-stop_loss")).to_contain_text("stop_loss.stop_price")
    expect(page.locator("#ticket-status")).to_have_text("")

    # A bracket: the entry rests, its two exits held under it in the open orders.
    bracket_ticket(page, "10", "100.00", "110.00", "90.00")
    expect(page.locator("#ticket-status")).to_contain_text(
        f"buy 10 {symbol} limit at 100.00, take profit 110.00, stop loss 90.00"
    )
    expect(page.locator("#error-stop_loss")).to_have_text("")
    page.locator("#tab-open").click()
    entry = page.locator("#pane-open tbody tr:not(.leg)", has_text=symbol)
    expect(entry).to_have_count(1)
    expect(entry.locator("td.type")).to_have_text("limit · bracket")
    expect(page.locator("#open-count")).to_have_text("(3)")  # as Alpaca counts them
    first = entry.get_attribute("data-order")
    legs = page.locator(f'#pane-open tr[data-order="{first}"] ~ tr.leg[data-parent="{first}"]')
    expect(legs).to_have_count(2)
    # Right under their parent, the take profit first.
    take_profit = page.locator(f'#pane-open tr[data-order="{first}"] + tr.leg')
    stop_loss = page.locator(f'#pane-open tr[data-order="{first}"] + tr.leg + tr.leg')
    expect(take_profit.locator("td.leg-of")).to_have_text("↳ take profit")
    expect(take_profit.locator("td.side")).to_have_text("sell")
    expect(take_profit.locator("td.type")).to_have_text("limit")
    expect(take_profit.locator("td.limit")).to_have_text("$110.00")
    expect(stop_loss.locator("td.leg-of")).to_have_text("↳ stop loss")
    expect(stop_loss.locator("td.type")).to_have_text("stop")
    expect(stop_loss.locator("td.stop")).to_have_text("$90.00")
    for leg in (take_profit, stop_loss):
        expect(leg.locator("td.status")).to_have_text("held")
        expect(leg.locator("td.qty")).to_have_text("10")
        # Held, a leg is its entry's to cancel.
        expect(leg.get_by_role("button")).to_have_count(0)
    expect(entry.get_by_role("button", name="Cancel")).to_be_enabled()

    # Another account sells into the entry: its exits go live, still under it, and each can
    # be canceled on its own now; the filled entry has nothing left to cancel.
    order(venue, dealer, symbol=symbol, qty="10", side="sell", limit_price="100.00")
    expect(entry.locator("td.status")).to_have_text("filled")
    expect(take_profit.locator("td.status")).to_have_text("new")
    expect(stop_loss.locator("td.status")).to_have_text("new")
    expect(page.locator("#open-count")).to_have_text("(2)")
    expect(entry.get_by_role("button")).to_have_count(0)
    for leg in (take_profit, stop_loss):
        expect(leg.get_by_role("button", name="Cancel")).to_be_visible()
    screenshot(page, "page-bracket")

    # A second bracket, its stop loss a stop limit, canceled with its entry.
    bracket_ticket(page, "5", "95.00", "105.00", "90.00", stop_limit="89.50", tif="day")
    expect(page.locator("#ticket-status")).to_contain_text(
        "take profit 105.00, stop loss 90.00 limit 89.50"
    )
    second = page.locator("#pane-open tbody tr:not(.leg)", has_text="$95.00")
    expect(second).to_have_count(1)
    second_id = second.get_attribute("data-order")
    second_legs = page.locator(f'#pane-open tr.leg[data-parent="{second_id}"]')
    expect(second_legs.locator("td.status")).to_have_text(["held", "held"])
    expect(second_legs.locator("td.type")).to_have_text(["limit", "stop limit"])
    second.get_by_role("button", name="Cancel").click()
    expect(second).to_have_count(0)
    expect(second_legs).to_have_count(0)
    expect(legs).to_have_count(2)  # the first bracket's exits still work

    page.locator("#tab-history").click()
    canceled = page.locator(f'#pane-history tr[data-order="{second_id}"]')
    expect(canceled.locator("td.status")).to_have_text("canceled")
    expect(canceled.locator("td.type")).to_have_text("limit · bracket")
    nested = page.locator(
        f'#pane-history tr[data-order="{second_id}"] ~ tr.leg[data-parent="{second_id}"]'
    )
    expect(nested.locator("td.leg-of")).to_have_text(["↳ take profit", "↳ stop loss"])
    expect(nested.locator("td.status")).to_have_text(["canceled", "canceled"])
    expect(nested.locator("td.limit")).to_have_text(["$105.00", "$89.50"])
    expect(page.locator(f'#pane-history tr[data-order="{second_id}"] + tr.leg')).to_have_count(1)
    # The filled entry is history too, its live exits under it.
    filled = page.locator(f'#pane-history tr[data-order="{first}"]')
    expect(filled.locator("td.status")).to_have_text("filled")
    expect(page.locator(f'#pane-history tr.leg[data-parent="{first}"] td.status')).to_have_text(
        ["new", "new"]
    )
    screenshot(page, "page-bracket-history")

    # 422 is the refusals asked for; 404 the market data probe on a venue without it.
    assert console.unexpected(404, 422) == []
    page.close()
