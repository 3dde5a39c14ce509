"""The development faucet: absent in production, limited per player and day where it exists."""

from __future__ import annotations

from tests.server.conftest import TestClient, signup

HBAR = 100_000_000


def test_the_faucet_gives_a_player_at_most_the_daily_amount(client: TestClient) -> None:
    settings = client.app.state.runtime.settings
    daily, most = settings.server_dev_faucet_daily_tinybar, settings.server_dev_deposit_max_tinybar
    signup(client)
    given = 0
    while given + most <= daily:
        r = client.post("/api/wallet/deposit", json={"amount_tinybar": most})
        assert r.status_code == 201, r.text
        given += most
    over = client.post("/api/wallet/deposit", json={"amount_tinybar": daily - given + 1})
    assert over.status_code == 403 and over.json()["code"] == "development_only"
    assert "a day" in over.json()["detail"]
    assert client.get("/api/wallet").json()["available_tinybar"] == given  # nothing more given
    signup(client)  # another player (the client now holds the new session) is not limited by it
    assert client.post("/api/wallet/deposit", json={"amount_tinybar": HBAR}).status_code == 201
