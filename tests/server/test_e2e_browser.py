"""End to end in headless Chromium: `crowdlearning serve` in a subprocess, a player in a browser.

Signs up, deposits and locks a stake on the Wallet page, plays a paid run on the Play page with
scripted key presses, and waits for the verdict and the new balance. Another player sends HBAR on
the (embedded, local) Hedera network with the memo the wallet shows and sees it arrive on the
page, watches the champion drive, and downloads it as ONNX from the Model page. Screenshots go
to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SERVED: dict[str, tuple[Path, int]] = {}  # server url -> its data dir, local Hedera port
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data, port = tmp_path_factory.mktemp("serve"), free_port()
    node_port = free_port()
    env = {**os.environ, "CROWDLEARNING_HEDERA_LOCAL_PORT": str(node_port),
           "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0",
           "CROWDLEARNING_SERVER_RUN_TICKS": "400", "CROWDLEARNING_SERVER_PLAY_TRACKS": "2",
           "CROWDLEARNING_SERVER_EVAL_TRACKS": "2", "CROWDLEARNING_LOG_LEVEL": "WARNING",
           "CROWDLEARNING_VERDICT_NULL_RUNS": "4", "CROWDLEARNING_SERVER_RANDOM_STARTS": "0"}
    code = ("import sys; from crowdlearning.server.cli import serve_main; "
            "sys.exit(serve_main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", str(port), "--data-dir",
                             str(data)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, proc)
        SERVED[url] = (data, node_port)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if httpx.get(f"{url}/api/game/stats", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("server did not come up in time")


def test_sign_up_play_a_run_see_verdict_and_balance(server_url: str, chromium_path: str) -> None:
    with _browser_page(chromium_path) as page:
        _sign_up_and_fund(page, server_url)
        _play_paid_run(page)


@contextmanager
def _browser_page(chromium_path: str) -> Iterator[Page]:
    """A page in headless Debian chromium (screenshots go to ``ARTIFACTS``)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            # bypass_csp: wait_for_function evaluates strings in the page, which the pages' CSP
            # refuses; test_csp_browser.py runs the pages under their real policy
            yield browser.new_page(viewport={"width": 1200, "height": 800}, bypass_csp=True)
        finally:
            browser.close()


def _sign_up_and_fund(page: Page, url: str) -> None:
    page.goto(f"{url}/wallet.html")
    page.fill("#username", f"e2e{int(time.time())}")
    page.fill("#password", "correct horse battery")
    page.click("#signup")
    page.wait_for_selector("#wallet:not([hidden])")
    page.wait_for_function("document.getElementById('available').textContent.includes('0')")
    page.fill("#amount", "5")
    page.click("#deposit")
    page.wait_for_function("document.getElementById('available').textContent.startsWith('5')")
    page.fill("#amount", "2")
    page.click("#lock")
    page.wait_for_function(
        "document.getElementById('mode').textContent.includes('paid runs possible')")
    assert page.text_content("#available").startswith("3")
    page.screenshot(path=str(ARTIFACTS / "e2e-1-wallet.png"), full_page=True)


def _play_paid_run(page: Page) -> None:
    page.click("nav >> text=Play")
    page.wait_for_selector("#game:not([hidden])")
    page.wait_for_function("document.getElementById('balance').textContent.startsWith('3')")
    page.check("input[value=paid]")
    page.click("#start")
    page.wait_for_selector("body[data-playing='1']")
    page.wait_for_function("Number(document.getElementById('tick').textContent) > 5")
    for key, hold_s in (("ArrowLeft", 0.4), ("ArrowRight", 0.6), ("ArrowLeft", 0.3)):
        page.keyboard.down(key)
        time.sleep(hold_s)
        page.screenshot(path=str(ARTIFACTS / f"e2e-2-driving-{key}.png"))
        page.keyboard.up(key)
    assert page.text_content("#driver") in {"YOU DRIVE", "POLICY DRIVES"}
    page.click("#stop")
    page.wait_for_function(
        "/improved|no measurable|worse|rejected/.test(document.getElementById('verdict')"
        ".textContent)", timeout=60_000)
    # the verdict's entry in the audit journal (published on the audit topic in a block)
    page.wait_for_function(
        "document.getElementById('txid').textContent.includes('audit trail (entry ')")
    page.screenshot(path=str(ARTIFACTS / "e2e-3-verdict.png"), full_page=True)
    balance = page.text_content("#balance")
    stake = page.text_content("#stake")
    assert balance.endswith("HBAR") and stake.endswith("HBAR")
    assert (balance, stake) != ("0 HBAR", "0 HBAR")  # the deposit (and the verdict) show


