"""Domain errors to HTTP statuses: the only place that knows both.

    NotSignedInError 401 · KeyProofError, HederaLinkRequiredError 400 · InvalidInputError 422 ·
    UnknownAccountError, UnknownTransferError, RegistryError, NotFoundError 404 ·
    InsufficientFundsError (StakeRequiredError, RewardBudgetExhaustedError), UsernameTakenError,
    IdempotencyConflictError, TransferStateError 409 · DevelopmentOnlyError 403 ·
    ConcurrencyError, HederaError 503 · UnavailableError 501 · TooManyRequestsError 429 and
    HashingBusyError 503 (both with ``Retry-After``)

Every answer is ``{"code", "detail"}``; ``http_guard`` adds 413 ``too_large``, 422
``invalid_input`` for request validation (without the input) and FastAPI's own 404 / 405;
``origin_check`` 403 ``bad_origin``. ``documented(*codes)`` is a route's ``responses=``: each
refusal it can answer, by code, in the OpenAPI (``tests/server/test_schemathesis.py`` holds every
route to it).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from crowdlearning import http_guard
from crowdlearning.errors import CrowdLearningError, HederaError
from crowdlearning.learning.registry import RegistryError
from crowdlearning.ledger import (
    ConcurrencyError,
    IdempotencyConflictError,
    InsufficientFundsError,
    InvalidInputError,
    TransferStateError,
    UnknownAccountError,
    UnknownTransferError,
)
from crowdlearning.server.security import HashingBusyError, KeyProofError
from crowdlearning.server.throttle import TooManyRequestsError

__all__ = [
    "CODES", "DevelopmentOnlyError", "HederaLinkRequiredError", "NotFoundError",
    "NotSignedInError", "UnavailableError", "UsernameTakenError", "documented",
    "install_error_handlers",
]


class NotSignedInError(CrowdLearningError):
    """No valid session token."""


class UsernameTakenError(CrowdLearningError):
    """Someone already has that name."""


class HederaLinkRequiredError(CrowdLearningError):
    """Moving money to Hedera needs a linked account."""


class DevelopmentOnlyError(CrowdLearningError):
    """A development convenience (the faucet) used outside development."""


class NotFoundError(CrowdLearningError):
    """No such thing."""


class UnavailableError(CrowdLearningError):
    """A feature this installation cannot provide."""


_STATUS: list[tuple[type[Exception], int, str]] = [
    (NotSignedInError, 401, "not_signed_in"),
    (KeyProofError, 400, "bad_key_proof"),
    (HederaLinkRequiredError, 400, "hedera_link_required"),
    (InvalidInputError, 422, "invalid_input"),
    (UnknownAccountError, 404, "unknown_account"),
    (UnknownTransferError, 404, "unknown_transfer"),
    (RegistryError, 404, "unknown_model"),
    (NotFoundError, 404, "not_found"),
    (InsufficientFundsError, 409, "insufficient_funds"),
    (UsernameTakenError, 409, "username_taken"),
    (IdempotencyConflictError, 409, "conflict"),
    (TransferStateError, 409, "conflict"),
    (DevelopmentOnlyError, 403, "development_only"),
    (ConcurrencyError, 503, "busy"),
    (HederaError, 503, "hedera_unavailable"),
    (UnavailableError, 501, "unavailable"),
]


# every error code the game server answers: (status, when), for the OpenAPI
CODES: dict[str, tuple[int, str]] = {
    **http_guard.GUARD_CODES,
    "bad_key_proof": (400, "the key or signature does not prove control of the account"),
    "hedera_link_required": (400, "link a Hedera account first"),
    "not_signed_in": (401, "no valid session (cookie `cl_session` or `Authorization: Bearer`)"),
    "bad_origin": (403, "signed in with the session cookie from another site's page"),
    "development_only": (403, "the faucet exists only in development, within its limits"),
    "not_found": (404, "no such thing of yours"),
    "unknown_model": (404, "no such model version"),
    "insufficient_funds": (409, "the balance drawn on is short (held stake included)"),
    "username_taken": (409, "someone already has that name"),
    "conflict": (409, "this `Idempotency-Key` was used for another request"),
    "too_many_requests": (429, "too many attempts: wait `Retry-After` seconds"),
    "busy": (503, "too many sign-ins waiting for a password hash (with `Retry-After`), or a "
                  "ledger transaction kept conflicting: retry"),
    "hedera_unavailable": (503, "the Hedera network did not answer: retry later"),
}


def documented(*codes: str) -> dict[int | str, dict[str, Any]]:
    """A route's ``responses=``: the refusals ``codes`` (keys of ``CODES``) it can answer."""
    return http_guard.documented(CODES, *codes)


def install_error_handlers(app: FastAPI) -> None:
    for exc_type, status, code in _STATUS:
        app.add_exception_handler(exc_type, _handler(status, code))
    app.add_exception_handler(TooManyRequestsError, _retry_later(429, "too_many_requests"))
    app.add_exception_handler(HashingBusyError, _retry_later(503, "busy"))


def _retry_later(status: int, code: str) -> Callable[[Request, Exception],
                                                      Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        wait = getattr(exc, "retry_after_s", 1.0)
        return JSONResponse({"code": code, "detail": str(exc)}, status_code=status,
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})

    return handle


def _handler(status: int, code: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"code": code, "detail": str(exc)}, status_code=status)

    return handle
