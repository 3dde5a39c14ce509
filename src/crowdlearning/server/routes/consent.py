"""The apps a player allows to charge them (payments API clients' mandates) and the consent page.

Only the owner reaches their mandates: every route acts on the session's user, never on an id
from the request. ``GET /api/wallet/apps`` lists them (allowance still to take, spent so far,
when granted, revoked or not); ``PUT /api/wallet/apps/{client_id}`` grants or changes one (the
app may charge ``allowance_tinybar`` more from now on; an ``Idempotency-Key`` makes a retry act
once); ``DELETE`` revokes it (later charges answer 403, what was spent stays listed).

``GET /consent?client_id=&allowance_tinybar=&return_to=[&state=]`` is the page an app sends
the player to (``web/consent.html``); it asks ``GET /api/wallet/consent`` with the same query,
which answers what the app asks and the two URLs the page may go back to: ``return_to`` with
``consent=granted`` (and ``player=<player id>``) or ``consent=declined`` appended, and ``state``
echoed. ``return_to`` must be under a prefix the operator registered for the app
(``crowdlearning payments return-url``; ``ledger.return_urls``), else 403
``return_to_not_allowed`` and the page goes nowhere: never an open redirect. Changes signed in
with the cookie pass the Origin check (``origin_check``) like every wallet change; the pages
cannot be framed (``security_headers``: ``frame-ancestors 'none'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field

from crowdlearning import http_guard
from crowdlearning.http_guard import MAX_TINYBAR, StrictBody, Tinybar
from crowdlearning.ledger import InvalidInputError
from crowdlearning.ledger import clients as ledger_clients
from crowdlearning.ledger.accounts import CLIENT_ID_MAX
from crowdlearning.ledger.clients import Mandate
from crowdlearning.ledger.return_urls import URL_MAX, parse_return_url
from crowdlearning.server.deps import CurrentUser, RuntimeDep
from crowdlearning.server.errors import CODES, NotFoundError
from crowdlearning.server.idempotency import IdempotencyKey, once
from crowdlearning.server.routes.allow import AllowEveryMethodRoute

__all__ = ["router"]

CONSENT_PAGE = Path(__file__).resolve().parents[2] / "web" / "consent.html"
_CODES = {**CODES, "return_to_not_allowed": (
    403, "`return_to` is not under a return URL the operator registered for this app")}
_CLIENT_ID = rf"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{{0,{CLIENT_ID_MAX - 1}}}$"
_STATE = r"^[A-Za-z0-9_.~\-]{1,128}$"

ClientId = Annotated[str, PathParam(pattern=_CLIENT_ID, description="The app (API client).")]


router = APIRouter(tags=["wallet"], responses=http_guard.documented(_CODES, "not_signed_in"),
                   route_class=AllowEveryMethodRoute)


def _documented(*codes: str) -> dict[int | str, dict]:  # type: ignore[type-arg]
    return http_guard.documented(_CODES, *codes)


class AppPublic(BaseModel):
    """An app the player allowed to charge them."""

    client_id: str
    status: Literal["active", "revoked"]
    allowance_tinybar: int = Field(description="What it may still charge (0 once revoked).")
    spent_tinybar: int = Field(description="What it charged so far (kept when revoked).")
    granted_at_ns: int = Field(description="The player's last grant, change or revocation.")
    revoked_at_ns: int | None


class AppsPublic(BaseModel):
    items: list[AppPublic]


class AllowanceSet(StrictBody):
    allowance_tinybar: Tinybar = Field(description="What the app may charge from now on.")


class ConsentPublic(BaseModel):
    """What an app asks on the consent page, and where the page may go back to."""

    client_id: str
    allowance_tinybar: int = Field(description="The allowance the app asks for.")
    return_origin: str = Field(description="Where the player goes back to (scheme://host).")
    granted_url: str
    declined_url: str
    current: AppPublic | None = Field(description="What the player allows the app today.")


def _public(m: Mandate) -> AppPublic:
    return AppPublic(client_id=m.client_id, status="revoked" if m.revoked else "active",
                     allowance_tinybar=m.allowance_tinybar, spent_tinybar=m.spent_tinybar,
                     granted_at_ns=m.granted_at_ns, revoked_at_ns=m.revoked_at_ns)


def _client_exists(runtime: RuntimeDep, client_id: str) -> bool:
    return runtime.ledger.run(lambda c: ledger_clients.client_exists(c, client_id))


@router.get("/api/wallet/apps")
def apps(user: CurrentUser, runtime: RuntimeDep) -> AppsPublic:
    """The apps the player allowed to charge them: live ones first."""
    found = runtime.ledger.run(lambda c: ledger_clients.player_mandates(c, user.player_id))
    return AppsPublic(items=[_public(m) for m in found])


@router.put("/api/wallet/apps/{client_id}", response_model=AppPublic,
            responses=_documented("bad_origin", "too_large", "invalid_input", "not_found",
                                  "conflict", "busy"))
def set_allowance(client_id: ClientId, body: AllowanceSet, user: CurrentUser,
                  runtime: RuntimeDep, idempotency_key: IdempotencyKey = None) -> Response:
    """Grant or change: the app may charge ``allowance_tinybar`` more from now on (a revoked
    app is allowed again; what it spent stays)."""
    if not _client_exists(runtime, client_id):
        raise NotFoundError(f"no app {client_id}")
    ledger = runtime.ledger

    def act(ref: str) -> AppPublic:
        return _public(ledger.run(lambda c: ledger_clients.set_allowance(
            c, user.player_id, client_id, body.allowance_tinybar, now_ns=ledger.clock(),
            ref=ref)))

    return once(runtime.store, user, idempotency_key, f"apps:{client_id}", body, act,
                status_code=status.HTTP_200_OK, ttl_s=runtime.settings.server_idempotency_ttl_s)


@router.delete("/api/wallet/apps/{client_id}",
               responses=_documented("bad_origin", "invalid_input", "not_found", "busy"))
def revoke(client_id: ClientId, user: CurrentUser, runtime: RuntimeDep) -> AppPublic:
    """Revoke: the app's later charges are refused; what it spent stays listed (idempotent)."""
    ledger = runtime.ledger
    found = ledger.run(lambda c: ledger_clients.revoke_mandate(c, user.player_id, client_id,
                                                               now_ns=ledger.clock()))
    if found is None:
        raise NotFoundError(f"you never allowed {client_id} to charge you")
    return _public(found)


