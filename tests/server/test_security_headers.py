"""Security headers on every response of the game server (pages, API, errors, docs)."""

from __future__ import annotations

from tests.server.conftest import TestClient
from tests.test_security_headers import assert_secured


def test_every_game_server_answer_carries_the_headers(client: TestClient) -> None:
    # WHEN a page, a script, an API answer, an error and a body over the limit
    answers = [client.get("/"), client.get("/wallet.js"), client.get("/api/game/tracks"),
               client.get("/api/wallet"),
               client.post("/api/auth/login", content=b"x" * (1 << 17),
                           headers={"Content-Type": "application/json"})]
    # THEN each carries the headers; the pages may open sockets to their own host only
    assert [r.status_code for r in answers] == [200, 200, 200, 401, 413]
    for r in answers:
        assert_secured(r.headers)
    csp = answers[0].headers["content-security-policy"]
    assert "connect-src 'self' ws://testserver wss://testserver;" in csp
    assert "script-src 'self';" in csp and "style-src 'self';" in csp
    assert_secured(client.get("/docs").headers, docs=True)
