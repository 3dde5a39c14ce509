"""The judge in a child process: a ``LocalJudge`` that never holds the game server's GIL.

Judging is CPU-bound Python, and on the server's own interpreter it would take the GIL from the
game loop for seconds at a time (measured in docs/benchmarks.md, "game server").
``JudgeProcess`` starts a ``spawn`` child that builds its own judging stack from the settings
(``judging.stack.local_judge``: its own ledger, transport, store and registry handles), runs at
idle CPU priority, ends with its parent, and answers requests over a pipe with the same methods
as ``LocalJudge`` (``judging.local``). It is called from the runtime's single worker thread
only, one request at a time.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from crowdlearning.config import Settings
from crowdlearning.judging.errors import JudgeUnavailableError
from crowdlearning.judging.local import LocalJudge
from crowdlearning.judging.stack import local_judge
from crowdlearning.payments.local_network.server import LocalNetworkInfo
from crowdlearning.policy.network import use_torch_threads
from crowdlearning.server.game_loop import RunSpec

__all__ = ["JUDGE_NICENESS", "JudgeProcess"]

log = logging.getLogger(__name__)
JUDGE_NICENESS = 10  # the judge yields the CPU to the game loop


class JudgeProcess:
    """A ``LocalJudge`` in a child process (see the module docstring). A child that dies is
    started again at the next request; the request that found it dead raises
    ``JudgeUnavailableError`` (whether it was served is unknown: the judge is idempotent)."""

    def __init__(self, settings: Settings, network: LocalNetworkInfo | None,
                 start_timeout_s: float = 120.0) -> None:
        self._args = (settings, network)
        self._start_timeout_s = start_timeout_s
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(*self._args, child),
                                 name="crowdlearning-judge", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(self._start_timeout_s):
            self._proc.kill()
            raise JudgeUnavailableError("the judge process did not start in time")
        try:
            self._expect(self._conn.recv())
        except (EOFError, OSError, RuntimeError) as exc:  # died, or could not build its stack
            raise JudgeUnavailableError(f"the judge process could not start: {exc}") from exc

    def _restart(self) -> None:
        log.error("the judge process died (exit code %s): starting it again",
                  self._proc.exitcode)
        with contextlib.suppress(OSError):
            self._conn.close()
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(timeout=10)
        self.restarts += 1
        self._start()

    def _call(self, op: str, *args: Any) -> Any:
        if not self._proc.is_alive():
            self._restart()
        try:
            self._conn.send((op, args))
            reply = self._conn.recv()
        except (EOFError, OSError) as exc:
            with contextlib.suppress(JudgeUnavailableError):  # else: again at the next call
                self._restart()
            raise JudgeUnavailableError(
                f"the judge process died during {op}", during_request=True) from exc
        return self._expect(reply)

    @staticmethod
    def _expect(reply: tuple[str, Any]) -> Any:
        status, value = reply
        if status != "ok":
            raise RuntimeError(f"judge process: {value}")
        return value

    def submit(self, spec: RunSpec, contribution_bytes: bytes) -> dict:
        return self._call("submit", spec, contribution_bytes)

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        return self._call("submit_many", runs)

    def settle(self, payout_ids: list[str]) -> list[dict]:
        return self._call("settle", payout_ids)

    def close_round(self) -> int | None:
        return self._call("close_round")

    def champion_curve(self, suite_tracks: int) -> list[dict]:
        return self._call("champion_curve", suite_tracks)

    def close(self) -> None:
        """Ask the child to stop; one busy warming a new champion (tens of seconds of idle-
        priority CPU under load) does not read the request, so after a grace period it is
        killed (it holds nothing that a kill can corrupt: the ledger is transactional) and
        reaped, so that no judge outlives the server."""
        with contextlib.suppress(OSError):
            self._conn.send(("stop", ()))
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(timeout=10)
        self._conn.close()


def _child_main(settings: Settings, network: LocalNetworkInfo | None, conn: Connection) -> None:
    _yield_cpu()
    _exit_with_parent()
    use_torch_threads(settings.judge_threads)
    try:
        judge, closer = local_judge(settings, network)  # the child builds its own stack
    except Exception as exc:
        conn.send(("error", f"could not start: {exc!r}"))
        return
    conn.send(("ok", None))
    judge.export_champion()
    judge.warm()
    try:
        _serve(judge, conn)
    finally:
        closer()


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """A server killed with SIGKILL cannot stop its judge, and a judge busy warming does not
    notice its pipe closing: a daemon thread ends the child once its parent is gone."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, name="judge-parent-watch", daemon=True).start()


def _yield_cpu() -> None:
    """Frames cannot wait, verdicts can: the judge runs only on CPU the game leaves idle
    (Linux SCHED_IDLE), or at least at a low priority."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(JUDGE_NICENESS)


def _serve(judge: LocalJudge, conn: Connection) -> None:
    while True:
        try:
            op, args = conn.recv()
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        try:
            conn.send(("ok", getattr(judge, op)(*args)))
        except Exception as exc:
            log.exception("judge request %s failed", op)
            conn.send(("error", repr(exc)))