@router.get("/api/wallet/consent", response_model=ConsentPublic,
            responses=_documented("invalid_input", "return_to_not_allowed", "not_found"))
def consent_request(
        user: CurrentUser, runtime: RuntimeDep,
        client_id: Annotated[str, Query(pattern=_CLIENT_ID)],
        allowance_tinybar: Annotated[int, Query(ge=1, le=MAX_TINYBAR)],
        return_to: Annotated[str, Query(min_length=1, max_length=URL_MAX)],
        state: Annotated[str | None, Query(pattern=_STATE)] = None,
) -> ConsentPublic | JSONResponse:
    """What the app asks, checked: the app exists and ``return_to`` is under a return URL the
    operator registered for it; the URLs the consent page goes back to."""
    if not _client_exists(runtime, client_id):
        raise NotFoundError(f"no app {client_id}")
    try:
        parsed = parse_return_url(return_to)
        allowed = runtime.ledger.run(
            lambda c: ledger_clients.return_url_allowed(c, client_id, return_to))
    except InvalidInputError as e:
        return http_guard.error_response(403, "return_to_not_allowed", str(e))
    if not allowed:
        return http_guard.error_response(
            403, "return_to_not_allowed", f"{client_id} registered no return URL covering this "
            "one: the operator registers them (crowdlearning payments return-url)")
    current = runtime.ledger.run(
        lambda c: ledger_clients.find_mandate(c, user.player_id, client_id))
    extra = {"state": state} if state is not None else {}
    joiner = "&" if parsed.query else ("" if return_to.endswith("?") else "?")

    def answer(**params: str) -> str:
        return return_to + joiner + urlencode({**params, **extra})

    port = "" if (parsed.scheme, parsed.port) in (("https", 443), ("http", 80)) \
        else f":{parsed.port}"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return ConsentPublic(
        client_id=client_id, allowance_tinybar=allowance_tinybar,
        return_origin=f"{parsed.scheme}://{host}{port}",
        granted_url=answer(consent="granted", player=user.player_id),
        declined_url=answer(consent="declined"),
        current=None if current is None else _public(current))


@router.get("/consent", include_in_schema=False)
def consent_page() -> FileResponse:
    """The consent page (its script asks ``/api/wallet/consent``)."""
    return FileResponse(CONSENT_PAGE, media_type="text/html")
