"""Player consent for charges in the ledger (``ledger/clients.py``, ``ledger/return_urls.py``)
and the operator's ``crowdlearning payments return-url``, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crowdlearning.config import get_settings
from crowdlearning.ledger import ChargeNotAuthorizedError, InvalidInputError, Ledger, make_engine
from crowdlearning.ledger import clients as c
from crowdlearning.ledger.records import TransferSpec
from crowdlearning.ledger.return_urls import check_prefix, is_under, parse_return_url
from crowdlearning.ledger.schema import charge_mandates
from crowdlearning.payments.cli import main as payments_cli
from tests.ledger.factories import funded_player, new_ledger, postgres_schema_engine


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        yield new_ledger(engine)
        engine.dispose()
    else:
        with postgres_schema_engine(request.getfixturevalue("postgres_url")) as engine:
            yield new_ledger(engine)
    return


@pytest.fixture
def shop(ledger: Ledger) -> str:
    ledger.run(lambda conn: c.open_client(conn, "shop", now_ns=1))
    funded_player(ledger, "alice", 1_000)
    return "shop"


def _charge(ledger: Ledger, charge_id: str, amount: int) -> None:
    spec = TransferSpec.move(f"api:shop:{charge_id}", "player:alice:available", "client:shop",
                             amount)
    ledger.run(lambda conn: c.charge(conn, "shop", "alice", spec, now_ns=9))


def test_mandates_list_change_and_revoke_keeping_what_was_spent(ledger: Ledger,
                                                                 shop: str) -> None:
    assert ledger.run(lambda conn: c.player_mandates(conn, "alice")) == []
    granted = ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 300, now_ns=2))
    assert (granted.allowance_tinybar, granted.spent_tinybar, granted.granted_at_ns) == (300, 0, 2)
    _charge(ledger, "a", 120)
    changed = ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 50, now_ns=3))
    assert (changed.allowance_tinybar, changed.spent_tinybar, changed.revoked) == (50, 120, False)
    revoked = ledger.run(lambda conn: c.revoke_mandate(conn, "alice", shop, now_ns=4))
    assert revoked is not None and revoked.revoked and revoked.revoked_at_ns == 4
    assert (revoked.allowance_tinybar, revoked.spent_tinybar) == (0, 120)
    with pytest.raises(ChargeNotAuthorizedError, match="revoked"):
        _charge(ledger, "b", 1)
    again = ledger.run(lambda conn: c.revoke_mandate(conn, "alice", shop, now_ns=5))
    assert again == revoked  # idempotent: the first revocation's time stays
    [listed] = ledger.run(lambda conn: c.player_mandates(conn, "alice"))
    assert listed == revoked
    assert ledger.run(lambda conn: c.revoke_mandate(conn, "bob", shop, now_ns=5)) is None
    ledger.check_books()


def test_grant_mandate_zero_revokes_and_a_retried_grant_acts_once(ledger: Ledger,
                                                                  shop: str) -> None:
    ledger.run(lambda conn: c.grant_mandate(conn, "alice", shop, 100, now_ns=1))
    ledger.run(lambda conn: c.grant_mandate(conn, "alice", shop, 0, now_ns=2))
    found = ledger.run(lambda conn: c.find_mandate(conn, "alice", shop))
    assert found is not None and found.revoked
    ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 100, now_ns=3, ref="k"))
    _charge(ledger, "x", 60)
    # the same grant again (its answer lost): the 40 left stay 40
    ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 100, now_ns=4, ref="k"))
    with pytest.raises(ChargeNotAuthorizedError):
        _charge(ledger, "y", 60)
    with pytest.raises(InvalidInputError):
        ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 0, now_ns=5))


def test_the_database_keeps_spent_within_the_limit(ledger: Ledger, shop: str) -> None:
    ledger.run(lambda conn: c.set_allowance(conn, "alice", shop, 10, now_ns=1))
    with pytest.raises(sa.exc.IntegrityError), ledger.engine.begin() as conn:
        conn.execute(charge_mandates.update().values(used_tinybar=11))


GOOD = "https://shop.example/back"


@pytest.mark.parametrize(("url", "under"), [
    ("https://shop.example/back", True),
    ("https://SHOP.example:443/back/order/7?x=1", True),
    ("https://shop.example/backdoor", False),
    ("https://shop.example/", False),
    ("https://shop.example.evil.com/back", False),
    ("https://shop.example:444/back", False),
])
def test_a_return_url_is_under_a_prefix_by_origin_and_path(url: str, under: bool) -> None:
    assert is_under(parse_return_url(url), GOOD) is under


@pytest.mark.parametrize("prefix", [
    "http://shop.example/", "https://shop.example/?q=1", "https://u@shop.example/",
    "https://shop.example/#x", "ftp://shop.example/", "shop.example/back", "https://",
    "https://shop.example/a/../b", "x" * 600,
])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidInputError):
        check_prefix(prefix)


def test_loopback_http_prefixes_are_for_development() -> None:
    for prefix in ("http://localhost:3000/cb", "http://127.0.0.1:8080/", "http://[::1]/cb"):
        assert check_prefix(prefix) == prefix
    assert is_under(parse_return_url("http://127.0.0.1:8080/x?y=1"), "http://127.0.0.1:8080/")
    assert not is_under(parse_return_url("http://127.0.0.1:8081/x"), "http://127.0.0.1:8080/")


def test_the_operator_registers_return_urls_with_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("CROWDLEARNING_DATABASE_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    get_settings.cache_clear()
    try:
        assert payments_cli(["issue-key", "shop"]) == 0
        assert payments_cli(["return-url", "shop", GOOD]) == 0
        assert payments_cli(["return-url", "shop", "http://shop.example/"]) == 2
        assert "https://" in capsys.readouterr().err
        assert payments_cli(["return-url", "nobody", GOOD]) == 2
        capsys.readouterr()
        assert payments_cli(["return-url", "shop"]) == 0
        assert capsys.readouterr().out.split() == [GOOD]
        assert payments_cli(["return-url", "shop", GOOD, "--remove"]) == 0
        assert payments_cli(["return-url", "shop"]) == 0
        assert "no return URL" in capsys.readouterr().out
    finally:
        get_settings.cache_clear()
