"""Domain errors to HTTP statuses: the only place that knows both.

    NotSignedInError 401 · KeyProofError, HederaLinkRequiredError 400 · InvalidInputError 422 ·
    UnknownAccountError, UnknownTransferError, RegistryError, NotFoundError 404 ·
    InsufficientFundsError (StakeRequiredError, RewardBudgetExhaustedError), UsernameTakenError,
    IdempotencyConflictError, TransferStateError 409 · DevelopmentOnlyError 403 ·
    ConcurrencyError, HederaError 503 · UnavailableError 501 · TooManyRequestsError 429 and
    HashingBusyError 503 (both with ``Retry-After``)

Every answer is ``{"code", "detail"}``; ``http_guard`` adds 413 ``too_large``, 422
``invalid_input`` for request validation (without the input) and FastAPI's own 404 / 405.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

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
    "DevelopmentOnlyError", "HederaLinkRequiredError", "NotFoundError", "NotSignedInError",
    "UnavailableError", "UsernameTakenError", "install_error_handlers",
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
