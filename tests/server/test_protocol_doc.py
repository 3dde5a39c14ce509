"""The bot in docs/protocol.md works as printed, against a real `crowdlearning serve`."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.server.test_e2e_browser import server_url  # noqa: F401 - the served game

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_the_documented_bot_plays_a_run_and_gets_its_verdict(server_url: str) -> None:  # noqa: F811
    section = DOC.read_text().split("## A minimal bot", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 'url="http://127.0.0.1:8000"' in code and '"bot1"' in code
    code = (code.replace('url="http://127.0.0.1:8000"', f'url="{server_url}"')
                .replace('"bot1"', f'"bot{uuid.uuid4().hex[:8]}"'))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    decision, effect, audit = done.stdout.split()
    assert decision in {"improved", "no_effect", "worse", "rejected"}
    float(effect)
    assert audit.startswith("audit:")  # its audit journal entry, published in a block
