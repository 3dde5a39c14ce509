"""Cookie-authenticated changes only from this site's own pages (Origin / Referer)."""

from __future__ import annotations

import pytest

from crowdlearning.server.origin_check import OriginCheck, origin_of
from tests.server.conftest import TestClient, signup

HBAR = 100_000_000
OWN = "http://testserver"


def deposit_from(client: TestClient, headers: dict[str, str]) -> int:
    return client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR},
                       headers=headers).status_code


def test_cookie_changes_from_another_origin_are_refused(client: TestClient) -> None:
    # GIVEN a user signed in with the cookie
    signup(client)
    # WHEN the same change comes from pages of other origins (or from an opaque one)
    refused = [client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR}, headers=h)
               for h in ({"Origin": "https://evil.example"},
                         {"Origin": "http://testserver.evil.example"},
                         {"Origin": "https://testserver"},  # other scheme: other origin
                         {"Origin": "http://testserver:8080"},
                         {"Origin": "null"},
                         {"Referer": "https://evil.example/wallet.html"})]
    # THEN 403 in the documented shape, and no money moved
    for r in refused:
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "bad_origin" and "another site" in r.json()["detail"]
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/wallet").json()["available_tinybar"] == 0
    assert client.post("/api/auth/logout", headers={"Origin": "https://evil.example"}
                       ).status_code == 403
    assert client.get("/api/auth/me").status_code == 200  # still signed in


def test_own_origin_no_origin_and_bearer_clients_pass(client: TestClient) -> None:
    session = signup(client)
    bearer = {"Authorization": f"Bearer {session['token']}"}
    # own page (Origin, or only a Referer), a client sending neither header, a bot with a token
    assert deposit_from(client, {"Origin": OWN}) == 201
    assert deposit_from(client, {"Origin": "HTTP://TestServer:80"}) == 201
    assert deposit_from(client, {"Referer": f"{OWN}/wallet.html"}) == 201
    assert deposit_from(client, {}) == 201
    assert deposit_from(client, {**bearer, "Origin": "https://evil.example"}) == 201
    # reads are never refused
    assert client.get("/api/wallet", headers={"Origin": "https://evil.example"}).status_code == 200
    assert client.get("/api/wallet").json()["available_tinybar"] == 5 * HBAR


def test_requests_without_the_cookie_are_not_origin_checked(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    r = anonymous.post("/api/wallet/deposit", json={"amount_tinybar": HBAR},
                       headers={"Origin": "https://evil.example"})
    assert r.status_code == 401  # not signed in: nothing to forge


def test_extra_allowed_origins() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not reached")

    check = OriginCheck(app, cookie="c", allowed_origins=" https://play.example.com , "
                                                          "http://localhost:5173")
    assert check.allowed == {("https", "play.example.com", 443), ("http", "localhost", 5173)}

    def scope(origin: str) -> dict:
        return {"type": "http", "method": "POST", "scheme": "http",
                "headers": [(b"host", b"api.example.com"), (b"cookie", b"c=token"),
                            (b"origin", origin.encode())]}

    assert check._refusal(scope("https://play.example.com:443")) is None
    assert check._refusal(scope("http://api.example.com")) is None
    assert check._refusal(scope("https://other.example.com")) is not None
    with pytest.raises(ValueError, match="not scheme://host"):
        OriginCheck(app, cookie="c", allowed_origins="play.example.com")


def test_origin_of() -> None:
    assert origin_of("https://a.example/x?y") == ("https", "a.example", 443)
    assert origin_of("http://[::1]:8000") == ("http", "::1", 8000)
    for bad in ("null", "", "file:///etc/passwd", "http://a:99999", "//a.example"):
        assert origin_of(bad) is None
