"""Races in the real app (``create_app`` on the embedded runtime, uvicorn on a free port): a race
every 5 s on the oval, 3 cars, at most 4 s long. Several spectators on the race socket get its
frames at 10 Hz or more; Chromium shows the race on the Watch page, then its replay, and the
League page shows the timetable and the result."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import torch
import websockets

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
    server_url,  # noqa: F401 - the served app
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    settings = server_settings(
        tmp_path_factory.mktemp("races-live"), races_interval_s=5, races_track="oval",
        races_laps=1, races_max_cars=3, races_max_lap_s=4.0, races_frame_hz=20)
    with open_runtime(settings) as rt:
        registry = rt.trainer.registry
        net, _ = registry.load(registry.champion)
        gen = torch.Generator().manual_seed(3)
        for _ in range(2):  # two more versions: a field of three
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.01 * torch.randn(p.shape, generator=gen))
            registry.register(net, parent_version=registry.champion, contributions=[])
        yield rt


def next_race(url: str) -> dict:
    return httpx.get(f"{url}/api/races").json()["timetable"][0]


async def spectate(url: str, race_id: str) -> tuple[list[float], dict]:
    """Arrival times of the racing frames, and the result."""
    stamps: list[float] = []
    async with websockets.connect(f"ws{url[4:]}/ws/races/{race_id}") as ws:
        async for text in ws:
            message = json.loads(text)
            if message["type"] == "frame" and message["status"] == "racing":
                stamps.append(time.monotonic())
            elif message["type"] == "result":
                return stamps, message["result"]
    raise AssertionError("the socket closed before the result")


def test_several_spectators_get_the_race_at_10_hz_or_more(server_url: str) -> None:  # noqa: F811
    race = next_race(server_url)

    async def crowd() -> list[tuple[list[float], dict]]:
        return await asyncio.wait_for(asyncio.gather(
            *[spectate(server_url, race["race_id"]) for _ in range(5)]), timeout=60)

    seen = asyncio.run(crowd())
    digests = {result["digest"] for _, result in seen}
    assert len(digests) == 1  # one race, the same for everyone
    for stamps, _ in seen:
        assert len(stamps) >= 20
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert rate >= 10.0, f"{rate:.1f} frames/s"
    body = httpx.get(f"{server_url}/api/races/{race['race_id']}").json()
    assert body["status"] == "finished" and body["result"]["digest"] in digests


def test_the_watch_page_shows_a_race_then_its_replay(
        server_url: str, chromium_path: str, axe_js: Path) -> None:  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
            race = next_race(server_url)
            page.goto(f"{server_url}{race['share_url']}")  # /watch?race=<id>
            page.wait_for_selector("#raceStatus:has-text('Racing')", timeout=30_000)
            assert page.locator("#standings tbody tr").count() == 3
            assert "leader" in page.inner_text("#standings")
            assert race["race_id"] in page.inner_text("#shareLink")
            page.screenshot(path=str(ARTIFACTS / "races-watch-live.png"), full_page=True)
            violations = audit(page, axe_js, "race-live")  # axe-core: serious or critical
            assert not violations, describe(violations)
            page.wait_for_selector("#raceStatus:has-text('watch the replay')", timeout=30_000)
            page.click("#raceStatus a")
            page.wait_for_selector("#raceStatus:has-text('verified')", timeout=60_000)
            assert page.is_visible("#replayControls")
            assert page.locator("#standings tbody tr").count() == 3
            page.screenshot(path=str(ARTIFACTS / "races-watch-replay.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing too wide
            page.wait_for_timeout(300)
            assert page.evaluate("document.documentElement.scrollWidth - "
                                 "document.documentElement.clientWidth") <= 0
            page.screenshot(path=str(ARTIFACTS / "races-watch-replay-phone.png"), full_page=True)
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{server_url}/league.html")
            page.wait_for_selector("#recentRaces a:has-text('replay')", timeout=30_000)
            page.wait_for_selector("#timetable .race-countdown", timeout=30_000)
            page.wait_for_selector("#seasonModels td[data-label=model]", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "races-league.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()


def test_the_pages_exist(server_url: str) -> None:  # noqa: F811
    page = httpx.get(f"{server_url}/watch?race=r5")
    assert page.status_code == 200 and "raceCanvas" in page.text
    assert Path(__file__).name  # (the page is the Watch page: watch.html)
