"""``crowdlearning payments issue-key`` gives a key the payments API accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from crowdlearning.config import Settings, get_settings
from crowdlearning.payments.cli import main


def test_issued_key_authenticates_against_the_api(tmp_path: Path, monkeypatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("CROWDLEARNING_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert main(["issue-key", "acme"]) == 0
        key = re.search(r"(cl_\S+)", capsys.readouterr().out).group(1)
        from crowdlearning.payments.api import create_app

        client = TestClient(create_app(settings=Settings(database_url=url)))
        assert client.get("/v1/balance", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/v1/balance", headers={"X-API-Key": "cl_nope"}).status_code == 401
        assert main(["revoke-key", key]) == 0
        assert client.get("/v1/balance", headers={"X-API-Key": key}).status_code == 401
    finally:
        get_settings.cache_clear()
