"""The Play page's driving view in headless Chromium, while a run is going.

At 1280x900: frames per second counted with requestAnimationFrame (printed: the issue's target is
55 or more while the server sends 20 Hz), the picture changes between the server's frames
(interpolation, not a redraw per frame), the chase camera keeps the car at the same place on the
screen while it drives on, the minimap and the lap clock show, a held arrow key turns the
server's wheel step by step (intermediate steering, not full lock), and the countdown comes
before the run's start is sent. At 390x844 with a touch screen: the on-screen buttons steer.
The app runs in this process (``test_browser_pages``); screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.server.test_browser_pages import (  # noqa: F401 - fixtures
    ARTIFACTS,
    PASSWORD,
    browser,
    server_url,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, WebSocket

pytestmark = pytest.mark.slow

# the car's body colours in render.js (Render.COLORS.policy / .player); nothing else on the
# canvas is drawn in exactly these colours (the steering paths and gauge are translucent)
CAR_RGB = [(0x58, 0xA6, 0xFF), (0xF0, 0xC0, 0x00)]
MINIMAP_TRACK_RGB = (0x8B, 0x98, 0xA5)

FIND_CAR = """(colours) => {
  const c = document.getElementById('view');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0, sx = 0, sy = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (colours.some(([r, g, b]) => d[i] === r && d[i + 1] === g && d[i + 2] === b)) {
      const p = i / 4; n++; sx += p % c.width; sy += Math.floor(p / c.width);
    }
  }
  return { n, x: n ? sx / n : null, y: n ? sy / n : null, w: c.width, h: c.height };
}"""

COUNT_RGB_TOP_RIGHT = """([r, g, b]) => {
  const c = document.getElementById('view');
  const x0 = Math.floor(c.width * 0.6), h = Math.floor(c.height * 0.35);
  const d = c.getContext('2d').getImageData(x0, 0, c.width - x0, h).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] === r && d[i + 1] === g && d[i + 2] === b) n++;
  return n;
}"""

# requestAnimationFrame callbacks counted over `seconds`
COUNT_FPS = """(seconds) => new Promise((done) => {
  let n = 0; const t0 = performance.now();
  const tick = (now) => {
    n++;
    if (now - t0 < seconds * 1000) requestAnimationFrame(tick); else done(n * 1000 / (now - t0));
  };
  requestAnimationFrame(tick);
})"""

# over `seconds`: how many display frames showed a different picture than the one before (a
# 96x96 block of the view where the road moves by), and how many display frames there were
COUNT_CHANGES = """(seconds) => new Promise((done) => {
  const c = document.getElementById('view'), g = c.getContext('2d');
  let frames = 0, changes = 0, last = null; const t0 = performance.now();
  const tick = (now) => {
    const d = g.getImageData(Math.floor(c.width / 2) - 48, Math.floor(c.height * 0.3), 96, 96).data;
    let h = 0;
    for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0;
    frames++; if (last !== null && h !== last) changes++; last = h;
    if (now - t0 < seconds * 1000) requestAnimationFrame(tick); else done({ frames, changes });
  };
  requestAnimationFrame(tick);
})"""


class Socket:
    """The Play page's /ws/play traffic, as the browser sent and received it."""

    def __init__(self, page: Page) -> None:
        self.sent: list[tuple[float, dict]] = []
        self.received: list[tuple[float, dict]] = []
        page.on("websocket", self._attach)

    def _attach(self, ws: WebSocket) -> None:
        if not ws.url.endswith("/ws/play"):
            return
        ws.on("framesent",
              lambda payload: self.sent.append((time.monotonic(), json.loads(payload))))
        ws.on("framereceived",
              lambda payload: self.received.append((time.monotonic(), json.loads(payload))))

    def frames(self) -> list[dict]:
        return [m for _, m in self.received if m["type"] == "frame"]

    def inputs(self) -> list[dict]:
        return [m for _, m in self.sent if m["type"] == "input"]


