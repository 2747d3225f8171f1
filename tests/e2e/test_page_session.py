"""The market's session on the page, in a real browser (as test_page.py: Debian's chromium,
headless, driven by Playwright): the top bar says whether the market is open and when it next
opens or closes, in the venue's time and its calendar's time zone, from GET /v2/clock. On the
shared 24x7 venue it is always open; on a venue of its own on the NYSE's calendar, its clock
started on a Saturday, it is closed until Monday's open, and an order from the ticket waits,
accepted, for it (an extended-hours one waits for the pre-market instead). A third test feeds
the page clock answers of its own, to see the pre-market, the regular session and after hours
follow each other as the page polls.

The ticket offers what the sessions allow: an extended-hours box for a day limit, and the
auctions' times in force (opg, cls) for market and limit orders, on an NYSE venue; none of them
on a 24x7 one. The API's refusals of an auction order out of its hours show under the time in
force, on a third venue whose clock starts near Monday's close."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from chromium import needs_chromium
from conftest import serving
from live import Venue
from playwright.sync_api import Browser, Page, Route, expect
from test_page import PHONE, WIDE, open_page, order, screenshot, sign_in

pytestmark = needs_chromium

SATURDAY = "2026-12-05T15:00:00Z"  # 10:00 US/Eastern: closed until Monday 09:30
NEAR_THE_CLOSE = "2026-12-07T20:55:00Z"  # Monday 15:55 US/Eastern: opg and cls are refused


@pytest.fixture(scope="module")
def nyse_venue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    flags = ("--calendar", "nyse", "--clock-start", SATURDAY)
    with serving(tmp_path_factory.mktemp("page-nyse"), None, *flags) as venue:
        yield venue


@pytest.fixture(scope="module")
def nyse_venue_near_the_close(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venue]:
    flags = ("--calendar", "nyse", "--clock-start", NEAR_THE_CLOSE)
    with serving(tmp_path_factory.mktemp("page-nyse-close"), None, *flags) as venue:
        yield venue


def time_in_force_values(page: Page) -> list[str]:
    return page.locator("#order-tif option").evaluate_all("options => options.map(o => o.value)")


def test_a_24x7_venue_shows_always_open(browser: Browser, venue: Venue) -> None:
    me = venue.account("1000.00")
    page, console = open_page(browser, venue, WIDE)
    expect(page.locator("#session")).to_be_hidden()  # signed out: the clock needs a key
    sign_in(page, me)
    session = page.locator("#session")
    expect(session).to_be_visible()
    expect(session).to_have_attribute("data-phase", "open")
    expect(session.locator(".phase")).to_have_text("Open")
    expect(session.locator(".next")).to_have_text("24x7")
    expect(session).to_have_attribute(
        "title", "The market is always open on this venue (its 24x7 calendar)."
    )
    screenshot(page, "page-session-24x7")
    page.set_viewport_size({"width": PHONE["width"], "height": PHONE["height"]})
    expect(session).to_be_visible()
    screenshot(page, "page-session-phone")
    page.locator("#sign-out").click()
    expect(session).to_be_hidden()
    assert console.unexpected(404) == []
    page.close()


def test_a_closed_nyse_venue_shows_the_next_open(browser: Browser, nyse_venue: Venue) -> None:
    venue = nyse_venue
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    clock = httpx.get(venue.url + "/v2/clock", headers=me.headers, timeout=10).json()
    assert (clock["phase"], clock["calendar"]) == ("closed", "nyse")
    assert clock["next_open"] == "2026-12-07T09:30:00-05:00"

    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    session = page.locator("#session")
    expect(session).to_have_attribute("data-phase", "closed")
    expect(session.locator(".phase")).to_have_text("Closed")
    # Monday's open, as the venue's calendar has it (US/Eastern), not in the browser's zone.
    expect(session.locator(".next")).to_have_text("opens Mon 09:30 ET")
    expect(session).to_have_attribute(
        "title",
        "Market closed: the regular session opens Monday at 09:30 ET, with the opening auction "
        "(venue time).",
    )

    # A day limit from the ticket is accepted and waits for the open.
    page.locator("#side-buy").check(force=True)
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "3")
    page.fill("#order-limit", "99.00")
    page.select_option("#order-tif", "day")
    page.locator("#submit-order").click()
    expect(page.locator("#ticket-status")).to_have_text(
        f"Order accepted: buy 3 {symbol} limit at 99.00. It waits for the open, Mon 09:30 ET."
    )
    page.locator("#tab-open").click()
    row = page.locator("#pane-open tbody tr", has_text=symbol)
    expect(row).to_have_count(1)
    expect(row.locator("td.status")).to_have_text("accepted waits for the open")
    expect(row.locator("td.status")).to_have_attribute(
        "title", "Accepted: it waits for the open, Mon 09:30 ET, and joins the book there."
    )
    expect(page.locator("#open-count")).to_have_text("(1)")
    listed = httpx.get(venue.url + "/v2/orders?status=open", headers=me.headers, timeout=10).json()
    assert [entry["status"] for entry in listed] == ["accepted"]
    screenshot(page, "page-session-closed")

    # An extended-hours limit waits for the pre-market, not the open: its status is left as is.
    extended = order(
        venue,
        me,
        symbol=symbol,
        qty="1",
        side="buy",
        limit_price="98.00",
        time_in_force="day",
        extended_hours=True,
    )
    assert extended["status"] == "accepted"
    expect(page.locator("#open-count")).to_have_text("(2)")
    extended_row = page.locator(f'#pane-open tr[data-order="{extended["id"]}"]')
    expect(extended_row.locator("td.status")).to_have_text("accepted")
    expect(extended_row.locator("td.status")).not_to_have_attribute("title", re.compile("."))

    # They cancel from there as any open order does.
    for price in ("$99.00", "$98.00"):
        row = page.locator("#pane-open tbody tr", has_text=price)
        row.get_by_role("button", name="Cancel").click()
        expect(row).to_have_count(0)
    expect(page.locator("#pane-open")).to_contain_text("No open orders.")
    assert console.unexpected(404) == []
    page.close()


def test_the_page_follows_the_clock_from_the_pre_market_to_the_open(
    browser: Browser, venue: Venue
) -> None:
    """The clock's answers are the test's: a minute before an open (the page polls often then),
    the regular session, after hours. Their days are long gone, so that the chart's bars,
    asked for up to the venue's time (the test's clock's), are not asked for from the future."""
    me = venue.account("1000.00")
    pre_market = {
        "timestamp": "2024-12-03T09:29:10.5-05:00",
        "is_open": False,
        "next_open": "2024-12-03T09:30:00-05:00",
        "next_close": "2024-12-03T16:00:00-05:00",
        "phase": "pre_market",
        "calendar": "nyse",
    }
    answer: dict[str, Any] = dict(pre_market)

    def clock(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(answer))

    page, console = open_page(browser, venue, WIDE)
    page.route("**/v2/clock", clock)
    sign_in(page, me)
    session = page.locator("#session")
    expect(session).to_have_attribute("data-phase", "pre_market")
    expect(session.locator(".phase")).to_have_text("Pre-market")
    expect(session.locator(".next")).to_have_text("opens 09:30 ET (auction)")  # the same day
    screenshot(page, "page-session-pre-market")

    answer.update(
        timestamp="2024-12-03T09:30:01-05:00",
        is_open=True,
        next_open="2024-12-04T09:30:00-05:00",
        phase="open",
    )
    expect(session).to_have_attribute("data-phase", "open")
    expect(session.locator(".phase")).to_have_text("Open")
    expect(session.locator(".next")).to_have_text("closes 16:00 ET")

    answer.update(
        timestamp="2024-12-03T16:00:02-05:00",
        is_open=False,
        next_close="2024-12-04T16:00:00-05:00",
        phase="after_hours",
    )
    # The next poll is the usual one, further off than the expectation's default timeout.
    expect(session.locator(".phase")).to_have_text("After hours", timeout=30_000)
    expect(session.locator(".next")).to_have_text("opens Wed 09:30 ET")
    assert console.unexpected(404) == []
    page.close()


