"""The consent page and the Wallet page's apps in headless Chromium, under the pages' real CSP.

A player signs up, an app (a payments API client on the same ledger) sends them to its consent
page, they lower the allowance and approve, land on the app's return URL with
``consent=granted``, the app charges within the allowance, the Wallet page lists the app with
what it may still take and what it spent, the player revokes it there, and the app's next charge
is refused. The app's site (``https://shop.example``) is answered by Playwright, so the return is
a real cross-site navigation. axe-core audits the consent page (``test_accessibility_browser``).
Skipped with the reason when Chromium (``CROWDLEARNING_TEST_CHROMIUM``) or npm (axe) is absent.
"""

from __future__ import annotations

import html
import itertools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crowdlearning.config import Settings
from crowdlearning.ledger import player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.clients import allow_return_url, issue_key, open_client
from crowdlearning.payments.api import create_app as create_payments_app
from crowdlearning.server.runtime import Runtime
from tests.server.conftest import TestClient
from tests.server.test_accessibility_browser import audit, axe_js, describe  # noqa: F401
from tests.server.test_browser_pages import (  # noqa: F401 - fixtures: the served game, Chromium
    ARTIFACTS,
    PASSWORD,
    browser,
    server_url,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

APP_SITE = "https://shop.example"
RETURN_PREFIX = f"{APP_SITE}/back"
HBAR = 100_000_000
_apps = itertools.count()


@pytest.fixture
def shop(runtime: Runtime) -> Iterator[tuple[str, TestClient]]:
    """A payments API client with its return URL registered; its API in process."""
    client_id = f"webshop{next(_apps)}"

    def register(conn) -> str:  # type: ignore[no-untyped-def]
        open_client(conn, client_id, now_ns=1)
        allow_return_url(conn, client_id, RETURN_PREFIX, now_ns=1)
        return issue_key(conn, client_id, now_ns=1)

    key = runtime.ledger.run(register)
    with TestClient(create_payments_app(runtime.ledger, settings=Settings()),
                    headers={"X-API-Key": key}) as api:
        yield client_id, api


@contextmanager
def _page(browser: Browser) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    """A fresh page under the real CSP; the app's site answered by Playwright: its page
    ``/start?go=<url>`` links to ``<url>``, every other one says "Back at the shop"."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True)

    def app_site(route) -> None:  # type: ignore[no-untyped-def]
        parts = urlsplit(route.request.url)
        body = "<h1>Back at the shop</h1>"
        if parts.path == "/start":
            link = html.escape(parse_qs(parts.query)["go"][0])
            body = f'<h1>Shop</h1><a id="go" href="{link}">Pay with CrowdLearning</a>'
        route.fulfill(status=200, content_type="text/html",
                      body=f"<!doctype html><html lang=en><title>shop</title>{body}</html>")

    context.route(f"{APP_SITE}/**", app_site)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        yield page, errors
    finally:
        context.close()


def _sign_up(page: Page, url: str) -> str:
    """A new player signed up on the landing page; returns their player id."""
    page.goto(f"{url}/index.html")
    page.fill("#username", f"cons{time.time_ns() % 10**9}")
    page.fill("#password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#game:not([hidden])")
    return page.request.get(f"{url}/api/auth/session").json()["user"]["player_id"]


def _consent_url(url: str, client_id: str, allowance: int, return_to: str,
                 state: str = "s-1") -> str:
    return f"{url}/consent?" + urlencode({"client_id": client_id, "allowance_tinybar": allowance,
                                          "return_to": return_to, "state": state})


def _charge(api: TestClient, player_id: str, amount: int, charge_id: str) -> int:
    return api.post("/v1/charges", json={"charge_id": charge_id, "from_player": player_id,
                                         "amount_tinybar": amount}).status_code


def test_a_player_approves_on_the_consent_page_and_revokes_on_the_wallet_page(
        server_url: str, browser: Browser, runtime: Runtime,  # noqa: F811
        shop: tuple[str, TestClient]) -> None:
    from playwright.sync_api import expect

    client_id, api = shop
    with _page(browser) as (page, errors):
        player = _sign_up(page, server_url)
        runtime.ledger.deposit(f"fund-{player}",
                               player_account(player, AccountKind.AVAILABLE), 5 * HBAR)
        # GIVEN the app's site links the player to its consent page, asking for 2.5 HBAR (a
        # cross-site navigation: the SameSite=Strict session cookie is not sent with it, only
        # with the page's own requests)
        consent = _consent_url(server_url, client_id, 250_000_000, f"{RETURN_PREFIX}/order?id=7")
        page.goto(f"{APP_SITE}/start?" + urlencode({"go": consent}))
        page.click("#go")
        page.wait_for_selector("#ask:not([hidden])")
        assert page.text_content("#app") == client_id
        assert "2.5 HBAR" in page.text_content("#asked")
        assert page.text_content("#origin") == APP_SITE
        page.screenshot(path=str(ARTIFACTS / "consent-phone.png"), full_page=True)
        # WHEN they lower it to 1.5 HBAR and approve
        page.fill("#allowance", "1.5")
        page.click("#approve")
        # THEN they land on the app's return URL, told it was granted (and who granted it)
        page.wait_for_url(f"{RETURN_PREFIX}/order?**")
        assert page.text_content("h1") == "Back at the shop"
        query = parse_qs(urlsplit(page.url).query)
        assert query == {"id": ["7"], "consent": ["granted"], "player": [player],
                         "state": ["s-1"]}
        # AND the app may charge within 1.5 HBAR, not beyond
        assert _charge(api, player, HBAR, "c1") == 201
        assert _charge(api, player, HBAR, "c2") == 403
        # WHEN the player opens the Wallet page: the app is listed with what it may still take
        page.goto(f"{server_url}/wallet.html")
        row = page.locator(f'#apps li[data-client="{client_id}"]')
        expect(row).to_contain_text("may charge 0.5 HBAR more", timeout=30_000)
        expect(row).to_contain_text("spent 1 HBAR")
        page.screenshot(path=str(ARTIFACTS / "wallet-apps-phone.png"), full_page=True)
        # AND revokes it there
        row.get_by_role("button", name=f"revoke {client_id}").click()
        expect(row).to_contain_text("revoked", timeout=30_000)
        expect(row.get_by_role("button")).to_have_count(0)
        # THEN the app's next charge is refused; what it took stays taken
        assert _charge(api, player, 1, "c3") == 403
        assert runtime.ledger.balance(f"client:{client_id}") == HBAR
        assert errors == [], errors


def test_declining_returns_declined_and_a_foreign_return_url_goes_nowhere(
        server_url: str, browser: Browser, runtime: Runtime,  # noqa: F811
        shop: tuple[str, TestClient]) -> None:
    client_id, _ = shop
    with _page(browser) as (page, errors):
        _sign_up(page, server_url)
        page.goto(_consent_url(server_url, client_id, 10, f"{RETURN_PREFIX}?x=1", state="d"))
        page.wait_for_selector("#ask:not([hidden])")
        page.click("#decline")
        page.wait_for_url(f"{RETURN_PREFIX}?**")
        assert parse_qs(urlsplit(page.url).query) == {"x": ["1"], "consent": ["declined"],
                                                      "state": ["d"]}
        # an attacker's link: the page says why and offers nothing to click
        evil = _consent_url(server_url, client_id, 10, "https://evil.example/back")
        page.goto(evil)
        problem = page.locator("#problem")
        from playwright.sync_api import expect

        expect(problem).to_contain_text(re.compile("cannot be answered"), timeout=30_000)
        assert page.locator("#ask").is_hidden() and page.url == evil
        page.wait_for_load_state("networkidle")
        assert page.url == evil
        # the 403 of the refused request is the only console error (Chromium logs it)
        assert all("403" in e for e in errors), errors


def test_the_consent_page_has_no_serious_accessibility_violation(
        server_url: str, browser: Browser, axe_js: Path,  # noqa: F811
        shop: tuple[str, TestClient]) -> None:
    client_id, _ = shop
    with _page(browser) as (page, _errors):
        page.goto(_consent_url(server_url, client_id, 10, RETURN_PREFIX))
        page.wait_for_selector("#auth input")
        found = {"signed out": audit(page, axe_js, "consent-out-phone")}
        _sign_up(page, server_url)
        page.goto(_consent_url(server_url, client_id, 10, RETURN_PREFIX))
        page.wait_for_selector("#ask:not([hidden])")
        found["signed in"] = audit(page, axe_js, "consent-in-phone")
        page.click("#approve")
        page.wait_for_url(f"{RETURN_PREFIX}?**")
        page.goto(f"{server_url}/wallet.html")
        page.wait_for_selector(f'#apps li[data-client="{client_id}"] input')
        found["wallet with apps"] = audit(page, axe_js, "wallet-apps-phone")
    bad = {where: v for where, v in found.items() if v}
    assert not bad, "\n".join(f"{where}:\n{describe(v)}" for where, v in bad.items())
