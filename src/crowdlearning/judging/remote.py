"""One judge for many game servers: requests and answers over Redis.

One process holds a few hundred players (docs/benchmarks.md); thousands need several game
servers ("shards"). They must share ONE judge: one screen (data sent to two shards is still a
duplicate), one round (every verdict against the same champion, one merge), one ledger writer for
verdicts and settlement. ``crowdlearning judge`` runs that judge (``JudgeServer``: the same
``LocalJudge`` the single server uses, its verdicts on a Ray pool if configured); a game server
with ``CROWDLEARNING_JUDGE_URL=redis://...`` talks to it through ``RemoteJudge`` instead of
starting its own judge process (``judging.process``). Shards share the data directory's model
registry (a shared filesystem) and the PostgreSQL ledger and user store; each serves its own
players.

Wire format (JSON; bytes as base64, so nothing is unpickled from the network)::

    LPUSH {prefix}:requests {"id", "op", "args", "reply_to", "deadline"}
    LPUSH {reply_to}        {"ok": value} | {"error": "..."}   (expires after a minute)

``op``: ``submit_many`` (runs -> verdict messages), ``settle`` (payout ids -> settled
messages), ``close_round`` (-> the champion version, whenever it changed since this shard last
asked: the judge closes rounds on its own clock, ``server_round_interval_s``, so shards never
close one each), ``champion_curve`` (suite tracks -> curve). A request whose deadline has passed
is answered with an error, not served: the shard has given up on it. Delivery is at most once: a
judge that dies mid-request leaves the shard with a timeout (``verdict_failed`` to the player);
whatever the judge had booked stays consistent (idempotent ledger ids, journaled round state).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from dataclasses import asdict
from typing import Any

from crowdlearning.judging.errors import JudgeUnavailableError, RemoteJudgeError
from crowdlearning.judging.local import LocalJudge
from crowdlearning.judging.stack import local_judge
from crowdlearning.policy.network import use_torch_threads
from crowdlearning.server.game_loop import RunSpec

__all__ = ["JudgeServer", "RemoteJudge", "judge_main"]

log = logging.getLogger(__name__)
REPLY_TTL_S = 60
DEFAULT_PREFIX = "crowdlearning:judge"


def _encode_runs(runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
    return [{"spec": asdict(spec), "data": base64.b64encode(data).decode()}
            for spec, data in runs]


def _decode_runs(items: list[dict]) -> list[tuple[RunSpec, bytes]]:
    return [(RunSpec(**item["spec"]), base64.b64decode(item["data"])) for item in items]


class RemoteJudge:
    """A game server's handle on the shared judge (same methods as ``JudgeProcess``)."""

    def __init__(self, url: str, *, champion: int | None, prefix: str = DEFAULT_PREFIX,
                 timeout_s: float = 120.0) -> None:
        import redis

        # BLPOP waits up to ``timeout_s``: the socket must not time out before it does (recent
        # redis-py clients default to a 5 s socket timeout); connecting still fails fast
        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s + 30.0,
                                           socket_connect_timeout=5.0)
        self._prefix, self._timeout_s = prefix, timeout_s
        self._champion = champion  # the version this shard drives
        self._redis.ping()  # fail at start, not at the first verdict

    def _call(self, op: str, args: Any, timeout_s: float | None = None) -> Any:
        timeout = self._timeout_s if timeout_s is None else timeout_s
        request_id = uuid.uuid4().hex
        reply_to = f"{self._prefix}:reply:{request_id}"
        import redis

        try:
            self._redis.lpush(f"{self._prefix}:requests", json.dumps({
                "id": request_id, "op": op, "args": args, "reply_to": reply_to,
                "deadline": time.time() + timeout}))
            answer = self._redis.blpop([reply_to], timeout=timeout)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise JudgeUnavailableError(f"Redis unreachable: {exc}") from exc
        if answer is None:
            raise JudgeUnavailableError(
                f"the shared judge did not answer {op} in {timeout:.0f} s")
        reply = json.loads(answer[1])
        if "error" in reply:
            raise RemoteJudgeError(f"shared judge: {reply['error']}")
        return reply["ok"]

    def submit(self, spec: RunSpec, contribution_bytes: bytes) -> dict:
        [message] = self.submit_many([(spec, contribution_bytes)])
        if message.get("type") == "error":
            raise RemoteJudgeError(message["message"])
        return message

    def submit_many(self, runs: list[tuple[RunSpec, bytes]]) -> list[dict]:
        return self._call("submit_many", _encode_runs(runs))

    def settle(self, payout_ids: list[str]) -> list[dict]:
        return self._call("settle", payout_ids)

    def close_round(self) -> int | None:
        """The champion version if it changed since the last call (the judge closes rounds)."""
        version = self._call("champion", None)
        if version is None or version == self._champion:
            return None
        self._champion = version
        return version

    def champion_curve(self, suite_tracks: int) -> list[dict]:
        return self._call("champion_curve", suite_tracks)

    def close(self) -> None:
        self._redis.close()


