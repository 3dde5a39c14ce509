"""``Idempotency-Key`` on the wallet's changes: a retried request acts once, answers the same.

A client that sends a change (deposit, stake, unstake, withdraw) and loses the answer cannot
know whether it happened. With an ``Idempotency-Key`` header (a fresh one per user action, the
same one on each retry of it), ``once`` makes the retry safe in two layers:

- **the money, exactly once, from the ledger**: the ledger's transfers and payouts are already
  idempotent on their ids, so the route derives them from the user and the key (``ref``). Even a
  retry after a crash between the ledger's commit and the answer being kept, or two copies of
  the request running at once, moves the money once.
- **the first answer, from the store**: its status and JSON body are kept per user and key for
  ``server_idempotency_ttl_s`` (a day), with the SHA-256 of what was asked (route and body). A
  retry asking the same gets that answer again (header ``Idempotent-Replayed: true``), not
  today's balances; the same key with a different route or body is 409 ``conflict``.

Only successful answers are kept: a refusal (insufficient funds, not linked, busy) changed
nothing, so its retry simply tries again. Keys are per user: another user's key of the same
text is another request. Without the header a request acts as before, once per request.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from crowdlearning.ledger import IdempotencyConflictError
from crowdlearning.server.store import KeptAnswer, Store, User

__all__ = ["KEY_PATTERN", "IdempotencyKey", "once"]

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
IdempotencyKey = Annotated[str | None, Header(
    pattern=KEY_PATTERN, description="A fresh key per action (e.g. a UUID), the same on its "
    "retries: the action happens once and every retry gets its first answer.")]


def once(store: Store, user: User, key: str | None, route: str, body: BaseModel,
         act: Callable[[str], Any], *, status_code: int, ttl_s: float) -> Response:
    """``act(ref)``'s answer as JSON, acting at most once per user and ``key``.

    ``ref`` is what the route names its ledger transfers with: derived from the user and the
    key (``<player_id>:key.<key>``), or random when there is no key (``<player_id>:<hex>``)."""
    if key is None:
        return _json(status_code, act(f"{user.player_id}:{uuid.uuid4().hex[:16]}"))
    asked = hashlib.sha256(json.dumps([route, body.model_dump(mode="json")],
                                      sort_keys=True).encode()).hexdigest()
    kept = store.answer(user.id, key)
    if kept is None:
        answer = _json(status_code, act(f"{user.player_id}:key.{key}"))
        kept = store.keep_answer(user.id, key, KeptAnswer(asked, status_code,
                                                          bytes(answer.body).decode()), ttl_s)
        if kept.body == bytes(answer.body).decode() and kept.request_sha256 == asked:
            return answer
    if kept.request_sha256 != asked:
        raise IdempotencyConflictError(
            "this Idempotency-Key was already used for a different request: send a new key "
            "for each action (the same key only to retry the same request)")
    return Response(kept.body.encode(), status_code=kept.status, media_type="application/json",
                    headers={"Idempotent-Replayed": "true"})


def _json(status_code: int, content: Any) -> JSONResponse:
    return JSONResponse(jsonable_encoder(content), status_code=status_code)
