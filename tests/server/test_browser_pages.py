"""Every page in headless Chromium at a phone's 390x844 and a laptop's 1280x900.

The app runs in this process on the tests' shared runtime (uvicorn in a thread, a real port), so
the browser talks to it over HTTP and WebSocket as it would to ``crowdlearning serve``. Checked:
the landing page says what the game is and how money works; a short password is refused in plain
words without showing it; no page logs a console error, signed out or in; nothing is wider than
the screen; ids stay on one line; the favicon is served; the wallet reads in words. Screenshots
go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from hiero_sdk_python import PrivateKey

from crowdlearning.server.app import WEB_DIR, create_app
from crowdlearning.server.link_cli import link_body
from crowdlearning.server.runtime import Runtime

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"phone": (390, 844), "desktop": (1280, 900)}
# page -> a selector present once the page has drawn what it loads
PAGES = {"index.html": "#landing, #game:not([hidden])", "wallet.html": "#auth input, #history li",
         "league.html": "#versions tr", "watch.html": "#runs li",
         "model.html": "#versions tbody tr"}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server_url(runtime: Runtime) -> Iterator[str]:
    """The app served on a free port, in a thread of this process."""
    config = uvicorn.Config(create_app(runtime.settings, runtime), host="127.0.0.1", port=0,
                            log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def _page(browser: Browser, device: str) -> Iterator[tuple[Page, list[str]]]:
    """A fresh page (own cookies) at the device's size; yields it and its console errors."""
    width, height = VIEWPORTS[device]
    # bypass_csp: wait_for_function evaluates strings in the page, which the pages' CSP (no
    # 'unsafe-eval') refuses; test_csp_browser.py runs the pages under their real policy
    context = browser.new_context(viewport={"width": width, "height": height},
                                  is_mobile=device == "phone", has_touch=device == "phone",
                                  bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{m.text} ({m.location.get('url')})")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        yield page, errors
    finally:
        context.close()


def _open(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/{name}")
    page.wait_for_selector(PAGES[name], state="attached", timeout=60_000)
    page.wait_for_load_state("networkidle")


def _sign_up(page: Page, url: str, name: str) -> None:
    page.goto(f"{url}/index.html")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#game:not([hidden])")


def _overflow_px(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - "
                         "document.documentElement.clientWidth")


def _name(device: str) -> str:
    return f"{device[:2]}{time.time_ns() % 10**9}"


@pytest.mark.parametrize("device", VIEWPORTS)
def test_the_landing_page_says_what_the_game_is_and_how_money_works(
        server_url: str, browser: Browser, device: str) -> None:
    with _page(browser, device) as (page, errors):
        _open(page, server_url, "index.html")
        assert page.is_visible("#landing h1")
        assert "self-driving car" in page.text_content("#landing h1")
        assert page.is_visible("#landing svg[role=img]")  # the picture
        words = page.inner_text("#landing").lower()
        for what in ("earn hbar", "penalty", "stake", "hidden tracks", "practice"):
            assert what in words, what
        assert page.is_visible("#username") and page.is_visible("#signup")
        page.screenshot(path=str(ARTIFACTS / f"browser-landing-{device}.png"), full_page=True)
        assert errors == []


@pytest.mark.parametrize("device", VIEWPORTS)
def test_a_short_password_is_refused_in_plain_words_without_showing_it(
        server_url: str, browser: Browser, device: str) -> None:
    with _page(browser, device) as (page, errors):
        _open(page, server_url, "index.html")
        page.fill("#username", _name(device))
        page.fill("#password", "abc12")
        page.click("#signup")
        page.wait_for_function("document.getElementById('autherror').textContent.length > 0")
        assert page.text_content("#autherror") == "Password must be at least 8 characters"
        page.fill("#username", "no spaces allowed")
        page.fill("#password", PASSWORD)
        page.click("#signup")
        page.wait_for_function("document.getElementById('autherror').textContent"
                               ".startsWith('Name may use only')")
        message = page.text_content("#autherror")
        assert "letters" in message and "digits" in message and "[" not in message
        body = page.inner_text("body")
        assert "abc12" not in body and PASSWORD not in body and "no spaces allowed" not in body
        assert errors == []


@pytest.mark.parametrize("device", VIEWPORTS)
def test_every_page_fits_the_screen_without_console_errors(
        server_url: str, browser: Browser, device: str) -> None:
    with _page(browser, device) as (page, errors):
        for name in PAGES:  # signed out
            _open(page, server_url, name)
            assert _overflow_px(page) <= 0, f"{name} signed out is wider than the screen"
        _sign_up(page, server_url, _name(device))
        _open(page, server_url, "wallet.html")
        page.fill("#amount", "3")
        page.click("#deposit")
        page.wait_for_selector("#history li .money")
        for name in PAGES:  # signed in
            _open(page, server_url, name)
            assert _overflow_px(page) <= 0, f"{name} signed in is wider than the screen"
            # ids and amounts stay on one line (never one character a line)
            tall = page.evaluate("[...document.querySelectorAll('.id code, .money')]"
                                 ".filter(e => e.getBoundingClientRect().height > 40).length")
            assert tall == 0, name
            page.screenshot(path=str(ARTIFACTS / f"browser-{name[:-5]}-{device}.png"),
                            full_page=True)
        assert errors == []


@pytest.mark.parametrize("device", VIEWPORTS)
def test_the_wallet_reads_in_words_with_units_and_a_guided_link(
        server_url: str, browser: Browser, device: str, runtime: Runtime) -> None:
    with _page(browser, device) as (page, errors):
        _sign_up(page, server_url, _name(device))
        _open(page, server_url, "wallet.html")
        # not linked: the page shows how to link, not "link a Hedera account first"
        assert "first (Wallet page" not in page.inner_text("body")
        assert page.is_disabled("#withdraw") and page.is_visible("#withdrawHint")
        page.fill("#amount", "5")
        page.click("#deposit")
        page.wait_for_function("document.getElementById('available').textContent.startsWith('5')")
        page.fill("#amount", "2")
        page.click("#lock")
        page.wait_for_function("document.getElementById('history').textContent"
                               ".includes('stake locked')")
        lines = page.locator("#history li").all_inner_texts()
        assert len(lines) == 2
        assert "stake locked" in lines[0] and "2 HBAR moved" in lines[0]
        assert "deposit (development faucet)" in lines[1] and "+5 HBAR" in lines[1]
        assert page.get_attribute("#available .money", "title") == "300,000,000 tinybar"
        # the guided link step: the exact command, with this challenge and account
        key = PrivateKey.generate_ed25519()
        account = runtime.transport.create_account(key.public_key())
        page.fill("#account", account)
        page.click("#challenge")
        page.wait_for_function("document.getElementById('signCommand').textContent"
                               ".includes('crowdlearning-link:')")
        command = page.text_content("#signCommand")
        challenge = page.text_content("#challengeText")
        assert command == f"crowdlearning sign-link '{challenge}' --account {account}"
        assert page.get_attribute("#copyCommand", "data-copy") == command
        assert page.text_content("#linkError") == ""
        page.screenshot(path=str(ARTIFACTS / f"browser-wallet-link-{device}.png"),
                        full_page=True)
        # what that command prints, pasted back, links the account
        page.fill("#signed", json.dumps(link_body(account, key, challenge)))
        page.click("#link")
        page.wait_for_selector("#linked:not([hidden])")
        assert account in page.text_content("#linked")
        assert page.is_enabled("#withdraw") and page.is_hidden("#withdrawHint")
        assert errors == []


def test_the_favicon_is_served_and_every_page_names_it(server_url: str) -> None:
    for path, kind in (("/favicon.svg", "image/svg+xml"), ("/favicon.ico", "image/")):
        r = httpx.get(server_url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), path
    for name in PAGES:
        html = httpx.get(f"{server_url}/{name}").text
        assert '<link rel="icon" href="favicon.svg"' in html, name


def test_every_link_in_the_pages_points_at_a_page_that_exists() -> None:
    # e.g. the league's empty board once linked /play.html, which 404s
    for source in sorted(WEB_DIR.glob("*.[hj][ts]*")):
        for target in re.findall(r'href="([^"#:$]+?)"', source.read_text()):
            if target.startswith("/api/"):
                continue
            assert (WEB_DIR / target.lstrip("/")).is_file(), f"{source.name} links {target}"
