"""Sign up, sign in, sign out, who am I (``/me``: 401 when signed out; ``/session``: 200
either way); link a Hedera account by signing a challenge.

Sign-up and sign-in are async: the password hash is awaited from ``PasswordHashing`` (bounded,
off the event loop) and the database work runs in the thread pool, so that neither a flood of
them nor their hashing holds the event loop or the thread pool the other routes need."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from hiero_sdk_python import PublicKey
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from crowdlearning.errors import HederaRequestError
from crowdlearning.server.deps import COOKIE, CurrentUser, RuntimeDep, StoreDep, token_of
from crowdlearning.server.errors import NotSignedInError, UsernameTakenError, documented
from crowdlearning.server.password_policy import check_new_password
from crowdlearning.server.schemas import (
    ChallengePublic,
    HederaLinkCreate,
    SessionPublic,
    UserCreate,
    UserPublic,
)
from crowdlearning.server.security import (
    DUMMY_HASH,
    KeyProofError,
    PasswordHashing,
    hash_token,
    new_challenge,
    new_token,
    verify_key_proof,
)
from crowdlearning.server.store import User
from crowdlearning.server.throttle import Throttle

router = APIRouter(prefix="/api/auth", tags=["auth"])
_bearer = HTTPBearer(auto_error=False)
_CHANGE = ("bad_origin", "too_large")  # every POST: Origin check, body limit
_SIGNED_IN = ("not_signed_in", *_CHANGE)


def user_public(user: User) -> UserPublic:
    return UserPublic(id=user.id, username=user.username, player_id=user.player_id,
                      hedera_account=user.hedera_account)


def _session(runtime: RuntimeDep, user: User, response: Response) -> SessionPublic:
    token = new_token()
    ttl = runtime.settings.server_token_ttl_s
    runtime.store.add_token(hash_token(token), user.id, ttl)
    response.set_cookie(COOKIE, token, max_age=ttl, httponly=True, samesite="strict",
                        secure=runtime.settings.environment == "production")
    return SessionPublic(user=user_public(user), token=token)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _count_attempt(request: Request) -> None:
    """Every sign-up and sign-in counts against the client's address (``throttle.py``)."""
    per_ip: Throttle = request.app.state.auth_per_ip
    per_ip.acquire(_client(request), "sign-up and sign-in attempts from your address")


def _passwords(request: Request) -> PasswordHashing:
    return request.app.state.passwords


@router.post("/signup", status_code=status.HTTP_201_CREATED, responses=documented(
    *_CHANGE, "invalid_input", "username_taken", "too_many_requests", "busy"))
async def signup(body: UserCreate, runtime: RuntimeDep, request: Request,
                 response: Response) -> SessionPublic:
    _count_attempt(request)
    await run_in_threadpool(check_new_password, body.password, body.username,
                            runtime.settings.server_password_min_score)
    password_hash = await _passwords(request).hash(body.password)
    return await run_in_threadpool(_sign_up, runtime, body.username, password_hash, response)


def _sign_up(runtime: RuntimeDep, username: str, password_hash: str,
             response: Response) -> SessionPublic:
    user = runtime.store.add_user(username, password_hash)
    if user is None:
        raise UsernameTakenError("that name is taken: choose another")
    runtime.ledger.open_player(user.player_id)
    return _session(runtime, user, response)


@router.post("/login", responses=documented(
    *_CHANGE, "invalid_input", "not_signed_in", "too_many_requests", "busy"))
async def login(body: UserCreate, runtime: RuntimeDep, request: Request,
                response: Response) -> SessionPublic:
    _count_attempt(request)
    failures: Throttle = request.app.state.login_failures
    key = (body.username, _client(request))
    failures.acquire(key, "failed sign-ins for this name")  # counted first, cleared on success
    user = await run_in_threadpool(runtime.store.user_by_name, body.username)
    # an unknown name costs the same hashing as a wrong password: timing tells no names
    known = await _passwords(request).verify(user.password_hash if user else DUMMY_HASH,
                                             body.password)
    if user is None or not known:
        raise NotSignedInError("unknown name or wrong password")
    failures.reset(key)
    return await run_in_threadpool(_session, runtime, user, response)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT,
             responses=documented(*_SIGNED_IN))
def logout(user: CurrentUser, store: StoreDep, response: Response) -> None:
    store.drop_tokens_of(user.id)
    response.delete_cookie(COOKIE)


@router.get("/me", responses=documented("not_signed_in"))
def me(user: CurrentUser) -> UserPublic:
    return user_public(user)


class SignedInPublic(BaseModel):
    """Whether the request carries a valid session, and whose (``user`` is null if not)."""

    signed_in: bool
    user: UserPublic | None = None


@router.get("/session", openapi_extra={"security": [{"HTTPBearer": []}, {}]})
def session(request: Request, store: StoreDep,
            bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
            ) -> SignedInPublic:
    """Who is signed in, answered 200 either way: a page asks this on every load, and a signed-out
    visitor is no error (``/me`` answers 401 for API clients that need a user)."""
    token = token_of(request, bearer)
    user = store.user_of_token(hash_token(token)) if token else None
    return SignedInPublic(signed_in=user is not None,
                          user=user_public(user) if user is not None else None)


@router.post("/hedera/challenge", responses=documented(*_SIGNED_IN))
def hedera_challenge(user: CurrentUser, runtime: RuntimeDep) -> ChallengePublic:
    challenge, ttl = new_challenge(), runtime.settings.server_challenge_ttl_s
    runtime.store.set_challenge(user.id, challenge, ttl)
    return ChallengePublic(challenge=challenge, expires_in_s=ttl)


@router.post("/hedera/link", responses=documented(
    *_SIGNED_IN, "invalid_input", "bad_key_proof", "too_many_requests", "hedera_unavailable"))
def hedera_link(body: HederaLinkCreate, user: CurrentUser, runtime: RuntimeDep,
                request: Request) -> UserPublic:
    """Link the account whose controlling key signed the open challenge.

    Two proofs: the signature shows the caller holds the key; the network's account info shows
    that key controls the account (without it anyone could claim someone else's account id and
    have "their" winnings sent there, or impersonate its owner in the league)."""
    store = runtime.store
    # each attempt that gets this far costs the treasury a paid query on Hedera
    links: Throttle = request.app.state.link_attempts
    links.acquire(user.id, "attempts to link a Hedera account")
    challenge = store.take_challenge(user.id)
    if challenge is None:
        raise KeyProofError("no open challenge: ask for one first (it is valid once)")
    proven = verify_key_proof(body.public_key, challenge, body.signature)
    try:
        on_chain = runtime.transport.account_public_key(body.account_id)
    except HederaRequestError as exc:
        raise KeyProofError(f"no such Hedera account {body.account_id}: {exc}") from exc
    if on_chain is None:
        raise KeyProofError(f"account {body.account_id} is controlled by a key list, threshold "
                            "key or contract; only single-key accounts can be linked")
    if PublicKey.from_der(bytes.fromhex(on_chain)) != proven:
        raise KeyProofError(f"the key signed the challenge but does not control account "
                            f"{body.account_id} on Hedera")
    store.link_hedera(user.id, body.account_id, proven.to_string_der())
    linked = store.user(user.id)
    assert linked is not None
    return user_public(linked)