class JudgeServer:
    """Serves ``LocalJudge`` to the shards (see the module docstring)."""

    def __init__(self, judge: LocalJudge, client: Any, *, prefix: str = DEFAULT_PREFIX,
                 round_interval_s: float = 600.0) -> None:
        self.judge, self._redis, self._prefix = judge, client, prefix
        self.round_interval_s = round_interval_s
        self._next_round = time.monotonic() + round_interval_s
        self._stop = threading.Event()
        self.served = 0

    def stop(self) -> None:
        self._stop.set()

    def serve_forever(self, poll_s: float = 1.0) -> None:
        """Answer requests until ``stop``; close a round every ``round_interval_s``."""
        while not self._stop.is_set():
            self.serve_one(poll_s)
            if time.monotonic() >= self._next_round:
                self._next_round = time.monotonic() + self.round_interval_s
                self._close_round()

    def serve_one(self, poll_s: float = 1.0) -> bool:
        """Answer one request if one arrives within ``poll_s``; True if one did."""
        item = self._redis.brpop([f"{self._prefix}:requests"], timeout=poll_s)
        if item is None:
            return False
        try:
            request = json.loads(item[1])
            reply_to = request["reply_to"]
        except (ValueError, KeyError, TypeError):
            log.warning("dropped a malformed judge request")
            return True
        if not str(reply_to).startswith(f"{self._prefix}:reply:"):
            log.warning("dropped a judge request with a foreign reply key")
            return True
        answer = self._answer(request)
        self.served += 1
        self._reply(reply_to, answer)
        return True

    def _answer(self, request: dict) -> dict:
        if time.time() > float(request.get("deadline", 0)):
            return {"error": "the request expired before the judge reached it"}
        op, args = request.get("op"), request.get("args")
        try:
            if op == "submit_many":
                return {"ok": self.judge.submit_many(_decode_runs(args))}
            if op == "settle":
                return {"ok": self.judge.settle(list(args))}
            if op == "champion":
                return {"ok": self.judge.service.trainer.registry.champion}
            if op == "champion_curve":
                return {"ok": self.judge.champion_curve(int(args))}
        except Exception as exc:
            log.exception("judge request %s failed", op)
            return {"error": repr(exc)}
        return {"error": f"unknown operation {op!r}"}

    def _reply(self, reply_to: str, reply: dict) -> None:
        pipe = self._redis.pipeline()
        pipe.lpush(reply_to, json.dumps(reply))
        pipe.expire(reply_to, REPLY_TTL_S)
        pipe.execute()

    def _close_round(self) -> None:
        try:
            version = self.judge.close_round()
            log.info("round closed; champion %s", version)
        except Exception:
            log.exception("closing the round failed")


def judge_main(argv: list[str]) -> int:
    """``crowdlearning judge``: serve the shared judge on ``CROWDLEARNING_JUDGE_URL``."""
    import argparse

    import redis

    from crowdlearning.config import get_settings

    parser = argparse.ArgumentParser(prog="crowdlearning judge", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--url", default=get_settings().judge_url,
                        help="Redis URL (default: CROWDLEARNING_JUDGE_URL)")
    args = parser.parse_args(argv)
    if not args.url:
        parser.error("set --url or CROWDLEARNING_JUDGE_URL (e.g. redis://127.0.0.1:6379/0)")
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    use_torch_threads(settings.judge_threads)
    judge, close = local_judge(settings, None)  # the Hedera network comes from the settings
    server = JudgeServer(judge, redis.Redis.from_url(args.url, socket_timeout=None,
                                                     socket_connect_timeout=5.0),
                         round_interval_s=settings.server_round_interval_s)
    judge.export_champion()
    judge.warm()  # the champion's verdict null, before the first run waits for it
    print(f"CrowdLearning judge: serving game servers on {args.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close()
    return 0