@contextmanager
def _page(browser: Browser, width: int, height: int,  # noqa: F811
          touch: bool = False) -> Iterator[tuple[Page, list[str], Socket]]:
    # bypass_csp: page.evaluate runs these functions in the page (test_csp_browser.py checks
    # the pages under their real policy)
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=touch,
                                  is_mobile=touch, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    socket = Socket(page)
    try:
        yield page, errors, socket
    finally:
        context.close()


def _sign_up_and_start(page: Page, url: str, socket: Socket, name: str) -> None:
    page.goto(f"{url}/index.html")
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("#signup")
    page.wait_for_selector("#game:not([hidden])")
    page.click("#start")  # label mode, practice
    # the countdown comes first: 3, 2, 1, and only then is the run's start sent
    page.wait_for_selector("#countdown:not([hidden])")
    assert page.text_content("#countdown") == "3"
    assert not any(m["type"] == "start" for _, m in socket.sent)
    page.wait_for_selector("body[data-playing='1']", timeout=30_000)
    page.wait_for_function("Number(document.getElementById('tick').textContent) > 3")


def test_the_view_follows_the_car_at_the_displays_rate(browser: Browser,  # noqa: F811
                                                      server_url: str) -> None:  # noqa: F811
    with _page(browser, 1280, 900) as (page, errors, socket):
        _sign_up_and_start(page, server_url, socket, f"render{time.time_ns() % 10**9}")
        starts = [m for _, m in socket.received if m["type"] == "start"]
        assert len(starts) == 1
        # the track's name and the lap clock
        assert starts[0]["track"]["name"] in page.text_content("#hudTrack")
        clock = page.text_content("#hudTime")

        # frames per second at the display's rate, while the server sends 20 Hz
        t0, n0 = time.monotonic(), len(socket.frames())
        fps = page.evaluate(COUNT_FPS, 3)
        server_hz = (len(socket.frames()) - n0) / (time.monotonic() - t0)
        print(f"\nPlay page at 1280x900, headless Chromium: {fps:.1f} frames per second drawn "
              f"(requestAnimationFrame), server frames received at {server_hz:.1f} Hz")
        # the picture changes between server frames: drawn in between, not once per frame
        changes = page.evaluate(COUNT_CHANGES, 1.5)
        print(f"display frames with a new picture: {changes['changes']} of {changes['frames']} "
              f"in 1.5 s (server frames in that time: about {1.5 * 20:.0f})")
        assert changes["changes"] > 1.5 * 20 * 1.4, changes
        assert page.text_content("#hudTime") != clock  # the lap clock runs

        # the camera follows: the car stays at one place on the screen while it drives on
        seen = []
        for _ in range(5):
            car = page.evaluate(FIND_CAR, [list(c) for c in CAR_RGB])
            pose = socket.frames()[-1]["pose"]
            seen.append((car, pose))
            page.wait_for_timeout(400)
        page.screenshot(path=str(ARTIFACTS / "play-render-chase-desktop.png"))
        for car, _ in seen:
            assert car["n"] > 150, car  # the car is clearly visible (4.4 m x 1.9 m at ~6 px/m)
            assert abs(car["x"] - car["w"] / 2) < 0.03 * car["w"], car
            assert abs(car["y"] - 0.66 * car["h"]) < 0.03 * car["h"], car
        xs = [car["x"] for car, _ in seen]
        ys = [car["y"] for car, _ in seen]
        assert max(xs) - min(xs) < 6 and max(ys) - min(ys) < 6, seen
        (x0, y0), (x1, y1) = seen[0][1][:2], seen[-1][1][:2]
        assert ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 > 10, seen  # while the car drove on
        # the minimap of the whole track, top right
        assert page.evaluate(COUNT_RGB_TOP_RIGHT, list(MINIMAP_TRACK_RGB)) > 100

        # a held arrow key: the server's wheel moves step by step (never a jump to full lock)
        held_from = len(socket.frames())
        page.keyboard.down("ArrowLeft")
        page.wait_for_timeout(300)
        page.keyboard.up("ArrowLeft")
        page.wait_for_timeout(300)
        left = [m for m in socket.inputs() if m.get("device") == "keyboard" and m.get("left")]
        assert len(left) >= 3, socket.inputs()[-10:]
        wheel = [f["player"][0] for f in socket.frames()[held_from:] if f["player"][0] is not None]
        between = [s for s in wheel if -0.99 < s < 0.99]
        assert len(set(between)) >= 3, wheel
        assert wheel[0] < 0.9, wheel  # the first tick held is not full lock
        page.click("#stop")
        page.wait_for_function("document.body.dataset.playing === '0'")
        assert errors == []


