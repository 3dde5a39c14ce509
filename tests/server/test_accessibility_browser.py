"""axe-core in headless Chromium: no serious or critical accessibility violation on any page.

Every page at a phone's 390x844 and a laptop's 1280x900, signed out and signed in (the Play page
is then the game and the first-run guide, the Wallet page the balances with a judged run, its
history and the link guide). axe-core comes from the npm registry, pinned in
``tests/web/package-lock.json``; the ``axe_js`` fixture runs ``npm ci --prefix tests/web`` when
``tests/web/node_modules`` is missing.

The audit runs under the pages' real Content-Security-Policy: axe.min.js is served from the
page's own origin (``page.route`` answers ``/__axe/axe.min.js`` with the file), so ``script-src
'self'`` lets it run. ``page.add_script_tag(path=...)`` would not do: it inserts the file as an
inline script, which the policy refuses (checked below).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.server.test_browser_pages import (  # noqa: F401 - fixtures
    ARTIFACTS,
    PAGES,
    PASSWORD,
    VIEWPORTS,
    browser,
    server_url,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

WEB_TESTS = Path(__file__).resolve().parents[1] / "web"
AXE_JS = WEB_TESTS / "node_modules" / "axe-core" / "axe.min.js"
AXE_URL_PATH = "/__axe/axe.min.js"
BLOCKING = ("serious", "critical")
# what a page shows once it has loaded what it loads, signed in (signed out: PAGES)
SIGNED_IN = {**PAGES, "index.html": "#game:not([hidden])", "wallet.html": "#runs li .explained"}


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe.min.js from tests/web/node_modules, installed by ``npm ci`` when missing."""
    return ensure_axe()


def ensure_axe() -> Path:
    """The path of axe.min.js; runs ``npm ci --prefix tests/web`` first when it is missing.

    Skips when npm is absent, unless ``CROWDLEARNING_REQUIRE_SERVICES=1`` (CI): then fails."""
    if AXE_JS.is_file():
        return AXE_JS
    npm = shutil.which("npm")
    if npm is None:
        message = ("npm not found: axe-core is installed from the npm registry by `npm ci "
                   "--prefix tests/web` (install Node.js and npm)")
        if os.environ.get("CROWDLEARNING_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with open(WEB_TESTS / "package-lock.json") as lock:  # one npm ci at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not AXE_JS.is_file():
            done = subprocess.run([npm, "ci", "--prefix", str(WEB_TESTS), "--ignore-scripts",
                                   "--no-audit", "--no-fund"], capture_output=True, text=True,
                                  timeout=600, check=False)
            assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    assert AXE_JS.is_file(), f"npm ci did not install {AXE_JS}"
    return AXE_JS


def audit(page: Page, axe: Path, what: str) -> list[dict]:
    """axe-core's violations on the page as it is now, serious and critical only (all are
    written to test-artifacts/axe-<what>.json)."""
    origin = page.evaluate("location.origin")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.context.route(f"{origin}{AXE_URL_PATH}", lambda route: route.fulfill(
            path=str(axe), content_type="text/javascript"))
        page.add_script_tag(url=f"{origin}{AXE_URL_PATH}")
    result = page.evaluate("""async () => {
      const r = await axe.run(document, { resultTypes: ['violations'],
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                        'wcag22aa', 'best-practice'] } });
      return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary,
                                     html: n.html.slice(0, 200) })) }));
    }""")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"axe-{what}.json").write_text(json.dumps(result, indent=1))
    return [v for v in result if v["impact"] in BLOCKING]


def describe(violations: list[dict]) -> str:
    return "\n".join(f"{v['impact']} {v['id']}: {v['help']}\n" + "\n".join(
        f"   {n['target']}: {n['summary']}" for n in v["nodes"][:6]) for v in violations)


@contextmanager
def _page(browser: Browser, device: str) -> Iterator[tuple[Page, list[str]]]:  # noqa: F811
    """A fresh page at the device's size under the real CSP; yields it and its console
    errors."""
    width, height = VIEWPORTS[device]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  is_mobile=device == "phone", has_touch=device == "phone")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    try:
        yield page, errors
    finally:
        context.close()


