"""Margin accounts and short positions on the page, in a real browser (as test_page.py: Debian's
chromium, headless, driven by Playwright, against the shared `tradepit serve`).

A cash account's top bar has no margin lines, and its long position closes from the positions'
Close button (a market sale). Made a margin account by the operator, an account's bar shows its
multiplier and maintenance margin; it sells short through the API and the page lists the short
position as the API writes it (side short, qty, market value and cost negative). Other
accounts then trade higher, through the API, until its equity is below its maintenance margin:
the page warns of the margin call, and the position's Cover button buys it back."""

from __future__ import annotations

from chromium import needs_chromium
from live import Account, Venue
from playwright.sync_api import Browser, expect
from test_page import PHONE, WIDE, open_page, order, screenshot, sign_in

pytestmark = needs_chromium

# The page writes a negative number with a minus sign, and the multiplier with a times sign.
MINUS = "\N{MINUS SIGN}"
TIMES = "\N{MULTIPLICATION SIGN}"


def trade_at(venue: Venue, symbol: str, price: str) -> None:
    """Two accounts of their own trade one share at `price`: the symbol's last trade, and so
    its price (as test_margin.py's `_trade_at`)."""
    seller = venue.account("0", **{symbol: "10"})
    buyer = venue.account("10000.00")
    order(venue, seller, symbol=symbol, qty="1", side="sell", limit_price=price)
    order(venue, buyer, symbol=symbol, qty="1", side="buy", limit_price=price)


def set_margin(venue: Venue, account: Account, multiplier: int) -> None:
    venue.admin("POST", f"/admin/accounts/{account.id}/margin", {"multiplier": multiplier})


