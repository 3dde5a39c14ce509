"""The pages work under their real Content-Security-Policy (no bypass): nothing refused."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tests.server.test_browser_pages import (  # noqa: F401 - fixtures: the served game, Chromium
    PAGES,
    PASSWORD,
    browser,
    server_url,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_every_page_runs_under_its_policy_and_the_wallet_moves_money(
        server_url: str, browser: Browser) -> None:  # noqa: F811
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        # GIVEN a player signed up on the landing page (its scripts ran: the form works)
        answer = page.goto(f"{server_url}/index.html")
        assert answer is not None and "frame-ancestors 'none'" in answer.headers[
            "content-security-policy"]
        page.fill("#username", "csp_player")
        page.fill("#password", PASSWORD)
        page.click("#signup")
        page.wait_for_selector("#game:not([hidden])")
        # WHEN every page is opened, and the wallet page deposits by its button
        for name in PAGES:
            page.goto(f"{server_url}/{name}")
            page.wait_for_selector(PAGES[name], state="attached", timeout=60_000)
            page.wait_for_load_state("networkidle")
        page.goto(f"{server_url}/wallet.html")
        page.fill("#amount", "5")
        page.click("#deposit")
        # THEN the deposit shows, and the browser refused nothing (a CSP violation is an error)
        expect(page.locator("#available")).to_have_text(re.compile(r"^5"), timeout=30_000)
        assert errors == []
    finally:
        context.close()