def test_touch_screens_get_buttons_that_steer(browser: Browser,  # noqa: F811
                                              server_url: str) -> None:  # noqa: F811
    with _page(browser, 390, 844, touch=True) as (page, errors, socket):
        _sign_up_and_start(page, server_url, socket, f"touch{time.time_ns() % 10**9}")
        assert page.is_visible("#touchpad")
        button = page.locator("#touchpad button[data-key=left]")
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        assert box is not None and box["width"] >= 44 and box["height"] >= 44  # thumb-sized
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.wait_for_timeout(300)
        page.mouse.up()
        page.wait_for_timeout(200)
        left = [m for m in socket.inputs() if m.get("device") == "keyboard" and m.get("left")]
        assert len(left) >= 2, (socket.inputs()[-10:], len(socket.frames()), errors)
        page.screenshot(path=str(ARTIFACTS / "play-render-touch-phone.png"))
        # a gamepad (the Gamepad API, stubbed: headless Chromium has none): the left stick
        # pushed 60% left steers left, past the dead zone, as an analog value
        page.evaluate("""() => { navigator.getGamepads = () => [{ axes: [-0.6, 0],
          buttons: Array.from({ length: 8 }, () => ({ value: 0, pressed: false })) }]; }""")
        page.wait_for_timeout(400)
        pad = [m for m in socket.inputs() if m.get("device") == "gamepad"]
        assert pad and pad[-1]["steer"] == pytest.approx((0.6 - 0.12) / 0.88, abs=1e-6), pad
        assert pad[-1]["throttle"] is None
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")  # fits
        page.click("#stop")
        assert errors == []


INTERPOLATE = """() => {
  const frame = (tick, x, yaw) => ({ tick, pose: [x, 0, yaw, 10, 0], rays: [10, 20], policy: [0, 1],
                                     player: [null, null], driver: 'policy' });
  const fb = new Render.FrameBuffer(50);
  fb.push(frame(0, 0, 3.1), 1000);
  fb.push(frame(1, 1, -3.1), 1050);   // yaw crosses +-pi: the short way round
  fb.push(frame(2, 2, -3.0), 1100);
  fb.push(frame(1, 9, 0), 1101);       // an older tick is ignored
  const at = (t) => { const s = fb.sample(t); return [s.tick, s.pose[0], s.pose[2]]; };
  return { behind: at(1100), between: at(1125), held: at(1400), first: at(1000) };
}"""


def test_frames_are_drawn_one_period_behind_interpolated(browser: Browser,  # noqa: F811
                                                         server_url: str) -> None:  # noqa: F811
    with _page(browser, 1280, 900) as (page, errors, _):
        page.goto(f"{server_url}/index.html")
        got = page.evaluate(INTERPOLATE)
        # at the newest frame's arrival the view shows the frame before it
        assert got["behind"] == pytest.approx([1, 1, -3.1])
        # half a period later: halfway between the last two frames
        tick, x, yaw = got["between"]
        assert (tick, x) == pytest.approx((1.5, 1.5)) and yaw == pytest.approx(-3.05)
        # no newer frame: held on the newest (no guessing ahead); before any: the first
        assert got["held"][:2] == pytest.approx([2, 2]) and got["first"][:2] == [0, 0]
        # from +3.1 to -3.1 rad the car turned 0.08 rad, not 6.2 back: the midpoint is near pi
        fb_mid = page.evaluate("""() => { const fb = new Render.FrameBuffer(50);
          const f = (tick, yaw) => ({ tick, pose: [0, 0, yaw, 0, 0], rays: [], policy: [0, 0],
                                      player: [null, null] });
          fb.push(f(0, 3.1), 0); fb.push(f(1, -3.1), 50);
          return Math.abs(Math.cos(fb.sample(75).pose[2]) + 1); }""")
        assert fb_mid < 1e-3
        assert errors == []
