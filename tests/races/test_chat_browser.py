"""Race chat on the Watch page in Chromium, on the real app (uvicorn on a free port, the
embedded runtime, mutes in its ledger): a moderator, a signed-in spectator and an anonymous one
watch the same race. Messages show with names as text (never markup), the anonymous spectator
reads but has no input, a blocked word and a mute are explained, a report is acknowledged, and
the moderator's delete removes the line from every page; only the moderator sees delete and
mute buttons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from crowdlearning.server.runtime import Runtime, open_runtime
from tests.server.conftest import server_settings
from tests.server.test_accessibility_browser import (
    audit,
    axe_js,  # noqa: F401 - axe-core's file (a fixture)
    describe,
)
from tests.server.test_browser_pages import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    PASSWORD,
    server_url,  # noqa: F401 - the served app
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow
MODERATOR_ID = 1  # the first user of the fresh server database


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = server_settings(
        tmp_path_factory.mktemp("races-chat"), races_interval_s=120, races_track="oval",
        races_laps=1, races_max_cars=2, races_max_lap_s=4.0,
        races_moderators=str(MODERATOR_ID), races_chat_blocked_words="darn")
    with open_runtime(settings) as rt:
        yield rt


def watch(browser: Browser, url: str, race: dict, name: str | None,
          errors: list[str]) -> Page:
    """A page of its own (own cookies) on the race, signed up as ``name`` (None: anonymous)."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    if name is not None:
        r = page.request.post(f"{url}/api/auth/signup", data={"username": name,
                                                               "password": PASSWORD})
        assert r.status == 201, r.text()
        if name == "mod-chat":
            assert r.json()["user"]["id"] == MODERATOR_ID
    page.goto(f"{url}{race['share_url']}")
    page.wait_for_selector("#chatPanel:not([hidden])", timeout=30_000)
    return page


def say(page: Page, text: str) -> None:
    page.fill("#chatInput", text)
    page.press("#chatInput", "Enter")


def test_the_watch_page_chats_beside_the_race_with_moderation(
        server_url: str, chromium_path: str, axe_js: Path) -> None:  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    # the race after next: it starts two minutes or more from now, so its chat stays open
    race = httpx.get(f"{server_url}/api/races").json()["timetable"][1]
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            mod = watch(browser, server_url, race, "mod-chat", errors)
            ann = watch(browser, server_url, race, "ann-chat", errors)
            anon = watch(browser, server_url, race, None, errors)
            assert anon.is_hidden("#chatForm") and "Sign in" in anon.inner_text("#chatNote")
            assert ann.is_visible("#chatInput") and mod.is_visible("#chatInput")

            say(ann, "hello <b>world</b> 🏁")
            for page in (mod, ann, anon):
                line = page.locator(".chat-line", has_text="hello <b>world</b> 🏁")
                line.wait_for(timeout=10_000)  # shown as text, not markup
                assert page.locator("#chatLines b").count() == 0
                assert line.locator(".chat-name").inner_text() == "ann-chat"
            assert ann.input_value("#chatInput") == ""  # sent: the box is cleared

            say(ann, "darn it")
            ann.wait_for_selector("#chatNote:has-text('does not allow')", timeout=10_000)
            assert anon.locator(".chat-line", has_text="darn").count() == 0

            # only the moderator has delete and mute buttons; others may report
            ann_line = "div.chat-line:has-text('hello')"
            assert mod.locator(f"{ann_line} button[aria-label^='delete']").count() == 1
            assert mod.locator(f"{ann_line} button[aria-label^='mute']").count() == 1
            assert ann.locator("button[aria-label^='delete'], button[aria-label^='mute']") \
                .count() == 0
            assert anon.locator(".chat-tools button").count() == 0  # reading only
            say(mod, "welcome to the race")
            ann.locator(".chat-line", has_text="welcome").wait_for(timeout=10_000)
            assert "(mod)" in mod.inner_text("div.chat-line:has-text('welcome')")
            ann.click("div.chat-line:has-text('welcome') button[aria-label^='report']")
            ann.wait_for_selector("#chatNote:has-text('Reported')", timeout=10_000)

            mod.click(f"{ann_line} button[aria-label^='mute']")
            mod.wait_for_selector("#chatNote:has-text('Muted until')", timeout=10_000)
            say(ann, "am I muted?")
            ann.wait_for_selector("#chatNote:has-text('muted you until')", timeout=10_000)

            violations = audit(mod, axe_js, "race-chat")  # axe-core: serious or critical
            assert not violations, describe(violations)
            mod.screenshot(path=str(ARTIFACTS / "races-watch-chat.png"), full_page=True)

            mod.click(f"{ann_line} button[aria-label^='delete']")
            for page in (mod, ann, anon):
                page.locator(".chat-line", has_text="hello").wait_for(state="detached",
                                                                      timeout=10_000)
            assert anon.locator(".chat-line", has_text="welcome").count() == 1

            anon.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing too wide
            anon.wait_for_timeout(300)
            assert anon.evaluate("document.documentElement.scrollWidth - "
                                 "document.documentElement.clientWidth") <= 0
            anon.screenshot(path=str(ARTIFACTS / "races-watch-chat-phone.png"),
                            full_page=True)
            assert errors == []
        finally:
            browser.close()
