"""schemathesis over the payments API's OpenAPI, every check, on SQLite and PostgreSQL (issue 14).

Every operation gets positive and negative cases (and schemathesis's coverage cases: missing
headers, undeclared methods, boundary values) sent in-process, authenticated with a real key;
each answer must be no 5xx, a status the operation documents, the documented body and headers,
a refusal for bad input, and an acceptance for good input. Bounded (``MAX_EXAMPLES`` per
operation) so the whole file takes well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import AuthContext, Case

from crowdlearning.config import Settings
from crowdlearning.ledger import Ledger
from crowdlearning.ledger.clients import grant_mandate, issue_key, open_client
from crowdlearning.payments.api import create_app
from tests.ledger.factories import funded_player, ledger_on

MAX_EXAMPLES = 25  # per operation and database: 4 operations x 2 databases

# the schema as the app serves it (described without a ledger); each test checks that its live
# app serves the same one
_SPEC = create_app(cast(Ledger, object()), settings=Settings()).openapi()
schema = schemathesis.openapi.from_dict(_SPEC)
_KEY = "the-fixtures-key"  # put on cases when generated (some at collection), real when sent


@schema.auth(refresh_interval=None)
class _ApiKey:
    """A key on every case, except where schemathesis removes it on purpose."""

    def get(self, case: Case, context: AuthContext) -> str:
        return _KEY

    def set(self, case: Case, data: str, context: AuthContext) -> None:
        case.headers = {**(case.headers or {}), "X-API-Key": data}


@pytest.fixture(params=["sqlite", "postgres"])
def payments(request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[tuple[FastAPI, str, Ledger]]:
    """The API over funded books (a client with a mandate from a player), and the client's key."""
    with ledger_on(request.param, tmp_path, request) as ledger:
        ledger.run(lambda c: open_client(c, "acme", now_ns=1))
        ledger.deposit("acme-funding", "client:acme", 10**12)
        funded_player(ledger, "alice", 10**9)
        ledger.run(lambda c: grant_mandate(c, "alice", "acme", 10**6, now_ns=1))
        key = ledger.run(lambda c: issue_key(c, "acme", now_ns=1))
        yield create_app(ledger, settings=Settings()), key, ledger


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented_and_no_input_is_a_5xx(
        case: Case, payments: tuple[FastAPI, str, Ledger]) -> None:
    app, key, ledger = payments
    if case.headers and case.headers.get("X-API-Key") == _KEY:
        case.headers["X-API-Key"] = key
    if app.openapi() != _SPEC:
        pytest.fail("the live app serves another OpenAPI than the one fuzzed")
    case.operation.schema.app = app  # where the cases and the checks' probes go (in-process)
    response = case.call_and_validate(app=app)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:  # the one error shape
        body = response.json()
        assert set(body) == {"code", "detail"}, body
        assert isinstance(body["code"], str) and isinstance(body["detail"], str)
    ledger.check_books()
