"""``crowdlearning serve`` as a user starts it: it says which URL to open (the port really bound
when asked for any free one), says it trains the initial model only on the start that does, and
its log at INFO has no line per deposit poll or per request."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

READY = re.compile(r"CrowdLearning is ready: open (http://127\.0\.0\.1:(\d+)) in a browser")


class Served:
    """``crowdlearning serve --port 0`` in a subprocess, its output read line by line."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CROWDLEARNING_")}
        env.update({"CROWDLEARNING_HEDERA_LOCAL_PORT": "0",
                    "CROWDLEARNING_HEDERA_LOCAL_MIRROR_PORT": "0",
                    "CROWDLEARNING_SERVER_PLAY_TRACKS": "2",
                    "CROWDLEARNING_SERVER_EVAL_TRACKS": "2",
                    "CROWDLEARNING_VERDICT_NULL_RUNS": "4", "CROWDLEARNING_LOG_LEVEL": "INFO"})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crowdlearning.cli", "serve", "--port", "0", "--data-dir",
             str(data_dir)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            self._new.put(line)

    def wait_for(self, pattern: re.Pattern[str], timeout_s: float = 240) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := pattern.search(line):
                    return m
            assert self.proc.poll() is None, "\n".join(self.lines[-40:])
            with contextlib.suppress(queue.Empty):
                self._new.get(timeout=0.5)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"no line matching {pattern.pattern}:\n{tail}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            self._reader.join(timeout=10)  # it has read to the end of the output
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def test_serve_names_the_url_trains_once_and_logs_no_polls(tmp_path: Path) -> None:
    # GIVEN an empty data directory: the first start says it trains the initial model
    first = Served(tmp_path)
    try:
        ready = first.wait_for(READY)
        url, port = ready.group(1), int(ready.group(2))
        assert port != 0
        assert "first start: the initial model is trained first" in first.lines[0]
        # THEN the URL it names serves the game
        assert "Teach a self-driving car" in httpx.get(url + "/", timeout=10).text
        # and a few deposit polls (every 2 s) and page requests later, none of them was logged
        for _ in range(3):
            httpx.get(url + "/api/game/stats", timeout=10)
        time.sleep(5)
        chatty = [line for line in first.lines
                  if "HTTP Request" in line or "/api/game/stats" in line]
        assert chatty == []
    finally:
        assert first.stop() == 0
    # WHEN it starts again on the same data: no training announced
    second = Served(tmp_path)
    try:
        second.wait_for(READY)
        assert "trained" not in second.lines[0] and second.lines[0].startswith(
            "CrowdLearning: starting")
    finally:
        second.stop()
