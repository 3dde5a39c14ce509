"""In headless Chromium: after a practice run the Play page explains its verdict.

The words (metres, how sure, the money), the with-vs-without chart, the difference against
training noise, and the stretches where the player's steering differed most drawn on the track
in their own colour with a legend. The app runs in this process (``test_browser_pages``).
"""

from __future__ import annotations

import time

import pytest

from tests.server.test_browser_pages import (  # noqa: F401 - fixtures
    ARTIFACTS,
    _page,
    _sign_up,
    browser,
    server_url,
)

pytestmark = pytest.mark.slow
STRETCH_RGB = (0xFF, 0x7B, 0xD5)  # --stretch in style.css

COUNT_STRETCH_PIXELS = """([r, g, b]) => {
  const c = document.getElementById('view');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - r) < 6 && Math.abs(d[i + 1] - g) < 6 && Math.abs(d[i + 2] - b) < 6) n++;
  return n;
}"""


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_a_practice_run_gets_an_explained_verdict(browser, server_url: str,  # noqa: F811
                                                  device: str) -> None:
    with _page(browser, device) as (page, errors):
        # GIVEN a new player on the Play page
        _sign_up(page, server_url, f"explained{int(time.time() * 1000) % 10**8}")
        assert page.is_hidden("#explain")
        # WHEN they play a practice run, steering against the car for a while
        page.click("#start")
        page.wait_for_selector("body[data-playing='1']")
        page.wait_for_function("Number(document.getElementById('tick').textContent) > 5")
        for key, hold_s in (("ArrowLeft", 0.7), ("ArrowRight", 0.7)):
            page.keyboard.down(key)
            time.sleep(hold_s)
            page.keyboard.up(key)
        if page.get_attribute("body", "data-playing") == "1":
            page.click("#stop")
        # THEN the verdict comes with its explanation in words
        page.wait_for_selector("#explain:not([hidden])", timeout=90_000)
        summary = page.text_content("#explainSummary")
        assert " m " in summary and "sure the difference is between" in summary, summary
        assert "{" not in summary and "null" not in summary  # words, not raw data
        assert page.text_content("#explainMoney").startswith("Practice run: no money at stake")
        # the chart of with vs without (bars per hidden track) and the difference vs noise
        assert page.locator("#explainChart svg rect.bar-with").count() >= 1
        assert page.locator("#explainChart svg rect.bar-without").count() >= 1
        assert page.locator("#explainBand svg circle.mean").count() == 1
        assert page.is_visible("#explainChart svg")
        # the stretches where the input differed most: listed, drawn and explained by a legend
        assert page.text_content("#explainStretches").startswith(
            "Where your input differed most from the car")
        assert page.is_visible("#trackLegend")
        assert page.evaluate(COUNT_STRETCH_PIXELS, list(STRETCH_RGB)) > 20
        page.screenshot(path=str(ARTIFACTS / f"play-explained-verdict-{device}.png"),
                        full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # fits
        assert errors == []
        # a new run clears the last verdict's explanation
        page.click("#start")
        page.wait_for_selector("body[data-playing='1']")
        assert page.is_hidden("#explain") and page.is_hidden("#trackLegend")
        page.click("#stop")
