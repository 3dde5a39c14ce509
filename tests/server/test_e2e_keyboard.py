"""A keyboard player in headless Chromium: real key presses on the Play page become the server's
ramped wheel, and that is what the server records and labels.

The app runs in this process (uvicorn on a thread, on the tests' embedded runtime) so the test can
read the contribution the game loop recorded. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import uvicorn

from crowdlearning.learning.device import (
    DEFAULT_GAIN,
    KEY_LEFT,
    WheelParams,
    check_device,
    device_codes,
    device_targets,
)
from crowdlearning.learning.labels import extract_labels
from crowdlearning.server.app import create_app
from crowdlearning.server.game_loop import FinishedRun
from crowdlearning.server.runtime import Runtime
from tests.server.test_e2e_browser import ARTIFACTS, _browser_page, free_port

pytestmark = pytest.mark.slow


@contextmanager
def _served(runtime: Runtime) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime.settings, runtime),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="e2e-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_held_arrow_keys_become_the_servers_ramped_wheel(runtime: Runtime,
                                                         chromium_path: str) -> None:
    with _served(runtime) as url, _browser_page(chromium_path) as page:
        game = runtime.game
        captured: list[FinishedRun] = []
        forward = game.on_finish  # the referee's, set when the app started
        game.on_finish = lambda run: (captured.append(run), forward(run))
        try:
            page.goto(f"{url}/index.html")
            page.fill("#username", f"keys{int(time.time() * 1000) % 10**9}")
            page.fill("#password", "correct horse battery")
            page.click("#signup")
            page.wait_for_selector("#game:not([hidden])")
            page.click("#start")  # label mode, practice
            page.wait_for_selector("body[data-playing='1']")
            page.wait_for_function("Number(document.getElementById('tick').textContent) > 5")
            # WHEN the player holds the left arrow until the wheel is well over, then lets go
            page.keyboard.down("ArrowLeft")
            page.wait_for_function(
                "Number(document.getElementById('you').textContent) >= 0.6", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "e2e-keyboard-1-held.png"))
            page.keyboard.up("ArrowLeft")
            # the wheel returns to the policy's steering: no input any more
            page.wait_for_function("document.getElementById('you').textContent === '-'",
                                   timeout=10_000)
            page.wait_for_function("Number(document.getElementById('tick').textContent) > 40")
            page.click("#stop")
            page.wait_for_function(
                "/improved|no measurable|worse|rejected/.test(document.getElementById('verdict')"
                ".textContent)", timeout=120_000)
            page.screenshot(path=str(ARTIFACTS / "e2e-keyboard-2-verdict.png"), full_page=True)
        finally:
            game.on_finish = forward
    # THEN the server recorded keys, and the wheel they moved, 0.1 a tick from the car's steering
    (run,) = captured
    c = run.contribution
    assert c.meta["device"]["name"] == "keyboard"
    codes = device_codes(c)
    held = (codes >= 0) & ((codes & KEY_LEFT) > 0)
    assert held.sum() >= 6, codes
    steer, proposed = c.player[:, 0], c.proposed[:, 0]
    first = int(np.argmax(held))
    assert np.isnan(steer[first - 1]) and steer[first] == pytest.approx(
        proposed[first] + WheelParams().press_step)
    for t in np.flatnonzero(held)[1:]:
        if held[t - 1]:
            assert steer[t] == pytest.approx(min(max(steer[t - 1], proposed[t]) + 0.1, 1.0))
    assert steer[held].max() >= 0.6
    # released, it came back and rested on the proposal
    after = np.flatnonzero(~held & (np.arange(c.num_ticks) > first))
    assert np.isfinite(steer[after[0]]) and np.isnan(steer[after[-1]])
    assert check_device(c) == ""
    # and the labels are the wheel, taken with the keyboard gain, on the states it answered
    labels = extract_labels(c)
    assert len(labels) >= held.sum() // 2
    wheel_labels = device_targets(c)[c.has_input, 0]
    for target in labels.targets[:, 0]:
        assert np.abs(wheel_labels - target).min() < 1e-6
    # (no gain estimate yet: the platform makes it when it accepts the run)
    np.testing.assert_allclose(wheel_labels, (proposed + DEFAULT_GAIN * (steer - proposed))[
        c.has_input])
