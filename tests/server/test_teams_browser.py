"""The League page's teams in headless Chromium (phone size): a signed-in player creates a team,
sees it as theirs with its members and no fork yet, and leaves it (dissolving it)."""

from __future__ import annotations

import time

import pytest

from tests.server.test_browser_pages import (  # noqa: F401 - fixtures
    ARTIFACTS,
    _open,
    _overflow_px,
    _page,
    _sign_up,
    browser,
    server_url,
)

pytestmark = pytest.mark.slow


def test_a_player_creates_and_leaves_a_team_on_the_league_page(
        browser, server_url: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    name = f"tb{time.time_ns() % 10**9}"
    with _page(browser, "phone") as (page, errors):
        _sign_up(page, server_url, name)
        _open(page, server_url, "league.html")
        page.wait_for_selector("#teamForm:not([hidden])")
        page.fill("#teamName", "bad  name")
        page.click("#teamCreate")
        assert "one space" in page.inner_text("#teamError")
        page.fill("#teamName", f"Team {name}")
        page.click("#teamCreate")
        row = page.wait_for_selector(f"#teams tr:has-text('Team {name}')")
        assert row is not None and "(yours)" in row.inner_text() and name in row.inner_text()
        assert "not yet" in row.inner_text()  # no fork before enough accepted data
        assert page.is_hidden("#teamForm") and page.inner_text("#teamError") == ""
        page.screenshot(path=str(ARTIFACTS / "league-teams-phone.png"), full_page=True)
        assert _overflow_px(page) <= 0
        row.query_selector("button[data-leave]").click()  # type: ignore[union-attr]
        page.wait_for_selector(f"#teams tr:has-text('Team {name}')", state="detached")
        page.wait_for_selector("#teamForm:not([hidden])")
        assert errors == []
