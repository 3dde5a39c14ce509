"""Screenshots of every page at 1280x900 and 390x844, written to docs/screens/ (issue 12).

Starts ``crowdlearning serve`` on its embedded defaults (local Hedera network, SQLite) in a
fresh data directory on a free port of 127.0.0.1, as the browser tests do (with their smaller
judge: 2 hidden tracks, 4 placebo runs), then in headless
Chromium per screen size: the landing page signed out; a new player signs up and plays the
guided first practice run (a hint mid-run, then the explained verdict); the Wallet page (a
deposit, a stake, the run's verdict in words); League, Watch and Model. Each PNG is the viewport
(not the whole page), reduced to 256 colours.

    scripts/screens [--out docs/screens] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
MOMENTS = ("miss", "offtrack", "drift")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path) -> tuple[subprocess.Popen, str]:
    """``crowdlearning serve`` in a subprocess; returns it and its URL once it answers."""
    port = free_port()
    env = {**os.environ, "CROWDLEARNING_HEDERA_LOCAL_PORT": str(free_port()),
           "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0", "CROWDLEARNING_LOG_LEVEL": "WARNING",
           # a smaller judge than the default (as tests/server/test_e2e_browser.py): the
           # verdicts come in seconds on a laptop rather than minutes
           "CROWDLEARNING_SERVER_RUN_TICKS": "400", "CROWDLEARNING_SERVER_PLAY_TRACKS": "2",
           "CROWDLEARNING_SERVER_EVAL_TRACKS": "2", "CROWDLEARNING_VERDICT_NULL_RUNS": "4",
           "CROWDLEARNING_SERVER_RANDOM_STARTS": "0"}
    code = ("import sys; from crowdlearning.server.cli import serve_main; "
            "sys.exit(serve_main(sys.argv[1:]))")
    log = open(data / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--data-dir",
                             str(data)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # the first start trains the initial model
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: see {data / 'serve.log'}")
        try:
            if httpx.get(f"{url}/api/game/stats", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the server did not answer within 10 minutes")


def save(page: Page, out: Path, name: str) -> Path:
    """The viewport as a PNG of at most 256 colours."""
    from PIL import Image

    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    small.save(path, optimize=True)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
          f"({path.stat().st_size // 1024} KiB)")
    return path


def shoot(browser: Browser, url: str, size: str, out: Path) -> None:
    width, height = SIZES[size]
    phone = size == "phone"
    context = browser.new_context(viewport={"width": width, "height": height},
                                  is_mobile=phone, has_touch=phone, device_scale_factor=1)
    page = context.new_page()
    try:
        page.goto(f"{url}/index.html")
        page.wait_for_selector("#landing")
        page.wait_for_load_state("networkidle")
        save(page, out, f"landing-{size}")
        # a new player: the guided first run
        page.fill("#username", f"screens_{size}")
        page.fill("#password", PASSWORD)
        page.click("#signup")
        page.wait_for_selector("#tutorial:not([hidden])")
        page.click("#tutorialNext")
        page.wait_for_selector("body[data-playing='1']", timeout=60_000)
        page.locator("#tutorial").scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        _steer_until_hint(page, phone)
        save(page, out, f"play-{size}")
        if page.get_attribute("body", "data-playing") == "1":
            page.click("#stop")
        page.wait_for_selector("#explain:not([hidden])", timeout=180_000)
        page.locator("#tutorial").scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        save(page, out, f"play-tutorial-verdict-{size}")
        page.evaluate("document.getElementById('verdict').closest('.panel')"
                      ".scrollIntoView({block: 'start'})")
        save(page, out, f"play-verdict-{size}")
        # money: a deposit and a stake, so the wallet has a history
        for path, hbar in (("/api/wallet/deposit", 5), ("/api/wallet/stake", 2)):
            r = page.request.post(url + path, data={"amount_tinybar": hbar * 100_000_000},
                                  headers={"Origin": url})
            assert r.ok, r.text()
        page.goto(f"{url}/wallet.html")
        page.wait_for_selector("#runs li .explained")
        page.click("#runs li .explained summary")
        page.evaluate("document.getElementById('runs').closest('section')"
                      ".scrollIntoView({block: 'start'})")
        save(page, out, f"wallet-runs-{size}")
        page.evaluate("scrollTo(0, 0)")
        save(page, out, f"wallet-{size}")
        for name, ready in (("league", "#versions tr"), ("watch", "#runs li"),
                            ("model", "#versions tbody tr")):
            page.goto(f"{url}/{name}.html")
            page.wait_for_selector(ready, state="attached", timeout=60_000)
            page.wait_for_timeout(700)  # the watch view draws a few snapshots
            save(page, out, f"{name}-{size}")
    finally:
        context.close()


def _steer_until_hint(page: Page, phone: bool) -> None:
    """Steer left (the key, or the on-screen button) until the guide shows which way to steer
    back, or 3 s."""
    if phone:
        box = page.locator("#touchpad button[data-key=left]").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
    else:
        page.keyboard.down("ArrowLeft")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if page.get_attribute("#tutorial", "data-hint") in MOMENTS:
            break
        page.wait_for_timeout(50)
    page.wait_for_timeout(150)
    if phone:
        page.mouse.up()
    else:
        page.keyboard.up("ArrowLeft")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens",
                        help="directory the PNGs are written to (default: docs/screens)")
    parser.add_argument("--chromium", default=os.environ.get("CROWDLEARNING_TEST_CHROMIUM",
                                                             "/usr/bin/chromium"),
                        help="Chromium to drive (default: $CROWDLEARNING_TEST_CHROMIUM or "
                             "/usr/bin/chromium)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="crowdlearning-screens-") as tmp:
        print("starting crowdlearning serve (the first start trains the initial model)…")
        proc, url = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                try:
                    for size in SIZES:
                        print(f"{size} {SIZES[size][0]}x{SIZES[size][1]}:")
                        shoot(browser, url, size, args.out)
                finally:
                    browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