def test_a_cash_account_shows_no_margin_and_closes_a_long(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    me = venue.account("1000.00", **{symbol: "10"})
    dealer = venue.account("100000.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    expect(page.locator("#cash")).to_have_text("$1,000.00")
    expect(page.locator("#balances .margin")).to_have_count(2)
    for line in page.locator("#balances .margin").all():
        expect(line).to_be_hidden()
    expect(page.locator("#margin-call")).to_be_hidden()

    position = page.locator(f'#pane-positions tr[data-symbol="{symbol}"]')
    expect(position.locator("td.side")).to_have_text("long")
    expect(position.locator("td.qty")).to_have_text("10")
    close = position.get_by_role("button", name=f"Close {symbol}")
    expect(close).to_have_text("Close")
    expect(close).to_have_attribute("title", "Sell the 10 at market")

    # While an open order sells all of it there is nothing left to close.
    resting = order(venue, me, symbol=symbol, qty="10", side="sell", limit_price="150.00")
    expect(close).to_be_disabled()
    expect(close).to_have_attribute("title", "Open orders already sell all of it")
    page.locator("#tab-open").click()
    page.locator(f'#pane-open tr[data-order="{resting["id"]}"]').get_by_role(
        "button", name="Cancel"
    ).click()
    expect(page.locator("#pane-open")).to_contain_text("No open orders.")
    page.locator("#tab-positions").click()
    expect(close).to_be_enabled()

    # Closing sells it at market, into another account's bid.
    order(venue, dealer, symbol=symbol, qty="10", side="buy", limit_price="100.00")
    close.click()
    expect(page.locator("#pane-positions")).to_contain_text("No positions.")
    expect(page.locator("#cash")).to_have_text("$2,000.00")
    page.locator("#tab-history").click()
    sold = page.locator("#pane-history tbody tr", has_text="market").first
    expect(sold.locator("td.side")).to_have_text("sell")
    expect(sold).to_contain_text("filled")
    assert console.unexpected(404) == []
    page.close()


def test_a_short_sale_its_margin_call_and_covering_it(browser: Browser, venue: Venue) -> None:
    symbol = venue.symbol("100.00")
    dealer = venue.account("100000.00", **{symbol: "1000"})
    order(venue, dealer, symbol=symbol, qty="100", side="buy", limit_price="99.00")
    me = venue.account("2500.00")
    page, console = open_page(browser, venue, WIDE)
    sign_in(page, me)
    page.goto(f"{venue.url}/#/trade/{symbol}")
    expect(page.locator("#chart-symbol")).to_have_text(symbol)
    multiplier = page.locator("#multiplier")
    maintenance = page.locator("#maintenance-margin")
    expect(page.locator("#equity")).to_have_text("$2,500.00")
    expect(multiplier).to_be_hidden()  # a cash account, until the operator says otherwise

    # The operator makes it a margin account: the bar shows it at its next refresh.
    set_margin(venue, me, 2)
    expect(multiplier).to_be_visible()
    expect(multiplier).to_have_text(f"2{TIMES}")
    expect(maintenance).to_have_text("$0.00")
    expect(page.locator("#buying-power")).to_have_text("$5,000.00")
    expect(page.locator("#margin-call")).to_be_hidden()

    # A short sale through the API, into the dealer's bid: the page lists the short position.
    order(venue, me, symbol=symbol, qty="50", side="sell", type="market", time_in_force="day")
    position = page.locator(f'#pane-positions tr[data-symbol="{symbol}"]')
    expect(position).to_have_attribute("data-side", "short")
    expect(position.locator("td.side")).to_have_text("short")
    expect(position.locator("td.qty")).to_have_text(f"{MINUS}50")
    expect(position.locator("td.value")).to_have_text(f"{MINUS}$4,950.00")
    expect(position.locator("td.pl")).to_have_text("$0.00")
    expect(page.locator("#cash")).to_have_text("$7,450.00")
    expect(page.locator("#equity")).to_have_text("$2,500.00")
    expect(maintenance).to_have_text("$1,485.00")  # 30% of the short's $4,950
    cover = position.get_by_role("button", name=f"Cover {symbol}")
    expect(cover).to_have_text("Cover")
    expect(cover).to_have_attribute("title", "Buy back the 50 shorted at market")
    expect(page.locator("#margin-call")).to_be_hidden()

    # Other accounts trade higher: the short loses, and is signed so.
    trade_at(venue, symbol, "108.00")
    expect(position.locator("td.value")).to_have_text(f"{MINUS}$5,400.00")
    expect(position.locator("td.pl")).to_have_text(f"{MINUS}$450.00")
    expect(position.locator("td.pl")).to_have_class("num down pl")
    expect(page.locator("#equity")).to_have_text("$2,050.00")
    expect(maintenance).to_have_text("$1,620.00")
    expect(page.locator("#margin-call")).to_be_hidden()
    trade_at(venue, symbol, "118.00")
    # Cash 7,450 less the short's 5,900: equity 1,550, below 30% of 5,900 (1,770).
    warning = page.locator("#margin-call")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Margin call")
    expect(page.get_by_role("alert")).to_contain_text("below its maintenance margin")
    expect(page.locator("#balances")).to_have_attribute("data-margin-call", "")
    expect(page.locator("#equity")).to_have_text("$1,550.00")
    expect(maintenance).to_have_text("$1,770.00")
    expect(page.locator("#buying-power")).to_have_text("$0.00")
    expect(position.locator("td.value")).to_have_text(f"{MINUS}$5,900.00")
    expect(position.locator("td.pl")).to_have_text(f"{MINUS}$950.00")
    expect(position.locator("td.plpc")).to_have_text(f"{MINUS}19.19%")
    screenshot(page, "page-margin-call")
    page.set_viewport_size(PHONE)
    expect(warning).to_be_visible()
    expect(multiplier).to_be_visible()
    screenshot(page, "page-margin-call-phone", full_page=True)
    page.set_viewport_size(WIDE)

    # Covering from the page buys it back at market, from the dealer's offer, with no buying
    # power: the position is gone and so is the margin call.
    order(venue, dealer, symbol=symbol, qty="50", side="sell", limit_price="118.00")
    cover.click()
    expect(page.locator("#pane-positions")).to_contain_text("No positions.")
    expect(warning).to_be_hidden()
    expect(page.locator("#balances")).not_to_have_attribute("data-margin-call", "")
    expect(page.locator("#cash")).to_have_text("$1,550.00")
    expect(maintenance).to_have_text("$0.00")
    page.locator("#tab-history").click()
    bought = page.locator("#pane-history tbody tr", has_text="market").first
    expect(bought.locator("td.side")).to_have_text("buy")
    expect(bought.locator("td.qty")).to_have_text("50")
    expect(bought).to_contain_text("filled")
    expect(bought).to_contain_text("$118.00")
    screenshot(page, "page-margin-covered")
    assert console.unexpected(404) == []
    page.close()
