"""Player consent for charges (issue 15.4): the apps a player allows to charge them, over HTTP.

The game server's routes (``server/routes/consent.py``) on the tests' shared runtime, and charges
through the real payments API (``payments/api.py``) over the same ledger: a charge is refused
before a grant and after a revocation, allowed within the allowance in between. The consent
request never names a return URL the operator did not register for the app (open redirects).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from crowdlearning.config import Settings
from crowdlearning.ledger import player_account
from crowdlearning.ledger.accounts import AccountKind
from crowdlearning.ledger.clients import (
    allow_return_url,
    find_mandate,
    issue_key,
    open_client,
    set_allowance,
)
from crowdlearning.payments.api import create_app as create_payments_app
from crowdlearning.server.runtime import Runtime
from tests.server.conftest import TestClient, signup

RETURN = "https://shop.example/consent-done"
_apps = itertools.count()


@dataclass
class App:
    """A payments API client registered on the runtime's ledger, with its API reached in
    process."""

    client_id: str
    api: TestClient

    def charge(self, player_id: str, amount: int, charge_id: str) -> tuple[int, str]:
        r = self.api.post("/v1/charges", json={"charge_id": charge_id, "from_player": player_id,
                                               "amount_tinybar": amount})
        return r.status_code, r.json().get("code", "")


@pytest.fixture
def app(runtime: Runtime) -> Iterator[App]:
    client_id = f"shop{next(_apps)}"

    def register(conn) -> str:  # type: ignore[no-untyped-def]
        open_client(conn, client_id, now_ns=1)
        allow_return_url(conn, client_id, RETURN, now_ns=1)
        return issue_key(conn, client_id, now_ns=1)

    key = runtime.ledger.run(register)
    payments = create_payments_app(runtime.ledger, settings=Settings())
    with TestClient(payments, headers={"X-API-Key": key}) as api:
        yield App(client_id, api)


@pytest.fixture
def player(client: TestClient, runtime: Runtime) -> str:
    """A signed-in player (the client keeps the cookie) with 10,000 tinybar available."""
    player_id = signup(client)["user"]["player_id"]
    runtime.ledger.deposit(f"fund-{player_id}",
                           player_account(player_id, AccountKind.AVAILABLE), 10_000)
    return player_id


def _apps_of(client: TestClient) -> list[dict]:
    r = client.get("/api/wallet/apps")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_grant_charge_change_revoke_and_grant_again(
        client: TestClient, runtime: Runtime, app: App, player: str) -> None:
    path = f"/api/wallet/apps/{app.client_id}"
    # GIVEN no grant: the app may not charge, and the list is empty
    assert _apps_of(client) == []
    assert app.charge(player, 100, "c0") == (403, "charge_not_authorized")
    # WHEN the player allows 500: the app charges within it, not beyond
    r = client.put(path, json={"allowance_tinybar": 500})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["allowance_tinybar"] == 500
    assert app.charge(player, 200, "c1") == (201, "")
    assert app.charge(player, 301, "c2") == (403, "charge_not_authorized")
    [listed] = _apps_of(client)
    assert (listed["client_id"], listed["allowance_tinybar"], listed["spent_tinybar"]) == (
        app.client_id, 300, 200)
    # WHEN the player changes it to 1,000: 1,000 more from now on, the 200 spent stays
    r = client.put(path, json={"allowance_tinybar": 1_000})
    assert (r.json()["allowance_tinybar"], r.json()["spent_tinybar"]) == (1_000, 200)
    # WHEN the player revokes it: later charges are refused, what was spent stays listed
    r = client.delete(path)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["allowance_tinybar"], r.json()["spent_tinybar"]) == (
        "revoked", 0, 200)
    assert app.charge(player, 1, "c3") == (403, "charge_not_authorized")
    assert client.delete(path).json()["revoked_at_ns"] == r.json()["revoked_at_ns"]  # idempotent
    [listed] = _apps_of(client)
    assert (listed["status"], listed["spent_tinybar"]) == ("revoked", 200)
    # WHEN granted again: allowed within the new allowance only
    assert client.put(path, json={"allowance_tinybar": 50}).json()["status"] == "active"
    assert app.charge(player, 60, "c4") == (403, "charge_not_authorized")
    assert app.charge(player, 50, "c5") == (201, "")
    # THEN the books moved exactly the allowed charges
    assert runtime.ledger.balance(player_account(player, AccountKind.AVAILABLE)) == 10_000 - 250
    assert runtime.ledger.balance(f"client:{app.client_id}") == 250
    runtime.ledger.check_books()


def test_a_retried_grant_acts_once(client: TestClient, runtime: Runtime, app: App,
                                   player: str) -> None:
    path, headers = f"/api/wallet/apps/{app.client_id}", {"Idempotency-Key": "grant-1"}
    assert client.put(path, json={"allowance_tinybar": 500}, headers=headers).status_code == 200
    assert app.charge(player, 200, "c1") == (201, "")
    # the retry (its answer was lost) does not give the app its 500 again
    again = client.put(path, json={"allowance_tinybar": 500}, headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert _apps_of(client)[0]["allowance_tinybar"] == 300
    other = client.put(path, json={"allowance_tinybar": 600}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (409, "conflict")
    # and in the ledger, a grant retried with the same reference (the kept answer lost in a
    # crash) acts once too
    ledger = runtime.ledger
    for attempt in range(2):
        ledger.run(lambda c: set_allowance(c, player, app.client_id, 700, now_ns=5, ref="r1"))
        assert app.charge(player, 100, f"c-{attempt}")[0] == 201
    found = ledger.run(lambda c: find_mandate(c, player, app.client_id))
    assert found is not None and (found.allowance_tinybar, found.spent_tinybar) == (500, 400)


def test_unknown_apps_and_bad_allowances_are_refused(client: TestClient, app: App,
                                                      player: str) -> None:
    assert client.put("/api/wallet/apps/no-such-app", json={"allowance_tinybar": 5}).json()[
        "code"] == "not_found"
    assert client.delete(f"/api/wallet/apps/{app.client_id}").status_code == 404  # never granted
    for bad in (0, -1, 1.5, "10", None):
        r = client.put(f"/api/wallet/apps/{app.client_id}", json={"allowance_tinybar": bad})
        assert (r.status_code, r.json()["code"]) == (422, "invalid_input"), bad
    assert _apps_of(client) == []


def test_signed_out_requests_are_refused(runtime: Runtime, app: App) -> None:
    from crowdlearning.server.app import create_app

    with TestClient(create_app(runtime.settings, runtime)) as anonymous:
        path = f"/api/wallet/apps/{app.client_id}"
        query = {"client_id": app.client_id, "allowance_tinybar": 5, "return_to": RETURN}
        for r in (anonymous.get("/api/wallet/apps"),
                  anonymous.put(path, json={"allowance_tinybar": 5}),
                  anonymous.delete(path),
                  anonymous.get("/api/wallet/consent", params=query)):
            assert (r.status_code, r.json()["code"]) == (401, "not_signed_in")


def test_cookie_changes_from_another_site_are_refused(client: TestClient, app: App,
                                                       player: str) -> None:
    path = f"/api/wallet/apps/{app.client_id}"
    evil = {"Origin": "https://evil.example"}
    r = client.put(path, json={"allowance_tinybar": 5}, headers=evil)
    assert (r.status_code, r.json()["code"]) == (403, "bad_origin")
    assert _apps_of(client) == []
    own = {"Origin": "http://testserver"}
    assert client.put(path, json={"allowance_tinybar": 5}, headers=own).status_code == 200
    assert client.delete(path, headers=evil).json()["code"] == "bad_origin"
    assert _apps_of(client)[0]["status"] == "active"


def test_the_consent_request_names_the_two_urls_to_go_back_to(
        client: TestClient, app: App, player: str) -> None:
    query = {"client_id": app.client_id, "allowance_tinybar": 250,
             "return_to": RETURN + "/order?id=7", "state": "xyz-1"}
    r = client.get("/api/wallet/consent", params=query)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["client_id"], body["allowance_tinybar"], body["current"]) == (
        app.client_id, 250, None)
    assert body["return_origin"] == "https://shop.example"
    granted, declined = urlsplit(body["granted_url"]), urlsplit(body["declined_url"])
    assert body["granted_url"].startswith(RETURN + "/order?id=7&")
    assert parse_qs(granted.query) == {"id": ["7"], "consent": ["granted"], "player": [player],
                                       "state": ["xyz-1"]}
    assert parse_qs(declined.query) == {"id": ["7"], "consent": ["declined"], "state": ["xyz-1"]}
    # once granted, the page shows what the app may charge today
    client.put(f"/api/wallet/apps/{app.client_id}", json={"allowance_tinybar": 40})
    current = client.get("/api/wallet/consent", params=query).json()["current"]
    assert (current["status"], current["allowance_tinybar"]) == ("active", 40)
    plain = client.get("/api/wallet/consent", params={
        "client_id": app.client_id, "allowance_tinybar": 5, "return_to": RETURN}).json()
    assert plain["declined_url"] == RETURN + "?consent=declined"


@pytest.mark.parametrize("return_to", [
    "https://evil.example/consent-done",
    "https://shop.example.evil.com/consent-done",
    "https://shop.example@evil.com/consent-done",
    "https://shop.example\\@evil.com/consent-done",
    "https://evil.com\\@shop.example/consent-done",
    "https://shop.example/consent-donex",
    "https://shop.example/other",
    "http://shop.example/consent-done",  # a downgrade to http
    "https://shop.example:8443/consent-done",
    "https://shop.example/consent-done/../../evil",
    "https://shop.example/consent-done/%2e%2e/%2e%2e/evil",
    "https://shop.example/consent-done%2F..%2Fevil",
    "//evil.example/consent-done",
    "/consent-done",
    "javascript:alert(1)//shop.example/consent-done",
    "data:text/html,<script>alert(1)</script>",
    "https://shop.example/consent-done#https://evil.example",
    "https://shop.example/consent-done?consent=granted",
    "https://shop.example/consent-done?player=someone-else",
    " https://shop.example/consent-done",
    "https://shop.example/consent-done\r\nLocation: https://evil.example",
])
def test_return_urls_the_operator_did_not_register_are_refused(
        client: TestClient, app: App, player: str, return_to: str) -> None:
    query = {"client_id": app.client_id, "allowance_tinybar": 5, "return_to": return_to}
    r = client.get("/api/wallet/consent", params=query)
    assert (r.status_code, r.json()["code"]) == (403, "return_to_not_allowed"), r.text
    assert "granted_url" not in r.text and "evil" not in r.json()["detail"]


def test_another_apps_return_url_is_refused(client: TestClient, runtime: Runtime, app: App,
                                            player: str) -> None:
    other = f"other{next(_apps)}"

    def register(conn) -> None:  # type: ignore[no-untyped-def]
        open_client(conn, other, now_ns=1)
        allow_return_url(conn, other, "https://other.example/back", now_ns=1)

    runtime.ledger.run(register)
    query = {"client_id": app.client_id, "allowance_tinybar": 5,
             "return_to": "https://other.example/back"}
    assert client.get("/api/wallet/consent", params=query).status_code == 403
    assert client.get("/api/wallet/consent", params={**query, "client_id": other}
                      ).status_code == 200
    query["client_id"] = "no-such-app"
    assert client.get("/api/wallet/consent", params=query).json()["code"] == "not_found"


def test_the_consent_page_is_served_under_the_pages_policy(client: TestClient) -> None:
    r = client.get("/consent", params={"client_id": "shop", "allowance_tinybar": 5,
                                       "return_to": RETURN})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script src="consent.js"></script>' in r.text and "<script>" not in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "/consent" not in client.get("/openapi.json").json()["paths"]  # a page, not the API


def test_a_method_the_apps_path_does_not_take_names_both_it_does(client: TestClient) -> None:
    r = client.post("/api/wallet/apps/shop")
    assert (r.status_code, r.headers["allow"]) == (405, "DELETE, PUT")


def test_the_app_reads_what_the_player_allowed_it(
        client: TestClient, app: App, player: str) -> None:
    """``GET /v1/mandates/{player}``: the app sees the grant, what it spent, the revocation."""
    path = f"/api/wallet/apps/{app.client_id}"

    def mandate() -> tuple[int, dict]:
        r = app.api.get(f"/v1/mandates/{player}")
        return r.status_code, r.json()

    assert mandate()[0] == 404 and mandate()[1]["code"] == "unknown_mandate"
    client.put(path, json={"allowance_tinybar": 500})
    assert app.charge(player, 120, "m1") == (201, "")
    status, body = mandate()
    assert status == 200
    assert (body["status"], body["allowance_tinybar"], body["spent_tinybar"]) == (
        "active", 380, 120)
    client.delete(path)
    assert (mandate()[1]["status"], mandate()[1]["allowance_tinybar"],
            mandate()[1]["spent_tinybar"]) == ("revoked", 0, 120)
    assert app.api.get("/v1/mandates/not a player").status_code in (400, 404, 422)
