"""The API's pages at /docs, in the same headless chromium as the trading page, with every
request to anywhere but the venue refused: Swagger UI comes from the venue itself. Signed in
with Authorize, "Try it out" sends both key headers and gets the account. And the OpenAPI they
show: two security schemes, one per header, and every route's errors in Alpaca's shape.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from chromium import needs_chromium
from live import Venue
from playwright.sync_api import Browser, Route, expect
from test_page import ARTIFACTS, TIMEOUT_MS, WIDE

pytestmark = needs_chromium

KEY_ID, SECRET = "APCA-API-KEY-ID", "APCA-API-SECRET-KEY"


def test_the_docs_work_offline_and_try_it_out_sends_both_keys(
    browser: Browser, venue: Venue
) -> None:
    me = venue.account("1234.56")
    origin = urlsplit(venue.url).netloc
    elsewhere: list[str] = []

    def only_the_venue(route: Route) -> None:
        """No internet: whatever is not the venue's is refused, and noted."""
        if urlsplit(route.request.url).netloc == origin:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    page = browser.new_page(viewport=WIDE)  # type: ignore[arg-type]
    page.set_default_timeout(TIMEOUT_MS)
    page.route("**/*", only_the_venue)
    page.goto(venue.url + "/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() > 40  # every route, from the venue's own OpenAPI
    expect(page.locator(".opblock-summary-path", has_text="/v2/orders").first).to_be_visible()

    # Authorize has a field per header; fill both.
    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".modal-ux")
    for name, value in ((KEY_ID, me.key_id), (SECRET, me.secret_key)):
        scheme = dialog.locator(".auth-container", has_text=name)
        scheme.locator("input").fill(value)
        scheme.locator("button.authorize").click()
    expect(dialog.locator("button", has_text="Logout")).to_have_count(2)
    dialog.locator("button.btn-done").first.click()

    account = page.locator("#operations-trading-get_account_v2_account_get")
    account.locator(".opblock-summary").click()
    account.get_by_role("button", name="Try it out").click()
    account.get_by_role("button", name="Execute").click()
    status = account.locator(".live-responses-table .response .response-col_status")
    expect(status).to_have_text("200")
    expect(account.locator(".live-responses-table .microlight").first).to_contain_text("1234.56")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "docs-try-it-out.png"))
    page.close()
    assert elsewhere == []  # nothing was even asked of the internet


def openapi(venue: Venue) -> dict[str, Any]:
    response = httpx.get(venue.url + "/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    spec: dict[str, Any] = response.json()
    return spec


def test_the_openapi_has_a_scheme_per_key_header(venue: Venue) -> None:
    spec = openapi(venue)
    schemes = spec["components"]["securitySchemes"]
    assert {
        name: (scheme["type"], scheme["in"], scheme["name"]) for name, scheme in schemes.items()
    } == {
        KEY_ID: ("apiKey", "header", KEY_ID),
        SECRET: ("apiKey", "header", SECRET),
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            named = {name for requirement in operation.get("security", []) for name in requirement}
            assert named in (set(), {KEY_ID, SECRET}), (method, path, named)


def test_the_openapi_documents_every_routes_errors(venue: Venue) -> None:
    spec = openapi(venue)
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"code", "message"}
    assert error["properties"]["code"]["type"] == "integer"
    assert error["properties"]["message"]["type"] == "string"
    public = {
        ("get", "/v1/leaderboard"),
        ("get", "/v1/demo"),
        ("post", "/v1/demo/accounts"),
        ("get", "/livez"),
        ("get", "/readyz"),
        ("get", "/metrics"),
    }
    seen_public = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            wanted = {"429"}  # every route is rate limited, per key or per client address
            if operation.get("security"):
                wanted.add("401")
            else:
                seen_public.add((method, path))
            if "requestBody" in operation:
                wanted |= {"400", "413", "422"}
            if re.search(r"\{\w+\}", path):
                wanted.add("404")
            assert wanted <= set(responses), (method, path, sorted(responses))
            for status, response in responses.items():
                if "application/health+json" in response.get("content", {}):
                    continue  # /readyz's 503: the health checks, not an error body
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
                    assert response["description"]
            assert "Retry-After" in responses["429"]["headers"]
    assert seen_public == public