def test_deposit_through_hedera_then_watch_and_download_the_champion(
        server_url: str, chromium_path: str) -> None:
    with _browser_page(chromium_path) as page:
        # a player signs up; the wallet says where to send HBAR and with which memo
        page.goto(f"{server_url}/wallet.html")
        page.fill("#username", f"dep{int(time.time())}")
        page.fill("#password", "correct horse battery")
        page.click("#signup")
        page.wait_for_selector("#wallet:not([hidden])")
        page.wait_for_function("document.getElementById('depositMemo').textContent"
                               ".startsWith('deposit:')")
        account = page.text_content("#depositAccount")
        memo = page.text_content("#depositMemo")
        # they send 2 HBAR from a Hedera account of their own
        _send_hbar(server_url, account, 2 * 100_000_000, memo)
        # the wallet page shows it by itself (the server reads the mirror node)
        page.wait_for_function(
            "document.getElementById('available').textContent.startsWith('2')",
            timeout=30_000)
        page.screenshot(path=str(ARTIFACTS / "e2e-4-hedera-deposit.png"), full_page=True)
        # spectators see the champion drive
        page.click("nav >> text=Watch")
        page.wait_for_function("document.getElementById('runs').textContent"
                               ".includes('champion')")
        page.screenshot(path=str(ARTIFACTS / "e2e-5-watch.png"))
        # the Model page offers the champion as ONNX
        page.click("nav >> text=Model")
        page.wait_for_function("document.getElementById('onnx').href.includes('/onnx')")
        onnx = page.request.get(page.eval_on_selector("#onnx", "a => a.href"))
        assert onnx.status == 200 and len(onnx.body()) > 1000
        page.screenshot(path=str(ARTIFACTS / "e2e-6-model.png"), full_page=True)


def _send_hbar(server_url: str, treasury: str, amount: int, memo: str) -> None:
    """From a new account (funded by the local network's development operator, whose key is in
    the network's state file) to ``treasury`` with ``memo``, as a player's wallet would."""
    from hiero_sdk_python import (
        AccountCreateTransaction,
        AccountId,
        Client,
        Hbar,
        PrivateKey,
        TransferTransaction,
    )

    data, node_port = SERVED[server_url]
    dev_keys = json.loads((data / "hedera-local.json").read_text())["dev_keys"]
    operator = min(dev_keys, key=lambda a: int(a.split(".")[2]))

    def client(account: str, key: PrivateKey) -> Client:
        c = Client.for_network({f"127.0.0.1:{node_port}": AccountId.from_string("0.0.3")})
        c.set_operator(AccountId.from_string(account), key)
        return c

    bank = client(operator, PrivateKey.from_string_der(dev_keys[operator]))
    key = PrivateKey.generate_ed25519()
    try:
        created = (AccountCreateTransaction().set_key_without_alias(key.public_key())
                   .set_initial_balance(Hbar.from_tinybars(amount + 100_000_000))
                   .execute(bank))
    finally:
        bank.close()
    player = client(str(created.account_id), key)
    try:
        tx = (TransferTransaction()
              .add_hbar_transfer(created.account_id, Hbar.from_tinybars(-amount))
              .add_hbar_transfer(AccountId.from_string(treasury), Hbar.from_tinybars(amount))
              .set_transaction_memo(memo))
        assert tx.execute(player).status == 22  # SUCCESS
    finally:
        player.close()
