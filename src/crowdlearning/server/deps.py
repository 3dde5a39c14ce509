"""Annotated dependencies: the runtime's parts, and the signed-in user (cookie or bearer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crowdlearning.ledger import Ledger
from crowdlearning.server.errors import NotSignedInError
from crowdlearning.server.runtime import Runtime
from crowdlearning.server.security import hash_token
from crowdlearning.server.store import Store, User

__all__ = ["COOKIE", "CurrentUser", "LedgerDep", "RuntimeDep", "StoreDep", "token_of"]

COOKIE = "cl_session"
_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_store(runtime: RuntimeDep) -> Store:
    return runtime.store


def get_ledger(runtime: RuntimeDep) -> Ledger:
    return runtime.ledger


StoreDep = Annotated[Store, Depends(get_store)]
LedgerDep = Annotated[Ledger, Depends(get_ledger)]


def token_of(request: Request, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    """The session token from the bearer header, else from the cookie."""
    return bearer.credentials if bearer is not None else request.cookies.get(COOKIE)


def current_user(request: Request, store: StoreDep,
                 bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                 ) -> User:
    token = token_of(request, bearer)
    user = store.user_of_token(hash_token(token)) if token else None
    if user is None:
        raise NotSignedInError("sign in first (cookie cl_session or Authorization: Bearer)")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