def test_a_24x7_venue_offers_no_auctions_nor_extended_hours(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    expect(page.locator("#session .next")).to_have_text("24x7")  # the clock has answered
    page.select_option("#order-type", "limit")
    page.select_option("#order-tif", "day")
    expect(page.locator("#order-tif option")).to_have_count(4)
    assert time_in_force_values(page) == ["day", "gtc", "ioc", "fok"]
    expect(page.locator("#order-extended")).to_be_hidden()
    page.select_option("#order-type", "market")
    expect(page.locator("#order-tif option")).to_have_count(4)

    # Should an opg order come anyway (the option put back by hand, once the fields are
    # filled: a change lays the ticket out again), the API's refusal shows under the time in
    # force.
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "1")
    page.fill("#order-limit", "99.00")
    page.locator("#order-limit").blur()
    page.locator("#order-tif").evaluate(
        "select => { select.add(new Option('OPG', 'opg')); select.value = 'opg'; }"
    )
    page.locator("#submit-order").click()
    expect(page.locator("#error-time_in_force")).to_have_text(
        "opg and cls orders join the opening and closing auctions, and a 24x7 venue has none: "
        "run it with --calendar nyse"
    )
    expect(page.locator("#order-tif")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#ticket-status")).to_have_text("")
    assert console.unexpected(404, 422) == []
    page.close()


def test_extended_hours_and_auction_orders_from_the_ticket_on_a_closed_nyse_venue(
    browser: Browser, nyse_venue: Venue
) -> None:
    venue = nyse_venue
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    expect(page.locator("#session")).to_have_attribute("data-phase", "closed")

    # Extended hours are offered for a day limit only; the auctions for market and limit orders.
    extended = page.locator("#order-extended")
    page.select_option("#order-type", "limit")
    page.select_option("#order-tif", "day")
    expect(extended).to_be_visible()
    expect(page.locator("#extended-help")).to_contain_text("pre-market (04:00")
    assert time_in_force_values(page) == ["day", "gtc", "opg", "cls", "ioc", "fok"]
    page.select_option("#order-tif", "gtc")
    expect(extended).to_be_hidden()
    page.select_option("#order-tif", "day")
    page.select_option("#order-type", "market")
    expect(extended).to_be_hidden()
    expect(page.locator("#order-tif option")).to_have_count(6)
    page.select_option("#order-tif", "opg")
    expect(page.locator("#auction-help")).to_be_visible()
    # A stop takes neither: its time in force goes back to day.
    page.select_option("#order-type", "stop")
    expect(page.locator("#order-tif option")).to_have_count(4)
    expect(page.locator("#order-tif")).to_have_value("day")
    expect(page.locator("#auction-help")).to_be_hidden()

    # An extended-hours day limit is accepted; it waits for the pre-market, not for the open.
    page.locator("#side-buy").check(force=True)
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "1")
    page.fill("#order-limit", "98.00")
    page.select_option("#order-tif", "day")
    extended.check()
    screenshot(page, "page-session-extended-ticket")
    page.locator("#submit-order").click()
    expect(page.locator("#ticket-status")).to_have_text(
        f"Order accepted: buy 1 {symbol} limit at 98.00, extended hours."
    )

    # An opg limit buy is accepted and waits for the open (the box, hidden, is not sent).
    page.select_option("#order-tif", "opg")
    expect(extended).to_be_hidden()
    page.fill("#order-qty", "2")
    page.fill("#order-limit", "99.00")
    page.locator("#submit-order").click()
    expect(page.locator("#ticket-status")).to_have_text(
        f"Order accepted: buy 2 {symbol} limit at 99.00, opening auction. "
        "It waits for the open, Mon 09:30 ET."
    )

    # A cls limit buy waits for the closing auction.
    page.select_option("#order-tif", "cls")
    page.fill("#order-qty", "3")
    page.fill("#order-limit", "97.00")
    page.locator("#submit-order").click()
    expect(page.locator("#ticket-status")).to_have_text(
        f"Order accepted: buy 3 {symbol} limit at 97.00, closing auction. "
        "It waits for the closing auction."
    )
    screenshot(page, "page-session-auction-ticket")

    listed = httpx.get(venue.url + "/v2/orders?status=open", headers=me.headers, timeout=10).json()
    placed = {entry["limit_price"]: entry for entry in listed}
    assert sorted(placed) == ["97.00", "98.00", "99.00"], listed
    assert [placed[price]["status"] for price in ("97.00", "98.00", "99.00")] == ["accepted"] * 3
    assert (placed["98.00"]["time_in_force"], placed["98.00"]["extended_hours"]) == ("day", True)
    assert (placed["99.00"]["time_in_force"], placed["99.00"]["extended_hours"]) == ("opg", False)
    assert placed["97.00"]["time_in_force"] == "cls"

    page.locator("#tab-open").click()
    expect(page.locator("#open-count")).to_have_text("(3)")
    statuses = {
        "98.00": "accepted",
        "99.00": "accepted waits for the open",
        "97.00": "accepted waits for the close",
    }
    for price, status in statuses.items():
        row = page.locator(f'#pane-open tr[data-order="{placed[price]["id"]}"]')
        expect(row.locator("td.status")).to_have_text(status)
    for price in ("$99.00", "$98.00", "$97.00"):
        row = page.locator("#pane-open tbody tr", has_text=price)
        row.get_by_role("button", name="Cancel").click()
        expect(row).to_have_count(0)
    assert console.unexpected(404) == []
    page.close()


def test_auction_orders_out_of_their_hours_show_the_refusal(
    browser: Browser, nyse_venue_near_the_close: Venue
) -> None:
    venue = nyse_venue_near_the_close
    symbol = venue.symbol("100.00")
    me = venue.account("100000.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    expect(page.locator("#session")).to_have_attribute("data-phase", "open")
    page.select_option("#order-type", "limit")
    page.fill("#order-qty", "1")
    page.fill("#order-limit", "99.00")
    refusals = {
        "opg": "opg orders are not accepted from 09:28 to 19:00 ET",
        "cls": "cls orders are not accepted from 10 minutes before the close",
    }
    for tif, refusal in refusals.items():
        page.select_option("#order-tif", tif)
        expect(page.locator("#error-time_in_force")).to_have_text("")
        page.locator("#submit-order").click()
        expect(page.locator("#error-time_in_force")).to_have_text(refusal)
        expect(page.locator("#order-tif")).to_be_focused()
        expect(page.locator("#ticket-status")).to_have_text("")
    listed = httpx.get(venue.url + "/v2/orders?status=all", headers=me.headers, timeout=10).json()
    assert listed == []
    assert console.unexpected(404, 422) == []
    page.close()
