"""docs/payments-quickstart.md, run as written: every ```sh block of the page, in order, in one
shell environment carried from block to block (as one terminal would), on 127.0.0.1 with free
ports and a temporary directory in place of ``50211``, ``5551``, ``8001`` and ``var/quickstart``.

Blocks marked ``<!-- quickstart: background ... -->`` are the long-running ones (another
terminal): started in their own process group, waited for, stopped at the end. The block marked
``<!-- quickstart: exports printed by hedera-node -->`` is replaced by the lines the node
actually printed (the key is made up at start), after checking the page names the same variables.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "payments-quickstart.md"
pytestmark = pytest.mark.timeout(240)
BLOCK_TIMEOUT_S = 90
START_TIMEOUT_S = 60
_FENCE = re.compile(r"(?:<!-- quickstart: (?P<mark>[^>]*?) -->\n)?```sh\n(?P<body>.*?)\n```",
                    re.DOTALL)


@dataclass
class Block:
    mark: str
    body: str
    output: str = ""


def page_blocks(substitutions: dict[str, str]) -> list[Block]:
    text = PAGE.read_text()
    for old, new in substitutions.items():
        text = text.replace(old, new)
    return [Block(m["mark"] or "", m["body"]) for m in _FENCE.finditer(text)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Background:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this test started
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Shell:
    """One terminal's environment, carried from block to block."""

    env: dict[str, str]
    work: Path
    started: list[Background] = field(default_factory=list)

    def run(self, block: Block) -> str:
        script = self.work / "block.sh"
        script.write_text(block.body + "\n")
        env_out = self.work / "env.out"
        done = subprocess.run(
            ["bash", "-c", 'set -eo pipefail; source "$1"; env -0 > "$2"', "_", script, env_out],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S,
        )
        assert done.returncode == 0, (
            f"quickstart block failed ({done.returncode}):\n{block.body}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
        self.env = dict(item.split("=", 1) for item in env_out.read_text().split("\0") if item)
        block.output = done.stdout
        return done.stdout

    def start(self, block: Block) -> Background:
        proc = subprocess.Popen(
            ["bash", "-c", block.body], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        background = Background(proc)
        self.started.append(background)
        return background


def _wait_for(ready: Callable[[], bool], what: str, background: Background) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        assert background.proc.poll() is None, f"{what} exited:\n" + "\n".join(background.lines)
        assert time.monotonic() < deadline, f"{what} not ready:\n" + "\n".join(background.lines)
        time.sleep(0.2)


def _api_up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWDLEARNING_")}
    env.pop("VIRTUAL_ENV", None)
    sh = Shell(env, tmp_path)
    try:
        yield sh
    finally:
        for background in reversed(sh.started):
            background.stop()


def test_the_quickstart_ends_with_a_settled_payout_on_the_mirror_view(
    shell: Shell, tmp_path: Path
) -> None:
    grpc, mirror, api = _free_port(), _free_port(), _free_port()
    state = tmp_path / "quickstart"
    blocks = page_blocks({"50211": str(grpc), "5551": str(mirror), "8001": str(api),
                          "var/quickstart": str(state)})
    marks = [b.mark for b in blocks if b.mark]
    assert marks == ["background hedera-node", "exports printed by hedera-node",
                     "background payments-api"]
    node_exports: list[str] = []
    # WHEN every block of the page runs in order
    for block in blocks:
        if block.mark == "background hedera-node":
            node = shell.start(block)
            _wait_for(lambda n=node: "Ctrl-C to stop." in n.lines, "hedera-node", node)
            node_exports = [ln.strip() for ln in node.lines if ln.strip().startswith("export ")]
        elif block.mark == "exports printed by hedera-node":
            names = re.findall(r"(CROWDLEARNING_\w+)=", block.body)
            assert names == re.findall(r"(CROWDLEARNING_\w+)=", "\n".join(node_exports))
            block.body = "\n".join(node_exports)  # the real key instead of the page's example
            shell.run(block)
        elif block.mark == "background payments-api":
            server = shell.start(block)
            _wait_for(lambda: _api_up(f"http://127.0.0.1:{api}/openapi.json"), "payments api",
                      server)
        else:
            shell.run(block)
    # THEN the steps printed what the page says they print
    outputs = "\n".join(b.output for b in blocks)
    assert '"balance_tinybar":1000000000' in outputs  # step 5: funded with 10 HBAR
    waited = next(b for b in blocks if "wait-payout first-payout" in b.body)  # step 8
    assert json.loads(waited.output)["status"] == "settled"
    assert json.loads(waited.output)["payout_id"] == "first-payout"
    assert "scripts/settle-once.py" not in "\n".join(b.body for b in blocks)  # no hand settling
    # AND the payout is settled, and the mirror view shows it on the new account
    key, to_account = shell.env["PAYMENTS_API_KEY"], shell.env["TO_ACCOUNT"]
    assert f"first-payout -> {to_account} pending" in outputs  # step 7: booked at once
    payout = httpx.get(f"http://127.0.0.1:{api}/v1/payouts/first-payout",
                       headers={"X-API-Key": key}, timeout=5).json()
    assert payout["status"] == "settled" and payout["to_account"] == to_account
    assert payout["amount_tinybar"] == 250_000_000
    base = f"http://127.0.0.1:{mirror}/api/v1"
    account = httpx.get(f"{base}/accounts/{to_account}", timeout=5).json()
    assert account["balance"]["balance"] == 250_000_000
    txs = httpx.get(f"{base}/transactions", params={"account.id": to_account}, timeout=5).json()
    paid = [t for t in txs["transactions"]
            if any(leg["account"] == to_account and int(leg["amount"]) > 0
                   for leg in t["transfers"])]
    assert len(paid) == 1  # paid exactly once
    payer, seconds_nanos = payout["hedera_transaction_id"].split("@")
    assert paid[0]["transaction_id"] == f"{payer}-{seconds_nanos.replace('.', '-')}"
    assert paid[0]["result"] == "SUCCESS"
    # AND the last block's own output is the mirror's answer about the new account
    first_json = blocks[-1].output.split("}{")[0] + "}"
    assert json.loads(first_json)["account"] == to_account