def _open(page: Page, url: str, name: str, ready: str) -> None:
    page.goto(f"{url}/{name}")
    page.wait_for_selector(ready, state="attached", timeout=90_000)
    page.wait_for_load_state("networkidle")


def _judged_practice_run(url: str, token: str) -> None:
    """One practice run played over /ws/play as a bot (steering against the car), until its
    verdict: the Wallet page then lists a judged run with its explanation."""
    from websockets.asyncio.client import connect

    async def play() -> None:
        ws_url = url.replace("http", "ws") + "/ws/play"
        async with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}",
                                                       "Origin": url}) as ws:
            await ws.send(json.dumps({"type": "start", "mode": "label", "paid": False}))
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "frame":
                    steer = 0.6 if msg["tick"] < 30 else None
                    await ws.send(json.dumps({"type": "input", "tick": msg["tick"],
                                              "steer": steer, "throttle": None}))
                    if msg["tick"] >= 60:
                        await ws.send(json.dumps({"type": "stop"}))
                elif msg["type"] == "verdict":
                    return
                elif msg["type"] == "error" and msg["code"] != "no_run":
                    raise AssertionError(msg)

    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(asyncio.wait_for(play(), 180))
        except BaseException as e:  # re-raised in the test's thread
            failed.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


@pytest.fixture(scope="module")
def player(server_url: str) -> str:  # noqa: F811
    """A player with a deposit, a stake and a judged practice run; returns the name."""
    name = f"axe{time.time_ns() % 10**9}"
    with httpx.Client(base_url=server_url, headers={"Origin": server_url}) as http:
        r = http.post("/api/auth/signup", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert http.post("/api/wallet/deposit", json={"amount_tinybar": 500_000_000},
                         headers=auth).status_code == 201
        assert http.post("/api/wallet/stake", json={"amount_tinybar": 200_000_000},
                         headers=auth).status_code == 200
    _judged_practice_run(server_url, token)
    return name


def test_add_script_tag_by_path_is_refused_by_the_pages_policy(
        browser: Browser, server_url: str, axe_js: Path) -> None:  # noqa: F811
    # why the audit serves axe.min.js from the page's origin instead of add_script_tag(path=)
    with _page(browser, "desktop") as (page, errors):
        _open(page, server_url, "league.html", PAGES["league.html"])
        with pytest.raises(Exception):  # noqa: B017 - Playwright's error for a refused script
            page.add_script_tag(path=str(axe_js))
        assert not page.evaluate("typeof window.axe === 'object'")
        assert any("Content Security Policy" in e for e in errors), errors


@pytest.mark.parametrize("device", VIEWPORTS)
def test_no_page_has_a_serious_or_critical_violation(
        browser: Browser, server_url: str, axe_js: Path, player: str,  # noqa: F811
        device: str) -> None:
    found: dict[str, list[dict]] = {}
    with _page(browser, device) as (page, errors):
        for name in PAGES:  # signed out
            _open(page, server_url, name, PAGES[name])
            found[f"{name} signed out"] = audit(page, axe_js, f"{name[:-5]}-out-{device}")
        page.goto(f"{server_url}/index.html")
        page.fill("#username", player)
        page.fill("#password", PASSWORD)
        page.click("#login")
        page.wait_for_selector("#game:not([hidden])")
        for name in PAGES:  # signed in
            _open(page, server_url, name, SIGNED_IN[name])
            found[f"{name} signed in"] = audit(page, axe_js, f"{name[:-5]}-in-{device}")
            if name == "wallet.html":  # a run's explanation opened
                page.click("#runs li .explained summary")
                found["wallet.html run explained"] = audit(page, axe_js, f"wallet-run-{device}")
        assert errors == [], errors
    bad = {where: v for where, v in found.items() if v}
    version = json.loads((AXE_JS.parent / "package.json").read_text())["version"]
    print(f"\naxe-core {version}: {len(found)} audits at {device}, "
          f"serious or critical violations: {sum(len(v) for v in bad.values())}")
    assert not bad, "\n".join(f"{where}:\n{describe(v)}" for where, v in bad.items())
